package xdp

import (
	"fmt"
	"net/netip"

	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/sched"
)

// Table sizes, as in bpf/xdp_lb.h.
const (
	tabSize     = 4096
	tabChunk    = 16 // slots per element of a table's map
	shTabSize   = 256
	mhTabSize   = 4093
	maxSvcDests = 256
	wrrHdr      = 3 // an rr/wrr table: n, mw, di, then the servers
	maxWRRDests = tabSize - wrrHdr
	noDest      = 0xffffffff
)

// schedKinds are the schedulers the BPF program implements and how.
var schedKinds = map[string]lbSchedKind{
	"rr":    lbSchedKindSCHED_WRR,
	"wrr":   lbSchedKindSCHED_WRR,
	"sh":    lbSchedKindSCHED_SH,
	"dh":    lbSchedKindSCHED_DH,
	"mh":    lbSchedKindSCHED_MH,
	"lc":    lbSchedKindSCHED_LC,
	"wlc":   lbSchedKindSCHED_WLC,
	"sed":   lbSchedKindSCHED_SED,
	"nq":    lbSchedKindSCHED_NQ,
	"fo":    lbSchedKindSCHED_FO,
	"ovf":   lbSchedKindSCHED_OVF,
	"lblc":  lbSchedKindSCHED_LBLC,
	"lblcr": lbSchedKindSCHED_LBLCR,
}

// tableDest is a real server in service as the table builder sees it.
type tableDest struct {
	index      uint32
	addr       netip.AddrPort
	weight     int32
	lastWeight int32 // mh: the last non-zero weight (the kernel's last_weight)
}

// buildTable computes a service's scheduler table from the Go reference
// schedulers in internal/sched, so that the BPF program makes the same
// choices:
//   - rr, wrr: the servers in the kernel's list order, which BPF walks as
//     ip_vs_wrr does from the service's cursor (writeWalk adds the
//     header and carries the cursor over);
//   - sh, dh: the 256 buckets, copied from the Go scheduler's own table
//     (sched.Tabled), and mh: the 4093-slot Maglev ring (sched.MaglevRing);
//   - lc, wlc, sed, nq, fo, ovf: the servers in the kernel's list order.
//
// With scratch, an mh table is built in (and aliases) scratch's memory.
func buildTable(name string, ds []tableDest, scratch *tableScratch) ([]uint32, error) {
	kind, ok := schedKinds[name]
	if !ok {
		return nil, notImplemented(name)
	}
	limit := maxSvcDests
	switch kind {
	case lbSchedKindSCHED_WRR:
		limit = maxWRRDests
	case lbSchedKindSCHED_SH, lbSchedKindSCHED_DH:
		return hashTable(name, ds)
	case lbSchedKindSCHED_MH:
		return maglevTable(ds, scratch)
	}
	if len(ds) > limit {
		return nil, fmt.Errorf("scheduler %s: %d real servers, the xdp engine takes at most %d per service", name, len(ds), limit)
	}
	t := make([]uint32, len(ds))
	for i, d := range ds {
		t[i] = d.index
	}
	return t, nil
}

// checkTable refuses what buildTable would, without building the table.
func checkTable(name string, ds []ipvs.Dest) error {
	kind, ok := schedKinds[name]
	if !ok {
		return notImplemented(name)
	}
	limit := maxSvcDests
	switch kind {
	case lbSchedKindSCHED_WRR:
		limit = maxWRRDests
	case lbSchedKindSCHED_SH, lbSchedKindSCHED_DH, lbSchedKindSCHED_MH:
		return nil
	}
	if len(ds) > limit {
		return fmt.Errorf("scheduler %s: %d real servers, the xdp engine takes at most %d per service", name, len(ds), limit)
	}
	return nil
}

func notImplemented(name string) error {
	return fmt.Errorf("scheduler %q is not implemented on the xdp engine yet; use another scheduler, or gvsd --engine proxy", name)
}

// goDests makes fresh reference servers with the given weights and a map
// back to the BPF indexes.
func goDests(ds []tableDest, weight func(tableDest) int32) ([]*sched.Dest, map[*sched.Dest]uint32) {
	list := make([]*sched.Dest, len(ds))
	back := make(map[*sched.Dest]uint32, len(ds))
	for i, d := range ds {
		x := sched.NewDest(ipvs.Dest{Addr: d.addr.Addr(), Port: d.addr.Port(), Weight: weight(d)})
		list[i] = x
		back[x] = d.index
	}
	return list, back
}

// hashTable is the sh or dh scheduler's 256 buckets, as internal/sched
// builds them: without flags (no port in the hash, no fallback), and a
// weight of 0 takes one bucket like a weight of 1, so every server is in
// the table and the program skips the unavailable ones.
func hashTable(name string, ds []tableDest) ([]uint32, error) {
	if len(ds) == 0 {
		t := make([]uint32, shTabSize)
		for i := range t {
			t[i] = noDest
		}
		return t, nil
	}
	return readTable(name, ds, func(d tableDest) int32 { return max(d.weight, 1) })
}

// maglevTable is the mh scheduler's 4093-slot Maglev ring, built by
// internal/sched's MaglevRing (the Go scheduler's own) from the servers'
// last non-zero weights, servers turned into their indexes.
func maglevTable(ds []tableDest, scratch *tableScratch) ([]uint32, error) {
	if scratch == nil {
		scratch = &tableScratch{}
	}
	addrs := make([]netip.AddrPort, len(ds))
	lw := make([]int32, len(ds))
	for i, d := range ds {
		addrs[i], lw[i] = d.addr, d.lastWeight
	}
	slots, owners := sched.MaglevRing(scratch.slots, addrs, lw)
	scratch.slots = slots
	t := scratch.table
	if cap(t) < sched.MaglevSlots {
		t = make([]uint32, sched.MaglevSlots)
		scratch.table = t
	}
	t = t[:sched.MaglevSlots]
	for i := range t {
		t[i] = noDest
		if owners != nil {
			t[i] = ds[owners[slots[i]]].index
		}
	}
	return t, nil
}

// tableScratch is memory that building and writing one service's table
// after another reuses (under Engine.mu): the kernel copies what it is
// given, and a batch of 10,000 mh services would otherwise allocate
// 40 KiB for each.
type tableScratch struct {
	slots  []uint16
	table  []uint32
	chunks [][tabChunk]uint32
	keys   []uint32
}

// readTable has the Go scheduler build its table (sched.Tabled) and
// copies it, servers turned into their indexes.
func readTable(name string, ds []tableDest, weight func(tableDest) int32) ([]uint32, error) {
	s, err := sched.New(name, 0)
	if err != nil {
		return nil, err
	}
	list, back := goDests(ds, weight)
	s.Update(list)
	tab := s.(sched.Tabled).Table()
	t := make([]uint32, len(tab))
	for i, d := range tab {
		t[i] = noDest
		if d != nil {
			t[i] = back[d]
		}
	}
	return t, nil
}
