package xdp

import "github.com/gvs-lb/gvs/internal/sched"

// mhKey is the kernel's fixed ip_vs_mh key for the slot of a client.
const mhKey = 2654435761

// mhSlot is the Maglev slot of a client whose folded address (plus port)
// is v: the BPF program's hsiphash_u32(MH_KEY1, v) % 4093.
func mhSlot(v uint32) uint32 { return sched.HSipHash32(mhKey, v) % mhTabSize }
