package sched

func init() { register("ovf", func(uint32) Scheduler { return &overflow{} }) }

// overflow is ip_vs_ovf: the first server with the highest weight among
// those whose active connections do not exceed their weight, so traffic
// overflows to the next weight once a server holds more than its weight.
type overflow struct{ destList }

func (s *overflow) Name() string { return "ovf" }

func (s *overflow) Schedule(Conn) *Dest {
	var best *Dest
	var hw int32
	for _, d := range s.load() {
		w := d.Weight()
		if !eligible(d) || d.ActiveConns() > w {
			continue
		}
		if best == nil || w > hw {
			best, hw = d, w
		}
	}
	return best
}
