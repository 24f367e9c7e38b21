// Package engine defines the data-plane interface: what every engine (proxy,
// xdp) offers the control plane, which never knows which one runs.
//
// # Changes, not snapshots
//
// The control plane (internal/director) hands an engine only what changed,
// as a batch: a list of ipvs.Commands in the table's normalized form
// (ipvs.Tx.Changes), applied in order as one:
//
//   - add-service, edit-service: Service is the whole service as the table
//     holds it; a new service is listed after the others.
//   - delete-service: only Service's key is read. Its real servers stop
//     taking new connections; established ones finish.
//   - add-server, edit-server, delete-server: Service carries the key,
//     Dest the whole real server (delete-server reads its address and
//     port). A new real server goes first in its service's list, as in the
//     kernel; one that stays keeps its place, connections and counters; a
//     deleted one keeps forwarding its established connections.
//   - set: Timeouts holds all three timeouts as they now are.
//
// Clear, zero and unknown operations are not changes: an engine refuses a
// batch holding one. A service deleted and added again in one batch is a
// new service: it starts with zeroed counters.
//
// Failure: Apply makes every change of the batch or none. A refused batch
// leaves the engine serving exactly what it served before, so the caller
// only has to undo its own table. Changes that do not fit what the engine
// serves (adding a service it has, editing one it does not have) refuse the
// batch with the table's error (ipvs.ErrServiceExists ...), naming the
// change. An engine does only the work the touched services need: the cost
// of a batch grows with the batch, not with the table.
//
// The engines' shared part is Fold, which turns a batch into the new
// configuration of each service it touches. The conformance scenarios that
// every engine must pass are in internal/engine/enginetest.
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
	// Apply makes all of the batch's changes, in order, or none of them
	// (see the package documentation).
	Apply(batch []ipvs.Command) error
	// Status returns every service with its counters and rates, services
	// in the order added, real servers in the kernel's order.
	Status() []ipvs.ServiceStatus
	// StatusOf is Status of the one service key names, false when the
	// engine does not serve it. It reads only that service's counters.
	StatusOf(key ipvs.ServiceKey) (ipvs.ServiceStatus, bool)
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
	// TCPConnLimit and TCPConnLimitPerService bound the open TCP
	// connections; TCPConns is how many there are now, TCPRefused how
	// many were refused at a bound.
	TCPConnLimit           int    `json:"tcp_conn_limit"`
	TCPConnLimitPerService int    `json:"tcp_conn_limit_per_service"`
	TCPConns               int    `json:"tcp_conns"`
	TCPRefused             uint64 `json:"tcp_refused"`
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
	// XDP is the xdp engine's own state; nil on other engines, which
	// leave it out.
	XDP *XDPState `json:"xdp,omitempty"`
}

// XDPState is what the xdp engine is attached to, how full its maps are
// and what its program did not forward.
type XDPState struct {
	Interfaces []XDPInterface `json:"interfaces"`
	PinPath    string         `json:"pin_path,omitempty"` // gvsd --bpf-pin
	// Services and RealServers are the map slots for virtual services
	// and real servers: Used counts those configured and those removed
	// whose connections live on.
	Services    Bound `json:"services"`
	RealServers Bound `json:"real_servers"`
	// ConnEntries4 and ConnEntries6 are the connection tables (one entry
	// per DR or TUN connection, two per NAT or FullNAT one), as counted
	// by the last expiry pass.
	ConnEntries4 Bound `json:"conn_entries_ipv4"`
	ConnEntries6 Bound `json:"conn_entries_ipv6"`
	// Packets are the packets the program did not simply forward, by
	// reason: every reason, in the program's order, zero or not.
	Packets []PacketReason `json:"packets"`
}

// XDPInterface is an interface the program is attached to.
type XDPInterface struct {
	Name string `json:"name"`
	Mode string `json:"mode"` // "native" or "generic"
}

// Bound is a fixed capacity and how much of it is in use.
type Bound struct {
	Used  int `json:"used"`
	Limit int `json:"limit"`
}

// PacketReason counts packets for one reason.
type PacketReason struct {
	Reason  string `json:"reason"`  // "no-service"
	Meaning string `json:"meaning"` // one line: what it means and what became of the packet
	Packets uint64 `json:"packets"`
}

// ServiceState is one service's share of State.
type ServiceState struct {
	Service string `json:"service"` // "UDP 198.18.0.1:53"
	// Listening is false while no real server can take a new connection:
	// the service's socket is closed and the kernel refuses for it.
	Listening bool `json:"listening"`
	TCPConns  int  `json:"tcp_conns"` // TCP: open connections now
	Flows     int  `json:"flows"`     // UDP: flows and one-packet reply paths now
	Sockets   int  `json:"sockets"`   // UDP: reply sockets
	// Evicted counts UDP flows ended early to make room for new ones;
	// Refused new UDP flows dropped (no room or no socket, or a loop) or
	// TCP connections reset at a bound.
	Evicted uint64 `json:"evicted"`
	Refused uint64 `json:"refused"`
}

// Serving returns what eng serves, as a snapshot (from its Status).
func Serving(eng Engine) *ipvs.Snapshot {
	st := eng.Status()
	snap := &ipvs.Snapshot{Services: make([]ipvs.ServiceConfig, len(st))}
	for i, s := range st {
		sc := ipvs.ServiceConfig{Service: s.Service, Dests: make([]ipvs.Dest, len(s.Dests))}
		for j, d := range s.Dests {
			sc.Dests[j] = d.Dest
		}
		snap.Services[i] = sc
	}
	return snap
}

// ApplySnapshot makes eng serve exactly snap's services, with the changes
// from what it serves now; timeouts are set when given. For tools and tests
// that hold whole tables; the daemon hands engines its table's changes.
func ApplySnapshot(eng Engine, snap *ipvs.Snapshot) error {
	cur := Serving(eng)
	cur.Timeouts = snap.Timeouts // timeouts are set below, whatever they were
	batch := ipvs.Diff(cur, snap)
	if snap.Timeouts != (ipvs.Timeouts{}) {
		t := snap.Timeouts
		batch = append(batch, ipvs.Command{Op: ipvs.OpSetTimeout, Timeouts: &t})
	}
	return eng.Apply(batch)
}
