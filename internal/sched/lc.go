package sched

func init() { register("lc", func(uint32) Scheduler { return &leastConn{} }) }

// leastConn is ip_vs_lc: the first server in list order with the least
// overhead (activeconns*256 + inactconns), ignoring weights except that
// weight 0 is quiesced.
type leastConn struct{ destList }

func (s *leastConn) Name() string { return "lc" }

func (s *leastConn) Schedule(Conn) *Dest {
	var least *Dest
	var loh int64
	for _, d := range s.load() {
		if !eligible(d) {
			continue
		}
		if doh := overhead(d); least == nil || doh < loh {
			least, loh = d, doh
		}
	}
	return least
}
