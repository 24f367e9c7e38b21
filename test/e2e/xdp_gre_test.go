package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/netns/netnstest"
)

// TestXDPTunnelGRE: a client reaches real servers the xdp director sends
// to over GRE (ipvsadm -i --tun-type gre), with and without the GRE
// checksum, all on one bridge:
//
//	client 198.18.0.100, director 198.18.0.1 (VIP 198.18.0.200),
//	rs1 198.18.0.11 (GRE with checksum), rs2 198.18.0.12 (GRE without),
//	both decapsulating with gvsadm realserver's program, on VIP:8080;
//	rs3 198.18.0.13 on VIP:8081 with the kernel's own GRE device, which
//	checks the checksum (where the kernel has ip_gre).
//
// The real servers answer the client directly.
func TestXDPTunnelGRE(t *testing.T) {
	netnstest.Require(t, "sysctl")
	hub := netnstest.New(t, "hub")
	client := netnstest.New(t, "cli")
	dir := netnstest.New(t, "dir")
	rs := []*netnstest.NS{netnstest.New(t, "rs1"), netnstest.New(t, "rs2"), netnstest.New(t, "rs3")}
	netnstest.Bridge(t, hub, "br0", "eth0", client, dir, rs[0], rs[1], rs[2])
	client.Addr("eth0", "198.18.0.100/24")
	dir.Addr("eth0", "198.18.0.1/24")
	dir.Addr("eth0", e2eVIP+"/32")
	for i, n := range rs {
		n.Addr("eth0", fmt.Sprintf("198.18.0.%d/24", 11+i))
		// The outer source is the director's tunnel prefix, 198.18.1.1.
		n.Run("ip", "route", "add", "default", "via", "198.18.0.1")
	}

	// rs3: the kernel's GRE device, fixed mode, any remote; the VIP's
	// packets come out of it, the answers leave by eth0.
	kernelGRE := true
	if out, err := rs[2].Output("ip", "tunnel", "add", "gre1", "mode", "gre", "local", "198.18.0.13", "ttl", "64"); err != nil {
		kernelGRE = false
		t.Logf("no kernel GRE device (%v: %s): rs3 is left out", err, strings.TrimSpace(out))
	} else {
		rs[2].Run("ip", "link", "set", "gre1", "up")
		rs[2].Run("sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.gre1.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
	}

	for i, n := range rs {
		mode, port := "tun", "8080"
		if i == 2 {
			if !kernelGRE {
				continue
			}
			mode, port = "dr", "8081" // the VIP on lo; the kernel decapsulates
		}
		startXDPRealServer(t, n, fmt.Sprintf("RS%d", i+1), mode, port)
	}
	director, ctl := startXDPDirector(t, dir, "GVS_XDP", "TestXDPHelper")

	vip := netip.MustParseAddr(e2eVIP)
	gre := func(addr string, port uint16, csum bool) ipvs.Dest {
		d := ipvs.Dest{Addr: netip.MustParseAddr(addr), Port: port, Method: ipvs.Tunnel, Weight: 1, TunType: ipvs.TunGRE}
		if csum {
			d.TunFlags = 1 // --tun-csum
		}
		return d
	}
	snap := &ipvs.Snapshot{Timeouts: ipvs.DefaultTimeouts, Services: []ipvs.ServiceConfig{
		{Service: ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip, Port: 8080}, Scheduler: "rr"}, Dests: []ipvs.Dest{
			gre("198.18.0.11", 8080, true), gre("198.18.0.12", 8080, false),
		}},
		{Service: ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip, Port: 8081}, Scheduler: "rr"}, Dests: []ipvs.Dest{
			gre("198.18.0.13", 8081, true),
		}},
	}}
	ctl.call(t, "POST", "/apply", snap, nil)

	t.Run("answers alternate over GRE with and without checksum", func(t *testing.T) {
		alternate(t, fetchFrom(t, client.Name, e2eVIP+":8080", 6, director), "RS1", "RS2")
	})
	t.Run("the kernel's GRE device takes the checksummed packets", func(t *testing.T) {
		if !kernelGRE {
			t.Skip("this kernel has no GRE device (ip_gre)")
		}
		for i, s := range fetchFrom(t, client.Name, e2eVIP+":8081", 3, director) {
			if s != "RS3" {
				t.Fatalf("answer %d is %q, want RS3", i, s)
			}
		}
	})
}
