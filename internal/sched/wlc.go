package sched

func init() { register("wlc", func(uint32) Scheduler { return &weightedLC{} }) }

// weightedLC is ip_vs_wlc: the server with the least overhead per weight,
// compared as loh*dw > doh*lw so that the first of equals in list order wins.
type weightedLC struct{ destList }

func (s *weightedLC) Name() string { return "wlc" }

func (s *weightedLC) Schedule(Conn) *Dest { return leastLoaded(s.load(), overhead) }

// leastLoaded is the loop wlc, sed, lblc and lblcr share: the first
// eligible server, then any later one whose load oh/weight is strictly
// lower. Later servers of weight 0 cannot win the comparison.
func leastLoaded(dests []*Dest, oh func(*Dest) int64) *Dest {
	var least *Dest
	var loh, lw int64
	for _, d := range dests {
		if least == nil {
			if eligible(d) {
				least, loh, lw = d, oh(d), int64(d.Weight())
			}
			continue
		}
		if !d.Available() || d.Overloaded() {
			continue
		}
		doh, dw := oh(d), int64(d.Weight())
		if loh*dw > doh*lw {
			least, loh, lw = d, doh, dw
		}
	}
	return least
}
