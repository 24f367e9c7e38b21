package check

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/gvs-lb/gvs/internal/script"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

var vip = ipvs.ServiceKey{Proto: ipvs.TCP, Addr: netip.MustParseAddr("198.18.0.100"), Port: 80}

// pool is a real ipvs.Table the manager edits, with the events it sent.
type pool struct {
	table  *ipvs.Table
	mu     sync.Mutex
	events []Event
}

func newPool(t *testing.T) *pool {
	p := &pool{table: ipvs.NewTable(nil)}
	if err := p.table.Exec(ipvs.Command{Op: ipvs.OpAddService, Service: &ipvs.Service{ServiceKey: vip, Scheduler: "wrr"}}); err != nil {
		t.Fatal(err)
	}
	return p
}

// dests is the pool as "addr:port=weight", sorted.
func (p *pool) dests() string {
	var out []string
	for _, s := range p.table.Snapshot().Services {
		for _, d := range s.Dests {
			out = append(out, fmt.Sprintf("%s=%d", d.AddrPort(), d.Weight))
		}
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

func (p *pool) kinds() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var k []string
	for _, e := range p.events {
		s := string(e.Kind)
		if e.RealServer.IsValid() {
			s += " " + e.RealServer.String()
		}
		k = append(k, s)
	}
	return strings.Join(k, ", ")
}

// run starts a manager over vss until the test ends.
func (p *pool) run(t *testing.T, vss ...VirtualServer) *Manager {
	t.Helper()
	return p.runOn(t, nil, vss...)
}

// runOn starts a manager over vss on clk (nil: the system clock) until
// the test ends.
func (p *pool) runOn(t *testing.T, clk *fakeClock, vss ...VirtualServer) *Manager {
	t.Helper()
	opts := Options{
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnEvent: func(e Event) {
			p.mu.Lock()
			p.events = append(p.events, e)
			p.mu.Unlock()
		},
	}
	if clk != nil {
		opts.Clock = clk
	}
	m, err := NewManager(vss, p.table, opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return m
}

// eventually polls cond for up to 5 seconds.
func eventually(t *testing.T, what string, cond func() bool, got func() string) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s: never happened; have %s", what, got())
}

func (p *pool) wantDests(t *testing.T, want string) {
	t.Helper()
	eventually(t, "pool "+want, func() bool { return p.dests() == want }, p.dests)
}

func tcpReal(srv *tcpServer, weight int32, edit ...func(*Spec)) RealServer {
	s := spec(TCP)
	s.Retry = 0
	for _, e := range edit {
		e(&s)
	}
	return RealServer{Dest: ipvs.Dest{Addr: srv.addr.Addr(), Port: srv.addr.Port(), Method: ipvs.Masq, Weight: weight}, Checks: []Spec{s}}
}

func name(srv *tcpServer, w int) string { return fmt.Sprintf("%s=%d", srv.addr, w) }

// appendScript returns a script appending word to the file log.
func appendScript(log, word string) script.Cmd {
	return script.Cmd{Line: fmt.Sprintf(`sh -c "echo %s >> %s"`, word, log)}
}

func readLog(t *testing.T, path string) string {
	b, _ := os.ReadFile(path)
	return strings.Join(strings.Fields(string(b)), " ")
}

func TestManagerRemovesAndRestores(t *testing.T) {
	a, b := newTCPServer(t), newTCPServer(t)
	log := filepath.Join(t.TempDir(), "notify")
	ra := tcpReal(a, 3)
	ra.NotifyUp, ra.NotifyDown = appendScript(log, "up"), appendScript(log, "down")
	p := newPool(t)
	m := p.run(t, VirtualServer{Service: vip, Quorum: 1, RealServers: []RealServer{ra, tcpReal(b, 1)}})

	want := func(ds ...string) string { slices.Sort(ds); return strings.Join(ds, " ") }
	p.wantDests(t, want(name(a, 3), name(b, 1)))
	a.stop()
	p.wantDests(t, want(name(b, 1)))
	a.restart()
	p.wantDests(t, want(name(a, 3), name(b, 1)))
	eventually(t, "notify scripts", func() bool { return readLog(t, log) == "down up" }, func() string { return readLog(t, log) })
	if got := p.kinds(); got != fmt.Sprintf("RS_DOWN %s, RS_UP %s", a.addr, a.addr) {
		t.Errorf("events %q", got)
	}

	st := m.Status()
	if len(st) != 2 || st[0].Type != TCP || st[0].Target != a.addr || st[0].State != "UP" || st[0].Service != "TCP 198.18.0.100:80" || st[0].Failures != 1 {
		t.Errorf("status %+v", st)
	}
	if _, err := json.Marshal(st); err != nil {
		t.Error(err)
	}
}

func TestManagerInhibitOnFailure(t *testing.T) {
	a := newTCPServer(t)
	ra := tcpReal(a, 5)
	ra.Inhibit = true
	p := newPool(t)
	p.run(t, VirtualServer{Service: vip, Quorum: 1, RealServers: []RealServer{ra}})
	p.wantDests(t, name(a, 5))
	a.stop()
	p.wantDests(t, name(a, 0))
	a.restart()
	p.wantDests(t, name(a, 5))
}

func TestManagerAlpha(t *testing.T) {
	tests := []struct {
		name    string
		inhibit bool
		start   string // the pool before the first check
	}{
		{name: "alpha keeps the server out until it passes"},
		{name: "alpha with inhibit starts at weight 0", inhibit: true, start: "=0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newTCPServer(t)
			ra := tcpReal(a, 2, func(s *Spec) { s.Alpha = true; s.Warmup = 300 * time.Millisecond })
			ra.Inhibit = tt.inhibit
			p := newPool(t)
			m, err := NewManager([]VirtualServer{{Service: vip, Quorum: 1, RealServers: []RealServer{ra}}}, p.table, Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				t.Fatal(err)
			}
			m.mu.Lock()
			m.initVS(m.vss[0])
			m.mu.Unlock()
			want := ""
			if tt.start != "" {
				want = a.addr.String() + tt.start
			}
			if got := p.dests(); got != want {
				t.Errorf("pool at start %q, want %q", got, want)
			}
			p.run(t, VirtualServer{Service: vip, Quorum: 1, RealServers: []RealServer{ra}})
			p.wantDests(t, name(a, 2))
		})
	}
}

func TestManagerAllCheckersMustPass(t *testing.T) {
	a := newTCPServer(t)
	code := filepath.Join(t.TempDir(), "code")
	os.WriteFile(code, []byte("0"), 0o644)
	misc := spec(MISC)
	misc.MiscPath = fmt.Sprintf(`sh -c "exit $(cat %s)"`, code)
	ra := tcpReal(a, 1)
	ra.Checks = append(ra.Checks, misc)
	p := newPool(t)
	m := p.run(t, VirtualServer{Service: vip, Quorum: 1, RealServers: []RealServer{ra}})
	p.wantDests(t, name(a, 1))
	os.WriteFile(code, []byte("1"), 0o644) // TCP still passes, MISC fails
	p.wantDests(t, "")
	// failed is how many of the server's checkers the manager counts as
	// failing (it edits the pool in the same step)
	failed := func(n int) {
		t.Helper()
		eventually(t, fmt.Sprintf("%d checkers failing", n), func() bool {
			return m.VirtualServers()[0].RealServers[0].FailedCheckers == n
		}, func() string { return fmt.Sprint(m.VirtualServers()) })
	}
	a.stop() // both fail
	failed(2)
	os.WriteFile(code, []byte("0"), 0o644) // MISC passes, TCP still fails
	failed(1)
	if got := p.dests(); got != "" {
		t.Fatalf("pool %q with one checker still failing", got)
	}
	a.restart()
	p.wantDests(t, name(a, 1))
	// The only server's state decides the quorum (1 by default) too.
	if got, want := p.kinds(), fmt.Sprintf("RS_DOWN %s, QUORUM_DOWN, RS_UP %s, QUORUM_UP", a.addr, a.addr); got != want {
		t.Errorf("events %q, want %q", got, want)
	}
}

func TestManagerMiscDynamicWeight(t *testing.T) {
	a := newTCPServer(t)
	code := filepath.Join(t.TempDir(), "code")
	os.WriteFile(code, []byte("12"), 0o644)
	misc := spec(MISC)
	misc.MiscDynamic = true
	misc.MiscPath = fmt.Sprintf(`sh -c "exit $(cat %s)"`, code)
	ra := RealServer{Dest: ipvs.Dest{Addr: a.addr.Addr(), Port: a.addr.Port(), Weight: 1}, Checks: []Spec{misc}}
	p := newPool(t)
	p.run(t, VirtualServer{Service: vip, Quorum: 1, RealServers: []RealServer{ra}})
	p.wantDests(t, name(a, 10)) // exit 12: weight 10
	os.WriteFile(code, []byte("2"), 0o644)
	p.wantDests(t, name(a, 0)) // exit 2: weight 0, still up
	os.WriteFile(code, []byte("1"), 0o644)
	p.wantDests(t, "") // exit 1: down
	os.WriteFile(code, []byte("5"), 0o644)
	p.wantDests(t, name(a, 3))
}

func TestManagerSorryServerAndQuorum(t *testing.T) {
	a, b, sorry := newTCPServer(t), newTCPServer(t), newTCPServer(t)
	log := filepath.Join(t.TempDir(), "quorum")
	p := newPool(t)
	p.run(t, VirtualServer{
		Service:     vip,
		Quorum:      1,
		RealServers: []RealServer{tcpReal(a, 1), tcpReal(b, 1)},
		SorryServer: &RealServer{Dest: ipvs.Dest{Addr: sorry.addr.Addr(), Port: sorry.addr.Port(), Weight: 1}},
		QuorumUp:    appendScript(log, "quorum_up"),
		QuorumDown:  appendScript(log, "quorum_down"),
	})
	both := []string{name(a, 1), name(b, 1)}
	slices.Sort(both)
	p.wantDests(t, strings.Join(both, " "))
	a.stop()
	p.wantDests(t, name(b, 1))
	b.stop()
	p.wantDests(t, name(sorry, 1)) // no real server up: the sorry server alone
	b.restart()
	p.wantDests(t, name(b, 1)) // one back: the sorry server leaves
	eventually(t, "quorum scripts", func() bool { return readLog(t, log) == "quorum_down quorum_up" }, func() string { return readLog(t, log) })
	want := fmt.Sprintf("RS_DOWN %s, RS_DOWN %s, QUORUM_DOWN, RS_UP %s, QUORUM_UP", a.addr, b.addr, b.addr)
	if got := p.kinds(); got != want {
		t.Errorf("events\n %s\nwant\n %s", got, want)
	}
}

func TestManagerQuorumHysteresis(t *testing.T) {
	s := []*tcpServer{newTCPServer(t), newTCPServer(t), newTCPServer(t)}
	p := newPool(t)
	m := p.run(t, VirtualServer{
		Service:     vip,
		RealServers: []RealServer{tcpReal(s[0], 1), tcpReal(s[1], 1), tcpReal(s[2], 1)},
		Quorum:      2,
		Hysteresis:  1,
	})
	quorum := func() bool { return m.VirtualServers()[0].QuorumUp }
	gotQ := func() string { return fmt.Sprintf("%+v events %s", m.VirtualServers()[0], p.kinds()) }
	eventually(t, "quorum up at start (3 >= 2+1)", quorum, gotQ)
	s[0].stop()
	s[1].stop()
	eventually(t, "two down", func() bool { return m.VirtualServers()[0].LiveWeight == 1 }, gotQ)
	if !quorum() {
		t.Fatal("quorum lost at weight 1, want kept down to 2-1=1")
	}
	s[2].stop()
	eventually(t, "quorum lost at weight 0", func() bool { return !quorum() }, gotQ)
	s[0].restart()
	s[1].restart()
	eventually(t, "two back", func() bool { return m.VirtualServers()[0].LiveWeight == 2 }, gotQ)
	if quorum() {
		t.Fatal("quorum regained at weight 2, want 2+1=3")
	}
	s[2].restart()
	eventually(t, "quorum back at weight 3", quorum, gotQ)
}

// TestManagerHASuspend runs the checkers on a fake clock: a suspended
// virtual server's checker wakes every delay_loop and probes nothing.
func TestManagerHASuspend(t *testing.T) {
	a := newTCPServer(t)
	p := newPool(t)
	clk := newFakeClock()
	m := p.runOn(t, clk, VirtualServer{Service: vip, Quorum: 1, RealServers: []RealServer{tcpReal(a, 1)}, HASuspend: true})
	// idle lets three delay_loops pass, each up to the checker's next
	// sleep, and wants no check made meanwhile
	idle := func(what string) {
		t.Helper()
		clk.wait(t)
		n := m.Status()[0].Checks
		for range 3 {
			clk.fire(t)
			clk.wait(t)
		}
		if st := m.Status()[0]; st.Enabled || st.Checks != n {
			t.Fatalf("%s: %d checks over three delay_loops (enabled %v), want none", what, st.Checks-n, st.Enabled)
		}
	}
	idle("suspended at start")
	if st := m.Status()[0]; st.Checks != 0 {
		t.Fatalf("suspended virtual server was checked: %+v", st)
	}
	if err := m.Resume(ipvs.ServiceKey{Proto: ipvs.UDP, Addr: vip.Addr, Port: 53}); err == nil {
		t.Error("Resume of an unknown service succeeded")
	}
	m.AddressChanged(vip.Addr, true)
	// resumed, it checks at once, with no time passing
	eventually(t, "checks after the VIP came", func() bool { return m.Status()[0].Checks > 0 }, func() string { return fmt.Sprint(m.Status()) })
	if err := m.Suspend(vip); err != nil {
		t.Fatal(err)
	}
	idle("suspended again")
}
