package sched

func init() { register("sed", func(uint32) Scheduler { return &shortestDelay{} }) }

// shortestDelay is ip_vs_sed, shortest expected delay: like wlc, but the
// overhead is activeconns+1, the delay the new connection would see.
type shortestDelay struct{ destList }

func (s *shortestDelay) Name() string { return "sed" }

func (s *shortestDelay) Schedule(Conn) *Dest { return leastLoaded(s.load(), sedOverhead) }

func sedOverhead(d *Dest) int64 { return int64(d.ActiveConns()) + 1 }
