package sched

import (
	"sync"
	"sync/atomic"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

func init() {
	register("mh", func(flags uint32) Scheduler {
		return &maglev{flags: flags, last: map[*Dest]int32{}}
	})
}

// Maglev table parameters: the kernel's default CONFIG_IP_VS_MH_TAB_INDEX
// is 12 (Debian's kernels keep it), which selects primes[12-8] = 4093
// lookup slots and IP_VS_MH_TAB_BITS = 6 bits of relative weight.
const (
	mhTabSize = 4093
	mhTabBits = 6
)

// The kernel's fixed hsiphash keys for the Maglev offset and skip.
var (
	mhKey1 = sipKey{2654435761, 2654435761}
	mhKey2 = sipKey{2654446892, 2654446892}
)

// maglev is ip_vs_mh, Maglev consistent hashing. Each server gets an
// offset and a skip from a hash of its address and port; servers take
// turns in list order (turns in proportion to their last non-zero
// weight, scaled down to 6 bits) to claim their next preferred free slot
// until the 4093-slot table is full. A client address (and port with
// mh-port, ipvs.SchedFlag2) hashes to a slot. A quiesced or overloaded
// server keeps its slots: its clients are dropped, or with mh-fallback
// (ipvs.SchedFlag1) sent along the kernel's probe sequence.
type maglev struct {
	flags uint32
	mu    sync.Mutex
	last  map[*Dest]int32 // the kernel's dest->last_weight
	tab   atomic.Pointer[[]*Dest]
}

func (s *maglev) Name() string { return "mh" }

// mhHash is ip_vs_mh_hashkey.
func mhHash(fold uint32, port uint16, k sipKey, offset uint32) uint32 {
	return hsipHash32(k, offset+uint32(port)+fold)
}

func (s *maglev) Update(dests []*Dest) {
	list := inService(dests)
	s.mu.Lock()
	defer s.mu.Unlock()

	// last_weight is set when a server is added and on every change to a
	// non-zero weight, so quiescing (weight 0) keeps the table as it is.
	last := make(map[*Dest]int32, len(list))
	for _, d := range list {
		lw, seen := s.last[d]
		if w := d.Weight(); !seen || w != 0 {
			lw = w
		}
		last[d] = lw
	}
	s.last = last

	var g, maxw int32
	for _, d := range list {
		if w := last[d]; w > 0 {
			if g > 0 {
				g = gcd(w, g)
			} else {
				g = w
			}
			maxw = max(maxw, w)
		}
	}
	tab := make([]*Dest, mhTabSize)
	if g < 1 {
		s.tab.Store(&tab)
		return
	}
	shift := max(fls(maxw/g)-mhTabBits, 0)

	type setup struct {
		perm, skip uint32
		turns      int32
	}
	ds := make([]setup, len(list))
	for i, d := range list {
		fold, port := addrFold(d.Addr.Addr()), d.Addr.Port()
		off := mhHash(fold, port, mhKey1, 0) % mhTabSize
		ds[i].perm = off
		ds[i].skip = mhHash(fold, port, mhKey2, 0)%(mhTabSize-1) + 1
		lw := last[d]
		ds[i].turns = (lw / g) >> shift
		if ds[i].turns == 0 && lw != 0 {
			ds[i].turns = 1
		}
	}

	filled := make([]bool, mhTabSize)
	n, dt := 0, int32(0)
	for n < mhTabSize {
		for p := 0; p < len(list); {
			x := &ds[p]
			if x.turns < 1 {
				p++
				continue
			}
			for filled[x.perm] {
				x.perm += x.skip
				if x.perm >= mhTabSize {
					x.perm -= mhTabSize
				}
			}
			filled[x.perm] = true
			tab[x.perm] = list[p]
			if n++; n == mhTabSize {
				break
			}
			if dt++; dt >= x.turns {
				dt = 0
				p++
			}
		}
	}
	s.tab.Store(&tab)
}

// Table returns the Maglev ring (sched.Tabled).
func (s *maglev) Table() []*Dest {
	if t := s.tab.Load(); t != nil {
		return *t
	}
	return make([]*Dest, mhTabSize)
}

func (s *maglev) Schedule(c Conn) *Dest {
	tp := s.tab.Load()
	if tp == nil {
		return nil
	}
	t := *tp
	fold := addrFold(c.Client.Addr())
	var port uint16
	if s.flags&ipvs.SchedFlag2 != 0 {
		port = c.Client.Port()
	}
	ihash := mhHash(fold, port, mhKey1, 0) % mhTabSize
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
	for off := uint32(0); off < mhTabSize; off++ {
		roff := (off + ihash) % mhTabSize
		d = t[mhHash(fold, port, mhKey1, roff)%mhTabSize]
		if d == nil {
			return nil
		}
		if eligible(d) {
			return d
		}
	}
	return nil
}
