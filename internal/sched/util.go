package sched

import (
	"math/bits"
	"net/netip"
	"slices"
	"sort"
	"sync/atomic"
)

// Names lists the registered schedulers' ipvsadm names, sorted.
func Names() []string {
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// overhead is the kernel's ip_vs_dest_conn_overhead: an active connection
// weighs 256 inactive ones.
func overhead(d *Dest) int64 {
	return int64(d.ActiveConns())<<8 + int64(d.InactConns())
}

// eligible reports what most schedulers require of a server for a new
// connection: available, not marked overloaded, and weight above 0.
func eligible(d *Dest) bool {
	return d.Available() && !d.Overloaded() && d.Weight() > 0
}

// inService keeps the servers Update passed, less those already removed:
// the kernel's svc->destinations list.
func inService(dests []*Dest) []*Dest {
	out := make([]*Dest, 0, len(dests))
	for _, d := range dests {
		if d != nil && !d.Removed() {
			out = append(out, d)
		}
	}
	return out
}

// destList is the list for schedulers that keep no state of their own:
// Schedule reads it without a lock.
type destList struct{ p atomic.Pointer[[]*Dest] }

func (l *destList) Update(dests []*Dest) {
	s := inService(dests)
	l.p.Store(&s)
}

func (l *destList) load() []*Dest {
	if p := l.p.Load(); p != nil {
		return *p
	}
	return nil
}

// goldenRatio32 is the kernel's GOLDEN_RATIO_32 (include/linux/hash.h).
const goldenRatio32 = 0x61C88647

// hash32 is the kernel's hash_32: the top bits of a multiplicative hash.
func hash32(v uint32, nbits uint) uint32 {
	return (v * goldenRatio32) >> (32 - nbits)
}

// addrFold is ntohl of the kernel's addr_fold: the IPv4 address as a
// number, or the XOR of an IPv6 address's four 32-bit words.
func addrFold(a netip.Addr) uint32 {
	a = a.Unmap()
	if a.Is4() {
		b := a.As4()
		return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	}
	b := a.As16()
	var f uint32
	for i := 0; i < 16; i += 4 {
		f ^= uint32(b[i])<<24 | uint32(b[i+1])<<16 | uint32(b[i+2])<<8 | uint32(b[i+3])
	}
	return f
}

// gcd is Euclid's greatest common divisor of two positive numbers.
func gcd(a, b int32) int32 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// fls is the kernel's fls: the 1-based index of the highest set bit.
func fls(x int32) int { return bits.Len32(uint32(x)) }

func indexOf(dests []*Dest, d *Dest) int { return slices.Index(dests, d) }
