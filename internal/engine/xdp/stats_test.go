package xdp

import (
	"testing"

	"github.com/cilium/ebpf"
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
