package xdp

import (
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/kernelfeat"
)

// FuzzProgram feeds arbitrary frames to the program with DR and tunnel
// services configured: every frame gets one of the defined verdicts.
func FuzzProgram(f *testing.F) {
	for _, s := range []pktSpec{
		{src: client, dst: vip, proto: ipvs.TCP, flags: tcpSYN},
		{vlans: []uint16{3}, src: cli6, dst: vip6, proto: ipvs.UDP, payload: 4},
		{src: client, dst: netip.AddrPortFrom(vip.Addr(), 81), proto: ipvs.TCP, flags: tcpSYN, ipOpts: []byte{1, 1, 1, 0}},
		{src: client, dst: netip.AddrPortFrom(vip.Addr(), 81), proto: ipvs.TCP, flags: tcpSYN, payload: 1480},
	} {
		f.Add(build(s))
	}
	// The engine is set up in the lab namespace (so that resolving real
	// servers sends nothing outside it); the program runs from any thread.
	labNS(f, 11)
	e := newTestEngine(f, snapOf(
		oneService(vip, ipvs.TCP, "mh", ipvs.Dest{Addr: rsIP(11), Port: 80, Method: ipvs.Route, Weight: 1}),
		oneService(vip6, ipvs.UDP, "wlc", ipvs.Dest{Addr: v6(11), Port: 80, Method: ipvs.Route, Weight: 1}),
		oneService(netip.AddrPortFrom(vip.Addr(), 81), ipvs.TCP, "rr", ipvs.Dest{Addr: netip.MustParseAddr("198.19.0.21"), Port: 81, Method: ipvs.Tunnel, Weight: 1}),
	))
	kernelfeat.Require(f, kernelfeat.XDPTestRun)
	f.Fuzz(func(t *testing.T, frame []byte) {
		if len(frame) < 14 || len(frame) > 3000 {
			return
		}
		opts := &ebpf.RunOptions{Data: frame, DataOut: make([]byte, len(frame)+256)}
		v, err := e.objs.XdpLb.Run(opts)
		if err != nil {
			t.Fatalf("test run: %v", err)
		}
		if v < xdpDrop || v > xdpRedirect {
			t.Fatalf("verdict %d", v)
		}
	})
}
