package sched

func init() { register("fo", func(uint32) Scheduler { return &failOver{} }) }

// failOver is ip_vs_fo, weighted fail-over: the first server with the
// highest weight that is not overloaded.
type failOver struct{ destList }

func (s *failOver) Name() string { return "fo" }

func (s *failOver) Schedule(Conn) *Dest {
	var best *Dest
	var hw int32
	for _, d := range s.load() {
		if eligible(d) && d.Weight() > hw {
			best, hw = d, d.Weight()
		}
	}
	return best
}
