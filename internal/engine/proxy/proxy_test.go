package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/clock"
	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

func needIPv6(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		needCI(t, "IPv6 loopback ::1 is not available: "+err.Error())
	}
	ln.Close()
}

func TestCheckDest(t *testing.T) {
	tests := []struct {
		name    string
		method  ipvs.Method
		wantErr string
	}{
		{name: "masquerading", method: ipvs.Masq},
		{name: "direct routing", method: ipvs.Route, wantErr: "-g (direct routing) needs the xdp engine (gvsd --engine xdp)"},
		{name: "tunneling", method: ipvs.Tunnel, wantErr: "-i (tunneling) needs the xdp engine"},
		{name: "fullnat", method: ipvs.FullNAT, wantErr: "--fullnat needs the xdp engine"},
	}
	e := newEngine(t, Options{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb := ipvs.NewTable(e.CheckDest)
			svc := ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: ipvs.TCP, Addr: lo4, Port: 80}, Scheduler: "rr"}
			if err := tb.Exec(addSvc(svc)); err != nil {
				t.Fatal(err)
			}
			c := addDest(svc, netip.MustParseAddrPort("127.0.0.2:80"), 1)
			c.Dest.Method = tt.method
			err := tb.Exec(c)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one saying %q", err, tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), "only with -m (masquerading)"):
				t.Fatalf("error %v does not say what the proxy can do", err)
			}
		})
	}
}

// TestScheduling checks through real connections which server each new
// connection reaches.
func TestScheduling(t *testing.T) {
	tests := []struct {
		name      string
		scheduler string
		addr      netip.Addr
		weights   []int32 // servers added in this order
		conns     int
		want      []string // servers reached, in order; nil to check counts
		counts    map[string]int
	}{
		{name: "rr starts with the last added", scheduler: "rr", addr: lo4, weights: []int32{1, 1, 1}, conns: 6,
			want: []string{"rs3", "rs2", "rs1", "rs3", "rs2", "rs1"}},
		{name: "rr IPv6", scheduler: "rr", addr: netip.IPv6Loopback(), weights: []int32{1, 1}, conns: 4,
			want: []string{"rs2", "rs1", "rs2", "rs1"}},
		{name: "wrr 3:1", scheduler: "wrr", addr: lo4, weights: []int32{3, 1}, conns: 8,
			counts: map[string]int{"rs1": 6, "rs2": 2}},
		{name: "rr skips weight 0", scheduler: "rr", addr: lo4, weights: []int32{1, 0, 1}, conns: 4,
			want: []string{"rs3", "rs1", "rs3", "rs1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.addr.Is6() {
				needIPv6(t)
			}
			e := newEngine(t, Options{})
			svc := vs(t, ipvs.TCP, tt.addr, tt.scheduler)
			cmds := []ipvs.Command{addSvc(svc)}
			for i, w := range tt.weights {
				rs := startTCP(t, tt.addr, "rs"+string(rune('1'+i)))
				cmds = append(cmds, addDest(svc, rs.addr, w))
			}
			newTable(t, e).exec(cmds...)
			var got []string
			counts := map[string]int{}
			for range tt.conns {
				c := mustDial(t, svc.AddrPort())
				got = append(got, c.server)
				counts[c.server]++
				c.finish(t)
			}
			if tt.want != nil && strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Fatalf("servers %v, want %v", got, tt.want)
			}
			for name, n := range tt.counts {
				if counts[name] != n {
					t.Fatalf("servers %v: %s got %d, want %d", got, name, counts[name], n)
				}
			}
			st := e.Status()
			if len(st) != 1 || st[0].Stats.Conns != uint64(tt.conns) {
				t.Fatalf("status %+v, want %d connections", st, tt.conns)
			}
		})
	}
}

func TestPersistence(t *testing.T) {
	tests := []struct {
		name    string
		netmask int
		from    []string // client source addresses, in order
		sameAs0 []bool   // whether each reaches the first client's server
	}{
		{name: "per client address", netmask: 32, from: []string{"127.0.0.1", "127.0.0.1", "127.0.0.2", "127.0.0.1", "127.0.0.2"},
			sameAs0: []bool{true, true, false, true, false}},
		{name: "netmask /8 groups 127/8", netmask: 8, from: []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.1"},
			sameAs0: []bool{true, true, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, Options{})
			svc := vs(t, ipvs.TCP, lo4, "rr")
			svc.Flags = ipvs.FlagPersistent
			svc.Timeout = 60
			svc.Netmask = tt.netmask
			rs1, rs2 := startTCP(t, lo4, "rs1"), startTCP(t, lo4, "rs2")
			newTable(t, e).exec(addSvc(svc), addDest(svc, rs1.addr, 1), addDest(svc, rs2.addr, 1))
			var first string
			for i, from := range tt.from {
				c, err := dialVS(t, svc.AddrPort(), netip.MustParseAddr(from))
				if err != nil {
					t.Fatal(err)
				}
				if i == 0 {
					first = c.server
				}
				if (c.server == first) != tt.sameAs0[i] {
					t.Fatalf("connection %d from %s reached %s (first went to %s)", i, from, c.server, first)
				}
				c.finish(t)
			}
			// The templates are listed with client port 0 and count as
			// persistent connections.
			var templates int
			for _, c := range connsOf(e, svc.AddrPort()) {
				if c.State != "NONE" {
					continue
				}
				templates++
				pfx := netip.PrefixFrom(c.Client.Addr(), tt.netmask).Masked()
				if c.Client.Port() != 0 || pfx.Addr() != c.Client.Addr() || c.Expires <= 55000 || c.Expires > 60000 {
					t.Fatalf("template %+v: want a masked client with port 0 expiring in about 60 s", c)
				}
			}
			wantTemplates := 1
			if tt.netmask == 32 {
				wantTemplates = 2
			}
			if templates != wantTemplates {
				t.Fatalf("%d templates, want %d: %+v", templates, wantTemplates, e.Conns())
			}
			var persist uint32
			for _, s := range e.Status()[0].Dests {
				persist += s.PersistConns
			}
			if persist != uint32(wantTemplates) {
				t.Fatalf("PersistConns total %d, want %d", persist, wantTemplates)
			}
		})
	}
}

// TestPersistenceTemplateExpiry runs on a fake clock: a template outlives
// its timeout while a connection it sent lives, and goes once they are
// gone.
func TestPersistenceTemplateExpiry(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	e := newEngine(t, Options{Clock: clk})
	svc := vs(t, ipvs.TCP, lo4, "rr")
	svc.Flags = ipvs.FlagPersistent
	svc.Timeout = 1
	rs1, rs2 := startTCP(t, lo4, "rs1"), startTCP(t, lo4, "rs2")
	tb := newTable(t, e)
	tb.exec(addSvc(svc), addDest(svc, rs1.addr, 1), addDest(svc, rs2.addr, 1))

	// An open connection keeps its template past the timeout (n_control).
	c := mustDial(t, svc.AddrPort())
	clk.Advance(1500 * time.Millisecond) // the template's timer runs at +1 s, within this
	for _, l := range connsOf(e, svc.AddrPort()) {
		// re-armed at +1 s for a timeout more
		if l.State == "NONE" && l.Expires != 500 {
			t.Fatalf("template %+v at +1.5 s, want it expiring in 500 ms", l)
		}
	}
	if c2 := mustDial(t, svc.AddrPort()); c2.server != c.server {
		t.Fatalf("template expired while its connection lived: %s then %s", c.server, c2.server)
	} else {
		c2.finish(t)
	}
	c.finish(t)
	// Closed connections stay TIME_WAIT and still hold the template;
	// shorten tcpfin so they expire, then the template goes too.
	tb.exec(ipvs.Command{Op: ipvs.OpSetTimeout, Timeouts: &ipvs.Timeouts{TCPFin: 1}})
	eventually(t, 5*time.Second, "the template to expire", func() bool {
		clk.Advance(time.Second) // the entries expire at the engine's next tick of real time
		d1, _ := destStatus(t, e, svc.ServiceKey, rs1.addr)
		d2, _ := destStatus(t, e, svc.ServiceKey, rs2.addr)
		return d1.PersistConns+d2.PersistConns == 0 && len(connsOf(e, svc.AddrPort())) == 0
	})
}

func TestPersistenceQuiescedAndRemoved(t *testing.T) {
	e := newEngine(t, Options{})
	svc := vs(t, ipvs.TCP, lo4, "rr")
	svc.Flags = ipvs.FlagPersistent
	svc.Timeout = 60
	rs1, rs2 := startTCP(t, lo4, "rs1"), startTCP(t, lo4, "rs2")
	tb := newTable(t, e)
	tb.exec(addSvc(svc), addDest(svc, rs1.addr, 1), addDest(svc, rs2.addr, 1))
	c := mustDial(t, svc.AddrPort())
	if c.server != "rs2" {
		t.Fatalf("first connection went to %s, want rs2", c.server)
	}
	c.finish(t)
	// Weight 0: the template still sends the client there (the kernel's
	// default expire_quiescent_template=0).
	tb.exec(editDest(svc, rs2.addr, 0))
	c = mustDial(t, svc.AddrPort())
	if c.server != "rs2" {
		t.Fatalf("with rs2 quiesced the client went to %s, want rs2 (template)", c.server)
	}
	c.finish(t)
	// Removed: a new template to another server.
	tb.exec(delDest(svc, rs2.addr))
	c = mustDial(t, svc.AddrPort())
	if c.server != "rs1" {
		t.Fatalf("with rs2 removed the client went to %s, want rs1", c.server)
	}
	c.finish(t)
}

func TestDrainAndRemove(t *testing.T) {
	tests := []struct {
		name   string
		change func(svc ipvs.Service, rs netip.AddrPort) ipvs.Command
		listed bool // the server is still in Status
	}{
		{name: "weight 0", change: func(svc ipvs.Service, rs netip.AddrPort) ipvs.Command { return editDest(svc, rs, 0) }, listed: true},
		{name: "removed", change: delDest, listed: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, Options{})
			svc := vs(t, ipvs.TCP, lo4, "rr")
			rs1, rs2 := startTCP(t, lo4, "rs1"), startTCP(t, lo4, "rs2")
			tb := newTable(t, e)
			tb.exec(addSvc(svc), addDest(svc, rs1.addr, 1), addDest(svc, rs2.addr, 1))
			old := mustDial(t, svc.AddrPort())
			if old.server != "rs2" {
				t.Fatalf("first connection reached %s, want rs2", old.server)
			}
			old.echo(t, "before\n")
			tb.exec(tt.change(svc, rs2.addr))
			for range 3 {
				c := mustDial(t, svc.AddrPort())
				if c.server != "rs1" {
					t.Fatalf("new connection reached %s after draining rs2", c.server)
				}
				c.finish(t)
			}
			old.echo(t, "the established connection still works\n")
			if d, ok := destStatus(t, e, svc.ServiceKey, rs2.addr); ok != tt.listed {
				t.Fatalf("rs2 listed = %v, want %v", ok, tt.listed)
			} else if ok && d.ActiveConns != 1 {
				t.Fatalf("rs2 ActiveConns %d, want 1", d.ActiveConns)
			}
			old.finish(t)
			eventually(t, 2*time.Second, "the old connection in TIME_WAIT", func() bool {
				for _, c := range connsOf(e, svc.AddrPort()) {
					if c.Dest == rs2.addr && c.State == "TIME_WAIT" {
						return true
					}
				}
				return false
			})
		})
	}
}

// TestRefusedServer: a real server that refuses a connection is skipped
// for new ones for FailBackoff, on the engine's clock (a fake one here),
// and tried again after.
func TestRefusedServer(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	e := newEngine(t, Options{FailBackoff: 300 * time.Millisecond, Clock: clk})
	svc := vs(t, ipvs.TCP, lo4, "rr")
	rs1 := startTCP(t, lo4, "rs1")
	dead := netip.AddrPortFrom(lo4, freePort(t, "tcp", lo4)) // nothing listens
	newTable(t, e).exec(addSvc(svc), addDest(svc, rs1.addr, 1), addDest(svc, dead, 1))

	// The first connection goes to the dead server: the client sees the
	// connection reset (or at least closed) instead of a greeting.
	_, err := dialVS(t, svc.AddrPort(), netip.Addr{})
	if err == nil {
		t.Fatal("connection through a refusing real server got a greeting")
	}
	if !errors.Is(err, io.EOF) && !strings.Contains(err.Error(), "reset") {
		t.Fatalf("client error %v, want a reset or EOF", err)
	}
	// The next ones go to the live server while the dead one is skipped.
	for range 3 {
		if c := mustDial(t, svc.AddrPort()); c.server != "rs1" {
			t.Fatalf("connection reached %s, want rs1", c.server)
		} else {
			c.finish(t)
		}
	}
	entries := connsOf(e, svc.AddrPort())
	var closed int
	for _, c := range entries {
		if c.Dest == dead && c.State == "CLOSE" && c.Expires > 0 && c.Expires <= 10000 {
			closed++
		}
	}
	if closed != 1 {
		t.Fatalf("want one CLOSE entry for the refused connection: %+v", entries)
	}
	// The back-off ends FailBackoff after the refusal; then the dead
	// server is tried again (and fails again).
	if pending, _ := clk.Pending(); len(pending) != 1 || pending[0].Sub(clk.Now()) != 300*time.Millisecond {
		t.Fatalf("timers pending %v at %v, want the back-off's, 300 ms on", pending, clk.Now())
	}
	clk.Advance(300 * time.Millisecond)
	eventually(t, 5*time.Second, "the dead server tried again after the back-off", func() bool {
		c, err := dialVS(t, svc.AddrPort(), netip.Addr{})
		if err == nil {
			c.finish(t)
		}
		return err != nil
	})
}

func TestConnStates(t *testing.T) {
	e := newEngine(t, Options{})
	svc := vs(t, ipvs.TCP, lo4, "rr")
	hold := make(chan struct{})
	rs := startTCP(t, lo4, "rs1", withHold(hold))
	tb := newTable(t, e)
	tb.exec(addSvc(svc), addDest(svc, rs.addr, 1))

	entry := func() ipvs.Conn {
		t.Helper()
		list := connsOf(e, svc.AddrPort())
		if len(list) != 1 {
			t.Fatalf("want one entry, have %+v", list)
		}
		return list[0]
	}
	counts := func(active, inact uint32) {
		t.Helper()
		d, _ := destStatus(t, e, svc.ServiceKey, rs.addr)
		if d.ActiveConns != active || d.InactConns != inact {
			t.Fatalf("ActiveConns %d InActConn %d, want %d %d", d.ActiveConns, d.InactConns, active, inact)
		}
	}
	c := mustDial(t, svc.AddrPort())
	c.echo(t, "hello\n")
	en := entry()
	if en.State != "ESTABLISHED" || en.Expires <= 899000 || en.Expires > 900000 || en.Client.String() != c.LocalAddr().String() || en.Dest != rs.addr {
		t.Fatalf("entry %+v, want ESTABLISHED from %s expiring in 15:00", en, c.LocalAddr())
	}
	counts(1, 0)

	// The client half-closes; the server holds its side open.
	c.Conn.(*net.TCPConn).CloseWrite()
	eventually(t, 2*time.Second, "FIN_WAIT", func() bool { return entry().State == "FIN_WAIT" })
	if en := entry(); en.Expires <= 118000 || en.Expires > 120000 {
		t.Fatalf("FIN_WAIT entry %+v, want it to expire in about 2:00", en)
	}
	counts(0, 1)

	close(hold)
	if rest, err := io.ReadAll(c.br); err != nil || len(rest) != 0 {
		t.Fatalf("after the server closed: %q, %v", rest, err)
	}
	eventually(t, 2*time.Second, "TIME_WAIT", func() bool { return entry().State == "TIME_WAIT" })
	if en := entry(); en.Expires <= 118000 || en.Expires > 120000 {
		t.Fatalf("TIME_WAIT entry %+v, want it to expire in about 2:00", en)
	}
	counts(0, 1)

	// ipvsadm --set 0 1 0: the entry expires within a second.
	tb.exec(ipvs.Command{Op: ipvs.OpSetTimeout, Timeouts: &ipvs.Timeouts{TCPFin: 1}})
	eventually(t, 3*time.Second, "the TIME_WAIT entry to expire", func() bool { return len(connsOf(e, svc.AddrPort())) == 0 })
	counts(0, 0)
}

func TestServerCloseFirst(t *testing.T) {
	e := newEngine(t, Options{})
	svc := vs(t, ipvs.TCP, lo4, "rr")
	// A real server that says hello and closes at once.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "bye\n")
			c.(*net.TCPConn).CloseWrite()
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	rs := ln.Addr().(*net.TCPAddr).AddrPort()
	newTable(t, e).exec(addSvc(svc), addDest(svc, rs, 1))
	c := mustDial(t, svc.AddrPort())
	eventually(t, 2*time.Second, "CLOSE_WAIT", func() bool {
		l := connsOf(e, svc.AddrPort())
		return len(l) == 1 && l[0].State == "CLOSE_WAIT" && l[0].Expires > 58000 && l[0].Expires <= 60000
	})
	if _, err := c.br.ReadByte(); err != io.EOF {
		t.Fatalf("client read after the server closed: %v, want EOF", err)
	}
	c.Close()
	eventually(t, 2*time.Second, "TIME_WAIT", func() bool {
		l := connsOf(e, svc.AddrPort())
		return len(l) == 1 && l[0].State == "TIME_WAIT"
	})
}

// TestIdleTimeout: a connection idle for the tcp timeout, counted on the
// engine's clock (a fake one here) from the last byte moved, is closed and
// its entry released.
func TestIdleTimeout(t *testing.T) {
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	e := newEngine(t, Options{Clock: clk})
	svc := vs(t, ipvs.TCP, lo4, "rr")
	rs := startTCP(t, lo4, "rs1")
	tb := newTable(t, e)
	tb.exec(addSvc(svc), addDest(svc, rs.addr, 1), ipvs.Command{Op: ipvs.OpSetTimeout, Timeouts: &ipvs.Timeouts{TCP: 1}})
	c := mustDial(t, svc.AddrPort())
	// moved waits until the engine accounted the bytes moved each way: it
	// does so after it noted the time of the last one, which the clock
	// must not pass before
	moved := func(in, out uint64) {
		t.Helper()
		eventually(t, 5*time.Second, fmt.Sprintf("%d bytes in and %d out accounted", in, out), func() bool {
			d, _ := destStatus(t, e, svc.ServiceKey, rs.addr)
			return d.Stats.InBytes == in && d.Stats.OutBytes == out
		})
	}
	expiresIn := func(what string, ms int64) {
		t.Helper()
		if l := connsOf(e, svc.AddrPort()); len(l) != 1 || l[0].State != "ESTABLISHED" || l[0].Expires != ms {
			t.Fatalf("%s: entries %+v, want one ESTABLISHED expiring in %d ms", what, l, ms)
		}
	}
	c.echo(t, "x")
	moved(1, 5) // "x" each way after the server's "rs1\n"
	expiresIn("after the echo", 1000)
	clk.Advance(999 * time.Millisecond)
	expiresIn("999 ms later", 1)
	c.echo(t, "y")
	moved(2, 6)
	expiresIn("after another echo", 1000)
	clk.Advance(time.Second)
	c.SetDeadline(time.Now().Add(5 * time.Second)) // a hang, not a timing bound
	if _, err := c.br.ReadByte(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the idle connection was not closed a tcp timeout after its last byte: read %v", err)
	}
	eventually(t, 5*time.Second, "the entry to go", func() bool { return len(connsOf(e, svc.AddrPort())) == 0 })
	if d, _ := destStatus(t, e, svc.ServiceKey, rs.addr); d.ActiveConns+d.InactConns != 0 {
		t.Fatalf("counters after expiry: %+v", d)
	}
}

func TestStatsAndZero(t *testing.T) {
	e := newEngine(t, Options{})
	svc := vs(t, ipvs.TCP, lo4, "rr")
	rs := startTCP(t, lo4, "rs1")
	newTable(t, e).exec(addSvc(svc), addDest(svc, rs.addr, 1))
	msg := strings.Repeat("x", 3000) // 3 segments of at most 1460 bytes
	for range 2 {
		c := mustDial(t, svc.AddrPort())
		c.echo(t, msg)
		c.finish(t)
	}
	want := ipvs.Stats{Conns: 2, InBytes: 6000, OutBytes: 6000 + 2*uint64(len("rs1\n"))}
	eventually(t, 2*time.Second, "byte counters", func() bool {
		st := e.Status()[0]
		return st.Stats.Conns == want.Conns && st.Stats.InBytes == want.InBytes && st.Stats.OutBytes == want.OutBytes &&
			st.Dests[0].Stats.InBytes == want.InBytes
	})
	st := e.Status()[0]
	if st.Stats.InPkts < 6 || st.Stats.InPkts > 8 || st.Stats.OutPkts < 6 {
		t.Fatalf("packets %+v: want about one per 1460 bytes", st.Stats)
	}
	e.Zero(&svc.ServiceKey)
	st = e.Status()[0]
	if st.Stats != (ipvs.Stats{}) || st.Dests[0].Stats != (ipvs.Stats{}) || st.Rates != (ipvs.Rates{}) {
		t.Fatalf("after Zero: %+v", st)
	}
	c := mustDial(t, svc.AddrPort())
	c.finish(t)
	eventually(t, 2*time.Second, "counting again", func() bool { return e.Status()[0].Stats.Conns == 1 })
}

func TestEstimator(t *testing.T) {
	// The kernel's fixed-point EWMA: 100 connections and 1000 bytes per
	// 2 s period converge to 50 cps and 500 bps.
	tests := []struct {
		name    string
		periods int
		wantCPS uint64
		wantBPS uint64
	}{
		{name: "first period", periods: 1, wantCPS: 12, wantBPS: 125},
		{name: "second period", periods: 2, wantCPS: 22, wantBPS: 219},
		{name: "converged", periods: 60, wantCPS: 50, wantBPS: 500},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var s stats
			for range tt.periods {
				s.raw.conns.Add(100)
				s.raw.inBytes.Add(1000)
				s.estimate()
			}
			st, r := s.snapshot()
			if st.Conns != uint64(100*tt.periods) || r.CPS != tt.wantCPS || r.InBPS != tt.wantBPS {
				t.Fatalf("stats %+v rates %+v, want cps %d bps %d", st, r, tt.wantCPS, tt.wantBPS)
			}
			s.zero()
			if st, r := s.snapshot(); st != (ipvs.Stats{}) || r != (ipvs.Rates{}) {
				t.Fatalf("after zero: %+v %+v", st, r)
			}
		})
	}
}

func TestUDP(t *testing.T) {
	for _, addr := range []netip.Addr{lo4, netip.IPv6Loopback()} {
		t.Run(addr.String(), func(t *testing.T) {
			if addr.Is6() {
				needIPv6(t)
			}
			e := newEngine(t, Options{})
			svc := vs(t, ipvs.UDP, addr, "rr")
			rs1, rs2 := startUDP(t, addr, "rs1"), startUDP(t, addr, "rs2")
			tb := newTable(t, e)
			tb.exec(addSvc(svc), addDest(svc, rs1, 1), addDest(svc, rs2, 1))

			ask := func(c *net.UDPConn, msg string) string {
				t.Helper()
				if _, err := c.Write([]byte(msg)); err != nil {
					t.Fatal(err)
				}
				c.SetReadDeadline(time.Now().Add(2 * time.Second))
				buf := make([]byte, 2048)
				n, err := c.Read(buf)
				if err != nil {
					t.Fatalf("no reply to %q: %v", msg, err)
				}
				return string(buf[:n])
			}
			var clients []*net.UDPConn
			for range 2 {
				c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(svc.AddrPort()))
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { c.Close() })
				clients = append(clients, c)
			}
			// Each client sticks to the server of its first datagram.
			for i := range 3 {
				if got := ask(clients[0], "a"+string(rune('0'+i))); got != "rs2:a"+string(rune('0'+i)) {
					t.Fatalf("client 1 got %q", got)
				}
				if got := ask(clients[1], "b"); got != "rs1:b" {
					t.Fatalf("client 2 got %q", got)
				}
			}
			list := connsOf(e, svc.AddrPort())
			if len(list) != 2 || list[0].State != "UDP" || list[0].Expires <= 299000 || list[0].Expires > 300000 {
				t.Fatalf("entries %+v, want two UDP flows expiring in 5:00", list)
			}
			st := e.Status()[0]
			if st.Stats.Conns != 2 || st.Stats.InPkts != 6 || st.Stats.OutPkts != 6 || st.Stats.InBytes != 9 || st.Stats.OutBytes != 33 {
				t.Fatalf("stats %+v", st.Stats)
			}
			for _, d := range st.Dests {
				if d.InactConns != 1 || d.ActiveConns != 0 {
					t.Fatalf("server %s: active %d inactive %d, want 0 1", d.AddrPort(), d.ActiveConns, d.InactConns)
				}
			}
			// ipvsadm --set 0 0 1: idle flows expire.
			tb.exec(ipvs.Command{Op: ipvs.OpSetTimeout, Timeouts: &ipvs.Timeouts{UDP: 1}})
			eventually(t, 4*time.Second, "the flows to expire", func() bool { return len(connsOf(e, svc.AddrPort())) == 0 })
			for _, d := range e.Status()[0].Dests {
				if d.InactConns != 0 {
					t.Fatalf("server %s still counts %d", d.AddrPort(), d.InactConns)
				}
			}
			// A new datagram makes a new flow.
			if got := ask(clients[0], "again"); !strings.HasSuffix(got, ":again") {
				t.Fatalf("after expiry got %q", got)
			}
		})
	}
}

func TestApplyBadAddress(t *testing.T) {
	e := newEngine(t, Options{})
	good := vs(t, ipvs.TCP, lo4, "rr")
	rs := startTCP(t, lo4, "rs1")
	bad := ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: ipvs.TCP, Addr: netip.MustParseAddr("198.18.0.1"), Port: 80}, Scheduler: "rr"}
	fwm := ipvs.Service{ServiceKey: ipvs.ServiceKey{Addr: lo4, FWMark: 7}, Scheduler: "rr"}
	tb := ipvs.NewTable(e.CheckDest)
	for _, c := range []ipvs.Command{addSvc(good), addDest(good, rs.addr, 1), addSvc(bad), addDest(bad, rs.addr, 1), addSvc(fwm)} {
		if err := tb.Exec(c); err != nil {
			t.Fatal(err)
		}
	}
	err := engine.ApplySnapshot(e, tb.Snapshot())
	if err == nil || !strings.Contains(err.Error(), "TCP 198.18.0.1:80") || !strings.Contains(err.Error(), "not an address of this host") {
		t.Fatalf("Apply error %v, want one naming the service and the cause", err)
	}
	if strings.Contains(err.Error(), good.AddrPort().String()) || strings.Contains(err.Error(), "FWM") {
		t.Fatalf("Apply error %v names a service that is fine", err)
	}
	// A refused batch changes nothing: the good service, in the same
	// batch, is not served either, and its socket is closed again.
	if len(e.Status()) != 0 {
		t.Fatalf("a refused batch left services: %v", e.Status())
	}
	if c, err := net.DialTimeout("tcp", good.AddrPort().String(), time.Second); err == nil {
		c.Close()
		t.Fatal("a refused batch left the good service's socket open")
	}
	if err := tb.Exec(ipvs.Command{Op: ipvs.OpDelService, Service: &bad}); err != nil {
		t.Fatal(err)
	}
	if err := engine.ApplySnapshot(e, tb.Snapshot()); err != nil {
		t.Fatal(err)
	}
	if c := mustDial(t, good.AddrPort()); c.server != "rs1" {
		t.Fatalf("good service reached %s", c.server)
	}
	var keys []string
	for _, s := range e.Status() {
		keys = append(keys, s.ServiceKey.String())
	}
	if strings.Join(keys, ",") != good.ServiceKey.String()+",FWM 7" {
		t.Fatalf("status lists %v, want the good TCP service and the fwmark one", keys)
	}
}

func TestApplyRemovesService(t *testing.T) {
	e := newEngine(t, Options{})
	svc := vs(t, ipvs.TCP, lo4, "rr")
	rs := startTCP(t, lo4, "rs1")
	tb := newTable(t, e)
	tb.exec(addSvc(svc), addDest(svc, rs.addr, 1))
	c := mustDial(t, svc.AddrPort())
	tb.exec(ipvs.Command{Op: ipvs.OpDelService, Service: &svc})
	if _, err := net.DialTimeout("tcp", svc.AddrPort().String(), time.Second); err == nil {
		t.Fatal("a removed service still accepts connections")
	}
	c.echo(t, "its established connection finishes\n")
	c.finish(t)
	if len(e.Status()) != 0 {
		t.Fatalf("status after removal: %+v", e.Status())
	}
}

// TestClose: Close stops accepting at once and serves the open
// connections until they finish, its context ends or Options.Grace (on a
// fake clock) runs out, and then cuts them.
func TestClose(t *testing.T) {
	tests := []struct {
		name    string
		grace   time.Duration // Options.Grace
		end     string        // what ends the wait: "finish" (the client), "ctx" or "grace"
		wantErr error
	}{
		{name: "connections finish while Close waits", end: "finish"},
		{name: "connections finish within the grace period", grace: 600 * time.Millisecond, end: "finish"},
		{name: "connections cut when the context ends", end: "ctx", wantErr: context.Canceled},
		{name: "connections cut when Options.Grace ends", grace: 600 * time.Millisecond, end: "grace", wantErr: context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
			e := newEngine(t, Options{Grace: tt.grace, Clock: clk})
			svc := vs(t, ipvs.TCP, lo4, "rr")
			rs := startTCP(t, lo4, "rs1")
			newTable(t, e).exec(addSvc(svc), addDest(svc, rs.addr, 1))
			c := mustDial(t, svc.AddrPort())
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			closed := make(chan error, 1)
			start := clk.Now()
			go func() { closed <- e.Close(ctx) }()
			// Close has begun (and stopped the services, in the same
			// step) once Apply, even of nothing, fails
			eventually(t, 5*time.Second, "Close to begin", func() bool { return e.Apply(nil) != nil })
			c.echo(t, "still served while closing\n")
			if tt.grace > 0 {
				eventually(t, 5*time.Second, "Close to wait for the grace period", func() bool {
					pending, _ := clk.Pending()
					return len(pending) > 0
				})
				if pending, _ := clk.Pending(); !pending[0].Equal(start.Add(tt.grace)) {
					t.Fatalf("Close waits until +%v, want the grace period %v", pending[0].Sub(start), tt.grace)
				}
			}
			switch tt.end {
			case "finish":
				c.finish(t)
			case "ctx":
				cancel()
			case "grace":
				clk.Advance(tt.grace)
			}
			select {
			case err := <-closed:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Close = %v, want %v", err, tt.wantErr)
				}
			case <-time.After(10 * time.Second): // a hang, not a timing bound
				t.Fatalf("Close did not return once the %s ended the wait", tt.end)
			}
			if _, err := net.DialTimeout("tcp", svc.AddrPort().String(), time.Second); err == nil {
				t.Fatal("the service still accepts connections after Close")
			}
			if tt.wantErr != nil {
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.br.ReadByte(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("the connection was not cut: read %v", err)
				}
			}
		})
	}
}

func TestEditKeepsConnections(t *testing.T) {
	e := newEngine(t, Options{})
	svc := vs(t, ipvs.TCP, lo4, "rr")
	rs1, rs2 := startTCP(t, lo4, "rs1"), startTCP(t, lo4, "rs2")
	tb := newTable(t, e)
	tb.exec(addSvc(svc), addDest(svc, rs1.addr, 1), addDest(svc, rs2.addr, 1))
	c := mustDial(t, svc.AddrPort()) // rs2
	// A weight edit and a scheduler change keep the server's counters and
	// its established connection.
	tb.exec(editDest(svc, rs2.addr, 5))
	edited := svc
	edited.Scheduler = "wrr"
	tb.exec(ipvs.Command{Op: ipvs.OpEditService, Service: &edited})
	c.echo(t, "still here\n")
	st := e.Status()[0]
	if st.Scheduler != "wrr" || st.Dests[0].Weight != 5 || st.Dests[0].ActiveConns != 1 || st.Dests[0].Stats.Conns != 1 {
		t.Fatalf("status after edits: %+v", st)
	}
	// wrr with weights 5 and 1 sends the next five to rs2.
	for range 5 {
		if n := mustDial(t, svc.AddrPort()); n.server != "rs2" {
			t.Fatalf("wrr sent a connection to %s", n.server)
		} else {
			n.finish(t)
		}
	}
	c.finish(t)
}

func TestUDPRefusedServer(t *testing.T) {
	e := newEngine(t, Options{})
	svc := vs(t, ipvs.UDP, lo4, "rr")
	rs1 := startUDP(t, lo4, "rs1")
	dead := netip.AddrPortFrom(lo4, freePort(t, "udp", lo4)) // nothing listens
	newTable(t, e).exec(addSvc(svc), addDest(svc, rs1, 1), addDest(svc, dead, 1))

	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(svc.AddrPort()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The first datagram goes to the dead server (last added): no answer,
	// the port unreachable ends the flow and marks the server failed; a
	// client retrying then reaches the live one.
	buf := make([]byte, 100)
	var got string
	for try := 0; try < 10 && got == ""; try++ {
		c.Write([]byte("ping"))
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if n, err := c.Read(buf); err == nil {
			got = string(buf[:n])
		}
	}
	if got != "rs1:ping" {
		t.Fatalf("answer %q, want rs1:ping", got)
	}
	d, _ := destStatus(t, e, svc.ServiceKey, dead)
	if d.Stats.Conns != 1 || d.InactConns != 0 {
		t.Fatalf("dead server: %+v, want one connection, expired", d)
	}
}
