package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/director"
	"github.com/gvs-lb/gvs/internal/ipvs"
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
	eng := newProxy(Options{}, log)
	dir := director.New(eng, log)
	k, err := startKeepalived(context.Background(), path, nil, dir, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		k.stop()
		closeEngine(context.Background(), eng, 0, log)
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
	cfg := k.shown.Load().cfg
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
				if code := ConfigTest(path, Options{Engine: "proxy"}, io.Discard); code == 0 {
					continue // a whole configuration (fewer blocks): reload may apply it
				}
				rejected++
				k.reload(context.Background())
				if k.shown.Load().cfg != cfg || len(ipvs.Diff(table, dir.Snapshot())) > 0 {
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

// TestReloadsKeepCheckerState reloads, every fraction of the check
// interval, a configuration that changes the weights of a live real
// server of the same service and of another service: the checker of a
// dead real server, whose definition never changes, must go on counting
// its failures and take the server out after its retries, as without
// reloads.
func TestReloadsKeepCheckerState(t *testing.T) {
	live, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	dead := loopbackPort(t) // nothing listens: connections are refused
	vip1, vip2 := loopbackPort(t), loopbackPort(t)
	const retry = 2
	check := fmt.Sprintf("\t\tTCP_CHECK {\n\t\t\tconnect_timeout 0.5\n\t\t\tretry %d\n\t\t\tdelay_before_retry 0.2\n\t\t}\n", retry)
	conf := func(w int) string {
		var b strings.Builder
		fmt.Fprintf(&b, "virtual_server 127.0.0.1 %d {\n\tdelay_loop 0.5\n\tlb_algo rr\n\tlb_kind NAT\n\tprotocol TCP\n", vip1)
		fmt.Fprintf(&b, "\treal_server %s {\n\t\tweight %d\n%s\t}\n", strings.Replace(live.Addr().String(), ":", " ", 1), w, check)
		fmt.Fprintf(&b, "\treal_server 127.0.0.1 %d {\n\t\tweight 1\n%s\t}\n}\n", dead, check)
		fmt.Fprintf(&b, "virtual_server 127.0.0.1 %d {\n\tdelay_loop 0.5\n\tlb_algo rr\n\tlb_kind NAT\n\tprotocol TCP\n", vip2)
		fmt.Fprintf(&b, "\treal_server %s {\n\t\tweight %d\n%s\t}\n}\n", strings.Replace(live.Addr().String(), ":", " ", 1), w, check)
		return b.String()
	}
	path := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf(1)), 0o644); err != nil {
		t.Fatal(err)
	}
	k, dir := runKeepalived(t, path, slog.New(slog.DiscardHandler))
	inPool := func() (deadIn bool, liveWeight int32) {
		for _, sc := range dir.Snapshot().Services {
			if sc.Port != uint16(vip1) {
				continue
			}
			for _, d := range sc.Dests {
				if d.Port == uint16(dead) {
					deadIn = true
				} else {
					liveWeight = d.Weight
				}
			}
		}
		return deadIn, liveWeight
	}
	if in, _ := inPool(); !in {
		t.Fatal("the dead real server is not in the pool at start (it starts up, as configured)")
	}

	// delay_loop 0.5 s (the first check within that warmup), then
	// retry 2 x delay_before_retry 0.2 s: out after about 0.9 s. Reload
	// every 0.15 s for at most 40 reloads (6 s).
	var reloads int
	for reloads = 1; reloads <= 40; reloads++ {
		w := 1 + reloads%2
		if err := os.WriteFile(path, []byte(conf(w)), 0o644); err != nil {
			t.Fatal(err)
		}
		k.reload(context.Background())
		if _, lw := inPool(); lw != int32(w) {
			t.Fatalf("reload %d: the live server's weight is %d, want %d (the reload was not applied)", reloads, lw, w)
		}
		if in, _ := inPool(); !in {
			break
		}
		time.Sleep(150 * time.Millisecond)
	}
	if in, _ := inPool(); in {
		t.Fatalf("the dead real server is still in the pool after %d reloads", reloads-1)
	}
	for _, st := range k.checkerStatus() {
		if st.RealServer.Port() != uint16(dead) {
			continue
		}
		// The checker the reloads kept: every attempt of it counted.
		if st.State != "DOWN" || st.Failures < retry+1 || st.Checks != st.Failures {
			t.Errorf("the dead server's checker after %d reloads: %s after %d checks and %d failures, want DOWN after %d failures",
				reloads, st.State, st.Checks, st.Failures, retry+1)
		}
	}
	t.Logf("the dead real server was taken out during reload %d", reloads)
}

// TestReloadsTakeTurns: reloads from several goroutines at once are
// applied one after the other by the reconciler (each sees the table as
// the one before left it), and once gvsd stops a plan is refused.
func TestReloadsTakeTurns(t *testing.T) {
	vip, rs := loopbackPort(t), loopbackPort(t)
	conf := func(w int) string {
		return fmt.Sprintf("virtual_server 127.0.0.1 %d {\n\tlb_algo rr\n\tlb_kind NAT\n\tprotocol TCP\n"+
			"\treal_server 127.0.0.1 %d {\n\t\tweight %d\n\t}\n}\n", vip, rs, w)
	}
	path := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf(1)), 0o644); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	k, dir := runKeepalived(t, path, log)
	cfg, p, _, err := checkConfig(path, "proxy")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 8)
	for range 8 {
		go func() { done <- k.apply(cfg, p) }()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Fatalf("a concurrent reload: %v", err)
		}
	}
	if got := dir.Snapshot(); len(got.Services) != 1 || len(got.Services[0].Dests) != 1 {
		t.Fatalf("after 8 reloads of one service with one real server the table holds %+v", got.Services)
	}
	k.stop()
	if err := k.apply(cfg, p); !errors.Is(err, errStopping) {
		t.Errorf("a plan after stop: %v, want %v", err, errStopping)
	}
	k.stop() // twice is harmless
}
