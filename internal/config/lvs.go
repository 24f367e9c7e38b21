package config

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// Keepalived's LVS defaults.
const (
	// DefaultDelayLoop is the checker interval when delay_loop is not set.
	DefaultDelayLoop = 60 * time.Second
	// DefaultConnectTimeout is a checker's connect_timeout when not set.
	DefaultConnectTimeout = 5 * time.Second
	// DefaultQuorum is a virtual server's quorum when not set.
	DefaultQuorum = 1
	// DefaultPersistenceTimeout is persistence_timeout without a value
	// (6 minutes).
	DefaultPersistenceTimeout = 360
)

// Method is a forwarding method as keepalived.conf spells it.
type Method string

// Forwarding methods. FNAT is a GVS extension (FULLNAT is its synonym).
const (
	NAT  Method = "NAT"
	DR   Method = "DR"
	TUN  Method = "TUN"
	FNAT Method = "FNAT"
)

// IPVS maps the method to the IPVS table's method.
func (m Method) IPVS() ipvs.Method {
	switch m {
	case DR:
		return ipvs.Route
	case TUN:
		return ipvs.Tunnel
	case FNAT:
		return ipvs.FullNAT
	}
	return ipvs.Masq
}

// Forwarding is a forwarding method with its tunnel settings.
type Forwarding struct {
	Method Method `json:"method"`
	// TunType, TunPort and TunFlags apply to TUN ("lvs_method TUN type
	// gue port 6080 csum"); TunFlags is 0 nocsum, 1 csum, 2 remcsum.
	TunType  ipvs.TunType `json:"tun_type,omitempty"`
	TunPort  uint16       `json:"tun_port,omitempty"`
	TunFlags uint16       `json:"tun_flags,omitempty"`
}

// VirtualServer is a virtual_server block, with keepalived's defaults
// applied. Exactly one of Addr (with Port), FWMark and Group is set.
type VirtualServer struct {
	Pos    Pos        `json:"pos"`
	Addr   netip.Addr `json:"addr,omitzero"`
	Port   uint16     `json:"port,omitempty"`
	FWMark uint32     `json:"fwmark,omitempty"`
	Group  string     `json:"group,omitempty"`
	// IPv6 is set by ip_family inet6 (fwmark services only) or by an
	// IPv6 address.
	IPv6 bool `json:"ipv6,omitempty"`
	// Protocol defaults to UDP when not set, as in keepalived 2.2.7
	// (which warns; so do we).
	Protocol ipvs.Protocol `json:"protocol"`
	// Sched is lvs_sched (or lb_algo), default "wlc".
	Sched string `json:"sched"`
	// SchedFlags are ipvs.SchedFlag1..3 (flag-N, sh-port, sh-fallback,
	// mh-port, mh-fallback) and ipvs.FlagOnePacket (ops).
	SchedFlags uint32 `json:"sched_flags,omitempty"`
	// Forwarding is lvs_method (or lb_kind), default NAT; real servers
	// inherit it.
	Forwarding Forwarding `json:"forwarding"`
	// PersistenceTimeout in seconds; 0 means not persistent.
	PersistenceTimeout uint32 `json:"persistence_timeout,omitempty"`
	// PersistenceGranularity is a prefix length (from a netmask); 0
	// means per client address.
	PersistenceGranularity int    `json:"persistence_granularity,omitempty"`
	PersistenceEngine      string `json:"persistence_engine,omitempty"`

	// HASuspend suspends checkers while the VIP is not configured.
	HASuspend bool `json:"ha_suspend,omitempty"`
	// Alpha starts real servers down until a check passes (default off);
	// Omega runs down notifiers at shutdown.
	Alpha bool `json:"alpha,omitempty"`
	Omega bool `json:"omega,omitempty"`
	// Quorum is the minimum total weight of live servers (default 1);
	// Hysteresis the tolerance around it (default 0).
	Quorum     int     `json:"quorum"`
	Hysteresis int     `json:"hysteresis,omitempty"`
	QuorumUp   *Script `json:"quorum_up,omitempty"`
	QuorumDown *Script `json:"quorum_down,omitempty"`
	// InhibitOnFailure sets a failed server's weight to 0 instead of
	// removing it (default off); real servers inherit it.
	InhibitOnFailure bool `json:"inhibit_on_failure,omitempty"`
	// DelayLoop is the default checker interval (default 60 s).
	DelayLoop   time.Duration `json:"delay_loop"`
	Virtualhost string        `json:"virtualhost,omitempty"`
	SMTPAlert   *bool         `json:"smtp_alert,omitempty"`

	RealServers []RealServer `json:"real_servers,omitempty"`
	// SorryServer replaces the real servers while the quorum is lost.
	SorryServer *RealServer `json:"sorry_server,omitempty"`

	// ProxyProtocol is 0 (off), 1 or 2: the PROXY protocol header the
	// proxy engine sends to real servers (GVS extension).
	ProxyProtocol int `json:"proxy_protocol,omitempty"`
	// LocalAddrGroup names the local_address_group whose addresses FNAT
	// uses as sources toward real servers (GVS extension, keyword
	// laddr_group_name or laddr_group).
	LocalAddrGroup string `json:"laddr_group,omitempty"`

	common common
}

// Key describes the service for messages: "198.18.0.10:80/TCP",
// "fwmark 7", "group G1".
func (vs *VirtualServer) Key() string {
	switch {
	case vs.Group != "":
		return "group " + vs.Group
	case vs.FWMark != 0:
		return fmt.Sprintf("fwmark %d", vs.FWMark)
	}
	return fmt.Sprintf("%s/%s", netip.AddrPortFrom(vs.Addr, vs.Port), vs.Protocol)
}

// RealServer is a real_server (or sorry_server).
type RealServer struct {
	Pos  Pos        `json:"pos"`
	Addr netip.Addr `json:"addr"`
	// Port is 0 when not written (the service's port is used).
	Port uint16 `json:"port,omitempty"`
	// Weight defaults to 1.
	Weight int32 `json:"weight"`
	// Forwarding defaults to the virtual server's.
	Forwarding Forwarding `json:"forwarding"`
	UThreshold uint32     `json:"uthreshold,omitempty"`
	LThreshold uint32     `json:"lthreshold,omitempty"`
	NotifyUp   *Script    `json:"notify_up,omitempty"`
	NotifyDown *Script    `json:"notify_down,omitempty"`
	// InhibitOnFailure and Alpha default to the virtual server's.
	InhibitOnFailure bool      `json:"inhibit_on_failure,omitempty"`
	Alpha            bool      `json:"alpha,omitempty"`
	Virtualhost      string    `json:"virtualhost,omitempty"`
	SMTPAlert        *bool     `json:"smtp_alert,omitempty"`
	Checkers         []Checker `json:"checkers,omitempty"`

	common common
}

// common holds the options a virtual server passes to its real servers
// and a real server to its checkers; nil means not set here.
type common struct {
	connectTimeout   *time.Duration
	delayBeforeRetry *time.Duration
	warmup           *time.Duration
	delayLoop        *time.Duration
	retry            *int
	alpha            *bool
	inhibit          *bool
	virtualhost      *string
}

func (d *decoder) vsGroup(n *node, c *Config) {
	g := VSGroup{Pos: n.pos, Name: n.args[1]}
	for _, m := range n.children {
		if m.block {
			d.errorf(m, "virtual_server_group %s holds addresses and fwmarks, not blocks", g.Name)
			continue
		}
		if m.kw() == "fwmark" {
			if len(m.args) < 2 {
				d.errorf(m, "fwmark needs a value")
				continue
			}
			v, ok := d.uint(m, 1, 1, 1<<32-1)
			if !ok {
				continue
			}
			e := VSGroupMember{FWMark: uint32(v)}
			if len(m.args) > 2 {
				fam, ok := d.oneOf(m, 2, "address family", "inet", "inet6")
				if ok {
					e.IPv6 = fam == "inet6"
				}
			}
			g.Members = append(g.Members, e)
			continue
		}
		first, last, ok := d.addrRange(m, 0)
		if !ok {
			continue
		}
		e := VSGroupMember{Addr: first, Last: last, IPv6: first.Is6()}
		if len(m.args) > 1 {
			e.Port, _ = d.port(m, 1, "virtual_server_group port")
		}
		if len(m.args) > 2 {
			d.warnf(m, "extra words %q ignored", strings.Join(m.args[2:], " "))
		}
		g.Members = append(g.Members, e)
	}
	if len(g.Members) == 0 {
		d.warnf(n, "virtual_server_group %s is empty", g.Name)
	}
	if _, dup := c.VSGroup(g.Name); dup {
		d.errorf(n, "virtual_server_group %s is defined twice", g.Name)
	}
	c.VSGroups = append(c.VSGroups, g)
}

// VSGroup is a virtual_server_group: addresses, address ranges and
// firewall marks that share one virtual server definition.
type VSGroup struct {
	Pos     Pos             `json:"pos"`
	Name    string          `json:"name"`
	Members []VSGroupMember `json:"members"`
}

// VSGroupMember is an address range with a port, or a firewall mark.
type VSGroupMember struct {
	// Addr..Last is the address range (Last == Addr for one address).
	Addr netip.Addr `json:"addr,omitzero"`
	Last netip.Addr `json:"last,omitzero"`
	Port uint16     `json:"port,omitempty"`
	// FWMark is set for "fwmark N" members.
	FWMark uint32 `json:"fwmark,omitempty"`
	IPv6   bool   `json:"ipv6,omitempty"`
}

// maxRange bounds the addresses one range may hold.
const maxRange = 1 << 16

// addrRange parses ADDR, ADDR-N (last part of the address, decimal for
// IPv4, hex for IPv6), ADDR-ADDR or ADDR/LEN.
func (d *decoder) addrRange(n *node, i int) (netip.Addr, netip.Addr, bool) {
	s := n.args[i]
	bad := func(why string) (netip.Addr, netip.Addr, bool) {
		d.errorf(n, "%q is not an address range: %s (want ADDR, ADDR-LAST, ADDR-ADDR or ADDR/LEN)", s, why)
		return netip.Addr{}, netip.Addr{}, false
	}
	var first, last netip.Addr
	switch {
	case strings.Contains(s, "/"):
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return bad(err.Error())
		}
		first = p.Addr().Unmap()
		if first.BitLen()-p.Bits() > 16 {
			return bad(fmt.Sprintf("more than %d addresses", maxRange))
		}
		last = first
		for a := first.Next(); a.IsValid() && p.Contains(a); a = a.Next() {
			last = a
		}
	case strings.Contains(s, "-"):
		lo, hi, _ := strings.Cut(s, "-")
		a, err := netip.ParseAddr(lo)
		if err != nil {
			return bad(err.Error())
		}
		first = a.Unmap()
		if b, err := netip.ParseAddr(hi); err == nil {
			last = b.Unmap()
		} else {
			base := 10
			sep := "."
			if first.Is6() {
				base, sep = 16, ":"
			}
			v, err := strconv.ParseUint(hi, base, 16)
			if err != nil || (first.Is4() && v > 255) {
				return bad(fmt.Sprintf("%q is not a last address part", hi))
			}
			str := first.StringExpanded()
			j := strings.LastIndex(str, sep)
			end := strconv.FormatUint(v, base)
			b, err := netip.ParseAddr(str[:j+1] + end)
			if err != nil {
				return bad(err.Error())
			}
			last = b
		}
		if last.Less(first) || last.Is4() != first.Is4() {
			return bad("the range ends before it starts")
		}
		count := 0
		for a := first; a != last; a = a.Next() {
			if count++; count >= maxRange {
				return bad(fmt.Sprintf("more than %d addresses", maxRange))
			}
		}
	default:
		a, err := netip.ParseAddr(s)
		if err != nil {
			return bad(err.Error())
		}
		first, last = a.Unmap(), a.Unmap()
	}
	return first, last, true
}

// LocalAddrGroup is a local_address_group (GVS extension): the source
// addresses FNAT uses toward real servers. Lines are addresses or ranges,
// optionally followed by the interface they live on.
type LocalAddrGroup struct {
	Pos   Pos          `json:"pos"`
	Name  string       `json:"name"`
	Addrs []netip.Addr `json:"addrs"`
	// Devs maps an address to the interface named after it, if any.
	Devs map[netip.Addr]string `json:"devs,omitempty"`
}

func (d *decoder) localAddrGroup(n *node, c *Config) {
	g := LocalAddrGroup{Pos: n.pos, Name: n.args[1]}
	total := 0
	for _, m := range n.children {
		first, last, ok := d.addrRange(m, 0)
		if !ok {
			continue
		}
		for a := first; ; a = a.Next() {
			if total++; total > maxRange {
				d.errorf(m, "local_address_group %s holds more than %d addresses", g.Name, maxRange)
				break
			}
			g.Addrs = append(g.Addrs, a)
			if len(m.args) > 1 {
				if g.Devs == nil {
					g.Devs = map[netip.Addr]string{}
				}
				g.Devs[a] = m.args[1]
			}
			if a == last {
				break
			}
		}
	}
	if len(g.Addrs) == 0 {
		d.errorf(n, "local_address_group %s has no addresses", g.Name)
	}
	if _, dup := c.LocalAddrGroup(g.Name); dup {
		d.errorf(n, "local_address_group %s is defined twice", g.Name)
	}
	c.LocalAddrs = append(c.LocalAddrs, g)
}

// forwarding parses "NAT|DR|TUN|FNAT|FULLNAT [type ipip|gue port N|gre]
// [nocsum|csum|remcsum]".
func (d *decoder) forwarding(n *node) (Forwarding, bool) {
	var f Forwarding
	switch strings.ToUpper(n.args[1]) {
	case "NAT":
		f.Method = NAT
	case "DR":
		f.Method = DR
	case "TUN":
		f.Method = TUN
	case "FNAT", "FULLNAT":
		f.Method = FNAT
	default:
		d.errorf(n, "unknown %s %q (want NAT, DR, TUN or FNAT)", n.kw(), n.args[1])
		return f, false
	}
	rest := n.args[2:]
	if len(rest) > 0 && f.Method != TUN {
		d.errorf(n, "%s %s takes no options, got %q", n.kw(), f.Method, strings.Join(rest, " "))
		return f, false
	}
	for i := 0; i < len(rest); i++ {
		switch rest[i] {
		case "type":
			if i+1 >= len(rest) {
				d.errorf(n, "%s TUN type needs ipip, gue or gre", n.kw())
				return f, false
			}
			i++
			switch rest[i] {
			case "ipip":
				f.TunType = ipvs.TunIPIP
			case "gue":
				f.TunType = ipvs.TunGUE
			case "gre":
				f.TunType = ipvs.TunGRE
			default:
				d.errorf(n, "unknown tunnel type %q (want ipip, gue or gre)", rest[i])
				return f, false
			}
		case "port":
			if i+1 >= len(rest) {
				d.errorf(n, "%s TUN port needs a number", n.kw())
				return f, false
			}
			i++
			p, err := strconv.ParseUint(rest[i], 10, 16)
			if err != nil || p == 0 {
				d.errorf(n, "tunnel port %q is not a port number in [1, 65535]", rest[i])
				return f, false
			}
			f.TunPort = uint16(p)
		case "nocsum":
			f.TunFlags = 0
		case "csum":
			f.TunFlags = 1
		case "remcsum":
			f.TunFlags = 2
		default:
			d.errorf(n, "unknown %s TUN option %q (want type, port, nocsum, csum or remcsum)", n.kw(), rest[i])
			return f, false
		}
	}
	if f.TunType == ipvs.TunGUE && f.TunPort == 0 {
		d.errorf(n, "%s TUN type gue needs a port (type gue port NUM)", n.kw())
		return f, false
	}
	if f.TunType != ipvs.TunGUE && (f.TunPort != 0 || f.TunFlags != 0) {
		d.errorf(n, "%s TUN: port and checksum options need type gue", n.kw())
		return f, false
	}
	return f, true
}

// commonTable are the options shared by virtual servers, real servers
// and checkers; get picks the common of the value being decoded.
func commonTable[T any](get func(*T) *common) table[T] {
	timer := func(set func(c *common, v time.Duration), lo float64) handler[T] {
		return handler[T]{min: 1, max: 1, fn: func(d *decoder, n *node, t *T) {
			if v, ok := d.timer(n, 1, lo, maxTimer); ok {
				set(get(t), v)
			}
		}}
	}
	return table[T]{
		"connect_timeout":    timer(func(c *common, v time.Duration) { c.connectTimeout = &v }, 0.000001),
		"delay_before_retry": timer(func(c *common, v time.Duration) { c.delayBeforeRetry = &v }, 0),
		"warmup":             timer(func(c *common, v time.Duration) { c.warmup = &v }, 0),
		"delay_loop":         timer(func(c *common, v time.Duration) { c.delayLoop = &v }, 0.000001),
		"retry": {min: 1, max: 1, fn: func(d *decoder, n *node, t *T) {
			if v, ok := d.int(n, 1, 0, 1<<31-1); ok {
				r := int(v)
				get(t).retry = &r
			}
		}},
		"nb_get_retry": {min: 1, max: 1, fn: func(d *decoder, n *node, t *T) {
			d.warnf(n, "nb_get_retry is deprecated - please use 'retry'")
			if v, ok := d.int(n, 1, 0, 1<<31-1); ok {
				r := int(v)
				get(t).retry = &r
			}
		}},
		"alpha": {max: 1, fn: func(d *decoder, n *node, t *T) {
			if v, ok := d.boolArg(n, 1); ok {
				get(t).alpha = &v
			}
		}},
		"inhibit_on_failure": {max: 1, fn: func(d *decoder, n *node, t *T) {
			if v, ok := d.boolArg(n, 1); ok {
				get(t).inhibit = &v
			}
		}},
		"virtualhost": {min: 1, max: 1, fn: func(d *decoder, n *node, t *T) {
			v := n.args[1]
			get(t).virtualhost = &v
		}},
	}
}

func merge[T any](tabs ...table[T]) table[T] {
	out := table[T]{}
	for _, t := range tabs {
		for k, v := range t {
			out[k] = v
		}
	}
	return out
}

var vsTable table[VirtualServer]

func init() {
	vsTable = merge(commonTable(func(v *VirtualServer) *common { return &v.common }), table[VirtualServer]{
		"lvs_sched": {min: 1, max: 1, fn: (*decoder).vsSched},
		"lb_algo": {min: 1, max: 1, fn: func(d *decoder, n *node, vs *VirtualServer) {
			d.warnf(n, "lb_algo is deprecated - please use 'lvs_sched'")
			d.vsSched(n, vs)
		}},
		"lvs_method": {min: 1, max: 7, fn: func(d *decoder, n *node, vs *VirtualServer) {
			if f, ok := d.forwarding(n); ok {
				vs.Forwarding = f
			}
		}},
		"lb_kind": {min: 1, max: 7, fn: func(d *decoder, n *node, vs *VirtualServer) {
			d.warnf(n, "lb_kind is deprecated - please use 'lvs_method'")
			if f, ok := d.forwarding(n); ok {
				vs.Forwarding = f
			}
		}},
		"persistence_timeout": {max: 1, fn: func(d *decoder, n *node, vs *VirtualServer) {
			vs.PersistenceTimeout = DefaultPersistenceTimeout
			if len(n.args) > 1 {
				if v, ok := d.uint(n, 1, 1, 1<<31-1); ok {
					vs.PersistenceTimeout = uint32(v)
				}
			}
		}},
		"persistence_granularity": {min: 1, max: 1, fn: func(d *decoder, n *node, vs *VirtualServer) {
			vs.PersistenceGranularity, _ = d.netmask(n, 1)
		}},
		"persistence_engine": {min: 1, max: 1, fn: func(d *decoder, n *node, vs *VirtualServer) {
			vs.PersistenceEngine, _ = d.oneOf(n, 1, "persistence_engine", "sip")
		}},
		"protocol": {min: 1, max: 1, fn: func(d *decoder, n *node, vs *VirtualServer) {
			if name, ok := d.oneOf(n, 1, "protocol", "TCP", "UDP", "SCTP"); ok {
				vs.Protocol, _ = ipvs.ParseProtocol(name)
			}
		}},
		"ha_suspend": {fn: func(d *decoder, n *node, vs *VirtualServer) { vs.HASuspend = true }},
		"smtp_alert": {max: 1, fn: func(d *decoder, n *node, vs *VirtualServer) {
			if v, ok := d.boolArg(n, 1); ok {
				vs.SMTPAlert = boolPtr(v)
			}
		}},
		"omega": {fn: func(d *decoder, n *node, vs *VirtualServer) { vs.Omega = true }},
		"quorum": {min: 1, max: 1, fn: func(d *decoder, n *node, vs *VirtualServer) {
			if v, ok := d.int(n, 1, 1, 1<<31-1); ok {
				vs.Quorum = int(v)
			}
		}},
		"hysteresis": {min: 1, max: 1, fn: func(d *decoder, n *node, vs *VirtualServer) {
			if v, ok := d.int(n, 1, 0, 1<<31-1); ok {
				vs.Hysteresis = int(v)
			}
		}},
		"quorum_up":   {min: 1, max: 3, fn: func(d *decoder, n *node, vs *VirtualServer) { vs.QuorumUp = d.script(n, 1) }},
		"quorum_down": {min: 1, max: 3, fn: func(d *decoder, n *node, vs *VirtualServer) { vs.QuorumDown = d.script(n, 1) }},
		"ip_family": {min: 1, max: 1, fn: func(d *decoder, n *node, vs *VirtualServer) {
			if f, ok := d.oneOf(n, 1, "ip_family", "inet", "inet6"); ok {
				vs.IPv6 = f == "inet6"
			}
		}},
		"sorry_server": {min: 1, max: 2, fn: func(d *decoder, n *node, vs *VirtualServer) {
			rs, ok := d.serverAddr(n)
			if ok {
				rs.Weight = 1
				vs.SorryServer = &rs
			}
		}},
		"sorry_server_inhibit": {fn: func(d *decoder, n *node, vs *VirtualServer) {
			if vs.SorryServer == nil {
				d.errorf(n, "sorry_server_inhibit needs a sorry_server before it")
				return
			}
			vs.SorryServer.InhibitOnFailure = true
		}},
		"sorry_server_lvs_method": {min: 1, max: 7, fn: func(d *decoder, n *node, vs *VirtualServer) {
			if vs.SorryServer == nil {
				d.errorf(n, "sorry_server_lvs_method needs a sorry_server before it")
				return
			}
			if f, ok := d.forwarding(n); ok {
				vs.SorryServer.Forwarding = f
			}
		}},
		"real_server": {min: 1, max: 2, block: true, fn: (*decoder).realServer},
		"flag-1":      schedFlag(ipvs.SchedFlag1, ""),
		"flag-2":      schedFlag(ipvs.SchedFlag2, ""),
		"flag-3":      schedFlag(ipvs.SchedFlag3, ""),
		"sh-fallback": schedFlag(ipvs.SchedFlag1, "sh"),
		"sh-port":     schedFlag(ipvs.SchedFlag2, "sh"),
		"mh-fallback": schedFlag(ipvs.SchedFlag1, "mh"),
		"mh-port":     schedFlag(ipvs.SchedFlag2, "mh"),
		"ops":         schedFlag(ipvs.FlagOnePacket, ""),
		"nat_mask": {min: 1, max: 1, fn: func(d *decoder, n *node, vs *VirtualServer) {
			d.kaWarnf(n, "nat_mask is obsolete (keepalived 2.2 no longer knows it) and is ignored")
		}},
		"proxy_protocol": {min: 1, max: 1, fn: func(d *decoder, n *node, vs *VirtualServer) {
			switch strings.ToLower(n.args[1]) {
			case "1", "v1":
				vs.ProxyProtocol = 1
			case "2", "v2":
				vs.ProxyProtocol = 2
			case "0", "off", "none":
				vs.ProxyProtocol = 0
			default:
				d.errorf(n, "unknown proxy_protocol %q (want 1 or 2)", n.args[1])
			}
		}},
		"laddr_group_name": {min: 1, max: 1, fn: func(d *decoder, n *node, vs *VirtualServer) { vs.LocalAddrGroup = n.args[1] }},
		"laddr_group":      {min: 1, max: 1, fn: func(d *decoder, n *node, vs *VirtualServer) { vs.LocalAddrGroup = n.args[1] }},
	})
	for k := range vsTable {
		where[k] = "virtual_server"
	}
	for k := range rsTable {
		if _, ok := where[k]; !ok {
			where[k] = "real_server"
		}
	}
	where["real_server"] = "virtual_server"
	where["url"] = "HTTP_GET or SSL_GET"
	for _, k := range []string{"path", "digest", "status_code"} {
		where[k] = "url"
	}
	for k := range checkerTypes {
		where[k] = "real_server"
	}
	for k := range instanceTable {
		if _, ok := where[k]; !ok {
			where[k] = "vrrp_instance"
		}
	}
	for k := range globalTable {
		if _, ok := where[k]; !ok {
			where[k] = "global_defs"
		}
	}
	where["auth_type"], where["auth_pass"] = "authentication", "authentication"
	for k := range topLevel {
		where[k] = "the top level"
	}
}

func schedFlag(bit uint32, sched string) handler[VirtualServer] {
	return handler[VirtualServer]{fn: func(d *decoder, n *node, vs *VirtualServer) {
		vs.SchedFlags |= bit
		if sched != "" && vs.Sched != "" && vs.Sched != sched {
			d.warnf(n, "%s only applies to the %s scheduler, not %s", n.kw(), sched, vs.Sched)
		}
	}}
}

func (d *decoder) vsSched(n *node, vs *VirtualServer) {
	if s, ok := d.oneOf(n, 1, "lvs_sched", ipvs.Schedulers...); ok {
		vs.Sched = s
	}
}

// serverAddr reads "ADDR [PORT]" of a real_server or sorry_server.
func (d *decoder) serverAddr(n *node) (RealServer, bool) {
	rs := RealServer{Pos: n.pos}
	a, ok := d.addr(n, 1, n.kw())
	if !ok {
		return rs, false
	}
	rs.Addr = a
	if len(n.args) > 2 {
		if rs.Port, ok = d.port(n, 2, n.kw()+" port"); !ok {
			return rs, false
		}
	}
	return rs, true
}

func (d *decoder) virtualServer(n *node, c *Config) {
	vs := VirtualServer{Pos: n.pos, Quorum: DefaultQuorum}
	switch n.args[1] {
	case "fwmark":
		if len(n.args) < 3 {
			d.errorf(n, "virtual_server fwmark needs a mark")
			return
		}
		v, ok := d.uint(n, 2, 1, 1<<32-1)
		if !ok {
			return
		}
		vs.FWMark = uint32(v)
	case "group":
		if len(n.args) < 3 {
			d.errorf(n, "virtual_server group needs a virtual_server_group name")
			return
		}
		vs.Group = n.args[2]
	default:
		a, err := netip.ParseAddr(n.args[1])
		if err != nil {
			d.errorf(n, "virtual_server: %q is not an IP address, fwmark N or group NAME", n.args[1])
			return
		}
		vs.Addr = a.Unmap()
		vs.IPv6 = vs.Addr.Is6()
		if len(n.args) > 2 {
			p, ok := d.port(n, 2, "virtual_server port")
			if !ok {
				return
			}
			vs.Port = p
		}
	}
	run(d, "virtual_server", n.children, vsTable, ignored{"snmp_name": true, "hashed": true}, &vs)

	var defaulted []string
	if vs.Protocol == 0 && vs.FWMark == 0 {
		vs.Protocol = ipvs.UDP
		defaulted = append(defaulted, "no protocol set - defaulting to UDP, as keepalived 2.2.7 does (write 'protocol TCP' for TCP)")
	}
	if vs.Sched == "" {
		vs.Sched = ipvs.DefaultScheduler
		defaulted = append(defaulted, "no scheduler set, setting default 'wlc'")
	}
	if vs.Forwarding.Method == "" {
		vs.Forwarding.Method = NAT
		defaulted = append(defaulted, "no forwarding method set, setting default NAT")
	}
	for _, msg := range defaulted {
		d.kaWarnf(n, "virtual server %s: %s", vs.Key(), msg)
	}
	if vs.Addr.IsValid() && vs.Port == 0 && vs.PersistenceTimeout == 0 {
		d.errorf(n, "virtual server %s has no port: only a persistent service (persistence_timeout) may omit it", vs.Addr)
	}
	if vs.ProxyProtocol != 0 && vs.Protocol == ipvs.UDP {
		d.errorf(n, "virtual server %s: proxy_protocol needs a TCP service", vs.Key())
	}
	if vs.LocalAddrGroup != "" && vs.Forwarding.Method != FNAT {
		d.warnf(n, "virtual server %s: laddr_group only applies to lvs_method FNAT", vs.Key())
	}
	max := 32
	if vs.IPv6 {
		max = 128
	}
	if vs.PersistenceGranularity > max {
		d.errorf(n, "virtual server %s: persistence_granularity /%d is longer than the address", vs.Key(), vs.PersistenceGranularity)
	}
	vs.DelayLoop = DefaultDelayLoop
	if vs.common.delayLoop != nil {
		vs.DelayLoop = *vs.common.delayLoop
	}
	vs.Alpha = deref(vs.common.alpha, false)
	vs.InhibitOnFailure = deref(vs.common.inhibit, false)
	vs.Virtualhost = deref(vs.common.virtualhost, "")
	for i := range vs.RealServers {
		d.resolveRS(&vs, &vs.RealServers[i])
	}
	if vs.SorryServer != nil {
		if vs.SorryServer.Forwarding.Method == "" {
			vs.SorryServer.Forwarding = vs.Forwarding
		}
	}
	for i, rs := range vs.RealServers {
		for _, o := range vs.RealServers[:i] {
			if o.Addr == rs.Addr && o.Port == rs.Port {
				d.lx.errorf(rs.Pos, "real_server %s is already in virtual server %s (at %s)", netip.AddrPortFrom(rs.Addr, rs.Port), vs.Key(), o.Pos)
			}
		}
	}
	c.VirtualServers = append(c.VirtualServers, vs)
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

var rsTable table[RealServer]

func init() {
	rsTable = merge(commonTable(func(r *RealServer) *common { return &r.common }), table[RealServer]{
		"weight": {min: 1, max: 1, fn: func(d *decoder, n *node, rs *RealServer) {
			if v, ok := d.int(n, 1, 0, 1<<31-1); ok {
				rs.Weight = int32(v)
			}
		}},
		"lvs_method": {min: 1, max: 7, fn: func(d *decoder, n *node, rs *RealServer) {
			if f, ok := d.forwarding(n); ok {
				rs.Forwarding = f
			}
		}},
		"lb_kind": {min: 1, max: 7, fn: func(d *decoder, n *node, rs *RealServer) {
			d.warnf(n, "lb_kind is deprecated - please use 'lvs_method'")
			if f, ok := d.forwarding(n); ok {
				rs.Forwarding = f
			}
		}},
		"notify_up":   {min: 1, max: 3, fn: func(d *decoder, n *node, rs *RealServer) { rs.NotifyUp = d.script(n, 1) }},
		"notify_down": {min: 1, max: 3, fn: func(d *decoder, n *node, rs *RealServer) { rs.NotifyDown = d.script(n, 1) }},
		"uthreshold": {min: 1, max: 1, fn: func(d *decoder, n *node, rs *RealServer) {
			if v, ok := d.uint(n, 1, 0, 1<<32-1); ok {
				rs.UThreshold = uint32(v)
			}
		}},
		"lthreshold": {min: 1, max: 1, fn: func(d *decoder, n *node, rs *RealServer) {
			if v, ok := d.uint(n, 1, 0, 1<<32-1); ok {
				rs.LThreshold = uint32(v)
			}
		}},
		"smtp_alert": {max: 1, fn: func(d *decoder, n *node, rs *RealServer) {
			if v, ok := d.boolArg(n, 1); ok {
				rs.SMTPAlert = boolPtr(v)
			}
		}},
		"tun_type": {min: 1, max: 1, fn: func(d *decoder, n *node, rs *RealServer) {
			switch n.args[1] {
			case "ipip":
				rs.Forwarding.TunType = ipvs.TunIPIP
			case "gue":
				rs.Forwarding.TunType = ipvs.TunGUE
			case "gre":
				rs.Forwarding.TunType = ipvs.TunGRE
			default:
				d.errorf(n, "unknown tun_type %q (want ipip, gue or gre)", n.args[1])
			}
		}},
		"tun_port": {min: 1, max: 1, fn: func(d *decoder, n *node, rs *RealServer) {
			rs.Forwarding.TunPort, _ = d.port(n, 1, "tun_port")
		}},
	})
	for name := range checkerTypes {
		rsTable[name] = handler[RealServer]{block: true, fn: (*decoder).checker}
	}
}

func (d *decoder) realServer(n *node, vs *VirtualServer) {
	rs, ok := d.serverAddr(n)
	if !ok {
		return
	}
	rs.Weight = ipvs.DefaultWeight
	run(d, "real_server", n.children, rsTable, ignored{"snmp_name": true, "BFD_CHECK": true}, &rs)
	if rs.UThreshold != 0 && rs.LThreshold > rs.UThreshold {
		d.errorf(n, "real_server %s: lthreshold %d is above uthreshold %d", rs.Addr, rs.LThreshold, rs.UThreshold)
	}
	vs.RealServers = append(vs.RealServers, rs)
}

// resolveRS applies the virtual server's defaults to a real server and
// the real server's to its checkers.
func (d *decoder) resolveRS(vs *VirtualServer, rs *RealServer) {
	if rs.Forwarding.Method == "" {
		tt, tp := rs.Forwarding.TunType, rs.Forwarding.TunPort
		rs.Forwarding = vs.Forwarding
		if tt != 0 || tp != 0 {
			rs.Forwarding.TunType, rs.Forwarding.TunPort = tt, tp
		}
	}
	rs.Alpha = deref(rs.common.alpha, vs.Alpha)
	rs.InhibitOnFailure = deref(rs.common.inhibit, vs.InhibitOnFailure)
	rs.Virtualhost = deref(rs.common.virtualhost, vs.Virtualhost)
	if rs.Addr.Is6() != vs.IPv6 && vs.Group == "" && rs.Forwarding.Method != TUN {
		d.lx.errorf(rs.Pos, "real_server %s and virtual server %s are of different address families (only TUN may mix them)", rs.Addr, vs.Key())
	}
	for i := range rs.Checkers {
		d.resolveChecker(vs, rs, &rs.Checkers[i])
	}
}
