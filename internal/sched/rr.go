package sched

import "sync"

func init() { register("rr", func(uint32) Scheduler { return &roundRobin{cur: -1} }) }

// roundRobin is ip_vs_rr: it walks the list from the server after the last
// one chosen, taking the first that is not overloaded and has a weight.
// Like the kernel's list cursor, its position survives Update; when the
// server under the cursor is deleted, the cursor falls back to the server
// before it (or to the list head), so the walk goes on where it would have.
type roundRobin struct {
	mu    sync.Mutex
	dests []*Dest
	cur   int // index of the last server chosen; -1 is the list head
}

func (s *roundRobin) Name() string { return "rr" }

func (s *roundRobin) Update(dests []*Dest) {
	next := inService(dests)
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := -1
	// Walk back from the cursor to the nearest server still in the list,
	// as ip_vs_rr_del_dest does for each deleted server.
	for i := s.cur; i >= 0; i-- {
		if j := indexOf(next, s.dests[i]); j >= 0 {
			cur = j
			break
		}
	}
	s.dests, s.cur = next, cur
}

func (s *roundRobin) Schedule(Conn) *Dest {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.dests)
	// One lap, starting after the cursor and ending on it.
	for k := 1; k <= n; k++ {
		i := (s.cur + k) % n
		if s.cur < 0 {
			i = k - 1
		}
		if d := s.dests[i]; eligible(d) {
			s.cur = i
			return d
		}
	}
	return nil
}

func (s *roundRobin) Cursor() Cursor {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Cursor{Last: s.cur}
}

func (s *roundRobin) SetCursor(c Cursor) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = max(min(c.Last, len(s.dests)-1), -1)
}
