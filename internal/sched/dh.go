package sched

import "sync/atomic"

func init() { register("dh", func(uint32) Scheduler { return &destHash{} }) }

// hashTabBits and hashTabSize are the kernel's IP_VS_DH_TAB_BITS and
// IP_VS_SH_TAB_BITS defaults: 256 buckets.
const (
	hashTabBits = 8
	hashTabSize = 1 << hashTabBits
	hashTabMask = hashTabSize - 1
)

// destHash is ip_vs_dh: 256 buckets dealt to the servers in list order,
// one each round, and the bucket is chosen by hash_32 of the destination
// (virtual) address. There is no fallback: if the bucket's server is
// unavailable, quiesced or overloaded the connection is not scheduled.
type destHash struct {
	tab atomic.Pointer[[hashTabSize]*Dest]
}

func (s *destHash) Name() string { return "dh" }

func (s *destHash) Update(dests []*Dest) {
	list := inService(dests)
	var t [hashTabSize]*Dest
	if len(list) > 0 {
		for i := range t {
			t[i] = list[i%len(list)]
		}
	}
	s.tab.Store(&t)
}

// Table returns the 256 buckets (sched.Tabled).
func (s *destHash) Table() []*Dest {
	if t := s.tab.Load(); t != nil {
		return t[:]
	}
	return make([]*Dest, hashTabSize)
}

func (s *destHash) Schedule(c Conn) *Dest {
	t := s.tab.Load()
	if t == nil {
		return nil
	}
	d := t[hash32(addrFold(c.Virtual.Addr()), hashTabBits)]
	if d == nil || !eligible(d) {
		return nil
	}
	return d
}
