package xdp

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// BenchmarkApplyRestore applies a restore of 10,000 services of 4 real
// servers each as one batch, as `gvsadm -R` hands it to the engine (the
// table of bench/control: real servers from a pool of 64, all with a
// resolved next hop), for rr and mh, on an engine loaded in a namespace
// of its own. Needs root. Profile with -cpuprofile and -memprofile.
func BenchmarkApplyRestore(b *testing.B) {
	const n, perSvc, pool = 10000, 4, 64
	rs := make([]byte, pool)
	for i := range rs {
		rs[i] = byte(10 + i)
	}
	for _, sch := range []string{"rr", "mh"} {
		b.Run(sch, func(b *testing.B) {
			labNS(b, rs...) // the namespace is the goroutine's: one per sub-benchmark
			batch := make([]ipvs.Command, 0, n*(1+perSvc))
			for i := range n {
				s := ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: ipvs.TCP, Addr: netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}), Port: 80}, Scheduler: sch}
				batch = append(batch, ipvs.Command{Op: ipvs.OpAddService, Service: &s})
				for j := range perSvc {
					d := ipvs.Dest{Addr: rsIP(rs[(perSvc*i+j)%pool]), Port: 80, Method: ipvs.Route, Weight: 1}
					batch = append(batch, ipvs.Command{Op: ipvs.OpAddDest, Service: &s, Dest: &d})
				}
			}
			for b.Loop() {
				b.StopTimer()
				e, err := load(nil, Options{MaxServices: n, MaxDests: perSvc * n})
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				err = e.Apply(batch)
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
	const perSvc, pool = 4, 64
	rs := make([]byte, pool)
	for i := range rs {
		rs[i] = byte(10 + i)
	}
	for _, n := range []int{10, 10000} {
		b.Run(fmt.Sprintf("mh/%d", n), func(b *testing.B) {
			labNS(b, rs...)
			e, err := load(nil, Options{MaxServices: n, MaxDests: perSvc * n})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { e.objs.Close() })
			var batch []ipvs.Command
			var first ipvs.Command
			for i := range n {
				s := ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: ipvs.TCP, Addr: netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}), Port: 80}, Scheduler: "mh"}
				batch = append(batch, ipvs.Command{Op: ipvs.OpAddService, Service: &s})
				for j := range perSvc {
					d := ipvs.Dest{Addr: rsIP(rs[(perSvc*i+j)%pool]), Port: 80, Method: ipvs.Route, Weight: 1}
					batch = append(batch, ipvs.Command{Op: ipvs.OpAddDest, Service: &s, Dest: &d})
					if i == 0 && j == 0 {
						first = batch[len(batch)-1]
					}
				}
			}
			if err := e.Apply(batch); err != nil {
				b.Fatal(err)
			}
			del := first
			del.Op = ipvs.OpDelDest
			for b.Loop() {
				if err := e.Apply([]ipvs.Command{del}); err != nil {
					b.Fatal(err)
				}
				if err := e.Apply([]ipvs.Command{first}); err != nil {
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
	const n, perSvc, pool = 10000, 4, 64
	rs := make([]byte, pool)
	for i := range rs {
		rs[i] = byte(10 + i)
	}
	labNS(b, rs...)
	e, err := load(nil, Options{MaxServices: n, MaxDests: perSvc * n})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.objs.Close() })
	var batch []ipvs.Command
	var key ipvs.ServiceKey
	for i := range n {
		s := ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: ipvs.TCP, Addr: netip.AddrFrom4([4]byte{198, 19, byte(i >> 8), byte(i)}), Port: 80}, Scheduler: "rr"}
		batch = append(batch, ipvs.Command{Op: ipvs.OpAddService, Service: &s})
		for j := range perSvc {
			d := ipvs.Dest{Addr: rsIP(rs[(perSvc*i+j)%pool]), Port: 80, Method: ipvs.Route, Weight: 1}
			batch = append(batch, ipvs.Command{Op: ipvs.OpAddDest, Service: &s, Dest: &d})
		}
		if i == n/2 {
			key = s.ServiceKey
		}
	}
	if err := e.Apply(batch); err != nil {
		b.Fatal(err)
	}
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
