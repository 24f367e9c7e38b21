package xdp

import (
	"reflect"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// TestReadAllStats: the batched read of a stats map (the estimator's, for
// large tables) sums each slot's per-CPU counters as a lookup of the one
// slot does, for every slot, and stops at n.
func TestReadAllStats(t *testing.T) {
	requireRoot(t)
	e, err := load(nil, Options{MaxServices: 8, MaxDests: 3000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.objs.Close() })
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	for _, idx := range []uint32{0, 1, 1023, 1024, 2999} {
		per := make([]lbStats, ncpu)
		for c := range per {
			per[c] = lbStats{Conns: uint64(idx) + 1, Pkts: uint64(c) + 2, Bytes: 3, OutPkts: 4, OutBytes: uint64(idx) * 5}
		}
		if err := e.objs.DestStats.Update(idx, per, ebpf.UpdateAny); err != nil {
			t.Fatal(err)
		}
	}
	all, err := readAllStats(e.objs.DestStats, 3000)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3000 {
		t.Fatalf("%d slots, want 3000", len(all))
	}
	for i := range all {
		if want := readStats(e.objs.DestStats, uint32(i)); all[i] != want {
			t.Fatalf("slot %d: %+v in the batch, %+v looked up", i, all[i], want)
		}
	}
	if all[1024].Conns != 1025*uint64(ncpu) {
		t.Errorf("slot 1024: %d connections, want %d", all[1024].Conns, 1025*ncpu)
	}
	if part, err := readAllStats(e.objs.DestStats, 100); err != nil || len(part) != 100 {
		t.Errorf("first 100 slots: %d, %v", len(part), err)
	}
}

// TestStatusLargeTable: with at least estBatchFrom real servers Status
// reads the counters in batches, and shows what a lookup of each slot
// shows: every service's and real server's counters and live loads.
func TestStatusLargeTable(t *testing.T) {
	labNS(t, 11, 12, 13, 14)
	e, err := load(nil, Options{MaxServices: 100, MaxDests: 400})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.objs.Close() })
	var batch []ipvs.Command
	for i := range 70 {
		s := ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip.Addr(), Port: uint16(1000 + i)}, Scheduler: "rr"}
		batch = append(batch, ipvs.Command{Op: ipvs.OpAddService, Service: &s})
		for n := range byte(4) {
			d := ipvs.Dest{Addr: rsIP(11 + n), Port: 80, Method: ipvs.Route, Weight: 1}
			batch = append(batch, ipvs.Command{Op: ipvs.OpAddDest, Service: &s, Dest: &d})
		}
	}
	if err := e.Apply(batch); err != nil {
		t.Fatal(err)
	}
	if len(e.dests) < estBatchFrom {
		t.Fatalf("%d real servers: too few for the batched path", len(e.dests))
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		t.Fatal(err)
	}
	for idx := range uint32(280) {
		per := make([]lbStats, ncpu)
		per[0] = lbStats{Conns: uint64(idx) + 1, Pkts: 2 * uint64(idx), Bytes: 100}
		if err := e.objs.DestStats.Update(idx, per, ebpf.UpdateAny); err != nil {
			t.Fatal(err)
		}
		if err := e.objs.SvcStats.Update(idx%70, per, ebpf.UpdateAny); err != nil {
			t.Fatal(err)
		}
		if err := e.objs.Loads.Update(idx, lbDestLoad{Active: int64(idx % 7), Inactive: int64(idx % 5)}, ebpf.UpdateAny); err != nil {
			t.Fatal(err)
		}
	}
	st := e.Status()
	if len(st) != 70 {
		t.Fatalf("%d services, want 70", len(st))
	}
	for _, ss := range st {
		s := e.svcs[ss.ServiceKey]
		if want := readStats(e.objs.SvcStats, s.index); ss.Stats != want {
			t.Errorf("%s: %+v, want %+v", ss.ServiceKey, ss.Stats, want)
		}
		for i, ds := range ss.Dests {
			idx := s.dests[i].index
			if want := readStats(e.objs.DestStats, idx); ds.Stats != want || want.Conns != uint64(idx)+1 {
				t.Errorf("%s -> %s: %+v, want %+v", ss.ServiceKey, ds.AddrPort(), ds.Stats, want)
			}
			if ds.ActiveConns != idx%7 || ds.InactConns != idx%5 {
				t.Errorf("%s -> %s: %d active, %d inactive, want %d, %d", ss.ServiceKey, ds.AddrPort(), ds.ActiveConns, ds.InactConns, idx%7, idx%5)
			}
		}
		// One service's status, read slot by slot, is its entry in the
		// whole table's, read in batches.
		if one, ok := e.StatusOf(ss.ServiceKey); !ok || !reflect.DeepEqual(one, ss) {
			t.Errorf("StatusOf(%s) = %+v, %v; Status has %+v", ss.ServiceKey, one, ok, ss)
		}
	}
	missing := ipvs.ServiceKey{Proto: ipvs.UDP, Addr: vip.Addr(), Port: 1000}
	if _, ok := e.StatusOf(missing); ok {
		t.Errorf("StatusOf(%s), which the engine does not serve: found", missing)
	}
}
