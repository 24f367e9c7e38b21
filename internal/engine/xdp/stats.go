package xdp

import (
	"errors"
	"time"

	"github.com/cilium/ebpf"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// estInterval is the IPVS estimator's period.
const estInterval = 2 * time.Second

type estKey struct {
	svc   bool
	index uint32
}

// estimator is the kernel's ip_vs_est: every 2 s the rates move a quarter
// of the way to the last period's rate, kept scaled (conns and packets by
// 2^10, bytes by 2^5) as the kernel does.
type estimator struct {
	last               ipvs.Stats
	primed             bool
	cps, inpps, outpps int64
	inbps, outbps      int64
}

func (x *estimator) tick(cur ipvs.Stats) {
	if !x.primed {
		x.last, x.primed = cur, true
		return
	}
	step := func(rate *int64, now, last uint64, shift uint) {
		r := int64(now-last) << shift / 2 // per second, scaled
		*rate += (r - *rate) >> 2
	}
	step(&x.cps, cur.Conns, x.last.Conns, 10)
	step(&x.inpps, cur.InPkts, x.last.InPkts, 10)
	step(&x.outpps, cur.OutPkts, x.last.OutPkts, 10)
	step(&x.inbps, cur.InBytes, x.last.InBytes, 5)
	step(&x.outbps, cur.OutBytes, x.last.OutBytes, 5)
	x.last = cur
}

func (x *estimator) rates() ipvs.Rates {
	if x == nil {
		return ipvs.Rates{}
	}
	r := func(v int64, shift uint) uint64 {
		if v <= 0 {
			return 0
		}
		return uint64((v + 1<<(shift-1) - 1) >> shift)
	}
	return ipvs.Rates{CPS: r(x.cps, 10), InPPS: r(x.inpps, 10), OutPPS: r(x.outpps, 10), InBPS: r(x.inbps, 5), OutBPS: r(x.outbps, 5)}
}

// readStats sums a per-CPU stats slot. DR and TUN see no replies, so the
// out counters stay 0, as with IPVS; NAT and FullNAT count the replies.
func readStats(m *ebpf.Map, idx uint32) ipvs.Stats {
	var per []lbStats
	var s ipvs.Stats
	if err := m.Lookup(idx, &per); err != nil {
		return s
	}
	for _, p := range per {
		s.Conns += p.Conns
		s.InPkts += p.Pkts
		s.InBytes += p.Bytes
		s.OutPkts += p.OutPkts
		s.OutBytes += p.OutBytes
	}
	return s
}

func sub(a, b ipvs.Stats) ipvs.Stats {
	return ipvs.Stats{Conns: a.Conns - b.Conns, InPkts: a.InPkts - b.InPkts, OutPkts: a.OutPkts - b.OutPkts, InBytes: a.InBytes - b.InBytes, OutBytes: a.OutBytes - b.OutBytes}
}

// estimate moves every rate a step. The counters are read without the
// engine's lock, so that changes need not wait: one system call per slot
// for a small table, the whole maps in batches for a large one (40,000
// real servers were 40,000 system calls every 2 s).
func (e *Engine) estimate() {
	e.mu.Lock()
	keys := make([]estKey, 0, len(e.est))
	xs := make([]*estimator, 0, len(e.est))
	for k, x := range e.est {
		keys = append(keys, k)
		xs = append(xs, x)
	}
	nSvc, nDest := e.svcIdx.size(), e.destIdx.size()
	e.mu.Unlock()
	cur := make([]ipvs.Stats, len(keys))
	if len(keys) < estBatchFrom {
		for i, k := range keys {
			m := e.objs.DestStats
			if k.svc {
				m = e.objs.SvcStats
			}
			cur[i] = readStats(m, k.index)
		}
	} else {
		svcs, err := readAllStats(e.objs.SvcStats, nSvc)
		if err != nil {
			e.log.Error("reading the services' counters", "error", err)
			return
		}
		dests, err := readAllStats(e.objs.DestStats, nDest)
		if err != nil {
			e.log.Error("reading the real servers' counters", "error", err)
			return
		}
		for i, k := range keys {
			all := dests
			if k.svc {
				all = svcs
			}
			if int(k.index) < len(all) {
				cur[i] = all[k.index]
			}
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for i, k := range keys {
		if e.est[k] == xs[i] { // not a slot reused meanwhile
			xs[i].tick(cur[i])
		}
	}
}

// estBatchFrom is the number of estimators from which estimate reads the
// counters in batches.
const estBatchFrom = 256

// readAllStats sums the per-CPU stats of the first n slots of m, read
// statsBatch slots per system call.
func readAllStats(m *ebpf.Map, n int) ([]ipvs.Stats, error) {
	const statsBatch = 1024
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, err
	}
	out := make([]ipvs.Stats, n)
	keys := make([]uint32, statsBatch)
	vals := make([]lbStats, statsBatch*ncpu)
	var cursor ebpf.MapBatchCursor
	for {
		got, err := m.BatchLookup(&cursor, keys, vals, nil)
		for i := range got {
			if int(keys[i]) >= n {
				continue
			}
			s := &out[keys[i]]
			for _, p := range vals[i*ncpu : (i+1)*ncpu] {
				s.Conns += p.Conns
				s.InPkts += p.Pkts
				s.InBytes += p.Bytes
				s.OutPkts += p.OutPkts
				s.OutBytes += p.OutBytes
			}
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// Status returns every service with its counters and rates.
func (e *Engine) Status() []ipvs.ServiceStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]ipvs.ServiceStatus, 0, len(e.order))
	// A large table's counters are read in batches (readAllStats): one
	// system call per slot was 130,000 for 10,000 services of 4.
	svcStats, destStats, load := e.slotReaders()
	if len(e.dests) >= estBatchFrom {
		svcs, err1 := readAllStats(e.objs.SvcStats, e.svcIdx.size())
		dests, err2 := readAllStats(e.objs.DestStats, e.destIdx.size())
		loads, err3 := e.readLoads()
		if err1 == nil && err2 == nil && err3 == nil {
			svcStats = func(idx uint32) ipvs.Stats { return svcs[idx] }
			destStats = func(idx uint32) ipvs.Stats { return dests[idx] }
			load = func(idx uint32) (lbDestLoad, bool) { return loads[idx], true }
		}
	}
	for _, k := range e.order {
		if s := e.svcs[k]; s != nil {
			out = append(out, e.status(s, svcStats, destStats, load))
		}
	}
	return out
}

// StatusOf returns the status of the service key names, reading only its
// own and its real servers' slots of the maps.
func (e *Engine) StatusOf(key ipvs.ServiceKey) (ipvs.ServiceStatus, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.svcs[key]
	if s == nil {
		return ipvs.ServiceStatus{}, false
	}
	svcStats, destStats, load := e.slotReaders()
	return e.status(s, svcStats, destStats, load), true
}

// slotReaders read one slot of the service counters, the real server
// counters and the real servers' live loads: one system call each.
func (e *Engine) slotReaders() (svcStats, destStats func(uint32) ipvs.Stats, load func(uint32) (lbDestLoad, bool)) {
	svcStats = func(idx uint32) ipvs.Stats { return readStats(e.objs.SvcStats, idx) }
	destStats = func(idx uint32) ipvs.Stats { return readStats(e.objs.DestStats, idx) }
	load = func(idx uint32) (l lbDestLoad, ok bool) { return l, e.objs.Loads.Lookup(idx, &l) == nil }
	return svcStats, destStats, load
}

// status is s with its counters and rates, read through the given
// functions; e.mu is held.
func (e *Engine) status(s *svcState, svcStats, destStats func(uint32) ipvs.Stats, load func(uint32) (lbDestLoad, bool)) ipvs.ServiceStatus {
	st := ipvs.ServiceStatus{
		Service: s.cfg,
		Stats:   sub(svcStats(s.index), e.svcBase[s.index]),
		Rates:   e.est[estKey{svc: true, index: s.index}].rates(),
		Dests:   make([]ipvs.DestStatus, 0, len(s.dests)),
	}
	for _, d := range s.dests {
		c := e.counts[d.index]
		if l, ok := load(d.index); ok {
			// The program's live counts are newer than the last scan.
			c.active, c.inactive = uint32(max(l.Active, 0)), uint32(max(l.Inactive, 0))
		}
		st.Dests = append(st.Dests, ipvs.DestStatus{
			Dest:         d.cfg,
			ActiveConns:  c.active,
			InactConns:   c.inactive,
			PersistConns: c.persist,
			Stats:        sub(destStats(d.index), e.destBase[d.index]),
			Rates:        e.est[estKey{index: d.index}].rates(),
		})
	}
	return st
}

// Zero clears the counters of one service (and its real servers), or of
// all when key is nil.
func (e *Engine) Zero(key *ipvs.ServiceKey) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for k, s := range e.svcs {
		if key != nil && *key != k {
			continue
		}
		e.svcBase[s.index] = readStats(e.objs.SvcStats, s.index)
		e.est[estKey{svc: true, index: s.index}] = &estimator{}
		for _, d := range s.all {
			e.destBase[d.index] = readStats(e.objs.DestStats, d.index)
			e.est[estKey{index: d.index}] = &estimator{}
		}
	}
}
