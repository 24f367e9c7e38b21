package proxy

import (
	"sync"
	"sync/atomic"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// segmentSize turns byte counts into packet counts. The proxy never sees
// TCP segments, so a transfer of n bytes (one read of a buffered
// direction, or what splice moved in one tick) is counted as
// n/segmentSize packets rounded up (a full Ethernet MSS); a UDP datagram
// is one packet.
const segmentSize = 1460

func segments(n int64) uint64 { return uint64((n + segmentSize - 1) / segmentSize) }

// counters are the raw cumulative counters, updated on the data path with
// atomics only.
type counters struct {
	conns, inPkts, outPkts, inBytes, outBytes atomic.Uint64
}

func (c *counters) load() ipvs.Stats {
	return ipvs.Stats{
		Conns:    c.conns.Load(),
		InPkts:   c.inPkts.Load(),
		OutPkts:  c.outPkts.Load(),
		InBytes:  c.inBytes.Load(),
		OutBytes: c.outBytes.Load(),
	}
}

// stats are a service's or a real server's counters with their rate
// estimator (ip_vs_est.c): every 2 seconds the rate over the last period
// is folded into an exponentially weighted average with weight 1/4, kept
// in the kernel's fixed point (cps and pps scaled by 2^10 per second, bps
// by 2^5).
type stats struct {
	raw counters

	mu                                sync.Mutex
	base                              ipvs.Stats // raw values at the last Zero
	last                              ipvs.Stats // raw values at the last estimation
	cps, inpps, outpps, inbps, outbps int64
}

// estimate is the kernel's estimation_timer step for one stats block.
func (s *stats) estimate() {
	cur := s.raw.load()
	s.mu.Lock()
	defer s.mu.Unlock()
	ewma := func(avg *int64, now, last uint64, shift uint) {
		rate := int64((now - last) << shift)
		*avg += (rate - *avg) >> 2
	}
	ewma(&s.cps, cur.Conns, s.last.Conns, 9)
	ewma(&s.inpps, cur.InPkts, s.last.InPkts, 9)
	ewma(&s.outpps, cur.OutPkts, s.last.OutPkts, 9)
	ewma(&s.inbps, cur.InBytes, s.last.InBytes, 4)
	ewma(&s.outbps, cur.OutBytes, s.last.OutBytes, 4)
	s.last = cur
}

// snapshot returns the counters since the last Zero and the rates, as
// ip_vs_read_estimator rounds them.
func (s *stats) snapshot() (ipvs.Stats, ipvs.Rates) {
	cur := s.raw.load()
	s.mu.Lock()
	defer s.mu.Unlock()
	st := ipvs.Stats{
		Conns:    cur.Conns - s.base.Conns,
		InPkts:   cur.InPkts - s.base.InPkts,
		OutPkts:  cur.OutPkts - s.base.OutPkts,
		InBytes:  cur.InBytes - s.base.InBytes,
		OutBytes: cur.OutBytes - s.base.OutBytes,
	}
	rd := func(v int64, round int64, shift uint) uint64 { return uint64(max(v+round, 0) >> shift) }
	r := ipvs.Rates{
		CPS:    rd(s.cps, 0x1FF, 10),
		InPPS:  rd(s.inpps, 0x1FF, 10),
		OutPPS: rd(s.outpps, 0x1FF, 10),
		InBPS:  rd(s.inbps, 0xF, 5),
		OutBPS: rd(s.outbps, 0xF, 5),
	}
	return st, r
}

// zero is ipvsadm -Z: counters restart from 0 and the estimator from
// scratch (ip_vs_zero_stats).
func (s *stats) zero() {
	cur := s.raw.load()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.base, s.last = cur, cur
	s.cps, s.inpps, s.outpps, s.inbps, s.outbps = 0, 0, 0, 0, 0
}
