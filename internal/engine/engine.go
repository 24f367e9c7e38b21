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

// Stater is an engine with counters of its own beyond IPVS's, served at
// GET /v1/state/engine and shown by `gvsadm engine`.
type Stater interface {
	State() State
}

// State is what an engine bounds and what those bounds turned away.
type State struct {
	Engine string `json:"engine"`
	// FDLimit is the process's descriptor limit (RLIMIT_NOFILE).
	FDLimit uint64 `json:"fd_limit"`
	// UDPFlowLimit and UDPFlowLimitPerService bound the UDP flows (and
	// one-packet reply paths); UDPFlows is how many there are now.
	UDPFlowLimit           int `json:"udp_flow_limit"`
	UDPFlowLimitPerService int `json:"udp_flow_limit_per_service"`
	UDPFlows               int `json:"udp_flows"`
	// UDPSockets is how many reply sockets the UDP flows use.
	UDPSockets int `json:"udp_sockets"`
	// LoopsRefused counts connections and flows that came from the
	// engine itself (a real server leading back to one of its services).
	LoopsRefused uint64         `json:"loops_refused"`
	Services     []ServiceState `json:"services"`
}

// ServiceState is one UDP service's share of State.
type ServiceState struct {
	Service string `json:"service"` // "UDP 198.18.0.1:53"
	Flows   int    `json:"flows"`   // flows and one-packet reply paths now
	Sockets int    `json:"sockets"` // reply sockets
	// Evicted counts flows ended early to make room for new ones;
	// Refused new flows dropped (no room or no socket, or a loop).
	Evicted uint64 `json:"evicted"`
	Refused uint64 `json:"refused"`
}
