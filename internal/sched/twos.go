package sched

import "math/rand/v2"

func init() { register("twos", func(uint32) Scheduler { return &Twos{} }) }

// Twos is ip_vs_twos (Linux 6.8+), the power of two random choices: it
// draws two servers at random in proportion to their weights and takes
// the one with the lower overhead per weight (the first draw on a tie).
//
// Rand is its random source (the kernel's get_random_u32); nil uses
// math/rand/v2. Tests and differential checks set it to replay a sequence;
// it must be safe for concurrent use if Schedule is called concurrently.
type Twos struct {
	destList
	Rand func() uint32
}

// Name is "twos".
func (s *Twos) Name() string { return "twos" }

// Schedule picks one of two weighted random draws.
func (s *Twos) Schedule(Conn) *Dest {
	dests := s.load()
	var total int64
	var any *Dest
	for _, d := range dests {
		if eligible(d) {
			total += int64(d.Weight())
			any = d
		}
	}
	if any == nil {
		return nil
	}
	rnd := s.Rand
	if rnd == nil {
		rnd = rand.Uint32
	}
	// Draws in [0, total], as the kernel's "% (total + 1)".
	total++
	r1 := int64(rnd()) % total
	r2 := int64(rnd()) % total

	var c1, c2 *Dest
	var w1, w2, oh1, oh2 int64
	for _, d := range dests {
		if !eligible(d) {
			continue
		}
		w := int64(d.Weight())
		r1 -= w
		r2 -= w
		if r1 <= 0 && c1 == nil {
			c1, w1, oh1 = d, w, overhead(d)
		}
		if r2 <= 0 && c2 == nil {
			c2, w2, oh2 = d, w, overhead(d)
		}
		if c1 != nil && c2 != nil {
			break
		}
	}
	if c1 == nil { // cannot happen: r1 <= total-1 is used up by the last server
		c1 = any
	}
	if c2 != nil && w2*oh1 > w1*oh2 {
		return c2
	}
	return c1
}
