package enginetest

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/netns/netnstest"
)

// DRVIP is the virtual address of DRLab's services.
const DRVIP = "198.18.0.200"

// DRLab builds the conformance topology, in namespaces removed when the
// test ends, and returns the Setup without its Engine, with the director's
// namespace for the engine to run in:
//
//	client 198.18.0.100 ─┐
//	director 198.18.0.1 ─┼─ br0   VIP 198.18.0.200 on the director's eth0
//	rs1 198.18.0.11 ─────┤        and on the real servers' lo (DR:
//	rs2 198.18.0.12 ─────┘        arp_ignore, arp_announce)
//
// The services are TCP :80 and :81 of the VIP; each real server listens on
// both and greets with its name (RS1, RS2). It needs root, iproute2 and
// sysctl (netnstest.Require).
func DRLab(t *testing.T) (*Setup, *netnstest.NS) {
	t.Helper()
	netnstest.Require(t, "sysctl")
	hub := netnstest.New(t, "hub")
	client, dir := netnstest.New(t, "cli"), netnstest.New(t, "dir")
	rs := []*netnstest.NS{netnstest.New(t, "rs1"), netnstest.New(t, "rs2")}
	netnstest.Bridge(t, hub, "br0", "eth0", client, dir, rs[0], rs[1])
	client.Addr("eth0", "198.18.0.100/24")
	dir.Addr("eth0", "198.18.0.1/24")
	dir.Addr("eth0", DRVIP+"/32")
	vip := netip.MustParseAddr(DRVIP)
	s := &Setup{
		Services: []ipvs.ServiceKey{{Proto: ipvs.TCP, Addr: vip, Port: 80}, {Proto: ipvs.TCP, Addr: vip, Port: 81}},
		Dial: func(ap netip.AddrPort) (c net.Conn, err error) {
			err = client.Do(func() error {
				c, err = net.DialTimeout("tcp", ap.String(), 3*time.Second)
				return err
			})
			return c, err
		},
	}
	for i, n := range rs {
		addr := fmt.Sprintf("198.18.0.%d", 11+i)
		n.Addr("eth0", addr+"/24")
		n.Addr("lo", DRVIP+"/32")
		n.Run("sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2",
			"net.ipv4.conf.eth0.arp_ignore=1", "net.ipv4.conf.eth0.arp_announce=2")
		name := fmt.Sprintf("RS%d", i+1)
		for _, port := range []string{"80", "81"} {
			var ln net.Listener
			if err := n.Do(func() (err error) { ln, err = net.Listen("tcp", "0.0.0.0:"+port); return err }); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			go serveNamed(ln, name)
		}
		s.Dests = append(s.Dests, ipvs.Dest{Addr: netip.MustParseAddr(addr), Port: 80, Method: ipvs.Route, Weight: 1})
		s.Names = append(s.Names, name)
	}
	return s, dir
}

// serveNamed greets each connection with name and echoes it.
func serveNamed(ln net.Listener, name string) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			fmt.Fprintf(c, "%s\n", name)
			io.Copy(c, c)
		}()
	}
}
