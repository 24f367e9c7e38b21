package proxy

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// BenchmarkApplyRestore applies a restore of 10,000 services of 4 real
// servers each as one batch, as `gvsadm -R` hands it to the engine (the
// table of bench/control: VIPs 127.77.x.y, real servers from a pool of
// 64), for rr and mh. Profile with -cpuprofile and -memprofile.
func BenchmarkApplyRestore(b *testing.B) {
	const n, perSvc = 10000, 4
	for _, sch := range []string{"rr", "mh"} {
		b.Run(sch, func(b *testing.B) {
			batch := make([]ipvs.Command, 0, n*(1+perSvc))
			for i := range n {
				s := ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: ipvs.TCP, Addr: netip.AddrFrom4([4]byte{127, 77, byte(i >> 8), byte(i)}), Port: 18080}, Scheduler: sch}
				batch = append(batch, addSvc(s))
				for j := range perSvc {
					rs := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 78, 0, byte(1 + (perSvc*i+j)%64)}), 18080)
					batch = append(batch, addDest(s, rs, 1))
				}
			}
			for b.Loop() {
				b.StopTimer()
				e := New(slog.New(slog.DiscardHandler), Options{})
				b.StartTimer()
				if err := e.Apply(batch); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if got := len(e.Status()); got != n {
					b.Fatalf("%d services, want %d", got, n)
				}
				e.Close(context.Background())
				b.StartTimer()
			}
		})
	}
}
