package config

import (
	"net/netip"
	"strings"
	"time"
)

// VRRPScript is a vrrp_script: a command run every Interval whose exit
// status instances track.
type VRRPScript struct {
	Pos  Pos    `json:"pos"`
	Name string `json:"name"`
	// Script is the command and its user.
	Script *Script `json:"script"`
	// Interval between runs (default 1 s).
	Interval time.Duration `json:"interval"`
	// Timeout after which a run counts as failed (default: Interval).
	Timeout time.Duration `json:"timeout"`
	// Weight adjusts the priority of tracking instances (default 0:
	// failure means FAULT); Reverse flips its direction.
	Weight  int  `json:"weight"`
	Reverse bool `json:"reverse,omitempty"`
	// Rise and Fall are the successes / failures needed to change state
	// (default 1 each).
	Rise int `json:"rise"`
	Fall int `json:"fall"`
	// InitFail starts the script in the failed state.
	InitFail bool `json:"init_fail,omitempty"`
}

// Track is one line of a track_interface, track_script or track_file
// block: a name, an optional weight (WeightSet tells it was given) and
// reverse.
type Track struct {
	Name      string `json:"name"`
	Weight    int    `json:"weight,omitempty"`
	WeightSet bool   `json:"weight_set,omitempty"`
	Reverse   bool   `json:"reverse,omitempty"`
}

// Notify holds the state-change scripts of an instance or sync group.
type Notify struct {
	Master *Script `json:"master,omitempty"`
	Backup *Script `json:"backup,omitempty"`
	Fault  *Script `json:"fault,omitempty"`
	Stop   *Script `json:"stop,omitempty"`
	// Any runs on every transition, with the type, name, state and
	// priority appended.
	Any *Script `json:"any,omitempty"`
}

// SyncGroup is a vrrp_sync_group: instances that change state together.
type SyncGroup struct {
	Pos             Pos      `json:"pos"`
	Name            string   `json:"name"`
	Group           []string `json:"group"`
	TrackInterfaces []Track  `json:"track_interface,omitempty"`
	TrackScripts    []Track  `json:"track_script,omitempty"`
	TrackFiles      []Track  `json:"track_file,omitempty"`
	TrackProcesses  []Track  `json:"track_process,omitempty"`
	Notify          Notify   `json:"notify"`
	SMTPAlert       *bool    `json:"smtp_alert,omitempty"`
}

// Auth is a VRRPv2 authentication block.
type Auth struct {
	Type string `json:"type"` // "PASS" or "AH"
	// Pass is the password; only its first 8 bytes are used.
	Pass string `json:"pass"`
}

// VIP is one line of virtual_ipaddress or virtual_ipaddress_excluded.
type VIP struct {
	// Prefix is the address with its prefix length (/32 or /128 when
	// none was written).
	Prefix    netip.Prefix `json:"prefix"`
	Broadcast netip.Addr   `json:"brd,omitzero"`
	Peer      netip.Addr   `json:"peer,omitzero"`
	Dev       string       `json:"dev,omitempty"`
	Scope     string       `json:"scope,omitempty"`
	Label     string       `json:"label,omitempty"`
	UseVMAC   bool         `json:"use_vmac,omitempty"`
	NoTrack   bool         `json:"no_track,omitempty"`
	// Flags are the remaining ip-address flags as written (home, -nodad,
	// noprefixroute, autojoin, mngtmpaddr, "preferred_lft 0" ...).
	Flags []string `json:"flags,omitempty"`
}

// Route is one line of virtual_routes: the words as written, with the
// destination and common fields picked out.
type Route struct {
	// Type is "" for a unicast route, or blackhole, unreachable,
	// prohibit, throw.
	Type  string       `json:"type,omitempty"`
	To    netip.Prefix `json:"to"`
	Src   netip.Addr   `json:"src,omitzero"`
	Via   netip.Addr   `json:"via,omitzero"`
	Dev   string       `json:"dev,omitempty"`
	Table string       `json:"table,omitempty"`
	// Words is the whole line, for options not picked out.
	Words []string `json:"words"`
}

// UnicastPeer is one line of unicast_peer.
type UnicastPeer struct {
	Addr   netip.Addr `json:"addr"`
	MinTTL int        `json:"min_ttl,omitempty"`
	MaxTTL int        `json:"max_ttl,omitempty"`
}

// VRRPInstance is a vrrp_instance, with keepalived's defaults applied.
type VRRPInstance struct {
	Pos  Pos    `json:"pos"`
	Name string `json:"name"`
	// State is the initial state, "MASTER" or "BACKUP" (default BACKUP).
	State     string `json:"state"`
	Interface string `json:"interface,omitempty"`
	// VirtualRouterID is the VRID, 1..255 (required).
	VirtualRouterID int `json:"virtual_router_id"`
	// Priority is 1..255 (default 100; 255 is the address owner).
	Priority int `json:"priority"`
	// AdvertInt is the advertisement interval (default 1 s).
	AdvertInt time.Duration `json:"advert_int"`
	// Version is 2 or 3 (default global_defs vrrp_version, itself 2;
	// IPv6 instances always use 3).
	Version      int           `json:"version"`
	NoPreempt    bool          `json:"nopreempt,omitempty"`
	PreemptDelay time.Duration `json:"preempt_delay,omitempty"`
	Accept       *bool         `json:"accept,omitempty"`
	Auth         *Auth         `json:"authentication,omitempty"`

	VirtualIPs         []VIP         `json:"virtual_ipaddress,omitempty"`
	ExcludedVIPs       []VIP         `json:"virtual_ipaddress_excluded,omitempty"`
	NoVirtualIPAddress bool          `json:"no_virtual_ipaddress,omitempty"`
	VirtualRoutes      []Route       `json:"virtual_routes,omitempty"`
	McastSrcIP         netip.Addr    `json:"mcast_src_ip,omitzero"`
	UnicastSrcIP       netip.Addr    `json:"unicast_src_ip,omitzero"`
	UnicastPeers       []UnicastPeer `json:"unicast_peer,omitempty"`
	UnicastTTL         int           `json:"unicast_ttl,omitempty"`

	TrackInterfaces  []Track `json:"track_interface,omitempty"`
	TrackScripts     []Track `json:"track_script,omitempty"`
	TrackFiles       []Track `json:"track_file,omitempty"`
	TrackProcesses   []Track `json:"track_process,omitempty"`
	DontTrackPrimary bool    `json:"dont_track_primary,omitempty"`

	Notify    Notify `json:"notify"`
	SMTPAlert *bool  `json:"smtp_alert,omitempty"`

	// Gratuitous ARP settings (defaults: the global vrrp_garp_* values).
	GarpMasterDelay         time.Duration `json:"garp_master_delay"`
	GarpMasterRepeat        int           `json:"garp_master_repeat"`
	GarpMasterRefresh       time.Duration `json:"garp_master_refresh"`
	GarpMasterRefreshRepeat int           `json:"garp_master_refresh_repeat"`
	GarpLowerPrioDelay      time.Duration `json:"garp_lower_prio_delay"`
	GarpLowerPrioRepeat     int           `json:"garp_lower_prio_repeat"`

	// UseVMAC puts the VIPs on a macvlan with the VRRP MAC; VMACName and
	// VMACAddr are its optional name and MAC.
	UseVMAC      bool   `json:"use_vmac,omitempty"`
	VMACName     string `json:"vmac_name,omitempty"`
	VMACXmitBase bool   `json:"vmac_xmit_base,omitempty"`
	// NativeIPv6 forces IPv6 (deprecated in keepalived: the VIPs decide).
	NativeIPv6 bool `json:"native_ipv6,omitempty"`
	// SkipCheckAdvAddr and StrictMode default to the global settings.
	SkipCheckAdvAddr bool `json:"skip_check_adv_addr,omitempty"`
	StrictMode       bool `json:"strict_mode,omitempty"`

	// set records keywords given, for defaults taken from global_defs.
	set map[string]bool
}

// IPv6 reports whether the instance runs over IPv6: its first VIP is
// IPv6, or native_ipv6 is set.
func (v *VRRPInstance) IPv6() bool {
	if v.NativeIPv6 {
		return true
	}
	return len(v.VirtualIPs) > 0 && v.VirtualIPs[0].Prefix.Addr().Is6()
}

func (d *decoder) vrrpScript(n *node, c *Config) {
	s := VRRPScript{Pos: n.pos, Name: n.args[1], Interval: time.Second, Rise: 1, Fall: 1}
	timeoutSet := false
	run(d, "vrrp_script", n.children, table[VRRPScript]{
		"script": {min: 1, max: 3, fn: func(d *decoder, n *node, s *VRRPScript) {
			var user, group string
			if s.Script != nil { // a user line came first
				user, group = s.Script.User, s.Script.Group
			}
			s.Script = d.script(n, 1)
			if s.Script.User == "" {
				s.Script.User, s.Script.Group = user, group
			}
		}},
		"interval": {min: 1, max: 1, fn: func(d *decoder, n *node, s *VRRPScript) {
			if v, ok := d.timer(n, 1, 0.001, maxTimer); ok {
				s.Interval = v
			}
		}},
		"timeout": {min: 1, max: 1, fn: func(d *decoder, n *node, s *VRRPScript) {
			if v, ok := d.timer(n, 1, 0.001, maxTimer); ok {
				s.Timeout, timeoutSet = v, true
			}
		}},
		"weight": {min: 1, max: 2, fn: func(d *decoder, n *node, s *VRRPScript) {
			if v, ok := d.int(n, 1, -253, 253); ok {
				s.Weight = int(v)
			}
			if len(n.args) > 2 {
				s.Reverse = d.reverse(n, 2)
			}
		}},
		"rise": {min: 1, max: 1, fn: func(d *decoder, n *node, s *VRRPScript) {
			if v, ok := d.int(n, 1, 1, 1<<31-1); ok {
				s.Rise = int(v)
			}
		}},
		"fall": {min: 1, max: 1, fn: func(d *decoder, n *node, s *VRRPScript) {
			if v, ok := d.int(n, 1, 1, 1<<31-1); ok {
				s.Fall = int(v)
			}
		}},
		"user": {min: 1, max: 2, fn: func(d *decoder, n *node, s *VRRPScript) {
			if s.Script == nil {
				s.Script = &Script{}
			}
			s.Script.User = n.args[1]
			if len(n.args) > 2 {
				s.Script.Group = strings.TrimPrefix(n.args[2], ":")
			}
		}},
		"init_fail": {fn: func(d *decoder, n *node, s *VRRPScript) { s.InitFail = true }},
	}, nil, &s)
	if !timeoutSet {
		s.Timeout = s.Interval
	}
	if s.Script == nil || s.Script.Cmd == "" {
		d.errorf(n, "vrrp_script %s has no script", s.Name)
	}
	if _, dup := c.Script(s.Name); dup {
		d.errorf(n, "vrrp_script %s is defined twice", s.Name)
	}
	c.Scripts = append(c.Scripts, s)
}

func (d *decoder) reverse(n *node, i int) bool {
	switch n.args[i] {
	case "reverse":
		return true
	case "noreverse":
		return false
	}
	d.errorf(n, "%s: %q should be reverse or noreverse", n.kw(), n.args[i])
	return false
}

// tracks reads a track_* block: "NAME [weight N] [reverse|noreverse]".
func (d *decoder) tracks(n *node, lo, hi int64) []Track {
	var out []Track
	for _, c := range n.children {
		if c.block {
			d.errorf(c, "%s holds names, not blocks", n.kw())
			continue
		}
		t := Track{Name: c.args[0]}
		for i := 1; i < len(c.args); i++ {
			switch c.args[i] {
			case "weight":
				if i+1 >= len(c.args) {
					d.errorf(c, "%s %s: weight needs a value", n.kw(), t.Name)
					continue
				}
				i++
				if v, ok := d.int(c, i, lo, hi); ok {
					t.Weight, t.WeightSet = int(v), true
				}
			case "reverse":
				t.Reverse = true
			case "noreverse":
				t.Reverse = false
			default:
				d.errorf(c, "%s %s: unknown option %q (want weight N, reverse or noreverse)", n.kw(), t.Name, c.args[i])
			}
		}
		out = append(out, t)
	}
	return out
}

func (d *decoder) syncGroup(n *node, c *Config) {
	g := SyncGroup{Pos: n.pos, Name: n.args[1]}
	run(d, "vrrp_sync_group", n.children, table[SyncGroup]{
		"group": {block: true, fn: func(d *decoder, n *node, g *SyncGroup) {
			for _, c := range n.children {
				g.Group = append(g.Group, c.args...)
			}
		}},
		"track_interface": {block: true, fn: func(d *decoder, n *node, g *SyncGroup) { g.TrackInterfaces = d.tracks(n, -253, 253) }},
		"track_script":    {block: true, fn: func(d *decoder, n *node, g *SyncGroup) { g.TrackScripts = d.tracks(n, -253, 253) }},
		"track_file":      {block: true, fn: func(d *decoder, n *node, g *SyncGroup) { g.TrackFiles = d.tracks(n, -254, 254) }},
		"track_process":   {block: true, fn: func(d *decoder, n *node, g *SyncGroup) { g.TrackProcesses = d.tracks(n, -254, 254) }},
		"notify_master":   {min: 1, max: 3, fn: func(d *decoder, n *node, g *SyncGroup) { g.Notify.Master = d.script(n, 1) }},
		"notify_backup":   {min: 1, max: 3, fn: func(d *decoder, n *node, g *SyncGroup) { g.Notify.Backup = d.script(n, 1) }},
		"notify_fault":    {min: 1, max: 3, fn: func(d *decoder, n *node, g *SyncGroup) { g.Notify.Fault = d.script(n, 1) }},
		"notify_stop":     {min: 1, max: 3, fn: func(d *decoder, n *node, g *SyncGroup) { g.Notify.Stop = d.script(n, 1) }},
		"notify":          {min: 1, max: 3, fn: func(d *decoder, n *node, g *SyncGroup) { g.Notify.Any = d.script(n, 1) }},
		"smtp_alert": {max: 1, fn: func(d *decoder, n *node, g *SyncGroup) {
			if v, ok := d.boolArg(n, 1); ok {
				g.SMTPAlert = boolPtr(v)
			}
		}},
		"global_tracking": {fn: func(d *decoder, n *node, g *SyncGroup) {
			d.warnf(n, "global_tracking is deprecated: use track_interface, track_script and track_file in the vrrp_sync_group")
		}},
	}, ignored{"track_bfd": true, "notify_deleted": true, "notify_priority_changes": true, "sync_group_tracking_weight": true}, &g)
	if len(g.Group) == 0 {
		d.errorf(n, "vrrp_sync_group %s has no group { ... } of instances", g.Name)
	}
	for _, o := range c.SyncGroups {
		if o.Name == g.Name {
			d.errorf(n, "vrrp_sync_group %s is defined twice (first at %s)", g.Name, o.Pos)
		}
	}
	c.SyncGroups = append(c.SyncGroups, g)
}

func instBool(f func(v *VRRPInstance) *bool) handler[VRRPInstance] {
	return handler[VRRPInstance]{max: 1, fn: func(d *decoder, n *node, v *VRRPInstance) {
		if b, ok := d.boolArg(n, 1); ok {
			*f(v) = b
		}
	}}
}

func instScript(f func(v *VRRPInstance) **Script) handler[VRRPInstance] {
	return handler[VRRPInstance]{min: 1, max: 3, fn: func(d *decoder, n *node, v *VRRPInstance) { *f(v) = d.script(n, 1) }}
}

func instTimer(f func(v *VRRPInstance) *time.Duration, lo, hi float64) handler[VRRPInstance] {
	return handler[VRRPInstance]{min: 1, max: 1, fn: func(d *decoder, n *node, v *VRRPInstance) {
		if t, ok := d.timer(n, 1, lo, hi); ok {
			*f(v) = t
		}
	}}
}

func instCount(f func(v *VRRPInstance) *int, lo, hi int64) handler[VRRPInstance] {
	return handler[VRRPInstance]{min: 1, max: 1, fn: func(d *decoder, n *node, v *VRRPInstance) {
		if c, ok := d.int(n, 1, lo, hi); ok {
			*f(v) = int(c)
		}
	}}
}

var instanceTable = table[VRRPInstance]{
	"state": {min: 1, max: 1, fn: func(d *decoder, n *node, v *VRRPInstance) {
		if s, ok := d.oneOf(n, 1, "state", "MASTER", "BACKUP"); ok {
			v.State = s
		}
	}},
	"interface":         {min: 1, max: 1, fn: func(d *decoder, n *node, v *VRRPInstance) { v.Interface = n.args[1] }},
	"virtual_router_id": instCount(func(v *VRRPInstance) *int { return &v.VirtualRouterID }, 1, 255),
	"priority":          instCount(func(v *VRRPInstance) *int { return &v.Priority }, 1, 255),
	"advert_int": {min: 1, max: 1, fn: func(d *decoder, n *node, v *VRRPInstance) {
		if t, ok := d.timer(n, 1, 0.01, 255); ok {
			v.AdvertInt = t
		}
	}},
	"version":       instCount(func(v *VRRPInstance) *int { return &v.Version }, 2, 3),
	"nopreempt":     instBool(func(v *VRRPInstance) *bool { return &v.NoPreempt }),
	"preempt":       {fn: func(d *decoder, n *node, v *VRRPInstance) { v.NoPreempt = false }},
	"preempt_delay": instTimer(func(v *VRRPInstance) *time.Duration { return &v.PreemptDelay }, 0, 1000),
	"accept":        {fn: func(d *decoder, n *node, v *VRRPInstance) { v.Accept = boolPtr(true) }},
	"no_accept":     {fn: func(d *decoder, n *node, v *VRRPInstance) { v.Accept = boolPtr(false) }},
	"authentication": {block: true, fn: func(d *decoder, n *node, v *VRRPInstance) {
		a := &Auth{}
		run(d, "authentication", n.children, table[Auth]{
			"auth_type": {min: 1, max: 1, fn: func(d *decoder, n *node, a *Auth) {
				if s, ok := d.oneOf(n, 1, "auth_type", "PASS", "AH"); ok {
					a.Type = s
				}
			}},
			"auth_pass": {min: 1, max: 1, fn: func(d *decoder, n *node, a *Auth) {
				a.Pass = n.args[1]
				if len(a.Pass) > 8 {
					d.warnf(n, "auth_pass is longer than 8 characters: only %q is used", a.Pass[:8])
					a.Pass = a.Pass[:8]
				}
			}},
		}, nil, a)
		if a.Type == "" {
			d.errorf(n, "authentication has no auth_type (want PASS or AH)")
		}
		v.Auth = a
	}},
	"virtual_ipaddress":          {block: true, fn: func(d *decoder, n *node, v *VRRPInstance) { v.VirtualIPs = d.vips(n) }},
	"virtual_ipaddress_excluded": {block: true, fn: func(d *decoder, n *node, v *VRRPInstance) { v.ExcludedVIPs = d.vips(n) }},
	"no_virtual_ipaddress":       {fn: func(d *decoder, n *node, v *VRRPInstance) { v.NoVirtualIPAddress = true }},
	"virtual_routes":             {block: true, fn: func(d *decoder, n *node, v *VRRPInstance) { v.VirtualRoutes = d.routes(n) }},
	"mcast_src_ip": {min: 1, max: 1, fn: func(d *decoder, n *node, v *VRRPInstance) {
		if a, ok := d.addr(n, 1, "mcast_src_ip"); ok {
			v.McastSrcIP = a
		}
	}},
	"unicast_src_ip": {min: 1, max: 1, fn: func(d *decoder, n *node, v *VRRPInstance) {
		if a, ok := d.addr(n, 1, "unicast_src_ip"); ok {
			v.UnicastSrcIP = a
		}
	}},
	"unicast_peer": {block: true, fn: func(d *decoder, n *node, v *VRRPInstance) {
		for _, c := range n.children {
			a, ok := d.addr(c, 0, "unicast_peer")
			if !ok {
				continue
			}
			p := UnicastPeer{Addr: a}
			for i := 1; i+1 < len(c.args); i += 2 {
				t, ok := d.int(c, i+1, 0, 255)
				switch {
				case !ok:
				case c.args[i] == "min_ttl":
					p.MinTTL = int(t)
				case c.args[i] == "max_ttl":
					p.MaxTTL = int(t)
				default:
					d.errorf(c, "unicast_peer %s: unknown option %q (want min_ttl or max_ttl)", a, c.args[i])
				}
			}
			if len(c.args)%2 == 0 {
				d.errorf(c, "unicast_peer %s: option %q needs a value", a, c.args[len(c.args)-1])
			}
			v.UnicastPeers = append(v.UnicastPeers, p)
		}
	}},
	"unicast_ttl":                instCount(func(v *VRRPInstance) *int { return &v.UnicastTTL }, 0, 255),
	"track_interface":            {block: true, fn: func(d *decoder, n *node, v *VRRPInstance) { v.TrackInterfaces = d.tracks(n, -253, 253) }},
	"track_script":               {block: true, fn: func(d *decoder, n *node, v *VRRPInstance) { v.TrackScripts = d.tracks(n, -253, 253) }},
	"track_file":                 {block: true, fn: func(d *decoder, n *node, v *VRRPInstance) { v.TrackFiles = d.tracks(n, -254, 254) }},
	"track_process":              {block: true, fn: func(d *decoder, n *node, v *VRRPInstance) { v.TrackProcesses = d.tracks(n, -254, 254) }},
	"dont_track_primary":         instBool(func(v *VRRPInstance) *bool { return &v.DontTrackPrimary }),
	"notify_master":              instScript(func(v *VRRPInstance) **Script { return &v.Notify.Master }),
	"notify_backup":              instScript(func(v *VRRPInstance) **Script { return &v.Notify.Backup }),
	"notify_fault":               instScript(func(v *VRRPInstance) **Script { return &v.Notify.Fault }),
	"notify_stop":                instScript(func(v *VRRPInstance) **Script { return &v.Notify.Stop }),
	"notify":                     instScript(func(v *VRRPInstance) **Script { return &v.Notify.Any }),
	"smtp_alert":                 {max: 1, fn: func(d *decoder, n *node, v *VRRPInstance) { b, _ := d.boolArg(n, 1); v.SMTPAlert = boolPtr(b) }},
	"garp_master_delay":          instTimer(func(v *VRRPInstance) *time.Duration { return &v.GarpMasterDelay }, 0, maxTimer),
	"garp_master_repeat":         instCount(func(v *VRRPInstance) *int { return &v.GarpMasterRepeat }, 0, 1<<31-1),
	"garp_master_refresh":        instTimer(func(v *VRRPInstance) *time.Duration { return &v.GarpMasterRefresh }, 0, maxTimer),
	"garp_master_refresh_repeat": instCount(func(v *VRRPInstance) *int { return &v.GarpMasterRefreshRepeat }, 0, 1<<31-1),
	"garp_lower_prio_delay":      instTimer(func(v *VRRPInstance) *time.Duration { return &v.GarpLowerPrioDelay }, 0, maxTimer),
	"garp_lower_prio_repeat":     instCount(func(v *VRRPInstance) *int { return &v.GarpLowerPrioRepeat }, 0, 1<<31-1),
	"use_vmac": {max: 1, fn: func(d *decoder, n *node, v *VRRPInstance) {
		v.UseVMAC = true
		if len(n.args) > 1 {
			v.VMACName = n.args[1]
		}
	}},
	"vmac_xmit_base":      instBool(func(v *VRRPInstance) *bool { return &v.VMACXmitBase }),
	"native_ipv6":         {fn: func(d *decoder, n *node, v *VRRPInstance) { v.NativeIPv6 = true }},
	"skip_check_adv_addr": instBool(func(v *VRRPInstance) *bool { return &v.SkipCheckAdvAddr }),
	"strict_mode":         instBool(func(v *VRRPInstance) *bool { return &v.StrictMode }),
}

var instanceIgnored = ignored{}

func init() {
	for _, k := range strings.Fields(`vrf use_vmac_addr use_ipvlan track_src_ip check_unicast_src
		unicast_fault_no_peer old_unicast_checksum v3_checksum_as_v2 garp_extra_if down_timer_adverts
		timer_expired_backup lower_prio_no_advert higher_prio_send_advert track_bfd
		mcast_dst_ip promote_secondaries virtual_rules debug notify_master_rx_lower_pri
		notify_priority_changes kernel_rx_buf_size linkbeat_use_polling notify_deleted`) {
		instanceIgnored[k] = true
	}
}

func (d *decoder) vrrpInstance(n *node, c *Config) {
	v := VRRPInstance{Pos: n.pos, Name: n.args[1], State: "BACKUP", Priority: 100, AdvertInt: time.Second, set: map[string]bool{}}
	for _, ch := range n.children {
		v.set[ch.kw()] = true
	}
	run(d, "vrrp_instance", n.children, instanceTable, instanceIgnored, &v)
	g := &c.Global
	if !v.set["version"] {
		v.Version = g.VRRPVersion
	}
	if v.IPv6() {
		if v.set["version"] && v.Version == 2 {
			d.warnf(n, "vrrp_instance %s: IPv6 instances use VRRP version 3", v.Name)
		}
		v.Version = 3
	}
	defaults := []struct {
		kw  string
		dst *time.Duration
		src time.Duration
	}{
		{"garp_master_delay", &v.GarpMasterDelay, g.VRRPGarpMasterDelay},
		{"garp_master_refresh", &v.GarpMasterRefresh, g.VRRPGarpMasterRefresh},
		{"garp_lower_prio_delay", &v.GarpLowerPrioDelay, g.VRRPGarpLowerPrioDelay},
	}
	for _, x := range defaults {
		if !v.set[x.kw] {
			*x.dst = x.src
		}
	}
	counts := []struct {
		kw  string
		dst *int
		src int
	}{
		{"garp_master_repeat", &v.GarpMasterRepeat, g.VRRPGarpMasterRepeat},
		{"garp_master_refresh_repeat", &v.GarpMasterRefreshRepeat, g.VRRPGarpMasterRefreshRepeat},
		{"garp_lower_prio_repeat", &v.GarpLowerPrioRepeat, g.VRRPGarpLowerPrioRepeat},
	}
	for _, x := range counts {
		if !v.set[x.kw] {
			*x.dst = x.src
		}
	}
	if !v.set["skip_check_adv_addr"] {
		v.SkipCheckAdvAddr = g.VRRPSkipCheckAdvAddr
	}
	if !v.set["strict_mode"] {
		v.StrictMode = g.VRRPStrict
	}
	if v.VirtualRouterID == 0 {
		d.errorf(n, "vrrp_instance %s has no virtual_router_id (want 1 to 255)", v.Name)
	}
	if v.Interface == "" && len(v.UnicastPeers) == 0 {
		d.errorf(n, "vrrp_instance %s has no interface (needed unless unicast_peer is set)", v.Name)
	}
	if len(v.VirtualIPs) == 0 && !v.NoVirtualIPAddress {
		d.warnf(n, "vrrp_instance %s has no virtual_ipaddress", v.Name)
	}
	if v.State == "MASTER" && v.NoPreempt {
		d.warnf(n, "vrrp_instance %s: nopreempt has no effect with state MASTER (use state BACKUP)", v.Name)
	}
	if v.Version == 3 && v.Auth != nil {
		// keepalived 2.2 says so, runs the instance without it, and its
		// config test fails (exit 5).
		d.kaWarnf(n, "vrrp_instance %s: VRRP version 3 does not support authentication; the block is ignored", v.Name)
		v.Auth = nil
	}
	for i := 1; i < len(v.VirtualIPs); i++ {
		if v.VirtualIPs[i].Prefix.Addr().Is6() != v.VirtualIPs[0].Prefix.Addr().Is6() {
			d.errorf(n, "vrrp_instance %s mixes IPv4 and IPv6 in virtual_ipaddress (put the other family in virtual_ipaddress_excluded)", v.Name)
			break
		}
	}
	if _, dup := c.Instance(v.Name); dup {
		d.errorf(n, "vrrp_instance %s is defined twice", v.Name)
	}
	c.Instances = append(c.Instances, v)
}

// vips reads virtual_ipaddress lines:
// ADDR[/MASK] [brd ADDR] [dev IF] [scope S] [label L] [peer ADDR] [flags].
func (d *decoder) vips(n *node) []VIP {
	var out []VIP
	for _, c := range n.children {
		if c.block {
			d.errorf(c, "%s holds addresses, not blocks", n.kw())
			continue
		}
		pfx, ok := d.prefix(c, 0, n.kw())
		if !ok {
			continue
		}
		v := VIP{Prefix: pfx}
		for i := 1; i < len(c.args); i++ {
			opt := c.args[i]
			needs := func() (string, bool) {
				if i+1 >= len(c.args) {
					d.errorf(c, "%s %s: %s needs a value", n.kw(), pfx, opt)
					return "", false
				}
				i++
				return c.args[i], true
			}
			switch opt {
			case "dev":
				v.Dev, _ = needs()
			case "scope":
				v.Scope, _ = needs()
			case "label":
				v.Label, _ = needs()
			case "brd", "broadcast":
				if _, ok := needs(); ok {
					v.Broadcast, _ = d.addr(c, i, n.kw()+" brd")
				}
			case "peer":
				if _, ok := needs(); ok {
					v.Peer, _ = d.addr(c, i, n.kw()+" peer")
				}
			case "use_vmac":
				v.UseVMAC = true
			case "no_track":
				v.NoTrack = true
			case "home", "-nodad", "nodad", "mngtmpaddr", "noprefixroute", "autojoin":
				v.Flags = append(v.Flags, opt)
			case "preferred_lft", "track_group":
				if val, ok := needs(); ok {
					v.Flags = append(v.Flags, opt+" "+val)
				}
			default:
				d.errorf(c, "%s %s: unknown option %q (want dev, scope, label, brd, peer, use_vmac, no_track, home, -nodad, noprefixroute, autojoin or preferred_lft)", n.kw(), pfx, opt)
			}
		}
		out = append(out, v)
	}
	return out
}

// prefix parses ADDR or ADDR/LEN; a bare address is a host prefix.
func (d *decoder) prefix(n *node, i int, what string) (netip.Prefix, bool) {
	s := n.args[i]
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			d.errorf(n, "%s: %q is not an address/prefix", what, s)
			return netip.Prefix{}, false
		}
		return netip.PrefixFrom(p.Addr().Unmap(), p.Bits()), true
	}
	a, ok := d.addr(n, i, what)
	if !ok {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(a, a.BitLen()), true
}

// routes reads virtual_routes lines.
func (d *decoder) routes(n *node) []Route {
	var out []Route
	for _, c := range n.children {
		r := Route{Words: c.args}
		i := 0
		switch c.args[0] {
		case "blackhole", "unreachable", "prohibit", "throw":
			r.Type = c.args[0]
			i = 1
		}
		for ; i < len(c.args); i++ {
			w := c.args[i]
			next := func() (int, bool) {
				if i+1 >= len(c.args) {
					d.errorf(c, "virtual_routes: %s needs a value", w)
					return 0, false
				}
				i++
				return i, true
			}
			switch w {
			case "src":
				if j, ok := next(); ok {
					r.Src, _ = d.addr(c, j, "virtual_routes src")
				}
			case "to":
				if j, ok := next(); ok {
					r.To, _ = d.prefix(c, j, "virtual_routes to")
				}
			case "via", "gw":
				if j, ok := next(); ok {
					r.Via, _ = d.addr(c, j, "virtual_routes via")
				}
			case "dev":
				if j, ok := next(); ok {
					r.Dev = c.args[j]
				}
			case "table":
				if j, ok := next(); ok {
					r.Table = c.args[j]
				}
			case "or", "scope", "metric", "proto", "protocol", "mtu", "advmss", "realms", "onlink",
				"no_track", "track_group", "pref", "initcwnd", "initrwnd", "features", "quickack",
				"congctl", "rto_min", "hoplimit", "window", "rtt", "rttvar", "ssthresh", "cwnd",
				"expires", "nexthop", "weight", "fastopen_no_cookie", "ttl-propagate", "encap", "tos", "dsfield":
				// kept in Words
			default:
				if !r.To.IsValid() {
					r.To, _ = d.prefix(c, i, "virtual_routes")
				}
			}
		}
		if !r.To.IsValid() {
			d.errorf(c, "virtual_routes: %q has no destination", c.words())
			continue
		}
		out = append(out, r)
	}
	return out
}
