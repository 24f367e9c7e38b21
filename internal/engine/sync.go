package engine

import (
	"net/netip"
	"time"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// SyncConn is one connection as a sync daemon copies it from a master
// director to a backup (ipvsadm --start-daemon), or one persistence
// template (Template).
type SyncConn struct {
	Proto   ipvs.Protocol
	Client  netip.AddrPort
	Virtual netip.AddrPort
	Dest    netip.AddrPort
	Method  ipvs.Method
	// Template marks a persistence template (ipvsadm -Lnc's NONE
	// entries): Client is the client address masked by the service's
	// persistence netmask, port 0; Virtual is the service's address and
	// port; Dest the real server the client sticks to; State is NONE;
	// Timeout the persistence timeout.
	Template bool
	// FWMark is the firewall mark of a connection or template of a
	// firewall-mark service (a template's Proto is 0 and Virtual unset),
	// else 0.
	FWMark uint32
	// State is ipvsadm -Lnc's name for it: ESTABLISHED, FIN_WAIT, ...;
	// UDP for a UDP connection.
	State string
	// Timeout is the state's whole timeout on the sender (how long the
	// connection lives without packets).
	Timeout time.Duration
	// Idle is how long ago the connection's last packet passed (listing
	// only; ignored when installing).
	Idle time.Duration
}

// Syncer is implemented by engines whose connections can be synchronized
// to a standby director. The proxy engine is not one: it terminates TCP,
// so a connection cannot move to another director.
type Syncer interface {
	// SyncConns lists the connections and persistence templates a sync
	// master may send (the master keeps track of what changed since it
	// last sent them). NAT and FullNAT replies are not listed separately.
	SyncConns() []SyncConn
	// InstallSynced installs connections and templates received from a
	// master, so that their packets (and a persistent client's new
	// connections) go to the same real servers here. One whose virtual
	// service or real server this engine does not have is skipped and
	// counted.
	InstallSynced(conns []SyncConn) (installed, skipped int)
}
