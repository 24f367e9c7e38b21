package sched

import (
	"encoding/binary"
	"math/bits"
)

// sipKey is the kernel's siphash_key_t / 64-bit hsiphash_key_t.
type sipKey [2]uint64

// sipHash is SipHash-c-d over b. The kernel's siphash() is
// sipHash(2, 4, ...); on 64-bit machines its hsiphash() is SipHash-1-3
// truncated to 32 bits (lib/siphash.c), which is what ip_vs_mh uses.
func sipHash(c, d int, k sipKey, b []byte) uint64 {
	v0 := uint64(0x736f6d6570736575) ^ k[0]
	v1 := uint64(0x646f72616e646f6d) ^ k[1]
	v2 := uint64(0x6c7967656e657261) ^ k[0]
	v3 := uint64(0x7465646279746573) ^ k[1]
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
	compress := func(m uint64) {
		v3 ^= m
		for range c {
			round()
		}
		v0 ^= m
	}
	n := len(b)
	for len(b) >= 8 {
		compress(binary.LittleEndian.Uint64(b))
		b = b[8:]
	}
	last := uint64(n) << 56
	for i, x := range b {
		last |= uint64(x) << (8 * i)
	}
	compress(last)
	v2 ^= 0xff
	for range d {
		round()
	}
	return v0 ^ v1 ^ v2 ^ v3
}

// hsipHash32 is the kernel's 64-bit hsiphash of one u32 in host (little
// endian) byte order.
func hsipHash32(k sipKey, v uint32) uint32 {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	return uint32(sipHash(1, 3, k, b[:]))
}

// HSipHash32 is the kernel's 64-bit hsiphash of one u32 with the key
// {key, key}, as ip_vs_mh hashes a client and as the BPF program mirrors it.
func HSipHash32(key uint64, v uint32) uint32 { return hsipHash32(sipKey{key, key}, v) }
