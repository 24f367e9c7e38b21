package sched

import (
	"sync/atomic"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

func init() {
	register("sh", func(flags uint32) Scheduler { return &sourceHash{flags: flags} })
}

// sourceHash is ip_vs_sh. Its 256 buckets are dealt to the servers in list
// order, each server taking as many consecutive buckets as its weight (a
// server of weight 0 still takes one); the bucket is hash_32 of the client
// address, plus the client port with sh-port (ipvs.SchedFlag2). When the
// bucket's server is unavailable, quiesced or overloaded the connection
// is dropped, unless sh-fallback (ipvs.SchedFlag1) is set: then the
// kernel's probe sequence over the table picks the next usable server.
type sourceHash struct {
	flags uint32
	tab   atomic.Pointer[[hashTabSize]*Dest]
}

func (s *sourceHash) Name() string { return "sh" }

func (s *sourceHash) Update(dests []*Dest) {
	list := inService(dests)
	var t [hashTabSize]*Dest
	if len(list) > 0 {
		p, n := 0, int32(0)
		for i := range t {
			d := list[p]
			t[i] = d
			if n++; n >= d.Weight() {
				p, n = (p+1)%len(list), 0
			}
		}
	}
	s.tab.Store(&t)
}

// shHash is ip_vs_sh_hashkey.
func shHash(fold uint32, port uint16, offset uint32) uint32 {
	return (offset + hash32(uint32(port)+fold, hashTabBits)) & hashTabMask
}

// Table returns the 256 buckets (sched.Tabled).
func (s *sourceHash) Table() []*Dest {
	if t := s.tab.Load(); t != nil {
		return t[:]
	}
	return make([]*Dest, hashTabSize)
}

func (s *sourceHash) Schedule(c Conn) *Dest {
	t := s.tab.Load()
	if t == nil {
		return nil
	}
	fold := addrFold(c.Client.Addr())
	var port uint16
	if s.flags&ipvs.SchedFlag2 != 0 {
		port = c.Client.Port()
	}
	ihash := shHash(fold, port, 0)
	d := t[ihash]
	if d == nil {
		return nil
	}
	if eligible(d) {
		return d
	}
	if s.flags&ipvs.SchedFlag1 == 0 {
		return nil
	}
	for off := uint32(0); off < hashTabSize; off++ {
		d = t[shHash(fold, port, (off+ihash)%hashTabSize)]
		if d == nil {
			return nil
		}
		if eligible(d) {
			return d
		}
	}
	return nil
}
