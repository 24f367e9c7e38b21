package xdp

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/sched"
)

// TestSchedulersMatchGo feeds the same new connections to the Go reference
// schedulers (internal/sched) and to the BPF program, and requires the
// same real server for each (or no server for both).
func TestSchedulersMatchGo(t *testing.T) {
	ns := labNS(t, 11, 12, 13, 14, 15, 16)
	tests := []struct {
		name    string
		sched   string
		flags   uint32
		weights []int32
		upper   []uint32 // -x per server
		proto   ipvs.Protocol
		conns   int
		est     int // every est-th connection becomes ESTABLISHED (lc family)
	}{
		{name: "rr", sched: "rr", weights: []int32{1, 1, 1}},
		{name: "rr with a quiesced server", sched: "rr", weights: []int32{1, 0, 3}},
		{name: "wrr", sched: "wrr", weights: []int32{4, 3, 2}},
		{name: "wrr with gcd", sched: "wrr", weights: []int32{6, 2, 0, 4}},
		{name: "sh", sched: "sh", weights: []int32{1, 2, 3}},
		{name: "sh quiesced refuses", sched: "sh", weights: []int32{1, 0, 1}},
		{name: "sh-fallback", sched: "sh", flags: ipvs.SchedFlag1, weights: []int32{1, 0, 1}},
		{name: "sh-port", sched: "sh", flags: ipvs.SchedFlag2, weights: []int32{2, 1, 1}},
		{name: "dh", sched: "dh", weights: []int32{1, 1, 1}},
		{name: "mh", sched: "mh", weights: []int32{1, 1, 1, 1}},
		{name: "mh weighted", sched: "mh", weights: []int32{5, 1, 3}},
		{name: "mh-fallback", sched: "mh", flags: ipvs.SchedFlag1, weights: []int32{1, 0, 2}},
		{name: "mh-port", sched: "mh", flags: ipvs.SchedFlag2, weights: []int32{1, 1, 1}},
		{name: "lc", sched: "lc", weights: []int32{1, 1, 1}, est: 3},
		{name: "wlc", sched: "wlc", weights: []int32{3, 1, 2}, est: 2},
		{name: "wlc with thresholds", sched: "wlc", weights: []int32{1, 1, 1}, upper: []uint32{3, 0, 5}, est: 2},
		{name: "sed", sched: "sed", weights: []int32{3, 1, 2}, est: 1},
		{name: "nq", sched: "nq", weights: []int32{2, 1, 1}, est: 1},
		{name: "fo", sched: "fo", weights: []int32{1, 3, 3}},
		{name: "ovf", sched: "ovf", weights: []int32{1, 2, 2}, est: 1},
		{name: "rr UDP", sched: "rr", weights: []int32{1, 1}, proto: ipvs.UDP},
		{name: "lblc", sched: "lblc", weights: []int32{4, 2, 6}, est: 1},
		{name: "lblc with a quiesced server", sched: "lblc", weights: []int32{0, 3, 1}, est: 1},
		{name: "lblc with thresholds", sched: "lblc", weights: []int32{2, 2, 2}, upper: []uint32{4, 0, 3}, est: 2},
		{name: "lblcr", sched: "lblcr", weights: []int32{4, 2, 6}, est: 1},
		{name: "lblcr with thresholds", sched: "lblcr", weights: []int32{3, 1, 2, 2}, upper: []uint32{5, 0, 0, 4}, est: 2},
		{name: "lblcr UDP", sched: "lblcr", weights: []int32{2, 1}, proto: ipvs.UDP},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enterNS(t, ns)
			proto := tc.proto
			if proto == 0 {
				proto = ipvs.TCP
			}
			var dests []ipvs.Dest
			var gds []*sched.Dest
			for i, w := range tc.weights {
				d := ipvs.Dest{Addr: rsIP(byte(11 + i)), Port: 80, Method: ipvs.Route, Weight: w}
				if i < len(tc.upper) {
					d.UThreshold = tc.upper[i]
				}
				dests = append(dests, d)
				gds = append(gds, sched.NewDest(d))
			}
			svc := oneService(vip, proto, tc.sched, dests...)
			svc.Flags = tc.flags
			e := newTestEngine(t, snapOf(svc))
			gs, err := sched.New(tc.sched, tc.flags)
			if err != nil {
				t.Fatal(err)
			}
			gs.Update(gds)

			rng := rand.New(rand.NewPCG(1, uint64(len(tc.name))))
			n := tc.conns
			if n == 0 {
				n = 300
			}
			type open struct {
				spec pktSpec
				d    *sched.Dest
			}
			var opened []open
			for i := range n {
				c := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(128 + rng.IntN(128)), byte(rng.IntN(256))}), uint16(1024+rng.IntN(60000)))
				spec := pktSpec{src: c, dst: vip, proto: proto, flags: tcpSYN}
				want := gs.Schedule(sched.Conn{Client: c, Virtual: vip})
				got := chosen(t, e, spec)
				if w := destName(want); got != w {
					t.Fatalf("conn %d from %s: BPF chose %s, Go chose %s", i, c, got, w)
				}
				if want == nil {
					continue
				}
				want.Bind(sched.Inactive)
				opened = append(opened, open{spec, want})
				if tc.est > 0 && proto == ipvs.TCP && i%tc.est == 0 {
					// An earlier connection completes its handshake.
					o := &opened[rng.IntN(len(opened))]
					if o.spec.flags == tcpSYN {
						o.spec.flags = tcpACK
						if v, _ := runOut(t, e, build(o.spec)); v != xdpRedirect {
							t.Fatalf("ACK of an open connection: verdict %d", v)
						}
						o.d.Move(sched.Inactive, sched.Active)
					}
				}
			}
		})
	}
}

func destName(d *sched.Dest) string {
	if d == nil {
		return "none"
	}
	return d.Addr.Addr().String()
}

func macName(mac []byte) string {
	for n := byte(11); n <= 30; n++ {
		if bytes.Equal(mac, rsMAC(n)) {
			return rsIP(n).String()
		}
	}
	return fmt.Sprintf("mac %x", mac)
}

// TestLocalityForgetsFreedServers: when a real server has left its lblc
// service and its last connection expired, its slot is freed and the
// table by destination address forgets it, so a server that takes the
// slot later inherits nothing.
func TestLocalityForgetsFreedServers(t *testing.T) {
	labNS(t, 11, 12)
	a := ipvs.Dest{Addr: rsIP(11), Port: 80, Method: ipvs.Route, Weight: 1}
	b := ipvs.Dest{Addr: rsIP(12), Port: 80, Method: ipvs.Route, Weight: 1}
	e := newTestEngine(t, snapOf(oneService(vip, ipvs.UDP, "lblc", a)))
	if v, out := runOut(t, e, build(pktSpec{src: client, dst: vip, proto: ipvs.UDP, payload: 4})); v != xdpRedirect || macName(out[:6]) != a.Addr.String() {
		t.Fatalf("first datagram: verdict %d", v)
	}
	if n := localityEntries(t, e); n != 1 {
		t.Fatalf("%d lblc entries after the first datagram, want 1", n)
	}
	if err := engine.ApplySnapshot(e, snapOf(oneService(vip, ipvs.UDP, "lblc", b))); err != nil {
		t.Fatal(err)
	}
	e.expire()
	if n := localityEntries(t, e); n != 1 {
		t.Fatalf("%d lblc entries while the old server's connection lives, want 1", n)
	}
	var keys []lbConnKey
	var vals []lbConnVal
	e.walkConns(func(k *lbConnKey, v *lbConnVal) { keys, vals = append(keys, *k), append(vals, *v) })
	for i := range keys {
		vals[i].LastSeen -= uint32(10 * time.Minute >> connClockShift)
		if err := e.putConn(&keys[i], &vals[i], ebpf.UpdateExist); err != nil {
			t.Fatal(err)
		}
	}
	e.expire()
	if n := localityEntries(t, e); n != 0 {
		t.Errorf("%d lblc entries after the old server's slot was freed, want 0", n)
	}
	if v, out := runOut(t, e, build(pktSpec{src: client, dst: vip, proto: ipvs.UDP, payload: 4})); v != xdpRedirect || macName(out[:6]) != b.Addr.String() {
		t.Errorf("after the change: verdict %d to %s, want %s", v, macName(out[:6]), b.Addr)
	}
}

func localityEntries(t *testing.T, e *Engine) int {
	t.Helper()
	var k lbLocalityKey
	var v lbLocalityVal
	n := 0
	it := e.objs.Locality.Iterate()
	for it.Next(&k, &v) {
		n++
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

// walkLab is an xdp engine with one service at vip (DR), changed one
// ipvsadm command at a time as gvsadm does, beside the Go scheduler of
// the same name driven as the kernel's ip_vs_ctl drives its scheduler.
type walkLab struct {
	t     *testing.T
	e     *Engine
	svc   ipvs.Service
	gs    sched.Scheduler
	dests []*sched.Dest // the kernel's order: most recently added first
	port  uint16        // the next client port
}

func newWalkLab(t *testing.T, name string) *walkLab {
	svc := ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip.Addr(), Port: vip.Port()}, Scheduler: name}
	gs, err := sched.New(name, 0)
	if err != nil {
		t.Fatal(err)
	}
	l := &walkLab{t: t, e: newTestEngine(t, nil), svc: svc, gs: gs, port: 20000}
	l.apply(ipvs.Command{Op: ipvs.OpAddService, Service: &l.svc})
	return l
}

func (l *walkLab) apply(c ipvs.Command) {
	l.t.Helper()
	if err := l.e.Apply([]ipvs.Command{c}); err != nil {
		l.t.Fatalf("%s: %v", c.Op, err)
	}
}

func (l *walkLab) get(n byte) *sched.Dest {
	for _, d := range l.dests {
		if d.Addr.Addr() == rsIP(n) {
			return d
		}
	}
	l.t.Fatalf("no real server %s", rsIP(n))
	return nil
}

// add, del and edit are ipvsadm -a, -d and -e on the real server
// 198.18.0.n, with weight w and upper threshold x.
func (l *walkLab) add(n byte, w int32, x uint32) {
	d := ipvs.Dest{Addr: rsIP(n), Port: 80, Method: ipvs.Route, Weight: w, UThreshold: x}
	l.apply(ipvs.Command{Op: ipvs.OpAddDest, Service: &l.svc, Dest: &d})
	l.dests = append([]*sched.Dest{sched.NewDest(d)}, l.dests...)
	l.gs.Update(l.dests)
}

func (l *walkLab) del(n byte) {
	d := ipvs.Dest{Addr: rsIP(n), Port: 80}
	l.apply(ipvs.Command{Op: ipvs.OpDelDest, Service: &l.svc, Dest: &d})
	g := l.get(n)
	g.MarkRemoved()
	l.dests = slices.DeleteFunc(l.dests, func(x *sched.Dest) bool { return x == g })
	l.gs.Update(l.dests)
}

func (l *walkLab) edit(n byte, w int32, x uint32) {
	d := ipvs.Dest{Addr: rsIP(n), Port: 80, Method: ipvs.Route, Weight: w, UThreshold: x}
	l.apply(ipvs.Command{Op: ipvs.OpEditDest, Service: &l.svc, Dest: &d})
	g := l.get(n)
	g.SetWeight(w)
	g.SetThresholds(x, 0)
	l.gs.Update(l.dests)
}

// conn sends one new connection's SYN to the program and asks the Go
// scheduler; it returns both choices ("none" for no server).
func (l *walkLab) conn() (bpf, goref string) {
	l.t.Helper()
	c := netip.AddrPortFrom(netip.MustParseAddr("198.18.1.2"), l.port)
	l.port++
	want := l.gs.Schedule(sched.Conn{Client: c, Virtual: vip})
	if want != nil {
		want.Bind(sched.Inactive)
	}
	return chosen(l.t, l.e, pktSpec{src: c, dst: vip, proto: ipvs.TCP, flags: tcpSYN}), destName(want)
}

// chosen runs a new connection's first packet and names the real server
// the program sent it to, or "none".
func chosen(t *testing.T, e *Engine, spec pktSpec) string {
	t.Helper()
	v, out := runOut(t, e, build(spec))
	switch {
	case v == xdpRedirect && !bytes.Equal(out[:6], clientMAC):
		return macName(out[:6])
	case v == xdpDrop || v == xdpTX:
		return "none"
	}
	t.Fatalf("new connection from %s: verdict %d", spec.src, v)
	return ""
}

// TestWalkMatchesGoAcrossChanges makes rr and wrr services go through
// random ipvsadm -a, -d and -e (weights from 0 to 2147483647, upper
// thresholds) between new connections, and wants the program to choose
// as internal/sched does for every connection.
func TestWalkMatchesGoAcrossChanges(t *testing.T) {
	ns := labNS(t, walkServers()...)
	for _, name := range []string{"rr", "wrr"} {
		for seed := range uint64(6) {
			t.Run(fmt.Sprintf("%s/%d", name, seed), func(t *testing.T) {
				enterNS(t, ns)
				rng := rand.New(rand.NewPCG(seed, 7))
				l := newWalkLab(t, name)
				weight := func() int32 {
					switch rng.IntN(5) {
					case 0:
						return 0
					case 1:
						return 4097 + rng.Int32N(1<<31-4097) // beyond the old cycle table
					case 2:
						return 1<<31 - 1
					}
					return 1 + rng.Int32N(6)
				}
				var live []byte
				next := byte(11)
				for step := range 60 {
					switch op := rng.IntN(6); {
					case len(live) == 0 || (op == 0 && next < 11+byte(len(walkServers()))):
						x := uint32(0)
						if rng.IntN(4) == 0 {
							x = 1 + uint32(rng.IntN(4))
						}
						l.add(next, weight(), x)
						live = append(live, next)
						next++
					case op == 1 && len(live) > 1:
						i := rng.IntN(len(live))
						l.del(live[i])
						live = slices.Delete(live, i, i+1)
					case op == 2:
						l.edit(live[rng.IntN(len(live))], weight(), 0)
					case op == 3:
						l.edit(live[rng.IntN(len(live))], weight(), 1+uint32(rng.IntN(8)))
					}
					for range 1 + rng.IntN(6) {
						if got, want := l.conn(); got != want {
							t.Fatalf("step %d: BPF chose %s, Go chose %s", step, got, want)
						}
					}
				}
			})
		}
	}
}

// walkServers are the real servers the walk tests may add: 198.18.0.11
// to .30.
func walkServers() []byte {
	var ns []byte
	for n := byte(11); n <= 30; n++ {
		ns = append(ns, n)
	}
	return ns
}

// TestWalkMatchesLinux replays internal/sched's recording of the kernel
// (rr and wrr across ipvsadm -a, -d and -e, weights up to 2147483647)
// through the program, one gvsadm command at a time, and wants the
// kernel's choice for every connection.
func TestWalkMatchesLinux(t *testing.T) {
	ns := labNS(t, walkServers()...)
	b, err := os.ReadFile("../../sched/testdata/linux-6.1-changes.txt")
	if err != nil {
		t.Fatal(err)
	}
	type change struct {
		port int
		args []string
	}
	steps := map[string][]change{}
	results := map[string]string{} // "vip:port client-port" -> server
	var order []string
	end := 0
	for _, line := range strings.Split(string(b), "\n") {
		fs := strings.Fields(line)
		switch {
		case len(fs) >= 4 && fs[0] == "STEP":
			if steps[fs[1]] == nil {
				order = append(order, fs[1])
			}
			p, _ := strconv.Atoi(fs[2])
			steps[fs[1]] = append(steps[fs[1]], change{p, fs[3:]})
		case len(fs) == 5 && fs[0] == "RESULT":
			_, p, _ := strings.Cut(fs[2], ":")
			results[fs[1]+" "+p] = strings.TrimPrefix(fs[4], "198.19.0.")
		case len(fs) == 2 && fs[0] == "END":
			end, _ = strconv.Atoi(fs[1])
		}
	}
	if len(order) == 0 || end == 0 {
		t.Fatal("nothing recorded")
	}
	for i, vs := range order {
		t.Run(vs, func(t *testing.T) {
			enterNS(t, ns)
			name := "wrr"
			if strings.HasSuffix(vs, ":80") {
				name = "rr"
			}
			l := newWalkLab(t, name)
			last := end
			if i+1 < len(order) {
				last = steps[order[i+1]][0].port
			}
			num := func(a []string, i int) int64 {
				if i >= len(a) {
					return 0
				}
				n, _ := strconv.ParseInt(a[i], 10, 64)
				return n
			}
			cs := steps[vs]
			var got, want []string
			for port := cs[0].port; port < last; port++ {
				for len(cs) > 0 && cs[0].port == port {
					a := cs[0].args
					n := byte(num(a, 1))
					switch a[0] {
					case "add":
						l.add(n, int32(num(a, 2)), uint32(num(a, 3)))
					case "del":
						l.del(n)
					case "edit":
						l.edit(n, int32(num(a, 2)), uint32(num(a, 3)))
					}
					cs = cs[1:]
				}
				g, _ := l.conn()
				got = append(got, strings.TrimPrefix(g, "198.18.0."))
				w := results[fmt.Sprintf("%s %d", vs, port)]
				if w == "" {
					w = "none"
				}
				want = append(want, w)
			}
			if g, w := strings.Join(got, " "), strings.Join(want, " "); g != w {
				t.Errorf("choices\n got: %s\nwant: %s (Linux 6.1)", g, w)
			}
		})
	}
}
