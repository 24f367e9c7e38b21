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
//
// Schedule chooses what the kernel's ip_vs_wrr_schedule chooses, in
// bounded time. The kernel lowers cw by di after each pass that found
// nothing; when the heaviest server that can take a connection weighs far
// less than mw (a server of weight 2147483647 overloaded or failed beside
// one of weight 1), that is billions of empty passes per connection.
// Every pass at a cw above that weight finds nothing, so Schedule lowers
// cw past them in one step, to where the kernel's walk would stand after
// them.
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
	// top is the weight of the heaviest server a pass could pick.
	var top int32
	for _, d := range s.dests {
		if d.Available() && !d.Overloaded() {
			top = max(top, d.Weight())
		}
	}
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
		s.cw = s.skipEmptyPasses(top)
		lastPass = s.cw <= s.di
		if lastPass && restarted && last != -1 {
			stop = last
		}
	}
}

// skipEmptyPasses is cw after the kernel's full passes that cannot pick
// a server, each lowering cw by di: those at a cw above top (the heaviest
// server that can be picked) and above di (at or below di a pass is the
// last one of a lap: the kernel then wraps or stops the walk, which
// Schedule does itself).
func (s *weightedRR) skipEmptyPasses(top int32) int32 {
	floor := int64(max(top, s.di))
	cw, di := int64(s.cw), int64(s.di)
	if cw <= floor {
		return s.cw
	}
	passes := (cw - floor + di - 1) / di
	return int32(cw - passes*di)
}

func (s *weightedRR) Cursor() Cursor {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Cursor{Last: s.cl, CW: s.cw, MW: s.mw, DI: s.di}
}

func (s *weightedRR) SetCursor(c Cursor) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cl = max(min(c.Last, len(s.dests)-1), -1)
	s.cw = c.CW
}
