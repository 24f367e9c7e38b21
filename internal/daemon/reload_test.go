package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/internal/director"
)

// loopbackPort is a free TCP port on 127.0.0.1.
func loopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// runKeepalived runs the configuration at path in-process on the proxy
// engine until the test ends.
func runKeepalived(t *testing.T, path string, log *slog.Logger) (*keepalived, *director.Director) {
	t.Helper()
	eng := newProxy(log)
	dir := director.New(eng, log)
	k, err := startKeepalived(context.Background(), path, dir, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		k.stop()
		closeEngine(eng, 0, log)
	})
	return k, dir
}

// TestReloadRefusesWhatConfigTestRejects cuts every example configuration
// at every line boundary, as a SIGHUP during a write would find it: each
// cut that gvsd -t rejects must leave the running configuration as it was.
func TestReloadRefusesWhatConfigTestRejects(t *testing.T) {
	examples, err := filepath.Glob("../../examples/*.conf")
	if err != nil || len(examples) == 0 {
		t.Fatalf("no examples/*.conf (%v)", err)
	}
	path := filepath.Join(t.TempDir(), "keepalived.conf")
	running := fmt.Sprintf("virtual_server 127.0.0.1 %d {\n\tlb_algo rr\n\tlb_kind NAT\n\tprotocol TCP\n"+
		"\treal_server 127.0.0.1 %d {\n\t\tweight 1\n\t}\n}\n", loopbackPort(t), loopbackPort(t))
	if err := os.WriteFile(path, []byte(running), 0o644); err != nil {
		t.Fatal(err)
	}
	quiet := slog.New(slog.DiscardHandler)
	k, dir := runKeepalived(t, path, quiet)
	k.mu.Lock()
	cfg := k.cfg
	k.mu.Unlock()
	table := dir.Snapshot()

	for _, ex := range examples {
		t.Run(filepath.Base(ex), func(t *testing.T) {
			text, err := os.ReadFile(ex)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.SplitAfter(string(text), "\n")
			rejected := 0
			for n := range lines {
				if err := os.WriteFile(path, []byte(strings.Join(lines[:n], "")), 0o644); err != nil {
					t.Fatal(err)
				}
				if code := ConfigTest(path, io.Discard); code == 0 {
					continue // a whole configuration (fewer blocks): reload may apply it
				}
				rejected++
				k.reload(context.Background())
				k.mu.Lock()
				now := k.cfg
				k.mu.Unlock()
				if now != cfg || !reflect.DeepEqual(dir.Snapshot(), table) {
					t.Fatalf("cut after line %d: gvsd -t rejects it, but the reload applied it", n)
				}
			}
			// Every cut inside a block leaves it unclosed.
			if rejected == 0 {
				t.Errorf("no cut of %s rejected by gvsd -t", ex)
			}
			t.Logf("%d of %d cuts rejected by gvsd -t and refused by reload", rejected, len(lines))
		})
	}
}
