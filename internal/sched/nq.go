package sched

func init() { register("nq", func(uint32) Scheduler { return &neverQueue{} }) }

// neverQueue is ip_vs_nq: the first idle server (no active connection) in
// list order, else the sed choice.
type neverQueue struct{ destList }

func (s *neverQueue) Name() string { return "nq" }

func (s *neverQueue) Schedule(Conn) *Dest {
	var least *Dest
	var loh, lw int64
	for _, d := range s.load() {
		if !eligible(d) {
			continue
		}
		if d.ActiveConns() == 0 {
			return d
		}
		doh, dw := sedOverhead(d), int64(d.Weight())
		if least == nil || loh*dw > doh*lw {
			least, loh, lw = d, doh, dw
		}
	}
	return least
}
