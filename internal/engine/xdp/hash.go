package xdp

import "math/bits"

// mhKey is the kernel's fixed ip_vs_mh key for the slot of a client.
const mhKey = 2654435761

// mhSlot is the Maglev slot of a client whose folded address (plus port)
// is v: the BPF program's hsiphash_u32(MH_KEY1, v) % 4093.
func mhSlot(v uint32) uint32 { return hsiphash32(mhKey, v) % mhTabSize }

// hsiphash32 is the kernel's 64-bit hsiphash of one u32 (SipHash-1-3,
// truncated) with the key {k, k}, as bpf/xdp_lb.c computes it.
func hsiphash32(k uint64, v uint32) uint32 {
	v0 := 0x736f6d6570736575 ^ k
	v1 := 0x646f72616e646f6d ^ k
	v2 := 0x6c7967656e657261 ^ k
	v3 := 0x7465646279746573 ^ k
	round := func() {
		v0 += v1
		v1 = bits.RotateLeft64(v1, 13)
		v1 ^= v0
		v0 = bits.RotateLeft64(v0, 32)
		v2 += v3
		v3 = bits.RotateLeft64(v3, 16)
		v3 ^= v2
		v0 += v3
		v3 = bits.RotateLeft64(v3, 21)
		v3 ^= v0
		v2 += v1
		v1 = bits.RotateLeft64(v1, 17)
		v1 ^= v2
		v2 = bits.RotateLeft64(v2, 32)
	}
	m := uint64(4)<<56 | uint64(v)
	v3 ^= m
	round()
	v0 ^= m
	v2 ^= 0xff
	round()
	round()
	round()
	return uint32(v0 ^ v1 ^ v2 ^ v3)
}
