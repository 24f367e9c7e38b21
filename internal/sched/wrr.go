package sched

import "sync"

func init() { register("wrr", func(uint32) Scheduler { return &weightedRR{cl: -1} }) }

// weightedRR is ip_vs_wrr. It makes passes over the list with a current
// weight cw that starts at the maximum weight mw and steps down by di, the
// gcd of the weights; a pass picks the servers whose weight is at least
// cw. mw is lowered by di-1 so that the last pass is at cw=1.
//
// Update is the kernel's dest_changed hook: the cursor goes back to the
// list head and cw is kept when it still fits (so, as in the kernel, the
// sequence after several additions depends on the order they came in).
type weightedRR struct {
	mu    sync.Mutex
	dests []*Dest
	cl    int // index of the current server; -1 is the list head
	cw    int32
	mw    int32
	di    int32
}

func (s *weightedRR) Name() string { return "wrr" }

func (s *weightedRR) Update(dests []*Dest) {
	next := inService(dests)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dests = next
	var g, maxw int32
	for _, d := range next {
		w := d.Weight()
		if w > 0 {
			if g > 0 {
				g = gcd(w, g)
			} else {
				g = w
			}
		}
		maxw = max(maxw, w)
	}
	if g == 0 {
		g = 1
	}
	s.cl = -1
	s.di = g
	s.mw = maxw - (g - 1)
	switch {
	case s.cw > s.mw || s.cw == 0:
		s.cw = s.mw
	case s.di > 1:
		s.cw = (s.cw/s.di)*s.di + 1
	}
}

func (s *weightedRR) Schedule(Conn) *Dest {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mw == 0 {
		return nil
	}
	n := len(s.dests)
	pos, last, stop := s.cl, s.cl, -2
	lastPass, restarted := false, false
	for {
		for i := pos + 1; i < n; i++ {
			d := s.dests[i]
			if d.Available() && !d.Overloaded() && d.Weight() >= s.cw {
				s.cl = i
				return d
			}
			if i == stop {
				s.cl = i
				return nil
			}
		}
		pos = -1
		s.cw -= s.di
		if s.cw <= 0 {
			s.cw = s.mw
			// A full lap at weight >= 1 found nothing.
			if lastPass || last == -1 {
				s.cl = -1
				return nil
			}
			restarted = true
		}
		lastPass = s.cw <= s.di
		if lastPass && restarted && last != -1 {
			stop = last
		}
	}
}
