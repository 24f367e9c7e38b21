package xdp

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// The benchmarks' table (bench/control's): services of benchPerSvc real
// servers each, drawn in turn from a pool of benchPool, all with a
// resolved next hop in the namespace benchLab makes.
const benchPerSvc, benchPool = 4, 64

// benchLab makes the test's namespace with the pool's real servers.
func benchLab(b *testing.B) {
	rs := make([]byte, benchPool)
	for i := range rs {
		rs[i] = byte(10 + i)
	}
	labNS(b, rs...)
}

// benchTable is n services (198.19.x.y:80, scheduler sch) with their real
// servers as one batch: service i's add is command i*(1+benchPerSvc), its
// real servers' adds follow it.
func benchTable(n int, sch string) []ipvs.Command {
	batch := make([]ipvs.Command, 0, n*(1+benchPerSvc))
	for i := range n {
		s := ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: ipvs.TCP, Addr: netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}), Port: 80}, Scheduler: sch}
		batch = append(batch, ipvs.Command{Op: ipvs.OpAddService, Service: &s})
		for j := range benchPerSvc {
			d := ipvs.Dest{Addr: rsIP(byte(10 + (benchPerSvc*i+j)%benchPool)), Port: 80, Method: ipvs.Route, Weight: 1}
			batch = append(batch, ipvs.Command{Op: ipvs.OpAddDest, Service: &s, Dest: &d})
		}
	}
	return batch
}

// benchEngine loads an engine sized for n services of the table.
func benchEngine(b *testing.B, n int) *Engine {
	e, err := load(nil, Options{MaxServices: n, MaxDests: benchPerSvc * n})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// BenchmarkApplyRestore applies a restore of 10,000 services of 4 real
// servers each as one batch, as `gvsadm -R` hands it to the engine (the
// table of bench/control: real servers from a pool of 64, all with a
// resolved next hop), for rr and mh, on an engine loaded in a namespace
// of its own. Needs root. Profile with -cpuprofile and -memprofile.
func BenchmarkApplyRestore(b *testing.B) {
	const n = 10000
	for _, sch := range []string{"rr", "mh"} {
		b.Run(sch, func(b *testing.B) {
			benchLab(b) // the namespace is the goroutine's: one per sub-benchmark
			batch := benchTable(n, sch)
			for b.Loop() {
				b.StopTimer()
				e := benchEngine(b, n)
				b.StartTimer()
				err := e.Apply(batch)
				b.StopTimer()
				if err != nil {
					b.Fatal(err)
				}
				if got := len(e.Status()); got != n {
					b.Fatalf("%d services, want %d", got, n)
				}
				e.objs.Close()
				b.StartTimer()
			}
		})
	}
}

// BenchmarkApplyFlap is one health-check flap (a real server of service 0
// removed, then added again: two batches) on tables of 10 and 10,000
// services, as bench/control's flap, in process: the engine's part of it
// should not grow with the table.
func BenchmarkApplyFlap(b *testing.B) {
	for _, n := range []int{10, 10000} {
		b.Run(fmt.Sprintf("mh/%d", n), func(b *testing.B) {
			benchLab(b)
			e := benchEngine(b, n)
			b.Cleanup(func() { e.objs.Close() })
			batch := benchTable(n, "mh")
			if err := e.Apply(batch); err != nil {
				b.Fatal(err)
			}
			add := batch[1] // service 0's first real server
			del := add
			del.Op = ipvs.OpDelDest
			for b.Loop() {
				if err := e.Apply([]ipvs.Command{del}); err != nil {
					b.Fatal(err)
				}
				if err := e.Apply([]ipvs.Command{add}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkStatus reads the counters of the whole table (Status, in
// batches) against those of one service (StatusOf, its own map slots) at
// 10,000 services of 4 real servers, on an engine loaded in a namespace
// of its own. Needs root.
func BenchmarkStatus(b *testing.B) {
	const n = 10000
	benchLab(b)
	e := benchEngine(b, n)
	b.Cleanup(func() { e.objs.Close() })
	batch := benchTable(n, "rr")
	if err := e.Apply(batch); err != nil {
		b.Fatal(err)
	}
	key := batch[n/2*(1+benchPerSvc)].Service.ServiceKey
	b.Run("all", func(b *testing.B) {
		for b.Loop() {
			if len(e.Status()) != n {
				b.Fatal("not every service")
			}
		}
	})
	b.Run("one", func(b *testing.B) {
		for b.Loop() {
			if _, ok := e.StatusOf(key); !ok {
				b.Fatal("no service")
			}
		}
	})
}
