package xdp

import (
	"slices"

	"github.com/gvs-lb/gvs/internal/engine"
)

// packetReason names a reason the program counts (enum drop_reason in
// bpf/xdp_lb.h) and says in a line what it means and what became of the
// packet.
type packetReason struct{ name, meaning string }

// packetReasons are indexed by lbDropReason; REASON_NONE has no entry.
var packetReasons = [lbDropReasonREASON_MAX]packetReason{
	lbDropReasonREASON_MALFORMED:   {"malformed", "truncated or malformed headers: passed to the kernel"},
	lbDropReasonREASON_FRAGMENT:    {"fragment", "IPv4 fragments (only the first carries the ports): passed to the kernel"},
	lbDropReasonREASON_NOT_IP:      {"not-ip", "neither IPv4 nor IPv6 (ARP, LLDP, ...): passed to the kernel"},
	lbDropReasonREASON_NOT_L4:      {"not-tcp-udp", "not TCP or UDP first (ICMP of no NAT connection, IPv6 extension headers): passed to the kernel"},
	lbDropReasonREASON_NO_SERVICE:  {"no-service", "new flow to no virtual service: passed to the kernel"},
	lbDropReasonREASON_NOT_SYN:     {"not-syn", "TCP of no known connection that is not a SYN: passed to the kernel"},
	lbDropReasonREASON_NO_DEST:     {"no-dest", "no real server could take a new connection and no refusal was sent (over the rate limit, or VLAN-tagged): dropped"},
	lbDropReasonREASON_NO_NEIGH:    {"no-neighbour", "the next hop's MAC address is not resolved yet: DR and TUN passed to the kernel, NAT dropped"},
	lbDropReasonREASON_NO_ROUTE:    {"no-route", "no route to the next hop (or forwarding is off): passed to the kernel"},
	lbDropReasonREASON_TOO_BIG:     {"too-big", "over the egress MTU: dropped, the sender told by ICMP where the frame allows"},
	lbDropReasonREASON_STALE:       {"stale", "of a connection whose real server or forward entry is gone: passed to the kernel"},
	lbDropReasonREASON_TOA_NO_ROOM: {"toa-no-room", "FullNAT: no room in the TCP options for TOA: forwarded without it"},
	lbDropReasonREASON_NO_LPORT:    {"no-local-port", "FullNAT: no free local address and port for a new connection: dropped (add local addresses)"},
	lbDropReasonREASON_NAT_CLASH:   {"nat-clash", "NAT: the reply tuple belongs to a live connection: the SYN dropped"},
	lbDropReasonREASON_ICMP:        {"icmp-translated", "ICMP errors about NAT or FullNAT connections: translated and forwarded"},
	lbDropReasonREASON_REFUSED:     {"refused", "no real server could take a new connection: ICMP port unreachable sent back"},
}

// packetCounts reads the reasons map: the packets counted for each
// reason, summed over the CPUs, indexed as packetReasons (an unreadable
// entry counts 0).
func (e *Engine) packetCounts() [lbDropReasonREASON_MAX]uint64 {
	var out [lbDropReasonREASON_MAX]uint64
	var per []uint64
	for i := range out {
		if i == 0 || e.objs.Reasons.Lookup(uint32(i), &per) != nil {
			continue
		}
		for _, n := range per {
			out[i] += n
		}
	}
	return out
}

// Drops returns how many packets the program left to the kernel or
// dropped, by reason; reasons with no packet are left out.
func (e *Engine) Drops() map[string]uint64 {
	out := map[string]uint64{}
	for i, n := range e.packetCounts() {
		if n > 0 {
			out[packetReasons[i].name] = n
		}
	}
	return out
}

var _ engine.Stater = (*Engine)(nil)

// State is gvsadm engine's view: the interfaces and their XDP mode, how
// full the maps are and every packet reason with its count. It costs a
// lookup per reason and no walk of the connection tables: their entries
// are those the last expiry pass counted (at most Options.ExpiryInterval
// old), which walks them anyway.
func (e *Engine) State() engine.State {
	x := &engine.XDPState{PinPath: e.opts.PinPath, Interfaces: slices.Clone(e.ifaces)}
	if x.Interfaces == nil {
		x.Interfaces = []engine.XDPInterface{}
	}
	e.mu.Lock()
	x.Services = engine.Bound{Used: e.svcIdx.size() - e.svcIdx.left, Limit: e.svcIdx.size()}
	x.RealServers = engine.Bound{Used: e.destIdx.size() - e.destIdx.left, Limit: e.destIdx.size()}
	x.ConnEntries4 = engine.Bound{Used: e.entries4, Limit: int(e.objs.Conns4.MaxEntries())}
	x.ConnEntries6 = engine.Bound{Used: e.entries6, Limit: int(e.objs.Conns.MaxEntries())}
	e.mu.Unlock()
	for i, n := range e.packetCounts() {
		if i > 0 {
			x.Packets = append(x.Packets, engine.PacketReason{Reason: packetReasons[i].name, Meaning: packetReasons[i].meaning, Packets: n})
		}
	}
	return engine.State{Engine: "xdp", Services: []engine.ServiceState{}, XDP: x}
}
