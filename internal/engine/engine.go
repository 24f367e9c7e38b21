// Package engine defines the data-plane interface: what every engine (proxy,
// xdp) offers the control plane, which never knows which one runs.
package engine

import (
	"context"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// Engine forwards client connections to real servers as the table says.
type Engine interface {
	// Name is "proxy" or "xdp".
	Name() string
	// CheckDest refuses a real server whose forwarding method (or other
	// option) this engine cannot serve, with an error that names the
	// engine that can.
	CheckDest(svc *ipvs.Service, d *ipvs.Dest) error
	// Apply makes the engine serve exactly the snapshot's services. Real
	// servers that stay keep their connections; removed ones stop getting
	// new connections while established ones finish.
	Apply(snap *ipvs.Snapshot) error
	// Status returns every service with its counters and rates, real
	// servers in the kernel's order.
	Status() []ipvs.ServiceStatus
	// Conns lists the connection table (ipvsadm -Lnc).
	Conns() []ipvs.Conn
	// Zero clears the counters of one service, or of all when key is nil.
	Zero(key *ipvs.ServiceKey)
	// Close stops accepting new connections and waits until established
	// ones finish or ctx ends, then releases everything.
	Close(ctx context.Context) error
}
