package sched

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

func TestNew(t *testing.T) {
	want := []string{"dh", "fo", "lblc", "lblcr", "lc", "mh", "nq", "ovf", "rr", "sed", "sh", "twos", "wlc", "wrr"}
	if got := Names(); !slices.Equal(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
	for _, n := range want {
		s, err := New(n, 0)
		if err != nil || s.Name() != n {
			t.Errorf("New(%q) = %v, %v", n, s, err)
		}
		if d := s.Schedule(Conn{}); d != nil {
			t.Errorf("%s: Schedule before Update = %v, want nil", n, d.Addr)
		}
	}
	_, err := New("wrrr", 0)
	if !errors.Is(err, ipvs.ErrNoScheduler) || !strings.Contains(err.Error(), `"wrrr"`) {
		t.Errorf("New(wrrr) error = %v, want ErrNoScheduler naming it", err)
	}
}

// step is one action on a service: add "N/w", del "N", weight "N/w",
// bind/unbind "N" (an active connection), fail/recover "N", or conns n
// (make n connections and expect want).
type step struct {
	op, arg string
	want    string
}

func run(t *testing.T, v *service, steps []step) {
	t.Helper()
	for i, s := range steps {
		a, w, _ := strings.Cut(s.arg, "/")
		var n int32
		fmt.Sscan(w, &n)
		switch s.op {
		case "add":
			v.add(a, n)
		case "batch": // several additions, one Update
			for _, f := range strings.Fields(s.arg) {
				a, w, _ := strings.Cut(f, "/")
				fmt.Sscan(w, &n)
				d := NewDest(ipvs.Dest{Addr: netip.MustParseAddrPort(full(a)).Addr(), Port: 80, Weight: n})
				v.dests = append([]*Dest{d}, v.dests...)
			}
			v.s.Update(v.dests)
		case "del":
			v.del(a)
		case "weight":
			v.setWeight(a, n)
		case "bind":
			v.get(a).Bind(Active)
		case "inact":
			v.get(a).Bind(Inactive)
		case "unbind":
			v.get(a).Unbind(Active)
		case "fail":
			v.get(a).SetFailed(true)
		case "recover":
			v.get(a).SetFailed(false)
		case "thresh":
			var lo uint32
			fmt.Sscan(strings.TrimPrefix(s.want, "y"), &lo)
			v.get(a).SetThresholds(uint32(n), lo)
		case "conns":
			var k int
			fmt.Sscan(s.arg, &k)
			if got := v.seq(k); got != s.want {
				t.Fatalf("step %d: %d connections went to %q, want %q", i, k, got, s.want)
			}
		default:
			t.Fatalf("bad step %q", s.op)
		}
	}
}

func TestSequences(t *testing.T) {
	tests := []struct {
		name  string
		sched string
		steps []step
	}{
		{"rr starts with the last added", "rr", []step{
			{"add", "11/1", ""}, {"add", "12/1", ""}, {"conns", "4", "12 11 12 11"}}},
		{"rr skips weight 0 and overload", "rr", []step{
			{"add", "11/1", ""}, {"add", "12/0", ""}, {"add", "13/1", ""},
			{"conns", "3", "13 11 13"},
			// A lowered threshold marks the server at its next connection.
			{"thresh", "13/1", ""}, {"conns", "4", "11 13 11 11"},
			{"thresh", "13/5", ""}, {"conns", "2", "13 11"}}},
		{"rr keeps its place across updates", "rr", []step{
			{"add", "11/1", ""}, {"add", "12/1", ""}, {"add", "13/1", ""},
			{"conns", "2", "13 12"},
			// The cursor's server goes: the walk goes on after it.
			{"del", "12", ""}, {"conns", "2", "11 13"},
			// A new server enters at the head, reached after the tail.
			{"add", "14/1", ""}, {"conns", "4", "11 14 13 11"},
			{"weight", "14/5", ""}, {"conns", "2", "14 13"}}},
		{"rr with every server quiesced", "rr", []step{
			{"add", "11/0", ""}, {"conns", "1", "-"}}},
		{"rr skips failed servers", "rr", []step{
			{"add", "11/1", ""}, {"add", "12/1", ""}, {"fail", "11", ""},
			{"conns", "3", "12 12 12"}, {"recover", "11", ""}, {"conns", "2", "11 12"}}},
		{"wrr gcd steps", "wrr", []step{
			// One update with both: mw = 4-(2-1) = 3, cw 3 then 1.
			{"add", "11/4", ""}, {"add", "12/2", ""}, {"conns", "6", "12 11 11 12 11 11"}}},
		{"wrr gcd steps, both in one update", "wrr", []step{
			// cw starts at mw = 3: the weight-4 server leads.
			{"batch", "11/4 12/2", ""}, {"conns", "6", "11 12 11 11 12 11"}}},
		{"wrr resets its cursor on update", "wrr", []step{
			{"add", "11/1", ""}, {"add", "12/1", ""}, {"add", "13/1", ""},
			{"conns", "2", "13 12"}, {"weight", "11/1", ""}, {"conns", "2", "13 12"}}},
		{"wrr never picks weight 0", "wrr", []step{
			{"add", "11/3", ""}, {"add", "12/0", ""}, {"conns", "3", "11 11 11"},
			{"weight", "11/0", ""}, {"conns", "1", "-"}}},
		{"wrr skips overloaded", "wrr", []step{
			{"add", "11/1", ""}, {"add", "12/2", ""}, {"thresh", "12/1", ""},
			{"bind", "12", ""}, {"conns", "3", "11 11 11"}}},
		{"lc ignores weights", "lc", []step{
			{"add", "11/1", ""}, {"add", "12/9", ""}, {"inact", "12", ""},
			{"conns", "3", "11 12 11"}}},
		{"lc counts active as 256 inactive", "lc", []step{
			{"add", "11/1", ""}, {"add", "12/1", ""}, {"bind", "12", ""},
			{"inact", "11", ""}, {"inact", "11", ""}, {"conns", "1", "11"}}},
		{"wlc by overhead per weight", "wlc", []step{
			{"add", "11/3", ""}, {"add", "12/1", ""}, {"conns", "5", "12 11 11 11 12"}}},
		{"wlc upper and lower thresholds", "wlc", []step{
			// .12 overloaded at 2 connections, back below 1.
			{"add", "11/1", ""}, {"add", "12/100", ""}, {"thresh", "12/2", "y1"},
			{"bind", "11", ""}, {"bind", "11", ""}, {"bind", "11", ""},
			{"conns", "3", "12 12 11"},
			{"unbind", "12", ""}, {"conns", "1", "11"},
			{"unbind", "12", ""}, {"conns", "1", "12"}}},
		{"wlc 3/4 of the upper threshold without a lower one", "wlc", []step{
			{"add", "11/1", ""}, {"add", "12/100", ""}, {"thresh", "12/4", ""},
			{"bind", "11", ""}, {"bind", "11", ""}, {"bind", "11", ""}, {"bind", "11", ""}, {"bind", "11", ""},
			{"conns", "5", "12 12 12 12 11"},
			{"unbind", "12", ""}, {"conns", "1", "11"}, // 3 is not below 3
			{"unbind", "12", ""}, {"conns", "1", "12"}}},
		{"sed counts the new connection", "sed", []step{
			{"add", "11/1", ""}, {"add", "12/2", ""}, {"conns", "3", "12 12 11"}}},
		{"nq prefers an idle server", "nq", []step{
			{"add", "11/1", ""}, {"add", "12/9", ""}, {"bind", "12", ""}, {"conns", "2", "11 12"}}},
		{"fo takes the highest weight", "fo", []step{
			{"add", "11/5", ""}, {"add", "12/7", ""}, {"add", "13/7", ""}, {"thresh", "13/2", ""},
			{"conns", "3", "13 13 12"},
			{"del", "12", ""}, {"conns", "1", "11"}}},
		{"ovf overflows past the weight", "ovf", []step{
			{"add", "11/1", ""}, {"add", "12/2", ""}, {"conns", "5", "12 12 12 11 11"},
			{"conns", "1", "-"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run(t, newService(t, tt.sched, 0), tt.steps)
		})
	}
}

func clientConn(client string) Conn {
	return Conn{Client: netip.MustParseAddrPort(client), Virtual: netip.MustParseAddrPort("198.18.200.10:80")}
}

func TestHashing(t *testing.T) {
	clients := []string{"198.18.1.1:1000", "198.18.1.2:1000", "198.18.9.9:1000", "198.18.77.5:1000",
		"[2001:db8::1]:1000", "[2001:db8::2]:1000", "[2001:db8::dead:beef]:1000", "198.18.1.1:1001"}
	for _, name := range []string{"sh", "mh"} {
		for _, tt := range []struct {
			label string
			flags uint32
		}{{"", 0}, {"-port", ipvs.SchedFlag2}, {"-fallback", ipvs.SchedFlag1}} {
			t.Run(name+tt.label, func(t *testing.T) {
				v := newService(t, name, tt.flags)
				v.addAll("11/1 12/1 13/1")
				first := map[string]*Dest{}
				for _, c := range clients {
					first[c] = v.s.Schedule(clientConn(c))
					if first[c] == nil {
						t.Fatalf("%s: no server", c)
					}
				}
				// Stable per client.
				for range 3 {
					for _, c := range clients {
						if d := v.s.Schedule(clientConn(c)); d != first[c] {
							t.Fatalf("%s moved from %s to %s", c, short(first[c]), short(d))
						}
					}
				}
				// The port counts only with the port flag.
				a, b := first["198.18.1.1:1000"], first["198.18.1.1:1001"]
				portsDiffer := false
				for p := uint16(1000); p < 1064; p++ {
					if v.s.Schedule(clientConn(fmt.Sprintf("198.18.1.1:%d", p))) != a {
						portsDiffer = true
					}
				}
				if want := tt.flags&ipvs.SchedFlag2 != 0; portsDiffer != want {
					t.Errorf("ports change the choice: %v, want %v (%s, %s)", portsDiffer, want, short(a), short(b))
				}
				// Quiescing a server: its clients are dropped, or moved
				// with fallback; nobody else moves.
				victim := first["198.18.9.9:1000"]
				victim.SetWeight(0)
				v.s.Update(v.dests)
				for _, c := range clients {
					d := v.s.Schedule(clientConn(c))
					switch {
					case first[c] != victim && d != first[c] && (name == "mh" || tt.flags&ipvs.SchedFlag1 != 0):
						t.Errorf("%s moved from %s to %v", c, short(first[c]), d)
					case first[c] == victim && tt.flags&ipvs.SchedFlag1 == 0 && d != nil:
						t.Errorf("%s: quiesced server's client got %s without fallback", c, short(d))
					case first[c] == victim && tt.flags&ipvs.SchedFlag1 != 0 && (d == nil || d == victim):
						t.Errorf("%s: fallback gave %v", c, d)
					}
				}
			})
		}
	}
}

func TestMaglevKeepsTableWhenQuiesced(t *testing.T) {
	v := newService(t, "mh", ipvs.SchedFlag1)
	v.addAll("11/1 12/1 13/1")
	m := v.s.(*maglev)
	before := m.Table()
	v.setWeight("12", 0) // last_weight stays 1: same table
	if !slices.Equal(before, m.Table()) {
		t.Error("quiescing changed the Maglev table")
	}
	v.setWeight("12", 2) // a real weight change rebuilds it
	count := map[string]int{}
	for _, d := range m.Table() {
		count[short(d)]++
	}
	if count["12"] <= count["11"] || count["11"]+count["12"]+count["13"] != mhTabSize {
		t.Errorf("slots after weight 2 on .12: %v", count)
	}
	v.del("12")
	for _, d := range m.Table() {
		if d == nil || short(d) == "12" {
			t.Fatal("deleted server still in the table")
		}
	}
}

func TestSourceHashBuckets(t *testing.T) {
	v := newService(t, "sh", 0)
	v.addAll("11/1 12/0 13/3")
	tab := v.s.(*sourceHash).tab.Load()
	// List .13 .12 .11: .13 takes 3 buckets, .12 (weight 0) one, .11 one.
	var got []string
	for _, d := range tab[:10] {
		got = append(got, short(d))
	}
	if want := "13 13 13 12 11 13 13 13 12 11"; strings.Join(got, " ") != want {
		t.Errorf("buckets %v, want %s", got, want)
	}
	// The kernel's hash: hash_32(addr, 8), plus the port with sh-port.
	if h := shHash(addrFold(netip.MustParseAddr("198.18.1.1")), 0, 0); h != hash32(0xc6120101, 8) {
		t.Errorf("shHash = %d", h)
	}
}

func TestSipHash(t *testing.T) {
	// Reference vectors (SipHash paper / the kernel's siphash self-test):
	// key 00..0f, message 00..n-1.
	key := sipKey{0x0706050403020100, 0x0f0e0d0c0b0a0908}
	msg := make([]byte, 64)
	for i := range msg {
		msg[i] = byte(i)
	}
	sip24 := map[int]uint64{0: 0x726fdb47dd0e0e31, 1: 0x74f839c593dc67fd, 8: 0x93f5f5799a932462, 15: 0xa129ca6149be45e5, 63: 0x958a324ceb064572}
	for n, want := range sip24 {
		if got := sipHash(2, 4, key, msg[:n]); got != want {
			t.Errorf("siphash-2-4 len %d = %#x, want %#x", n, got, want)
		}
	}
	// The 64-bit kernel's hsiphash (SipHash-1-3, low 32 bits).
	hsip := map[int]uint32{0: 0x050fc4dc, 1: 0x7d57ca93, 4: 0x88d38328, 7: 0x9bb11140, 8: 0x8d299a8e, 15: 0x2a519956, 63: 0xb7bbb3a8}
	for n, want := range hsip {
		if got := uint32(sipHash(1, 3, key, msg[:n])); got != want {
			t.Errorf("hsiphash len %d = %#x, want %#x", n, got, want)
		}
	}
	if got := hsipHash32(key, 0x03020100); got != hsip[4] {
		t.Errorf("hsipHash32 = %#x, want %#x", got, hsip[4])
	}
}

func TestDestHash(t *testing.T) {
	v := newService(t, "dh", 0)
	v.addAll("11/1 12/1")
	conn := func(vip string) *Dest {
		return v.s.Schedule(Conn{Client: netip.MustParseAddrPort("198.18.0.2:1"), Virtual: netip.MustParseAddrPort(vip)})
	}
	d := conn("198.18.200.11:80")
	for range 5 {
		if conn("198.18.200.11:80") != d {
			t.Fatal("dh moved a destination address")
		}
	}
	// No fallback: an overloaded bucket server means no server.
	d.SetThresholds(1, 0)
	d.Bind(Active)
	if got := conn("198.18.200.11:80"); got != nil {
		t.Errorf("overloaded dh server still chosen: %s", short(got))
	}
}

func TestTwos(t *testing.T) {
	v := newService(t, "twos", 0)
	v.addAll("11/1 12/2") // list .12 (2) .11 (1); draws are taken mod 4
	tw := v.s.(*Twos)
	tests := []struct {
		name     string
		draws    []uint32
		a11, a12 int32 // active connections
		want     string
	}{
		{"both draws on the first", []uint32{0, 2}, 0, 5, "12"},
		{"second draw less loaded", []uint32{0, 3}, 0, 1, "11"},
		{"tie keeps the first draw", []uint32{3, 0}, 1, 2, "11"},
		{"load is per weight", []uint32{3, 0}, 1, 1, "12"},
		{"draws wrap modulo total+1", []uint32{7, 4}, 1, 1, "12"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setActive(v.get("11"), tt.a11)
			setActive(v.get("12"), tt.a12)
			i := 0
			tw.Rand = func() uint32 { i++; return tt.draws[i-1] }
			if got := v.s.Schedule(Conn{}); got == nil || short(got) != tt.want {
				t.Errorf("got %v, want %s", got, tt.want)
			}
		})
	}
	v.setWeight("11", 0)
	v.setWeight("12", 0)
	if d := v.s.Schedule(Conn{}); d != nil {
		t.Errorf("all quiesced: got %s", short(d))
	}
}

func setActive(d *Dest, n int32) {
	for d.ActiveConns() > n {
		d.Unbind(Active)
	}
	for d.ActiveConns() < n {
		d.Bind(Active)
	}
}

type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time          { return c.t }
func (c *fakeClock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestLBLC(t *testing.T) {
	clk := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	v := newService(t, "lblc", 0)
	v.s.(*lblc).Now = clk.now
	v.addAll("11/2 12/2")
	vip := func(n int) string { return fmt.Sprintf("198.18.200.%d:80", n) }
	pick := func(n int) string { return v.conn("198.18.0.2:1", vip(n)) }

	if a, b := pick(1), pick(2); a != "12" || b != "11" {
		t.Fatalf("first picks %s %s, want wlc's 12 11", a, b)
	}
	// Sticky while not overloaded in the lblc sense.
	if got := pick(1) + pick(1); got != "1212" {
		t.Fatalf("vip 1 went to %s", got)
	}
	// .12 has 3 active > weight 2, but no server is under half its
	// weight (.11 has 1, 1*2 < 2 is false): still sticky.
	if got := pick(1); got != "12" {
		t.Fatalf("vip 1 went to %s, want 12", got)
	}
	// Once .11 is idle (0*2 < 2), vip 1 is rescheduled by wlc.
	v.get("11").Unbind(Active)
	if got := pick(1); got != "11" {
		t.Fatalf("overloaded: vip 1 went to %s, want 11", got)
	}
	// Entries unused for the expiration go at the 30th minute check.
	tbl := v.s.(*lblc)
	if len(tbl.table) != 2 {
		t.Fatalf("table has %d entries", len(tbl.table))
	}
	for range 30 {
		clk.advance(time.Minute)
		tbl.mu.Lock()
		tbl.gc.run(clk.now(), len(tbl.table), func(bool) {})
		tbl.mu.Unlock()
	}
	clk.advance(25 * time.Hour)
	pick(3)
	if _, ok := tbl.table[netip.MustParseAddr("198.18.200.1")]; ok || len(tbl.table) != 1 {
		t.Errorf("after a day the table still has %d entries", len(tbl.table))
	}
	// A removed server is not used from the cache.
	v.del(pick(3))
	if got := pick(3); got == "-" || v.get(got).Removed() {
		t.Errorf("vip 3 went to %s", got)
	}
}

func TestLBLCR(t *testing.T) {
	clk := &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
	v := newService(t, "lblcr", 0)
	v.s.(*lblcr).Now = clk.now
	v.addAll("11/1 12/1 13/4")
	pick := func() string { return v.conn("198.18.0.2:1", "198.18.200.1:80") }
	if got := pick(); got != "13" {
		t.Fatalf("first pick %s", got)
	}
	for range 4 {
		pick()
	}
	// .13 now has 5 active > weight 4 and .11 is idle: a second server
	// joins the set, and the set's least loaded serves after that.
	if got := pick(); got != "12" {
		t.Fatalf("replication pick %s, want 12", got)
	}
	e := v.s.(*lblcr).table[netip.MustParseAddr("198.18.200.1")]
	if len(e.set) != 2 {
		t.Fatalf("set has %d servers", len(e.set))
	}
	// After the expiration without change, the most loaded member goes
	// (the entry is used every hour, so the table keeps it).
	for range 25 {
		clk.advance(time.Hour)
		v.s.Schedule(Conn{Client: netip.MustParseAddrPort("198.18.0.2:1"), Virtual: netip.MustParseAddrPort("198.18.200.1:80")})
	}
	if len(e.set) != 1 || short(e.set[0]) != "12" {
		t.Errorf("set after expiry: %d servers", len(e.set))
	}
}

// TestConcurrent runs Schedule on every scheduler from several goroutines
// while the list and the weights change (run with -race, as
// scripts/test.sh does): no connection may go to a quiesced (weight 0) or
// failed server, and every connection finds a server except where the
// kernel's scheduler gives none (dh, and sh and mh without fallback, when
// the hashed server cannot take it).
func TestConcurrent(t *testing.T) {
	mayRefuse := map[string]bool{"dh": true, "sh": true, "mh": true}
	for _, name := range Names() {
		t.Run(name, func(t *testing.T) {
			v := newService(t, name, 0)
			v.addAll("11/1 12/2 13/3 14/0 16/5")
			v.get("16").SetFailed(true)
			v.s.Update(v.dests)
			extra := NewDest(ipvs.Dest{Addr: netip.MustParseAddr("198.19.0.15"), Port: 80, Weight: 2})
			base := slices.Clone(v.dests)
			live := map[*Dest]bool{v.get("11"): true, v.get("12"): true, v.get("13"): true, extra: true}
			var wg sync.WaitGroup
			errs := make(chan string, 2)
			stop := make(chan struct{})
			for g := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := 0; i < 20000; i++ {
						select {
						case <-stop:
							return
						default:
						}
						c := clientConn(fmt.Sprintf("198.18.%d.%d:%d", g, i%250+1, 1024+i%100))
						d := v.s.Schedule(c)
						if (d == nil && !mayRefuse[name]) || (d != nil && !live[d]) {
							errs <- fmt.Sprintf("connection %d went to %v, want one of the live servers", i, d)
							return
						}
						if d != nil {
							d.Bind(Active)
							d.Unbind(Active)
						}
					}
				}()
			}
			for i := range 200 {
				l := base
				if i%2 == 0 {
					l = append([]*Dest{extra}, base...)
				}
				v.get(fmt.Sprint(11 + i%3)).SetWeight(int32(1 + i%3))
				v.s.Update(l)
			}
			close(stop)
			wg.Wait()
			close(errs)
			for e := range errs {
				t.Error(e)
			}
		})
	}
}

// TestConcurrentShares: rr and wrr, scheduling from several goroutines at
// once, give every server its share over whole rounds exactly, as one
// caller would see them.
func TestConcurrentShares(t *testing.T) {
	for _, tt := range []struct {
		name  string
		want  map[string]int // connections per server in one round
		round int
	}{
		{"rr", map[string]int{"11": 1, "12": 1, "13": 1}, 3},
		{"wrr", map[string]int{"11": 1, "12": 2, "13": 3}, 6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			v := newService(t, tt.name, 0)
			v.addAll("11/1 12/2 13/3 14/0")
			const goroutines, rounds = 4, 1000
			var mu sync.Mutex
			got := map[string]int{}
			var wg sync.WaitGroup
			for range goroutines {
				wg.Add(1)
				go func() {
					defer wg.Done()
					mine := map[string]int{}
					for range rounds * tt.round / goroutines {
						mine[short(v.s.Schedule(clientConn("198.18.0.1:1000")))]++
					}
					mu.Lock()
					for k, n := range mine {
						got[k] += n
					}
					mu.Unlock()
				}()
			}
			wg.Wait()
			for srv, per := range tt.want {
				if got[srv] != per*rounds {
					t.Errorf("server %s got %d connections in %d rounds, want %d: %v", srv, got[srv], rounds, per*rounds, got)
				}
			}
			if len(got) != len(tt.want) {
				t.Errorf("connections went to %v, want only %v", got, tt.want)
			}
		})
	}
}

func BenchmarkSchedule(b *testing.B) {
	for _, name := range Names() {
		b.Run(name, func(b *testing.B) {
			v := newService(b, name, 0)
			for i := 1; i <= 8; i++ {
				v.add(fmt.Sprintf("198.19.0.%d:80", 10+i), int32(i))
			}
			conns := make([]Conn, 256)
			for i := range conns {
				conns[i] = clientConn(fmt.Sprintf("198.18.%d.%d:%d", i/16, i%16+1, 30000+i))
			}
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				v.s.Schedule(conns[i&255])
			}
		})
	}
}

// TestMaglevRingOwners: MaglevRing's owners are positions in the list it
// was given, servers without a positive weight own no slot, and the
// ring is the one the scheduler uses.
func TestMaglevRingOwners(t *testing.T) {
	v := newService(t, "mh", 0)
	v.addAll("11/0 12/2 13/1")
	addrs := make([]netip.AddrPort, len(v.dests))
	lw := make([]int32, len(v.dests))
	for i, d := range v.dests {
		addrs[i], lw[i] = d.Addr, d.Weight()
	}
	slots, owners := MaglevRing(nil, addrs, lw)
	if len(slots) != MaglevSlots {
		t.Fatalf("%d slots, want %d", len(slots), MaglevSlots)
	}
	tab := v.s.(Tabled).Table()
	for i, o := range slots {
		if d := v.dests[owners[o]]; d != tab[i] || short(d) == "11" {
			t.Fatalf("slot %d: %s from MaglevRing, %s from the scheduler", i, short(d), short(tab[i]))
		}
	}
	if slots, owners := MaglevRing(nil, addrs, []int32{0, 0, 0}); slots != nil || owners != nil {
		t.Error("no positive weight: want an empty ring")
	}
}

// BenchmarkMaglevRing is the cost of one service's ring of 4 servers.
func BenchmarkMaglevRing(b *testing.B) {
	addrs := make([]netip.AddrPort, 4)
	for i := range addrs {
		addrs[i] = netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 1, byte(10 + i)}), 80)
	}
	lw := []int32{1, 1, 1, 1}
	var buf []uint16
	for b.Loop() {
		buf, _ = MaglevRing(buf, addrs, lw)
	}
}
