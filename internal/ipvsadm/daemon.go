package ipvsadm

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/gvs-lb/gvs/internal/api/wire"
)

// DaemonClient runs gvsd's connection sync daemons; *client.Client is one.
type DaemonClient interface {
	StartDaemon(ctx context.Context, cfg wire.SyncDaemon) error
	StopDaemon(ctx context.Context, state string) error
	Daemons(ctx context.Context) ([]wire.SyncDaemonStatus, error)
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
func WriteDaemons(w io.Writer, ds []wire.SyncDaemonStatus) {
	for _, d := range ds {
		fmt.Fprintf(w, "%s sync daemon (mcast=%s, syncid=%d, maxlen=%d, group=%s, port=%d, ttl=%d)\n",
			d.State, d.Interface, d.SyncID, d.MaxLen, d.Group, d.Port, d.TTL)
	}
}

// daemonsState serves the "daemons" view (`gvsadm daemons [--json]`) from
// gvsd's sync daemon listing, the one -L --daemon prints, so that the view
// shows the counters ipvsadm's line has no room for.
type daemonsState struct {
	dc     DaemonClient
	socket string
}

func (s daemonsState) State(ctx context.Context, _ string, v any) error {
	ds, err := s.dc.Daemons(ctx)
	if err != nil {
		return err
	}
	if ds == nil {
		ds = []wire.SyncDaemonStatus{}
	}
	b, err := json.Marshal(ds)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func (s daemonsState) Socket() string { return s.socket }

// writeDaemons is the "daemons" view: one row per running sync daemon,
// master first. Messages are the datagrams sent (master) or received
// (backup); Sent, Installed and Skipped count connection entries;
// Dropped counts malformed or foreign-syncid datagrams, Errors failed
// sends.
func writeDaemons(w io.Writer, raw json.RawMessage) error {
	var ds []wire.SyncDaemonStatus
	if err := json.Unmarshal(raw, &ds); err != nil {
		return err
	}
	return table(w, "State\tInterface\tSyncID\tGroup\tPort\tMessages\tSent\tInstalled\tSkipped\tDropped\tErrors", func(tw io.Writer) {
		for _, d := range ds {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\n", d.State, d.Interface, d.SyncID, d.Group, d.Port,
				d.Messages, d.Sent, d.Installed, d.Skipped, d.Dropped, d.Errors)
		}
	})
}
