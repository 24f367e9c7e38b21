package xdp

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// TestCapacity: the maps hold Options.MaxServices services and MaxDests
// real servers; a batch beyond either is refused, naming gvsd's flag, and
// changes nothing.
func TestCapacity(t *testing.T) {
	labNS(t, 11, 12)
	e, err := load(nil, Options{MaxServices: 2, MaxDests: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.objs.Close() })
	svc := func(port uint16, rs ...byte) ipvs.ServiceConfig {
		var ds []ipvs.Dest
		for _, n := range rs {
			ds = append(ds, ipvs.Dest{Addr: rsIP(n), Port: port, Method: ipvs.Route, Weight: 1})
		}
		return oneService(netip.AddrPortFrom(vip.Addr(), port), ipvs.TCP, "rr", ds...)
	}
	full := snapOf(svc(80, 11), svc(81, 11, 12))
	if err := engine.ApplySnapshot(e, full); err != nil {
		t.Fatalf("2 services and 3 real servers: %v", err)
	}
	for _, tc := range []struct {
		snap *ipvs.Snapshot
		flag string
	}{
		{snapOf(svc(80, 11), svc(81, 11, 12), svc(82)), "--xdp-max-services"},
		{snapOf(svc(80, 11, 12), svc(81, 11, 12)), "--xdp-max-real-servers"},
	} {
		err := engine.ApplySnapshot(e, tc.snap)
		if err == nil || !strings.Contains(err.Error(), tc.flag) {
			t.Errorf("beyond the capacity: error %v, want one naming %s", err, tc.flag)
		}
	}
	if got := engine.Serving(e); len(got.Services) != 2 || len(got.Services[0].Dests) != 1 {
		t.Fatalf("after the refusals the engine serves %+v, want the 2 services as they were", got.Services)
	}
	src := netip.MustParseAddrPort("198.18.2.30:1000")
	_, out := runOut(t, e, build(pktSpec{src: src, dst: netip.AddrPortFrom(vip.Addr(), 81), proto: ipvs.TCP, flags: tcpSYN}))
	if got := serverOf(out); got != rsIP(11).String() && got != rsIP(12).String() {
		t.Errorf("a SYN to the second service went to %s", got)
	}
	if _, err := load(nil, Options{MaxServices: 1 << 16}); err == nil {
		t.Error("65536 services: loaded, want an error (connection entries keep 16-bit indexes)")
	}
}

// TestTablesReplaced: every change of a service gives it a new table of
// the size its scheduler needs; the table it replaced is deleted once two
// expiry ticks have passed, and a deleted service's tables go with it.
func TestTablesReplaced(t *testing.T) {
	labNS(t, 11, 12, 13)
	e := newTestEngine(t, nil)
	ds := func(ws ...int32) []ipvs.Dest {
		var out []ipvs.Dest
		for i, w := range ws {
			out = append(out, ipvs.Dest{Addr: rsIP(byte(11 + i)), Port: 80, Method: ipvs.Route, Weight: w})
		}
		return out
	}
	mh := netip.AddrPortFrom(vip.Addr(), 81)
	apply := func(snap *ipvs.Snapshot) {
		t.Helper()
		if err := engine.ApplySnapshot(e, snap); err != nil {
			t.Fatal(err)
		}
	}
	apply(snapOf(oneService(vip, ipvs.TCP, "rr", ds(1, 1)...), oneService(mh, ipvs.TCP, "mh", ds(1, 1, 1)...)))
	tables := func() map[uint32]uint32 { // key: chunks
		t.Helper()
		out := map[uint32]uint32{}
		var k, id uint32
		it := e.objs.Tables.Iterate()
		for it.Next(&k, &id) {
			m, err := ebpf.NewMapFromID(ebpf.MapID(id))
			if err != nil {
				t.Fatal(err)
			}
			out[k] = m.MaxEntries()
			m.Close()
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	rr, mhs := e.svcs[ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip.Addr(), Port: vip.Port()}], e.svcs[ipvs.ServiceKey{Proto: ipvs.TCP, Addr: mh.Addr(), Port: mh.Port()}]
	live := func(s *svcState) uint32 { return s.index*2 + s.gen }
	want := map[uint32]uint32{live(rr): 1, live(mhs): (mhTabSize + tabChunk - 1) / tabChunk}
	if got := tables(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("tables after the first batch: %v, want %v (a chunk for rr's 2 servers, 256 for mh)", got, want)
	}

	apply(snapOf(oneService(vip, ipvs.TCP, "rr", ds(1, 1, 1)...), oneService(mh, ipvs.TCP, "mh", ds(1, 1, 1)...)))
	want = map[uint32]uint32{live(rr): 1, live(mhs): want[live(mhs)]}
	if got := tables(); len(got) != 3 || got[live(rr)] != 1 || got[live(rr)^1] != 1 {
		t.Fatalf("after a change of the rr service: tables %v, want its new and its idle table beside mh's", got)
	}
	seen := map[string]bool{}
	for i := range 3 {
		_, out := runOut(t, e, build(pktSpec{src: netip.AddrPortFrom(client.Addr(), uint16(2000+i)), dst: vip, proto: ipvs.TCP, flags: tcpSYN}))
		seen[serverOf(out)] = true
	}
	if len(seen) != 3 || !seen[rsIP(13).String()] {
		t.Errorf("3 SYNs after adding a third server went to %v, want each server once (rr over the new table)", seen)
	}
	e.dropIdleTables()
	if got := tables(); len(got) != 3 {
		t.Fatalf("one tick after the change: tables %v, want the idle one kept (a packet may still read it)", got)
	}
	e.dropIdleTables()
	if got := tables(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("two ticks after the change: tables %v, want %v", got, want)
	}

	apply(snapOf(oneService(vip, ipvs.TCP, "rr", ds(1, 1, 1)...)))
	delete(want, live(mhs))
	if got := tables(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after deleting the mh service: tables %v, want %v", got, want)
	}
}
