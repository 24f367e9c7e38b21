package engine

import (
	"net/netip"
	"time"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// SyncConn is one connection as a sync daemon copies it from a master
// director to a backup (ipvsadm --start-daemon).
type SyncConn struct {
	Proto   ipvs.Protocol
	Client  netip.AddrPort
	Virtual netip.AddrPort
	Dest    netip.AddrPort
	Method  ipvs.Method
	// State is ipvsadm -Lnc's name for it: ESTABLISHED, FIN_WAIT, ...;
	// UDP for a UDP connection.
	State string
	// Timeout is the state's whole timeout on the sender (how long the
	// connection lives without packets).
	Timeout time.Duration
}

// Syncer is implemented by engines whose connections can be synchronized
// to a standby director. The proxy engine is not one: it terminates TCP,
// so a connection cannot move to another director.
type Syncer interface {
	// SyncChanges returns the connections worth sending to backups: those
	// created or whose state changed since the previous call, and those
	// that saw packets and were last sent longer than refresh ago (so a
	// backup's copy does not expire). refresh 0 returns every connection.
	SyncChanges(refresh time.Duration) []SyncConn
	// InstallSynced installs connections received from a master, so that
	// their packets go to the same real servers here. A connection whose
	// virtual service or real server this engine does not have is
	// skipped and counted.
	InstallSynced(conns []SyncConn) (installed, skipped int)
}
