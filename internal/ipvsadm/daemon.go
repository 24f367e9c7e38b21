package ipvsadm

import (
	"context"
	"fmt"
	"io"

	"github.com/gvs-lb/gvs/internal/ipvssync"
)

// DaemonClient runs gvsd's connection sync daemons; *api.Client is one.
type DaemonClient interface {
	StartDaemon(ctx context.Context, cfg ipvssync.Config) error
	StopDaemon(ctx context.Context, state string) error
	Daemons(ctx context.Context) ([]ipvssync.Status, error)
}

// daemon runs --start-daemon and --stop-daemon.
func (r *runner) daemon(req *Request) int {
	dc, ok := r.c.(DaemonClient)
	if !ok {
		fmt.Fprintf(r.stderr, "%s: this gvsd client cannot run sync daemons\n", r.prog)
		return ExitFailure
	}
	var err error
	if req.Cmd == CmdStartDaemon {
		err = dc.StartDaemon(r.ctx, req.Daemon)
	} else {
		err = dc.StopDaemon(r.ctx, req.DaemonState)
	}
	if err != nil {
		return r.fail(err)
	}
	return ExitOK
}

// WriteDaemons prints -L --daemon as ipvsadm 1.31 does: one line per
// running daemon, master first, with the settings in effect.
func WriteDaemons(w io.Writer, ds []ipvssync.Status) {
	for _, d := range ds {
		fmt.Fprintf(w, "%s sync daemon (mcast=%s, syncid=%d, maxlen=%d, group=%s, port=%d, ttl=%d)\n",
			d.State, d.Interface, d.SyncID, d.MaxLen, d.Group, d.Port, d.TTL)
	}
}
