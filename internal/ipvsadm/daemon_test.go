package ipvsadm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/api"
	"github.com/gvs-lb/gvs/internal/api/client"
	"github.com/gvs-lb/gvs/internal/daemon"
	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/engine/enginetest"
	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/ipvssync"
)

type proxyLike struct{ enginetest.SyncEngine }

func (proxyLike) SyncConns()     {}
func (proxyLike) InstallSynced() {}

func startDaemonServer(t *testing.T, eng engine.Engine) *client.Client {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	sock := filepath.Join(t.TempDir(), "gvsd.sock")
	srv := api.NewServer(tableBackend{ipvs.NewTable(nil)}, log, nil)
	m := ipvssync.NewManager(log, eng)
	srv.ServeDaemons(daemon.SyncDaemons(m))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Listen(ctx, sock) }()
	t.Cleanup(func() {
		m.Close()
		cancel()
		<-done
	})
	c := client.New(sock)
	for deadline := time.Now().Add(5 * time.Second); ; {
		_, err := c.Info(context.Background())
		if err == nil {
			return c
		}
		if time.Now().After(deadline) || !errors.Is(err, client.ErrNotRunning) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestDaemonCommands replays --start-daemon, --stop-daemon and -L --daemon
// as ipvsadm 1.31 answered them on a real kernel
// (internal/ipvssync/testdata/ipvsadm-1.31-daemon.txt), on lo (the
// recording used lo for the maxlen clamp, dummy eth0/eth1 elsewhere).
func TestDaemonCommands(t *testing.T) {
	c := startDaemonServer(t, enginetest.SyncEngine{EngineName: "xdp"})
	steps := []struct {
		name, args, stdout, stderr string
		rc                         int
	}{
		{name: "nothing runs", args: "-L --daemon"},
		{name: "start master", args: "--start-daemon master --mcast-interface lo --syncid 7"},
		{name: "list master", args: "-L --daemon",
			stdout: "master sync daemon (mcast=lo, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n"},
		{name: "start master twice", args: "--start-daemon master --mcast-interface lo", stderr: "Daemon has already run\n", rc: 255},
		{name: "start backup", args: "--start-daemon backup --mcast-interface lo --syncid 5 --sync-maxlen 100"},
		{name: "list both, -n changes nothing", args: "-Ln --daemon",
			stdout: "master sync daemon (mcast=lo, syncid=7, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)\n" +
				"backup sync daemon (mcast=lo, syncid=5, maxlen=1024, group=224.0.0.81, port=8848, ttl=1)\n"},
		{name: "stop master", args: "--stop-daemon master"},
		{name: "stop master again", args: "--stop-daemon master", stderr: "No daemon is running\n", rc: 255},
		{name: "stop backup", args: "--stop-daemon backup"},
		{name: "no such interface", args: "--start-daemon master --mcast-interface nosuch0", stderr: "No such device\n", rc: 255},
		{name: "bad state", args: "--start-daemon foo", stderr: "illegal start-daemon parameter specified\n", rc: 2},
		{name: "bad syncid", args: "--start-daemon master --syncid 256", stderr: "illegal syncid specified\n", rc: 2},
		{name: "all options", args: "--start-daemon backup --mcast-interface lo --syncid 3 --sync-maxlen 1400 --mcast-group 224.0.0.99 --mcast-port 9000 --mcast-ttl 3"},
		{name: "list all options", args: "-L --daemon",
			stdout: "backup sync daemon (mcast=lo, syncid=3, maxlen=1400, group=224.0.0.99, port=9000, ttl=3)\n"},
		{name: "stop it", args: "--stop-daemon backup"},
		{name: "empty again", args: "-L --daemon"},
	}
	for _, s := range steps {
		var out, errOut bytes.Buffer
		rc := Run(context.Background(), append([]string{"ipvsadm"}, strings.Fields(s.args)...), nil, &out, &errOut, c)
		if rc != s.rc || out.String() != s.stdout || errOut.String() != s.stderr {
			t.Fatalf("%s: ipvsadm %s\n got rc %d stdout %q stderr %q\nwant rc %d stdout %q stderr %q",
				s.name, s.args, rc, out.String(), errOut.String(), s.rc, s.stdout, s.stderr)
		}
	}
}

func TestDaemonRefusedByProxyEngine(t *testing.T) {
	c := startDaemonServer(t, proxyLike{enginetest.SyncEngine{EngineName: "proxy"}})
	var out, errOut bytes.Buffer
	rc := Run(context.Background(), []string{"gvsadm", "--start-daemon", "master", "--mcast-interface", "lo"}, nil, &out, &errOut, c)
	if rc != 255 || !strings.Contains(errOut.String(), "--engine xdp") {
		t.Fatalf("rc %d, stderr %q; want 255 and a message naming --engine xdp", rc, errOut.String())
	}
}
