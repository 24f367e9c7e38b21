package xdp

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// BenchmarkProgramSchedulers times a new DR connection (a SYN) through
// services of three real servers with the schedulers that keep state
// beyond the counters (lblc, lblcr: a table by destination address)
// against wlc, which they fall back on.
// go test -run '^$' -bench ProgramSchedulers ./internal/engine/xdp/
func BenchmarkProgramSchedulers(b *testing.B) {
	labNS(b, 11, 12, 13)
	var svcs []ipvs.ServiceConfig
	names := []string{"wlc", "lblc", "lblcr"}
	for i, name := range names {
		v := netip.AddrPortFrom(vip.Addr(), uint16(90+i))
		var ds []ipvs.Dest
		for j := range 3 {
			ds = append(ds, ipvs.Dest{Addr: rsIP(byte(11 + j)), Port: v.Port(), Method: ipvs.Route, Weight: int32(1 + j)})
		}
		svcs = append(svcs, oneService(v, ipvs.TCP, name, ds...))
	}
	e := newTestEngine(b, snapOf(svcs...))
	for i, name := range names {
		v := netip.AddrPortFrom(vip.Addr(), uint16(90+i))
		b.Run("new/"+name, func(b *testing.B) {
			frames := make([][]byte, 4096)
			var total time.Duration
			b.ResetTimer()
			for n := range b.N {
				if n%len(frames) == 0 {
					b.StopTimer()
					for j := range frames {
						k := uint32(n + j)
						src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 4 + byte(k>>24), byte(k >> 16)}), uint16(k))
						frames[j] = frame(pktSpec{src: src, dst: v, proto: ipvs.TCP, flags: tcpSYN}, dirMAC)
					}
					b.StartTimer()
				}
				_, d, err := e.objs.XdpLb.Benchmark(frames[n%len(frames)], 1, nil)
				if err != nil {
					b.Fatal(err)
				}
				total += d
			}
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "prog-ns/op")
		})
	}
}
