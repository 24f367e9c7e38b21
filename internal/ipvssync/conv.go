package ipvssync

import (
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

// worthSending reports whether the kernel's master would send a
// connection in this state.
func worthSending(c *engine.SyncConn) bool {
	return c.Proto == ipvs.UDP || c.Proto == ipvs.TCP && synced[c.State]
}

// FromEngine converts an engine's connection to a wire entry; ok is false
// for one the format cannot carry (FullNAT, an unknown state or protocol).
func FromEngine(c engine.SyncConn) (Conn, bool) {
	w := Conn{Proto: uint8(c.Proto), Client: c.Client, Virtual: c.Virtual, Dest: c.Dest,
		Timeout: uint32(max(c.Timeout, 0) / time.Second)}
	switch c.Method {
	case ipvs.Masq:
		w.Flags = FlagMasq
	case ipvs.Tunnel:
		w.Flags = FlagTunnel
	case ipvs.Route:
		w.Flags = FlagRoute
	default:
		return w, false
	}
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

// ToEngine converts a received entry; ok is false for one the engines
// cannot install, which the kernel would also refuse (a protocol other
// than TCP and UDP, a state out of range) or which GVS does not install
// yet (persistence templates, local and bypass connections).
func ToEngine(w Conn) (engine.SyncConn, bool) {
	c := engine.SyncConn{Proto: ipvs.Protocol(w.Proto), Client: w.Client, Virtual: w.Virtual, Dest: w.Dest,
		Timeout: time.Duration(w.Timeout) * time.Second}
	if w.Flags&FlagTemplate != 0 {
		return c, false
	}
	switch w.Flags & FlagFwdMask {
	case FlagMasq:
		c.Method = ipvs.Masq
	case FlagTunnel:
		c.Method = ipvs.Tunnel
	case FlagRoute:
		c.Method = ipvs.Route
	default:
		return c, false
	}
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
	return c, w.valid()
}
