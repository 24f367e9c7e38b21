package ipvssync

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"time"

	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// tcpStates are the kernel's TCP state names in its numbering
// (IP_VS_TCP_S_*), as ipvsadm -Lnc prints them.
var tcpStates = []string{"NONE", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT", "TIME_WAIT",
	"CLOSE", "CLOSE_WAIT", "LAST_ACK", "LISTEN", "SYNACK"}

// udpState is the one UDP state (IP_VS_UDP_S_NORMAL).
const udpState = "UDP"

// synced are the TCP states the kernel's master sends (ip_vs_sync_conn_needed):
// half-open connections are not worth a backup's table.
var synced = map[string]bool{"ESTABLISHED": true, "FIN_WAIT": true, "CLOSE": true, "CLOSE_WAIT": true, "TIME_WAIT": true}

// templateState is the state of a persistence template as ipvsadm -Lnc
// prints it (IP_VS_CTPL_S_NONE, 0 on the wire).
const templateState = "NONE"

// ftpPort is the kernel's FTPPORT: a persistent service on it makes
// templates without ports, so that the data connections stick too.
const ftpPort = 21

// worthSending reports whether the kernel's master would send a
// connection in this state. Templates are always worth it.
func worthSending(c *engine.SyncConn) bool {
	return c.Template || c.Proto == ipvs.UDP || c.Proto == ipvs.TCP && synced[c.State]
}

// fwdFlag is the forwarding method's IP_VS_CONN_F_* value; ok is false
// for one the format cannot carry (FullNAT).
func fwdFlag(m ipvs.Method) (uint32, bool) {
	switch m {
	case ipvs.Masq:
		return FlagMasq, true
	case ipvs.Tunnel:
		return FlagTunnel, true
	case ipvs.Route:
		return FlagRoute, true
	}
	return 0, false
}

// FromEngine converts an engine's connection or template to a wire entry;
// ok is false for one the format cannot carry (FullNAT, an unknown state
// or protocol).
func FromEngine(c engine.SyncConn) (Conn, bool) {
	w := Conn{Proto: uint8(c.Proto), Client: c.Client, Virtual: c.Virtual, Dest: c.Dest,
		Timeout: uint32(max(c.Timeout, 0) / time.Second)}
	fwd, ok := fwdFlag(c.Method)
	if !ok {
		return w, false
	}
	w.Flags = fwd
	if c.Template {
		return fromTemplate(c, w)
	}
	w.FWMark = c.FWMark // the kernel's cp->fwmark: its service's mark
	switch c.Proto {
	case ipvs.TCP:
		i := slices.Index(tcpStates, c.State)
		if i < 0 {
			return w, false
		}
		w.State = uint16(i)
		if c.State != "ESTABLISHED" {
			w.Flags |= FlagInactive
		}
	case ipvs.UDP:
		if c.State != udpState {
			return w, false
		}
		w.Flags |= FlagInactive
	default:
		return w, false
	}
	return w, w.valid()
}

// fromTemplate lays out a persistence template as the kernel's
// ip_vs_sched_persist makes it: client port 0, the client address as
// masked; a firewall-mark service's template has protocol 0 (IPPROTO_IP),
// the mark in place of the virtual address and no ports; a port-zero or
// FTP service's template has no ports.
func fromTemplate(c engine.SyncConn, w Conn) (Conn, bool) {
	w.Flags |= FlagTemplate
	w.Client = netip.AddrPortFrom(c.Client.Addr(), 0)
	switch {
	case c.FWMark != 0:
		w.Proto = 0
		w.FWMark = c.FWMark
		w.Virtual = netip.AddrPortFrom(markAddr(c.FWMark, c.Client.Addr().Is6()), 0)
		w.Dest = netip.AddrPortFrom(c.Dest.Addr(), 0)
	case c.Virtual.Port() == 0 || c.Virtual.Port() == ftpPort:
		w.Virtual = netip.AddrPortFrom(c.Virtual.Addr(), 0)
		w.Dest = netip.AddrPortFrom(c.Dest.Addr(), 0)
	}
	return w, w.valid()
}

// markAddr is a firewall mark where a template holds its virtual address
// (the mark in network order in the first four bytes).
func markAddr(mark uint32, v6 bool) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint32(b[:], mark)
	if v6 {
		return netip.AddrFrom16(b)
	}
	return netip.AddrFrom4([4]byte(b[:4]))
}

// ToEngine converts a received entry; ok is false for one the engines
// cannot install, which the kernel would also refuse (a protocol other
// than TCP and UDP, a state out of range) or which GVS does not install
// (local and bypass connections).
//
// A template keeps the kernel's wire form, except that a firewall-mark
// service's has FWMark set and no Virtual: an engine finds a port-zero
// or FTP service's template under port 0 and its real server by address.
// A connection keeps its mark (FWMark): an engine looks for the
// firewall-mark service of it first, as the kernel's ip_vs_find_dest.
func ToEngine(w Conn) (engine.SyncConn, bool) {
	c := engine.SyncConn{Proto: ipvs.Protocol(w.Proto), Client: w.Client, Virtual: w.Virtual, Dest: w.Dest,
		Timeout: time.Duration(w.Timeout) * time.Second}
	if !w.valid() {
		return c, false
	}
	m, ok := methodOf(w.Flags)
	if !ok {
		return c, false
	}
	c.Method = m
	if w.Flags&FlagTemplate != 0 {
		return toTemplate(w, c)
	}
	c.FWMark = w.FWMark
	switch c.Proto {
	case ipvs.TCP:
		if int(w.State) >= len(tcpStates) {
			return c, false
		}
		c.State = tcpStates[w.State]
	case ipvs.UDP:
		if w.State != 0 {
			return c, false
		}
		c.State = udpState
	default:
		return c, false
	}
	return c, true
}

// methodOf is the forwarding method of the wire flags; local delivery
// (and anything else) is not one a director forwards with.
func methodOf(flags uint32) (ipvs.Method, bool) {
	switch flags & FlagFwdMask {
	case FlagMasq:
		return ipvs.Masq, true
	case FlagTunnel:
		return ipvs.Tunnel, true
	case FlagRoute:
		return ipvs.Route, true
	}
	return 0, false
}

// toTemplate converts a received persistence template. The kernel does
// not check a template's state; its protocol is TCP, UDP or SCTP, or 0
// with a firewall mark.
func toTemplate(w Conn, c engine.SyncConn) (engine.SyncConn, bool) {
	c.Template = true
	c.State = templateState
	switch {
	case c.Proto == 0 && w.FWMark != 0:
		c.FWMark = w.FWMark
		c.Virtual = netip.AddrPort{}
	case c.Proto == ipvs.TCP || c.Proto == ipvs.UDP || c.Proto == ipvs.SCTP:
	default:
		return c, false
	}
	return c, true
}
