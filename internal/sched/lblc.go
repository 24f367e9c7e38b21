package sched

import (
	"net/netip"
	"sync"
	"time"
)

func init() { register("lblc", func(uint32) Scheduler { return newLBLC() }) }

// Timers of the lblc and lblcr tables (ip_vs_lblc.c, ip_vs_lblcr.c).
const (
	lblcCheckInterval = 60 * time.Second // CHECK_EXPIRE_INTERVAL
	lblcEntryTimeout  = 6 * time.Minute  // ENTRY_TIMEOUT
	lblcExpiration    = 24 * time.Hour   // sysctl lblc_expiration default
	lblcFullCheck     = 30               // COUNT_FOR_FULL_EXPIRATION
	lblcMaxEntries    = (1 << 10) * 16   // IP_VS_LBLC_TAB_SIZE*16
)

// lblc is ip_vs_lblc, locality-based least-connection: each destination
// (virtual) address is served by the server it was last given, found by
// wlc, until that server is gone, quiesced or overloaded in the lblc sense
// (more active connections than its weight while some server has fewer
// than half its weight).
//
// The table is aged like the kernel's: a collector that runs every minute
// drops, every 30th run, entries unused for the expiration (24 h), and
// when the table holds more than 16384 entries, entries unused for 6
// minutes. Here the collector runs from Schedule when a minute has passed
// on the clock (Now, time.Now when nil; tests set it).
type lblc struct {
	locality
	table map[netip.Addr]*lblcEntry
}

// locality is what lblc and lblcr share: the service's servers, the clock
// and the collector of their per-destination table.
type locality struct {
	mu     sync.Mutex
	dests  []*Dest
	gc     lblcGC
	Now    func() time.Time
	Expiry time.Duration // lblc_expiration, lblcr_expiration
}

func (s *locality) Update(dests []*Dest) {
	list := inService(dests)
	s.mu.Lock()
	s.dests = list
	s.mu.Unlock()
}

func (s *locality) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// expire runs the collector of s's table at now: at a full check it
// drops the entries unused for the expiration, else (the table over its
// size) those unused for lblcEntryTimeout. lastUse is an entry's last use.
func expire[E any](s *locality, now time.Time, table map[netip.Addr]E, lastUse func(E) time.Time) {
	s.gc.run(now, len(table), func(full bool) {
		idle := lblcEntryTimeout
		if full {
			idle = s.Expiry
		}
		for a, e := range table {
			if now.Sub(lastUse(e)) >= idle {
				delete(table, a)
			}
		}
	})
}

type lblcEntry struct {
	dest    *Dest
	lastUse time.Time
}

func newLBLC() *lblc {
	return &lblc{table: map[netip.Addr]*lblcEntry{}, locality: locality{Expiry: lblcExpiration}}
}

func (s *lblc) Name() string { return "lblc" }

func (s *lblc) Schedule(c Conn) *Dest {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	expire(&s.locality, now, s.table, func(e *lblcEntry) time.Time { return e.lastUse })

	daddr := c.Virtual.Addr().Unmap()
	if e, ok := s.table[daddr]; ok {
		e.lastUse = now
		d := e.dest
		if inList(s.dests, d) && d.Available() && d.Weight() > 0 && !lblcOverloaded(d, s.dests) {
			return d
		}
	}
	d := leastLoaded(s.dests, overhead)
	if d == nil {
		return nil
	}
	if e, ok := s.table[daddr]; ok && e.dest == d {
		return d
	}
	s.table[daddr] = &lblcEntry{dest: d, lastUse: now}
	return d
}

// lblcOverloaded is the kernel's is_overloaded for lblc and lblcr: more
// active connections than weight, while another server is below half of
// its weight.
func lblcOverloaded(d *Dest, dests []*Dest) bool {
	if d.ActiveConns() <= d.Weight() {
		return false
	}
	for _, x := range dests {
		if x.Available() && x.ActiveConns()*2 < x.Weight() {
			return true
		}
	}
	return false
}

func inList(dests []*Dest, d *Dest) bool { return indexOf(dests, d) >= 0 }

// lblcGC emulates the kernel's periodic_timer of the lblc and lblcr tables.
type lblcGC struct {
	next    time.Time
	counter int
}

// run calls collect(full) for each minute tick that has passed: a full
// expiry check every 30th tick, else, when the table is over its size, a
// sweep of the entries idle for 6 minutes (all of them: the kernel stops
// after a goal of entries, bucket by bucket).
func (g *lblcGC) run(now time.Time, entries int, collect func(full bool)) {
	if g.next.IsZero() {
		g.next, g.counter = now.Add(lblcCheckInterval), 1
		return
	}
	for !now.Before(g.next) {
		if now.Sub(g.next) > lblcFullCheck*lblcCheckInterval {
			// A long pause: one full check stands for the missed ticks.
			g.next, g.counter = now, 0
		}
		switch {
		case g.counter%lblcFullCheck == 0:
			collect(true)
			g.counter = 1
		case entries <= lblcMaxEntries:
			g.counter++
		default:
			collect(false)
		}
		g.next = g.next.Add(lblcCheckInterval)
	}
}
