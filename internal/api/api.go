// Package api is gvsd's admin API: HTTP and JSON over a unix socket. Its
// Server executes ipvs.Commands against a Backend and serves its state;
// internal/api/client is what gvsadm uses. What goes over the socket is
// defined in internal/api/wire and internal/ipvs, never by the daemon's
// runtime packages.
package api

import (
	"github.com/gvs-lb/gvs/internal/api/wire"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// Backend is what the server serves: the director.
type Backend interface {
	Exec(cmds []ipvs.Command) error // stops at the first failure, returns a *wire.CommandError
	Services() []ipvs.ServiceStatus
	Service(key ipvs.ServiceKey) (ipvs.ServiceStatus, bool) // false: no such service
	Conns() []ipvs.Conn
	Timeouts() ipvs.Timeouts
	Info() wire.Info
}

// State is the keepalived state a Backend may publish read-only under
// /v1/state: the health checkers, the virtual servers' pools and the VRRP
// instances. Each list is empty, not nil, when there is nothing to show.
type State interface {
	Checkers() []wire.Checker
	VirtualServers() []wire.VirtualServer
	VRRPInstances() []wire.VRRPInstance
}

// EachBackend is a Backend that runs a batch as ipvsadm -R does, going on
// after a refused command (POST /v1/commands?on_error=continue). The
// server runs the commands one by one through Exec for a Backend that is
// not one.
type EachBackend interface {
	Backend
	// ExecEach applies every command it can, in order, and returns one
	// error per command, nil where applied.
	ExecEach(cmds []ipvs.Command) []error
}
