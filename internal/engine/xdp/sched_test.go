package xdp

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
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
		{name: "sh quiesced drops", sched: "sh", weights: []int32{1, 0, 1}},
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
				v, out := runOut(t, e, build(spec))
				got := "none"
				if v == xdpRedirect {
					got = macName(out[:6])
				} else if v != xdpDrop {
					t.Fatalf("conn %d: verdict %d", i, v)
				}
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
	for n := byte(11); n < 17; n++ {
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
