package sched

import (
	"net/netip"
	"time"
)

func init() { register("lblcr", func(uint32) Scheduler { return newLBLCR() }) }

// lblcr is ip_vs_lblcr, locality-based least-connection with replication:
// each destination (virtual) address has a set of servers. A connection
// goes to the set's least loaded member (wlc among its available, not
// overloaded members); when there is none, or it is overloaded in the
// lblc sense, wlc over all servers picks one and adds it to the set. When
// the set has more than one member and has not changed for the
// expiration (24 h), its most loaded member is dropped.
//
// Table aging, Now and Expiry are as in lblc.
type lblcr struct {
	locality
	table map[netip.Addr]*lblcrEntry
}

type lblcrEntry struct {
	set     []*Dest // most recently added first, as the kernel's list
	lastMod time.Time
	lastUse time.Time
}

func newLBLCR() *lblcr {
	return &lblcr{table: map[netip.Addr]*lblcrEntry{}, locality: locality{Expiry: lblcExpiration}}
}

func (s *lblcr) Name() string { return "lblcr" }

func (e *lblcrEntry) insert(d *Dest, now time.Time) {
	if inList(e.set, d) {
		return
	}
	e.set = append([]*Dest{d}, e.set...)
	e.lastMod = now
}

// min is ip_vs_dest_set_min: wlc over the set's available members.
func (s *lblcr) min(e *lblcrEntry) *Dest {
	usable := func(d *Dest) bool { return d.Available() && inList(s.dests, d) }
	var least *Dest
	var loh, lw int64
	for _, d := range e.set {
		if d.Overloaded() {
			continue
		}
		if least == nil {
			if d.Weight() > 0 && usable(d) {
				least, loh, lw = d, overhead(d), int64(d.Weight())
			}
			continue
		}
		doh, dw := overhead(d), int64(d.Weight())
		if loh*dw > doh*lw && usable(d) {
			least, loh, lw = d, doh, dw
		}
	}
	return least
}

// max is ip_vs_dest_set_max: the set's most loaded member of weight > 0.
func (e *lblcrEntry) max() *Dest {
	var most *Dest
	var moh, mw int64
	for _, d := range e.set {
		dw := int64(d.Weight())
		if most == nil {
			if dw > 0 {
				most, moh, mw = d, overhead(d), dw
			}
			continue
		}
		if doh := overhead(d); moh*dw < doh*mw && dw > 0 {
			most, moh, mw = d, doh, dw
		}
	}
	return most
}

func (s *lblcr) Schedule(c Conn) *Dest {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	expire(&s.locality, now, s.table, func(e *lblcrEntry) time.Time { return e.lastUse })

	daddr := c.Virtual.Addr().Unmap()
	e, ok := s.table[daddr]
	if !ok {
		d := leastLoaded(s.dests, overhead)
		if d == nil {
			return nil
		}
		e = &lblcrEntry{lastUse: now}
		e.insert(d, now)
		s.table[daddr] = e
		return d
	}
	e.lastUse = now
	d := s.min(e)
	if len(e.set) > 1 && now.Sub(e.lastMod) > s.Expiry {
		if m := e.max(); m != nil {
			i := indexOf(e.set, m)
			e.set = append(e.set[:i:i], e.set[i+1:]...)
			e.lastMod = now
		}
	}
	if d != nil && !lblcOverloaded(d, s.dests) {
		return d
	}
	d = leastLoaded(s.dests, overhead)
	if d == nil {
		return nil
	}
	e.insert(d, now)
	return d
}
