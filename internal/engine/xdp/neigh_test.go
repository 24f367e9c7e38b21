package xdp

import (
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// TestNextHopsFollowNetlink: the engine follows the kernel's neighbour
// and route tables as they change, not by polling (the periodic refresh
// is set to an hour here): a real server's new MAC address, a neighbour
// that appears after its real server was added, and a route moved to
// another gateway reach the program's packets within a bounded wait.
func TestNextHopsFollowNetlink(t *testing.T) {
	labNS(t, 11)
	gvs0, err := netlink.LinkByName("gvs0")
	if err != nil {
		t.Fatal(err)
	}
	setNeigh := func(ip netip.Addr, mac net.HardwareAddr) {
		t.Helper()
		err := netlink.NeighSet(&netlink.Neigh{LinkIndex: gvs0.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT, IP: ip.AsSlice(), HardwareAddr: mac})
		if err != nil {
			t.Fatal(err)
		}
	}
	tunRS := netip.MustParseAddr("198.19.0.5")
	late := rsIP(20) // no neighbour entry until the test makes one
	dr := netip.AddrPortFrom(vip.Addr(), 80)
	tun := netip.AddrPortFrom(vip.Addr(), 81)
	lateSvc := netip.AddrPortFrom(vip.Addr(), 82)
	e := newTestEngine(t, snapOf(
		oneService(dr, ipvs.TCP, "rr", ipvs.Dest{Addr: rsIP(11), Port: 80, Method: ipvs.Route, Weight: 1}),
		oneService(tun, ipvs.TCP, "rr", ipvs.Dest{Addr: tunRS, Port: 81, Method: ipvs.Tunnel, Weight: 1}),
		oneService(lateSvc, ipvs.TCP, "rr", ipvs.Dest{Addr: late, Port: 82, Method: ipvs.Route, Weight: 1}),
	))
	e.opts.NeighRefresh = time.Hour
	e.start()
	t.Cleanup(func() {
		e.cancel()
		e.wg.Wait()
	})

	port := uint16(3000)
	// dstMAC sends a new connection's SYN to svc and returns the
	// destination MAC address of what leaves (nil when nothing does).
	dstMAC := func(svc netip.AddrPort) net.HardwareAddr {
		port++
		v, out := runOut(t, e, build(pktSpec{src: netip.AddrPortFrom(client.Addr(), port), dst: svc, proto: ipvs.TCP, flags: tcpSYN}))
		if v != xdpRedirect && v != xdpTX {
			return nil
		}
		return out[:6]
	}
	waitFor := func(what string, svc netip.AddrPort, want net.HardwareAddr) {
		t.Helper()
		var got net.HardwareAddr
		for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if got = dstMAC(svc); slices.Equal(got, want) {
				return
			}
		}
		t.Fatalf("%s: packets still go to MAC %v, want %v", what, got, want)
	}

	if got := dstMAC(dr); !slices.Equal(got, rsMAC(11)) {
		t.Fatalf("DR before any change: MAC %v, want %v", got, rsMAC(11))
	}
	moved := net.HardwareAddr{0x02, 0, 0, 0, 2, 11}
	setNeigh(rsIP(11), moved)
	waitFor("the real server's MAC changed (ip neigh replace)", dr, moved)

	setNeigh(late, rsMAC(20))
	waitFor("the neighbour of a real server added unresolved appeared", lateSvc, rsMAC(20))

	if got := dstMAC(tun); !slices.Equal(got, routerMAC) {
		t.Fatalf("TUN before the route change: next hop MAC %v, want the router's %v", got, routerMAC)
	}
	router2, router2MAC := netip.MustParseAddr("198.18.0.253"), net.HardwareAddr{0x02, 0, 0, 0, 0, 0xfd}
	setNeigh(router2, router2MAC)
	_, dst, _ := net.ParseCIDR("198.19.0.0/24")
	if err := netlink.RouteReplace(&netlink.Route{LinkIndex: gvs0.Attrs().Index, Dst: dst, Gw: router2.AsSlice()}); err != nil {
		t.Fatal(err)
	}
	waitFor("the route to the tunnel's real server moved to another gateway", tun, router2MAC)
}
