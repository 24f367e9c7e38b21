package sched

import (
	"net/netip"
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

// MaglevSlots is the number of slots of a Maglev ring (MaglevRing).
const MaglevSlots = mhTabSize

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
//
// Update records the servers and their last weights; the ring itself is
// built from them when a connection (or Table) first needs it, so a
// service that gets no traffic costs no ring, and a batch that changes a
// service several times builds it once.
type maglev struct {
	flags uint32
	mu    sync.Mutex
	last  map[*Dest]int32 // the kernel's dest->last_weight
	ring  atomic.Pointer[mhRing]
}

// mhRing is the ring of one Update: built once, on first use, from the
// servers and their last weights as they were at the Update.
type mhRing struct {
	once   sync.Once
	list   []*Dest // the servers in service, in list order
	lw     []int32 // their last weights
	slots  []uint16
	owners []*Dest // slots[i] is the position in owners of slot i's server
}

func (r *mhRing) get() ([]uint16, []*Dest) {
	r.once.Do(func() {
		addrs := make([]netip.AddrPort, len(r.list))
		for i, d := range r.list {
			addrs[i] = d.Addr
		}
		slots, pos := MaglevRing(nil, addrs, r.lw)
		r.slots, r.owners = slots, make([]*Dest, len(pos))
		for i, p := range pos {
			r.owners[i] = r.list[p]
		}
		r.list, r.lw = nil, nil
	})
	return r.slots, r.owners
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
	lw := make([]int32, len(list))
	for i, d := range list {
		w, seen := s.last[d]
		if cur := d.Weight(); !seen || cur != 0 {
			w = cur
		}
		last[d], lw[i] = w, w
	}
	s.last = last
	s.ring.Store(&mhRing{list: list, lw: lw})
}

// MaglevRing fills the 4093-slot Maglev lookup table as the kernel's
// ip_vs_mh_populate does, for servers at addrs (in the kernel's list
// order) whose last non-zero weights are lastWeights. A server's offset
// and skip come from a hash of its address and port; servers take turns
// in list order, as many as their weight divided by the weights' gcd and
// scaled down to 6 bits (at least 1), each claiming its next preferred
// free slot, until the table is full. owners are the positions in addrs
// of the servers that got slots, and slot i belongs to the server at
// addrs[owners[slots[i]]]. Both are nil when no server has a positive
// weight: the table is empty. (Every server with a positive weight takes
// a slot in turn, so at most 4093 own slots and an index fits 16 bits.)
// slots reuses buf when it has room (the caller's scratch space).
func MaglevRing(buf []uint16, addrs []netip.AddrPort, lastWeights []int32) (slots []uint16, owners []int) {
	var g, maxw int32
	for _, w := range lastWeights {
		if w > 0 {
			if g > 0 {
				g = gcd(w, g)
			} else {
				g = w
			}
			maxw = max(maxw, w)
		}
	}
	if g < 1 {
		return nil, nil
	}
	shift := max(fls(maxw/g)-mhTabBits, 0)

	type setup struct {
		perm, skip uint32
		turns      int32
		owner      uint16
	}
	ds := make([]setup, 0, len(addrs))
	for i, ap := range addrs {
		w := lastWeights[i]
		if w <= 0 {
			continue // no turns
		}
		fold, port := addrFold(ap.Addr()), ap.Port()
		x := setup{
			perm:  mhHash(fold, port, mhKey1, 0) % mhTabSize,
			skip:  mhHash(fold, port, mhKey2, 0)%(mhTabSize-1) + 1,
			turns: max((w/g)>>shift, 1),
		}
		ds = append(ds, x)
		owners = append(owners, i)
		if len(ds) == mhTabSize {
			break // the table is full before any later server's turn
		}
	}

	// Slots hold 1 + the owner's position while filling, 0 when free.
	if cap(buf) >= mhTabSize {
		slots = buf[:mhTabSize]
		clear(slots)
	} else {
		slots = make([]uint16, mhTabSize)
	}
	n, dt := 0, int32(0)
	for n < mhTabSize {
		for p := 0; p < len(ds); {
			x := &ds[p]
			for slots[x.perm] != 0 {
				x.perm += x.skip
				if x.perm >= mhTabSize {
					x.perm -= mhTabSize
				}
			}
			slots[x.perm] = uint16(p + 1)
			if n++; n == mhTabSize {
				break
			}
			if dt++; dt >= x.turns {
				dt = 0
				p++
			}
		}
	}
	for i := range slots {
		slots[i]--
	}
	return slots, owners
}

// Table returns the Maglev ring (sched.Tabled).
func (s *maglev) Table() []*Dest {
	tab := make([]*Dest, mhTabSize)
	r := s.ring.Load()
	if r == nil {
		return tab
	}
	slots, owners := r.get()
	for i, o := range slots {
		if owners != nil {
			tab[i] = owners[o]
		}
	}
	return tab
}

func (s *maglev) Schedule(c Conn) *Dest {
	r := s.ring.Load()
	if r == nil {
		return nil
	}
	slots, owners := r.get()
	if owners == nil {
		return nil
	}
	fold := addrFold(c.Client.Addr())
	var port uint16
	if s.flags&ipvs.SchedFlag2 != 0 {
		port = c.Client.Port()
	}
	ihash := mhHash(fold, port, mhKey1, 0) % mhTabSize
	d := owners[slots[ihash]]
	if eligible(d) {
		return d
	}
	if s.flags&ipvs.SchedFlag1 == 0 {
		return nil
	}
	for off := uint32(0); off < mhTabSize; off++ {
		roff := (off + ihash) % mhTabSize
		d = owners[slots[mhHash(fold, port, mhKey1, roff)%mhTabSize]]
		if eligible(d) {
			return d
		}
	}
	return nil
}
