package enginetest

import (
	"context"

	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// SyncEngine is an engine with no services and no connections that can
// synchronize, named EngineName: sync daemons started on it run for real
// on their sockets, with nothing to send.
type SyncEngine struct{ EngineName string }

func (e SyncEngine) Name() string                            { return e.EngineName }
func (SyncEngine) CheckDest(*ipvs.Service, *ipvs.Dest) error { return nil }
func (SyncEngine) Apply([]ipvs.Command) error                { return nil }
func (SyncEngine) Status() []ipvs.ServiceStatus              { return nil }
func (SyncEngine) StatusOf(ipvs.ServiceKey) (ipvs.ServiceStatus, bool) {
	return ipvs.ServiceStatus{}, false
}
func (SyncEngine) Conns() []ipvs.Conn                         { return nil }
func (SyncEngine) Zero(*ipvs.ServiceKey)                      {}
func (SyncEngine) Close(context.Context) error                { return nil }
func (SyncEngine) SyncConns() []engine.SyncConn               { return nil }
func (SyncEngine) InstallSynced([]engine.SyncConn) (int, int) { return 0, 0 }
