package vrrp

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/gvs-lb/gvs/internal/script"
)

// VIP is one virtual_ipaddress line: "198.18.0.10/24 dev eth0 label eth0:1".
type VIP struct {
	Prefix netip.Prefix // address and prefix length (/32 or /128 when none given)
	Dev    string       // interface; empty means the instance's interface
	Label  string       // IPv4 address label, optional
}

// TrackInterface is a track_interface entry.
type TrackInterface struct {
	Name string
	// Weight 0: the link going down puts the instance in FAULT. Otherwise
	// a positive weight is added to the priority while the link is up, a
	// negative one subtracted while it is down.
	Weight int
}

// TrackScript is a vrrp_script block, finished (internal/plan sets the
// defaults noted).
type TrackScript struct {
	Name     string
	Script   script.Cmd    // command line, run with /bin/sh -c
	Interval time.Duration // default 1 s
	Timeout  time.Duration // default Interval
	// Weight as track_interface's; Rise and Fall are how many successes
	// and failures in a row change the result (default 1).
	Weight int
	Rise   int
	Fall   int
}

// TrackFile is a vrrp_track_file block: the integer in File, times Weight
// (negated with Reverse), is added to the priority; with Weight 0 a
// non-zero value (a zero one with Reverse) means FAULT.
type TrackFile struct {
	Name    string
	File    string
	Weight  int
	Reverse bool
}

// TrackRef is a track_script / track_file / track_process reference in an
// instance; a non-nil Weight overrides the block's weight, and for
// track_file Reverse then overrides its reverse (track_script and
// track_process references fold reverse into Weight's sign).
type TrackRef struct {
	Name    string
	Weight  *int
	Reverse bool
}

// InstanceConfig mirrors keepalived's vrrp_instance keywords. It is
// finished: internal/plan sets every value (keepalived's defaults, noted
// in parentheses, are settled there) and NewInstance takes it as it is,
// after Validate.
type InstanceConfig struct {
	Name string // vrrp_instance NAME
	// State is state MASTER|BACKUP, the wanted initial state. As in
	// keepalived 2.2 (vrrp_init_state), it changes nothing at start: an
	// instance enters BACKUP and becomes MASTER when Master_Down_Interval
	// passes without a better advert; only priority 255 is MASTER at once.
	State     State
	Interface string        // interface
	VRID      uint8         // virtual_router_id
	Priority  uint8         // priority (default 100); 255 is the address owner
	AdvertInt time.Duration // advert_int (default 1 s)
	Version   uint8         // version (default 2; IPv6 forces 3)

	NoPreempt    bool          // nopreempt
	PreemptDelay time.Duration // preempt_delay

	AuthType AuthType // authentication { auth_type }, v2 only
	AuthPass string   // authentication { auth_pass }: first 8 characters used

	VIPs         []VIP // virtual_ipaddress: in adverts
	ExcludedVIPs []VIP // virtual_ipaddress_excluded: set but not advertised

	UnicastSrcIP netip.Addr   // unicast_src_ip
	UnicastPeers []netip.Addr // unicast_peer
	MCastSrcIP   netip.Addr   // mcast_src_ip
	// CheckUnicastSrc drops unicast adverts whose source is not one of
	// UnicastPeers (check_unicast_src, or global vrrp_check_unicast_src).
	CheckUnicastSrc bool

	// Routes are virtual_routes: installed with the VIPs when MASTER.
	Routes []Route

	// UseVMAC puts the VIPs on a macvlan interface with the VRRP virtual
	// MAC 00:00:5e:00:01:VRID (IPv6: 00:00:5e:00:02:VRID), created at Run
	// and removed when Run returns; adverts and gratuitous ARPs leave from
	// it (from Interface with VMACXmitBase).
	UseVMAC      bool
	VMACName     string // the macvlan's name (default vrrp.VRID)
	VMACXmitBase bool   // vmac_xmit_base

	// DontTrackPrimary keeps the instance out of FAULT when its own
	// Interface goes down (dont_track_primary); tracked ones still count.
	DontTrackPrimary bool
	TrackInterfaces  []TrackInterface // track_interface
	TrackScripts     []TrackRef       // track_script
	TrackFiles       []TrackRef       // track_file
	TrackProcesses   []TrackRef       // track_process

	Notify Notify // Any gets INSTANCE name state priority

	GARPMasterDelay         time.Duration // garp_master_delay (default 5 s; 0 or less: no second burst)
	GARPMasterRepeat        int           // garp_master_repeat (default 5)
	GARPMasterRefresh       time.Duration // garp_master_refresh (default 0: none)
	GARPMasterRefreshRepeat int           // garp_master_refresh_repeat (default 1)
	GARPInterval            time.Duration // garp_interval / vrrp_garp_interval between packets of a burst (default 0)
}

// SyncGroup is a vrrp_sync_group: its instances change state together.
type SyncGroup struct {
	Name      string
	Instances []string
	Notify    Notify // Any gets GROUP name state
}

// Notify is the scripts an instance or a sync group runs when its state
// changes: notify_master, notify_backup, notify_fault and notify_stop on
// entering that state, notify (Any) on every change.
type Notify struct {
	Master, Backup, Fault, Stop, Any script.Cmd
}

// entering is the script for entering s (none for INIT).
func (n *Notify) entering(s State) script.Cmd {
	switch s {
	case StateMaster:
		return n.Master
	case StateBackup:
		return n.Backup
	case StateFault:
		return n.Fault
	case StateStop:
		return n.Stop
	}
	return script.Cmd{}
}

// Equal reports whether n and o run the same scripts.
func (n Notify) Equal(o Notify) bool {
	return n.Master.Equal(o.Master) && n.Backup.Equal(o.Backup) && n.Fault.Equal(o.Fault) &&
		n.Stop.Equal(o.Stop) && n.Any.Equal(o.Any)
}

// IPv6 reports whether the instance runs VRRP over IPv6 (its first VIP is
// IPv6, as in keepalived).
func (c *InstanceConfig) IPv6() bool {
	if len(c.VIPs) > 0 {
		return c.VIPs[0].Prefix.Addr().Is6()
	}
	return c.UnicastSrcIP.Is6() || c.MCastSrcIP.Is6()
}

// Unicast reports whether adverts go to unicast peers instead of the group.
func (c *InstanceConfig) Unicast() bool { return len(c.UnicastPeers) > 0 }

// V3AdvertUnit is VRRPv3's advert_int unit: the interval travels in
// centiseconds.
const V3AdvertUnit = 10 * time.Millisecond

// Validate checks a finished instance configuration: every value set (the
// compile step, internal/plan, settles keepalived's defaults), and the
// protocol's rules kept.
func (c *InstanceConfig) Validate() error {
	var errs []error
	bad := func(f string, a ...any) {
		errs = append(errs, fmt.Errorf("vrrp_instance %s: "+f, append([]any{c.Name}, a...)...))
	}
	if c.Name == "" {
		bad("has no name")
	}
	if c.Interface == "" {
		bad("no interface given (add: interface eth0)")
	}
	if c.VRID == 0 {
		bad("virtual_router_id must be 1..255")
	}
	if c.Priority == 0 {
		bad("priority must be 1..255")
	}
	if c.State != StateBackup && c.State != StateMaster {
		bad("state must be MASTER or BACKUP, not %s", c.State)
	}
	is6 := c.IPv6()
	if is6 && c.Version == 2 {
		bad("VRRPv2 is IPv4 only (set version 3)")
	}
	switch c.Version {
	case 2:
		if c.AdvertInt < time.Second || c.AdvertInt > 255*time.Second || c.AdvertInt%time.Second != 0 {
			bad("advert_int %s: VRRPv2 needs whole seconds 1..255 (use version 3 for less)", c.AdvertInt)
		}
	case 3:
		if c.AdvertInt < V3AdvertUnit || c.AdvertInt > 4095*V3AdvertUnit || c.AdvertInt%V3AdvertUnit != 0 {
			bad("advert_int %s: VRRPv3 needs 0.01..40.95 s in steps of 0.01 s", c.AdvertInt)
		}
		if c.AuthType != AuthNone {
			bad("authentication is not allowed with VRRP version 3 (remove it or set version 2)")
		}
	default:
		bad("version %d: want 2 or 3", c.Version)
	}
	if c.AuthType != AuthNone && c.AuthType != AuthPass && c.AuthType != AuthAH {
		bad("auth_type %s is not supported (want PASS or AH)", c.AuthType)
	}
	if len(c.VIPs) > maxAddrs {
		bad("%d virtual_ipaddress entries, at most %d", len(c.VIPs), maxAddrs)
	}
	for i, v := range append(append([]VIP{}, c.VIPs...), c.ExcludedVIPs...) {
		if !v.Prefix.IsValid() {
			bad("virtual address %d is not valid", i+1)
			continue
		}
		if i < len(c.VIPs) && v.Prefix.Addr().Is6() != is6 {
			bad("virtual_ipaddress %s: all addresses must be of one family (move the other family to virtual_ipaddress_excluded)", v.Prefix)
		}
	}
	for _, p := range c.UnicastPeers {
		if p.Is6() != is6 {
			bad("unicast_peer %s is not of the instance's address family", p)
		}
	}
	if c.UseVMAC {
		if c.VMACName == "" {
			bad("use_vmac without a macvlan name")
		}
		if len(c.VMACName) > 15 {
			bad("vmac name %q is longer than 15 characters", c.VMACName)
		}
	}
	for _, r := range c.Routes {
		if !r.Dst.IsValid() {
			bad("virtual_routes: a route has no destination")
		}
	}
	return errors.Join(errs...)
}

// Equal reports whether c and o configure the same instance.
func (c *InstanceConfig) Equal(o *InstanceConfig) bool {
	a, b := *c, *o
	if !slices.Equal(a.VIPs, b.VIPs) || !slices.Equal(a.ExcludedVIPs, b.ExcludedVIPs) ||
		!slices.Equal(a.UnicastPeers, b.UnicastPeers) || !slices.Equal(a.Routes, b.Routes) ||
		!slices.Equal(a.TrackInterfaces, b.TrackInterfaces) || !slices.EqualFunc(a.TrackScripts, b.TrackScripts, TrackRef.equal) ||
		!slices.EqualFunc(a.TrackFiles, b.TrackFiles, TrackRef.equal) || !slices.EqualFunc(a.TrackProcesses, b.TrackProcesses, TrackRef.equal) {
		return false
	}
	return a.Notify.Equal(b.Notify) && a.comparable() == b.comparable()
}

// comparable is c without its slices: every other field compares with ==.
func (c InstanceConfig) comparable() instanceScalars {
	return instanceScalars{c.Name, c.State, c.Interface, c.VRID, c.Priority, c.AdvertInt, c.Version, c.NoPreempt,
		c.PreemptDelay, c.AuthType, c.AuthPass, c.UnicastSrcIP, c.MCastSrcIP, c.CheckUnicastSrc, c.UseVMAC,
		c.VMACName, c.VMACXmitBase, c.GARPMasterDelay, c.GARPMasterRepeat, c.GARPMasterRefresh,
		c.GARPMasterRefreshRepeat, c.GARPInterval, c.DontTrackPrimary}
}

type instanceScalars struct {
	Name                    string
	State                   State
	Interface               string
	VRID, Priority          uint8
	AdvertInt               time.Duration
	Version                 uint8
	NoPreempt               bool
	PreemptDelay            time.Duration
	AuthType                AuthType
	AuthPass                string
	UnicastSrcIP            netip.Addr
	MCastSrcIP              netip.Addr
	CheckUnicastSrc         bool
	UseVMAC                 bool
	VMACName                string
	VMACXmitBase            bool
	GARPMasterDelay         time.Duration
	GARPMasterRepeat        int
	GARPMasterRefresh       time.Duration
	GARPMasterRefreshRepeat int
	GARPInterval            time.Duration
	DontTrackPrimary        bool
}

func (r TrackRef) equal(o TrackRef) bool {
	if (r.Weight == nil) != (o.Weight == nil) || r.Weight != nil && *r.Weight != *o.Weight {
		return false
	}
	return r.Name == o.Name && r.Reverse == o.Reverse
}

// Equal reports whether g and o are the same sync group.
func (g *SyncGroup) Equal(o *SyncGroup) bool {
	return g.Name == o.Name && slices.Equal(g.Instances, o.Instances) && g.Notify.Equal(o.Notify)
}

// Equal reports whether s and o are the same vrrp_script.
func (s *TrackScript) Equal(o *TrackScript) bool {
	a, b := *s, *o
	if !a.Script.Equal(b.Script) {
		return false
	}
	a.Script, b.Script = script.Cmd{}, script.Cmd{}
	return a == b
}
