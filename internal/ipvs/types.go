// Package ipvs holds the IP Virtual Server table: virtual services, their real
// servers, persistence and timeouts, validated with ipvsadm's wording. It is
// the one source of truth the engines are given; it makes no OS calls.
package ipvs

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Protocol is a virtual service's transport protocol.
type Protocol uint8

// Protocols, numbered as IP protocol numbers.
const (
	TCP  Protocol = 6
	UDP  Protocol = 17
	SCTP Protocol = 132
)

func (p Protocol) String() string {
	switch p {
	case TCP:
		return "TCP"
	case UDP:
		return "UDP"
	case SCTP:
		return "SCTP"
	}
	return fmt.Sprintf("proto(%d)", uint8(p))
}

// ParseProtocol is String's inverse for the protocols IPVS has: "TCP",
// "UDP" or "SCTP".
func ParseProtocol(name string) (Protocol, bool) {
	for _, p := range []Protocol{TCP, UDP, SCTP} {
		if name == p.String() {
			return p, true
		}
	}
	return 0, false
}

// Method is a real server's packet-forwarding method (ipvsadm -g, -i, -m).
type Method uint8

// Forwarding methods. FullNAT is a GVS extension (DPVS's FNAT).
const (
	Route   Method = iota // -g, direct routing (DR): rewrite the destination MAC
	Tunnel                // -i, IP-in-IP or GUE
	Masq                  // -m, NAT
	FullNAT               // --fullnat, rewrite both addresses, client address in TOA
)

// String is the name ipvsadm prints in the Forward column.
func (m Method) String() string {
	switch m {
	case Route:
		return "Route"
	case Tunnel:
		return "Tunnel"
	case Masq:
		return "Masq"
	case FullNAT:
		return "FullNat"
	}
	return "Unknown"
}

// Flag is the ipvsadm option that selects the method ("-g", "-i", "-m").
func (m Method) Flag() string {
	switch m {
	case Tunnel:
		return "-i"
	case Masq:
		return "-m"
	case FullNAT:
		return "--fullnat"
	}
	return "-g"
}

// TunType is the encapsulation of the tunnel method.
type TunType uint8

// Tunnel types, as ipvsadm's --tun-type.
const (
	TunIPIP TunType = iota
	TunGUE
	TunGRE
)

func (t TunType) String() string {
	switch t {
	case TunGUE:
		return "gue"
	case TunGRE:
		return "gre"
	}
	return "ipip"
}

// Scheduler flags (ipvsadm -b), as the kernel's IP_VS_SVC_F_SCHED* bits.
const (
	SchedFlag1 uint32 = 0x0008 // sh-fallback, mh-fallback
	SchedFlag2 uint32 = 0x0010 // sh-port, mh-port
	SchedFlag3 uint32 = 0x0020
)

// Service flags, as the kernel's IP_VS_SVC_F_* bits.
const (
	FlagPersistent uint32 = 0x0001
	FlagHashed     uint32 = 0x0002
	FlagOnePacket  uint32 = 0x0004 // ipvsadm -o, --ops
)

// Defaults from libipvs and the kernel.
const (
	DefaultScheduler   = "wlc"
	DefaultPersistence = 360 // seconds, ipvsadm -p without a value
	DefaultWeight      = 1
)

// Schedulers lists every scheduler IPVS has; the table accepts only these.
var Schedulers = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"}

// ServiceKey identifies a virtual service: protocol, address and port, or a
// firewall mark (then Proto and Port are zero and Addr only carries the
// family).
type ServiceKey struct {
	Proto  Protocol   `json:"proto,omitempty"`
	Addr   netip.Addr `json:"addr"`
	Port   uint16     `json:"port,omitempty"`
	FWMark uint32     `json:"fwmark,omitempty"`
}

// IsFWMark reports whether the service is selected by firewall mark.
func (k ServiceKey) IsFWMark() bool { return k.FWMark != 0 }

// IPv6 reports the service's address family.
func (k ServiceKey) IPv6() bool { return k.Addr.Is6() && !k.Addr.Is4In6() }

// AddrPort is the virtual address and port.
func (k ServiceKey) AddrPort() netip.AddrPort { return netip.AddrPortFrom(k.Addr, k.Port) }

func (k ServiceKey) String() string {
	if k.IsFWMark() {
		if k.IPv6() {
			return fmt.Sprintf("FWM %d IPv6", k.FWMark)
		}
		return fmt.Sprintf("FWM %d", k.FWMark)
	}
	return fmt.Sprintf("%s %s", k.Proto, k.AddrPort())
}

// ParseServiceKey reads a key as String writes it: "TCP 198.18.0.10:80",
// "UDP [2001:db8::1]:53", "SCTP ...", "FWM 5" or "FWM 5 IPv6". An IPv4
// address written as IPv6 ("[::ffff:198.18.0.10]:80") is the IPv4 key, as
// the table keeps it. Anything else is an error saying what is wrong.
func ParseServiceKey(s string) (ServiceKey, error) {
	words := strings.Split(s, " ")
	bad := func(why string, args ...any) (ServiceKey, error) {
		return ServiceKey{}, fmt.Errorf("service %q: %s (want \"TCP|UDP|SCTP ADDR:PORT\", \"FWM MARK\" or \"FWM MARK IPv6\")", s, fmt.Sprintf(why, args...))
	}
	if words[0] == "FWM" {
		if len(words) < 2 || len(words) > 3 || len(words) == 3 && words[2] != "IPv6" {
			return bad("a firewall mark is \"FWM MARK\", or \"FWM MARK IPv6\" for IPv6")
		}
		mark, err := strconv.ParseUint(words[1], 10, 32)
		if err != nil || mark == 0 || words[1][0] == '+' {
			return bad("the firewall mark %q is not a number from 1 to 4294967295", words[1])
		}
		k := ServiceKey{FWMark: uint32(mark), Addr: netip.IPv4Unspecified()}
		if len(words) == 3 {
			k.Addr = netip.IPv6Unspecified()
		}
		return k, nil
	}
	var k ServiceKey
	var ok bool
	if k.Proto, ok = ParseProtocol(words[0]); !ok {
		return bad("unknown protocol %q", words[0])
	}
	if len(words) != 2 {
		return bad("want the protocol, one space and ADDR:PORT")
	}
	ap, err := netip.ParseAddrPort(words[1])
	if err != nil {
		return bad("%q is not ADDR:PORT (an IPv6 address goes in brackets)", words[1])
	}
	if ap.Addr().Zone() != "" {
		return bad("%q has a zone; a virtual address has none", words[1])
	}
	k.Addr, k.Port = ap.Addr().Unmap(), ap.Port()
	return k, nil
}

// Service is a virtual service's configuration.
type Service struct {
	ServiceKey
	Scheduler string `json:"scheduler"`
	// Flags holds FlagPersistent, FlagOnePacket and the SchedFlag bits.
	Flags uint32 `json:"flags,omitempty"`
	// Timeout is the persistence timeout in seconds (with FlagPersistent).
	Timeout uint32 `json:"timeout,omitempty"`
	// Netmask is the persistence granularity of a persistent service: a
	// prefix length (32 or 128 is per client address; IPv4's 0 puts every
	// client in one template, as `-M 0.0.0.0` does). Like the kernel's
	// netlink attribute it is always meaningful: 0 is /0, not "unset".
	// The table sets the full mask on services that are not persistent.
	Netmask int `json:"netmask"`
	// PE is the persistence engine name ("sip"), kept for -S output.
	PE string `json:"pe,omitempty"`
	// ProxyProtocol is 0, 1 or 2: the PROXY protocol version the proxy
	// engine sends to the real server (a GVS extension).
	ProxyProtocol int `json:"proxy_protocol,omitempty"`
	// LocalAddrs is the FullNAT local address pool.
	LocalAddrs []netip.Addr `json:"laddrs,omitempty"`
}

// Persistent reports whether the service has persistence.
func (s *Service) Persistent() bool { return s.Flags&FlagPersistent != 0 }

// SchedFlagsString is the scheduler flags as ipvsadm names them for the
// service's scheduler ("sh-fallback,sh-port"), empty when there are none.
func (s *Service) SchedFlagsString() string {
	var names []string
	prefix := s.Scheduler
	if prefix != "sh" && prefix != "mh" {
		prefix = ""
	}
	for _, f := range []struct {
		bit  uint32
		name string
	}{{SchedFlag1, "fallback"}, {SchedFlag2, "port"}, {SchedFlag3, ""}} {
		if s.Flags&f.bit == 0 {
			continue
		}
		switch {
		case prefix != "" && f.name != "":
			names = append(names, prefix+"-"+f.name)
		case f.bit == SchedFlag1:
			names = append(names, "flag-1")
		case f.bit == SchedFlag2:
			names = append(names, "flag-2")
		default:
			names = append(names, "flag-3")
		}
	}
	return strings.Join(names, ",")
}

// Dest is a real server's configuration.
type Dest struct {
	Addr       netip.Addr `json:"addr"`
	Port       uint16     `json:"port"`
	Method     Method     `json:"method"`
	Weight     int32      `json:"weight"`
	UThreshold uint32     `json:"u_threshold,omitempty"` // -x: overloaded at this many connections
	LThreshold uint32     `json:"l_threshold,omitempty"` // -y: no longer overloaded below this
	TunType    TunType    `json:"tun_type,omitempty"`
	TunPort    uint16     `json:"tun_port,omitempty"`
	TunFlags   uint16     `json:"tun_flags,omitempty"` // GUE checksum flags, as ipvsadm --tun-*csum
}

// AddrPort is the real server's address and port.
func (d *Dest) AddrPort() netip.AddrPort { return netip.AddrPortFrom(d.Addr, d.Port) }

// Timeouts are the connection timeouts of ipvsadm --set, in seconds.
type Timeouts struct {
	TCP    uint32 `json:"tcp"`
	TCPFin uint32 `json:"tcpfin"`
	UDP    uint32 `json:"udp"`
}

// DefaultTimeouts are the kernel's defaults (ipvsadm -L --timeout).
var DefaultTimeouts = Timeouts{TCP: 900, TCPFin: 120, UDP: 300}

// FullNetmask is the prefix length that groups nothing: one client address.
func FullNetmask(ipv6 bool) int {
	if ipv6 {
		return 128
	}
	return 32
}
