package xdp

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// bpffs mounts a BPF filesystem of the test's own on a temporary
// directory; unmounting it at the end releases whatever is pinned there,
// whatever the test left.
func bpffs(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bpf")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("bpf", dir, "bpf", 0, ""); err != nil {
		t.Fatalf("mounting a BPF filesystem: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return filepath.Join(dir, "gvs", "test")
}

// logBuf is a slog handler's output, for asserting on what the engine
// logged.
type logBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startEngine starts an engine with opts, closed at the end of the test
// (for a test of what Close keeps, close it before).
func startEngine(t *testing.T, log *slog.Logger, opts Options) *Engine {
	t.Helper()
	e, err := New(log, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close(context.Background()) })
	return e
}

// TestPinnedRestart: an engine with a pin directory that closes keeping
// its pins hands its connections to the next one, which forwards an
// established connection to its real server before and after it is
// given its table; an engine whose maps do not fit refuses them and
// says why; a clean Close removes the pins.
func TestPinnedRestart(t *testing.T) {
	ns := labNS(t, 11, 12, 13)
	dir := bpffs(t)
	var logs logBuf
	log := slog.New(slog.NewTextHandler(&logs, nil))
	rs := func(n byte) ipvs.Dest { return ipvs.Dest{Addr: rsIP(n), Port: 80, Method: ipvs.Route, Weight: 1} }
	opts := Options{Interfaces: []string{"gvs0"}, Mode: "generic", PinPath: dir, KeepPinned: true}
	spec := pktSpec{src: client, dst: vip, proto: ipvs.TCP}
	send := func(t *testing.T, e *Engine, flags byte) string {
		t.Helper()
		spec.flags = flags
		return serverOf(redirected(t, e, spec))
	}

	e1 := startEngine(t, log, opts)
	if err := engine.ApplySnapshot(e1, snapOf(oneService(vip, ipvs.TCP, "rr", rs(11), rs(12)))); err != nil {
		t.Fatal(err)
	}
	first := send(t, e1, tcpSYN)
	send(t, e1, tcpACK)
	if err := e1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, name := range append(pinnedMaps, "link-gvs0", layoutFile) {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("after a Close that keeps the pins: %v", err)
		}
	}

	e2 := startEngine(t, log, opts)
	t.Run("an established connection goes on before the table is applied", func(t *testing.T) {
		if got := send(t, e2, tcpACK); got != first {
			t.Errorf("went to %s, want %s", got, first)
		}
		if c := e2.Conns(); len(c) != 1 || c[0].State != "ESTABLISHED" || c[0].Dest.Addr().String() != first {
			t.Errorf("connections %+v, want the one to %s", c, first)
		}
	})
	t.Run("and after", func(t *testing.T) {
		enterNS(t, ns)
		// Another order, and a new server: the old one keeps its index.
		if err := engine.ApplySnapshot(e2, snapOf(oneService(vip, ipvs.TCP, "rr", rs(13), rs(12), rs(11)))); err != nil {
			t.Fatal(err)
		}
		if got := send(t, e2, tcpACK); got != first {
			t.Errorf("went to %s, want %s", got, first)
		}
		if s := e2.Status(); len(s) != 1 || len(s[0].Dests) != 3 {
			t.Fatalf("status %+v", s)
		}
		spec.src = netip.AddrPortFrom(client.Addr(), client.Port()+1)
		send(t, e2, tcpSYN) // a new connection is scheduled
		spec.src = client
	})
	if err := e2.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	t.Run("maps that do not fit are refused", func(t *testing.T) {
		enterNS(t, ns)
		o := opts
		o.MaxConns = 1024
		o.KeepPinned = false
		e3 := startEngine(t, log, o)
		if !strings.Contains(logs.String(), "not re-using the pinned maps") || !strings.Contains(logs.String(), "MaxEntries") {
			t.Errorf("the log does not say why the maps were not re-used:\n%s", logs.String())
		}
		if n := len(e3.Conns()); n != 0 {
			t.Errorf("%d connections in a fresh table", n)
		}
		if err := e3.Close(context.Background()); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the pin directory after a clean Close: %v, want it removed", err)
		}
	})
}

// TestPinnedRestartKeepsTunnelsAndMarks: what a restarted engine adopts
// from the pins before it is given its table forwards as before: a GRE
// real server with its checksum stays GRE with the checksum (not IPIP),
// and a connection of a firewall-mark service keeps its real server; the
// table applied afterwards finds the adopted firewall-mark service.
func TestPinnedRestartKeepsTunnelsAndMarks(t *testing.T) {
	labNS(t, 11, 12)
	dir := bpffs(t)
	log := slog.New(slog.NewTextHandler(&logBuf{}, nil))
	opts := Options{Interfaces: []string{"gvs0"}, Mode: "generic", PinPath: dir, KeepPinned: true}
	greCsum := ipvs.Dest{Addr: netip.MustParseAddr("198.19.0.21"), Port: 80, Method: ipvs.Tunnel, Weight: 1,
		TunType: ipvs.TunGRE, TunFlags: tunFlagCsum}
	dr := func(n byte) ipvs.Dest { return ipvs.Dest{Addr: rsIP(n), Method: ipvs.Route, Weight: 1} }
	snap := snapOf(
		oneService(vip, ipvs.TCP, "rr", greCsum),
		fwmService(1, false, true, dr(11), dr(12)),
	)
	rules := loadRules(t, "*mangle\n-A PREROUTING -d 198.18.1.10/32 -p tcp --dport 443 -j MARK --set-mark 1\nCOMMIT\n", "")
	marked := pktSpec{src: client, dst: netip.AddrPortFrom(vip.Addr(), 443), proto: ipvs.TCP}
	tunnelled := pktSpec{src: client, dst: vip, proto: ipvs.TCP}
	send := func(t *testing.T, e *Engine, p pktSpec, flags byte) []byte {
		t.Helper()
		p.flags = flags
		return redirected(t, e, p)
	}

	e1 := startEngine(t, log, opts)
	if err := engine.ApplySnapshot(e1, snap); err != nil {
		t.Fatal(err)
	}
	if err := e1.SetFWMarkRules(rules); err != nil {
		t.Fatal(err)
	}
	send(t, e1, tunnelled, tcpSYN)
	first := serverOf(send(t, e1, marked, tcpSYN))
	if err := e1.Close(context.Background()); err != nil {
		t.Fatal(err)
	}

	e2 := startEngine(t, log, opts)
	out := send(t, e2, tunnelled, tcpACK) // before any table
	checkGRE(4, true)(t, build(pktSpec{src: client, dst: vip, proto: ipvs.TCP, flags: tcpACK}), out)
	if got := serverOf(send(t, e2, marked, tcpACK)); got != first {
		t.Errorf("the marked connection went to %s after the restart, want %s", got, first)
	}
	if err := engine.ApplySnapshot(e2, snap); err != nil {
		t.Fatal(err)
	}
	if err := e2.SetFWMarkRules(rules); err != nil {
		t.Fatal(err)
	}
	if got := serverOf(send(t, e2, marked, tcpACK)); got != first {
		t.Errorf("the marked connection went to %s once the table was applied, want %s", got, first)
	}
	var fwm []ipvs.ServiceStatus
	for _, s := range e2.Status() {
		if s.FWMark == 1 {
			fwm = append(fwm, s)
		}
	}
	if len(fwm) != 1 || len(fwm[0].Dests) != 2 {
		t.Fatalf("firewall-mark services after the restart: %+v, want one with its 2 real servers", fwm)
	}
}
