package xdp

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// BenchmarkProgram times one run of the program (BPF_PROG_TEST_RUN, the
// kernel's own clock) per packet, for an established flow and for a new
// connection of each forwarding method: a micro-measurement of the
// program alone, without the devices. ns/op is the kernel's time per run
// (the test-run loop's fixed cost included), averaged over b.N packets.
// go test -run '^$' -bench Program ./internal/engine/xdp/
func BenchmarkProgram(b *testing.B) {
	natLab(b)
	rs := netip.AddrPortFrom(rsIP(11), 80)
	vDR := netip.AddrPortFrom(vip.Addr(), 80)
	vTUN := netip.AddrPortFrom(vip.Addr(), 81)
	vNAT := netip.AddrPortFrom(vip.Addr(), 82)
	vFNAT := netip.AddrPortFrom(vip.Addr(), 83)
	vWRR := netip.AddrPortFrom(vip.Addr(), 84)
	vNone := netip.AddrPortFrom(vip.Addr(), 85)
	e := newTestEngine(b, snapOf(
		oneService(vDR, ipvs.TCP, "rr", ipvs.Dest{Addr: rsIP(11), Port: 80, Method: ipvs.Route, Weight: 1}),
		oneService(vTUN, ipvs.TCP, "rr", ipvs.Dest{Addr: rsIP(11), Port: 80, Method: ipvs.Tunnel, Weight: 1}),
		natService(vNAT, ipvs.TCP, ipvs.Masq, rs),
		natService(vFNAT, ipvs.TCP, ipvs.FullNAT, rs, laddr4),
		oneService(vWRR, ipvs.TCP, "wrr",
			ipvs.Dest{Addr: rsIP(11), Port: 80, Method: ipvs.Route, Weight: 4},
			ipvs.Dest{Addr: rsIP(12), Port: 80, Method: ipvs.Route, Weight: 3}),
		oneService(vNone, ipvs.TCP, "wrr", ipvs.Dest{Addr: rsIP(11), Port: 80, Method: ipvs.Route, Weight: 0}),
	))
	paths := []struct {
		name string
		vip  netip.AddrPort
	}{{"DR", vDR}, {"TUN", vTUN}, {"NAT", vNAT}, {"FullNAT", vFNAT}, {"DR-wrr", vWRR}, {"no-server", vNone}}
	// The test run's own cost: a program that only returns XDP_PASS.
	b.Run("empty", func(b *testing.B) {
		prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "GPL", Instructions: asm.Instructions{
			asm.Mov.Imm(asm.R0, xdpPass), asm.Return(),
		}})
		if err != nil {
			b.Fatal(err)
		}
		defer prog.Close()
		pkt := frame(pktSpec{src: client, dst: vDR, proto: ipvs.TCP, flags: tcpACK, payload: 6}, dirMAC)
		var total time.Duration
		for range b.N {
			_, d, err := prog.Benchmark(pkt, 1, nil)
			if err != nil {
				b.Fatal(err)
			}
			total += d
		}
		b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "prog-ns/op")
	})
	for _, p := range paths {
		if p.vip != vNone { // nothing is established there
			b.Run("established/"+p.name, func(b *testing.B) {
				const flows = 256
				frames := make([][]byte, flows)
				for i := range frames {
					src := netip.AddrPortFrom(client.Addr(), uint16(20000+i))
					benchRun(b, e, frame(pktSpec{src: src, dst: p.vip, proto: ipvs.TCP, flags: tcpSYN}, dirMAC))
					frames[i] = frame(pktSpec{src: src, dst: p.vip, proto: ipvs.TCP, flags: tcpACK, payload: 6}, dirMAC)
				}
				var total time.Duration
				b.ResetTimer()
				for i := range b.N {
					total += benchRun(b, e, frames[i%flows])
				}
				b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "prog-ns/op")
			})
			if p.name == "NAT" || p.name == "FullNAT" {
				// A container's or VM's data packets: partial checksums
				// (the seed only), completed by the program in native mode.
				for _, size := range []int{6, 1400} {
					b.Run(fmt.Sprintf("established-partial-%d/%s", size, p.name), func(b *testing.B) {
						const flows = 256
						frames := make([][]byte, flows)
						for i := range frames {
							src := netip.AddrPortFrom(client.Addr(), uint16(30000+size+i))
							benchRun(b, e, frame(pktSpec{src: src, dst: p.vip, proto: ipvs.TCP, flags: tcpSYN}, dirMAC))
							frames[i] = partial(frame(pktSpec{src: src, dst: p.vip, proto: ipvs.TCP, flags: tcpACK, payload: size}, dirMAC))
						}
						var total time.Duration
						b.ResetTimer()
						for i := range b.N {
							total += benchRun(b, e, frames[i%flows])
						}
						b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "prog-ns/op")
					})
				}
			}
		}
		b.Run("new/"+p.name, func(b *testing.B) { benchNew(b, e, p.vip) })
	}
}

// benchRun times one packet through e's program.
func benchRun(b *testing.B, e *Engine, pkt []byte) time.Duration {
	_, d, err := e.objs.XdpLb.Benchmark(pkt, 1, nil)
	if err != nil {
		b.Fatal(err)
	}
	return d
}

// newClients numbers benchNew's clients, so that every SYN comes from an
// address and port of its own, across runs of a benchmark too.
var newClients uint32

// benchNew times SYNs to dst, each of a new connection, built 4096 at a
// time outside the timer, and reports the program's own time per packet.
func benchNew(b *testing.B, e *Engine, dst netip.AddrPort) {
	frames := make([][]byte, 4096)
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		if i%len(frames) == 0 {
			b.StopTimer()
			for j := range frames {
				n := newClients
				newClients++
				src := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, 4 + byte(n>>24), byte(n >> 16)}), uint16(n))
				frames[j] = frame(pktSpec{src: src, dst: dst, proto: ipvs.TCP, flags: tcpSYN}, dirMAC)
			}
			b.StartTimer()
		}
		total += benchRun(b, e, frames[i%len(frames)])
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "prog-ns/op")
}
