package ipvsadm

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/internal/api/client"
	"github.com/gvs-lb/gvs/internal/api/wire"
	"github.com/gvs-lb/gvs/internal/engine/enginetest"
)

// daemonsFake answers the sync daemon listing with fixed counters.
type daemonsFake struct {
	Client
	ds []wire.SyncDaemonStatus
}

func (f daemonsFake) StartDaemon(context.Context, wire.SyncDaemon) error       { return nil }
func (f daemonsFake) StopDaemon(context.Context, string) error                 { return nil }
func (f daemonsFake) Daemons(context.Context) ([]wire.SyncDaemonStatus, error) { return f.ds, nil }
func (f daemonsFake) Socket() string                                           { return "/nonexistent" }

func TestDaemonsView(t *testing.T) {
	group := netip.MustParseAddr("224.0.0.81")
	both := []wire.SyncDaemonStatus{
		{SyncDaemon: wire.SyncDaemon{State: "master", Interface: "eth1", SyncID: 7, MaxLen: 1472, Group: group, Port: 8848, TTL: 1},
			Sent: 1200, Messages: 40, Skipped: 3, Errors: 1},
		{SyncDaemon: wire.SyncDaemon{State: "backup", Interface: "eth1", SyncID: 7, MaxLen: 1472, Group: group, Port: 8848, TTL: 1},
			Messages: 35, Installed: 990, Skipped: 12, Dropped: 2},
	}
	tests := []struct {
		name string
		ds   []wire.SyncDaemonStatus
		args []string
		want string
		rc   int
	}{
		{name: "master and backup", ds: both, want: `State   Interface  SyncID  Group       Port  Messages  Sent  Installed  Skipped  Dropped  Errors
master  eth1       7       224.0.0.81  8848  40        1200  0          3        0        1
backup  eth1       7       224.0.0.81  8848  35        0     990        12       2        0
`},
		{name: "none running", want: "State  Interface  SyncID  Group  Port  Messages  Sent  Installed  Skipped  Dropped  Errors\n"},
		{name: "none running, JSON", args: []string{"--json"}, want: "[]\n"},
		{name: "bad option", args: []string{"-n"}, rc: ExitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			rc := Run(context.Background(), append([]string{"gvsadm", "daemons"}, tt.args...), nil, &out, &errb, daemonsFake{ds: tt.ds})
			if rc != tt.rc || out.String() != tt.want {
				t.Fatalf("rc %d, stdout:\n%s\nstderr %q\nwant rc %d, stdout:\n%s", rc, out.String(), errb.String(), tt.rc, tt.want)
			}
		})
	}

	t.Run("JSON has every counter", func(t *testing.T) {
		var out, errb bytes.Buffer
		if rc := Run(context.Background(), []string{"gvsadm", "daemons", "--json"}, nil, &out, &errb, daemonsFake{ds: both}); rc != ExitOK {
			t.Fatalf("rc %d: %s", rc, errb.String())
		}
		var got []wire.SyncDaemonStatus
		if err := json.Unmarshal(out.Bytes(), &got); err != nil {
			t.Fatalf("--json printed %q: %v", out.String(), err)
		}
		if len(got) != 2 || got[0] != both[0] || got[1] != both[1] {
			t.Fatalf("--json decodes to %+v, want %+v", got, both)
		}
	})
}

// TestDaemonsViewFromGvsd: the view of a backup daemon running in a real
// gvsd API server, and what it says when gvsd is not running.
func TestDaemonsViewFromGvsd(t *testing.T) {
	c := startDaemonServer(t, enginetest.SyncEngine{EngineName: "xdp"})
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		rc := Run(context.Background(), append([]string{"gvsadm"}, args...), nil, &out, &errb, c)
		return rc, out.String(), errb.String()
	}
	if rc, _, errs := run("--start-daemon", "backup", "--mcast-interface", "lo", "--syncid", "4"); rc != ExitOK {
		t.Fatalf("--start-daemon backup: rc %d: %s", rc, errs)
	}
	rc, out, errs := run("daemons")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if rc != ExitOK || len(lines) != 2 || strings.Join(strings.Fields(lines[1]), " ") != "backup lo 4 224.0.0.81 8848 0 0 0 0 0 0" {
		t.Fatalf("gvsadm daemons: rc %d, stdout:\n%s\nstderr %q; want a header and the backup's row with zero counters", rc, out, errs)
	}

	var errb bytes.Buffer
	down := client.New(t.TempDir() + "/none.sock")
	if rc := Run(context.Background(), []string{"gvsadm", "daemons"}, nil, &bytes.Buffer{}, &errb, down); rc != ExitUsage ||
		!strings.Contains(errb.String(), "gvsd is not running") {
		t.Fatalf("without gvsd: rc %d, stderr %q; want %d and a message saying gvsd is not running", rc, errb.String(), ExitUsage)
	}
}
