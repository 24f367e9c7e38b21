package xdp

import (
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// FuzzNATProgram feeds arbitrary frames to the program with NAT and
// FullNAT services and their connections: every frame gets one of the
// defined verdicts (never XDP_ABORTED).
func FuzzNATProgram(f *testing.F) {
	rsTCP := netip.AddrPortFrom(rsIP(11), 8080)
	udp6 := netip.AddrPortFrom(vip6.Addr(), 53)
	syn := build(pktSpec{src: client, dst: vip, proto: ipvs.TCP, flags: tcpSYN, tcpOpts: []byte{2, 4, 5, 0xb4}})
	for _, b := range [][]byte{
		syn,
		build(pktSpec{vlans: []uint16{3}, src: client, dst: vip, proto: ipvs.TCP, flags: tcpSYN, tcpOpts: []byte{1, 1, 1, 1}}),
		build(pktSpec{src: cli6, dst: udp6, proto: ipvs.UDP, payload: 4}),
		build(pktSpec{src: cli6, dst: vip6, proto: ipvs.TCP, flags: tcpSYN, tcpOpts: make([]byte, 20)}),
		icmpFrame(rsIP(11), laddr4, 3, 4, syn[14:54]),
		icmpFrame(v6(11), laddr6, 1, 4, build(pktSpec{src: cli6, dst: udp6, proto: ipvs.UDP})[14:62]),
	} {
		f.Add(b)
	}
	natLab(f)
	e := newTestEngine(f, snapOf(
		natService(vip, ipvs.TCP, ipvs.FullNAT, rsTCP, laddr4),
		natService(vip6, ipvs.TCP, ipvs.FullNAT, netip.AddrPortFrom(v6(11), 8080), laddr6),
		natService(udp6, ipvs.UDP, ipvs.Masq, netip.AddrPortFrom(v6(11), 5353)),
	))
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < 14 || len(frame) > 3000 {
			return
		}
		v, _ := runOn(t, e, frame)
		if v < xdpDrop || v > xdpRedirect {
			t.Fatalf("verdict %d", v)
		}
	})
}
