package xdp

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// BenchmarkFWMark times a new DR connection (BPF_PROG_TEST_RUN, as
// BenchmarkProgram) with and without the firewall-mark classifier:
//   - none: no firewall-mark service, so no classifier (one array
//     lookup finds the slot empty); the SYN is for an address/port
//     service;
//   - unmarked: a firewall-mark service and 64 rules of 64 addresses
//     (ports 443 and 8000:8009 of each) installed; the SYN is for an
//     address/port service on a port no rule marks (two trie lookups,
//     then the service lookup);
//   - marked: the same rules; the SYN is for a marked port and goes to
//     the firewall-mark service (one trie lookup, one service lookup);
//   - established: a marked connection's ACK (the classifier is not
//     consulted).
//
// go test -run '^$' -bench FWMark ./internal/engine/xdp/
func BenchmarkFWMark(b *testing.B) {
	natLab(b)
	dr := func(n byte, port uint16) ipvs.Dest {
		return ipvs.Dest{Addr: rsIP(n), Port: port, Method: ipvs.Route, Weight: 1}
	}
	addrPort := oneService(netip.AddrPortFrom(vip.Addr(), 80), ipvs.TCP, "rr", dr(11, 80))
	e := newTestEngine(b, snapOf(addrPort))
	var rules strings.Builder
	for i := range 64 {
		fmt.Fprintf(&rules, "-A PREROUTING -d 198.18.1.%d/32 -p tcp -m multiport --dports 443,8000:8009 -j MARK --set-mark %d\n", 10+i, 1+i%2)
	}
	rs := loadRules(b, rules.String(), "")
	newConns := func(b *testing.B, port uint16) { benchNew(b, e, netip.AddrPortFrom(vip.Addr(), port)) }
	b.Run("new/none", func(b *testing.B) { newConns(b, 80) })

	if err := e.SetFWMarkRules(rs); err != nil {
		b.Fatal(err)
	}
	fwm := fwmService(1, false, false, dr(11, 0))
	if err := engine.ApplySnapshot(e, snapOf(addrPort, fwm)); err != nil {
		b.Fatal(err)
	}
	b.Run("new/unmarked", func(b *testing.B) { newConns(b, 80) })
	b.Run("new/marked", func(b *testing.B) { newConns(b, 443) })
	b.Run("established/marked", func(b *testing.B) {
		const flows = 256
		frames := make([][]byte, flows)
		for i := range frames {
			src := netip.AddrPortFrom(client.Addr(), uint16(20000+i))
			benchRun(b, e, frame(pktSpec{src: src, dst: netip.AddrPortFrom(vip.Addr(), 443), proto: ipvs.TCP, flags: tcpSYN}, dirMAC))
			frames[i] = frame(pktSpec{src: src, dst: netip.AddrPortFrom(vip.Addr(), 443), proto: ipvs.TCP, flags: tcpACK, payload: 6}, dirMAC)
		}
		var total time.Duration
		b.ResetTimer()
		for i := range b.N {
			total += benchRun(b, e, frames[i%flows])
		}
		b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "prog-ns/op")
	})
}
