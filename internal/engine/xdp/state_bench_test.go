package xdp

import (
	"testing"
)

// BenchmarkState1M reads gvsadm engine's view of an IPv4 connection
// table of a million live entries (State: a lookup per packet reason, no
// walk), beside the expiry pass that counts the entries for it once per
// ExpiryInterval and a walk of the table per call (ConnEntries). Needs
// root and about 300 MiB of kernel memory. On the 2-CPU VM: State 47 µs,
// an expiry pass 553 ms, a walk 527 ms.
func BenchmarkState1M(b *testing.B) {
	requireRoot(b)
	const n = 1 << 20
	e, err := load(nil, Options{MaxConns: n})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.objs.Close() })
	keys := make([]lbConnKey4, connBatch)
	vals := make([]lbConnVal, connBatch)
	now := connClock()
	for i := 0; i < n; i += connBatch {
		for j := range keys {
			c := uint32(i + j)
			keys[j] = lbConnKey4{Saddr: 0x0a000000 | c>>8, Daddr: 0x0a0001c6, Sport: uint16(c), Dport: 80, Proto: 6}
			vals[j] = lbConnVal{LastSeen: now, State: lbConnStateST_ESTABLISHED}
		}
		if _, err := e.objs.Conns4.BatchUpdate(keys, vals, nil); err != nil {
			b.Fatal(err)
		}
	}
	e.expire()
	if got := e.State().XDP.ConnEntries4.Used; got < n*9/10 {
		b.Fatalf("%d entries counted, want about %d", got, n)
	}
	b.Run("State", func(b *testing.B) {
		for b.Loop() {
			e.State()
		}
	})
	b.Run("expire", func(b *testing.B) {
		for b.Loop() {
			e.expire()
		}
	})
	b.Run("ConnEntries", func(b *testing.B) {
		for b.Loop() {
			e.ConnEntries()
		}
	})
}
