// Package api is gvsd's admin API: HTTP and JSON over a unix socket. The
// server executes ipvs.Commands against a Backend; the Client is what gvsadm
// uses.
package api

import (
	"cmp"
	"os"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// DefaultSocketPath is where gvsd listens unless told otherwise.
const DefaultSocketPath = "/run/gvs/gvsd.sock"

// DefaultSocket is $GVS_SOCKET, or DefaultSocketPath.
func DefaultSocket() string { return cmp.Or(os.Getenv("GVS_SOCKET"), DefaultSocketPath) }

// Info describes the running daemon, as ipvsadm's title line needs it.
type Info struct {
	Version     string `json:"version"`       // IPVS version emulated: "1.2.1"
	ConnTabSize int    `json:"conn_tab_size"` // 4096, printed in the title
	Engine      string `json:"engine"`
}

// CommandError is a command the daemon refused. Msg carries ipvsadm's
// wording; Index is the command's position in the batch.
type CommandError struct {
	Index int    `json:"index"`
	Msg   string `json:"error"`
}

func (e *CommandError) Error() string { return e.Msg }

// Backend is what the server serves: the director.
type Backend interface {
	Exec(cmds []ipvs.Command) error // stops at the first failure, returns a *CommandError
	Services() []ipvs.ServiceStatus
	Conns() []ipvs.Conn
	Timeouts() ipvs.Timeouts
	Info() Info
}

// Extra is an optional read-only view a Backend may publish under
// /v1/state/NAME (checkers, VRRP instances).
type Extra func() any
