package vrrp

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/netns/netnstest"
)

// hasAddrOn reports whether addr is on n's interface dev.
func hasAddrOn(n *netnstest.NS, dev, addr string) bool {
	out, err := n.Output("ip", "-o", "addr", "show", "dev", dev)
	if err != nil {
		return false
	}
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, addr+"/") {
			return true
		}
	}
	return false
}

// unicastOnly fails the test if one of the VRRP frames went to a
// multicast address, or to another address than to.
func unicastOnly(t *testing.T, frames []frame, from, to netip.Addr) {
	t.Helper()
	if len(frames) == 0 {
		t.Fatalf("no VRRP advert from %s reached %s", from, to)
	}
	for _, f := range frames {
		if f.dst[0]&1 != 0 || f.ipDst.IsMulticast() {
			t.Fatalf("advert from %s sent to multicast %s (%s); want unicast", f.ipSrc, f.ipDst, f.dst)
		}
		if f.ipSrc != from || f.ipDst != to {
			t.Fatalf("advert %s -> %s, want %s -> %s", f.ipSrc, f.ipDst, from, to)
		}
	}
}

// noGroup fails the test if the namespace joined the VRRP group.
func noGroup(t *testing.T, n *netnstest.NS) {
	t.Helper()
	if out := n.Run("ip", "maddr", "show", "dev", "eth0"); strings.Contains(out, "224.0.0.18") {
		t.Fatalf("%s joined 224.0.0.18 with unicast peers:\n%s", n.Name, out)
	}
}

var (
	addrA = netip.MustParseAddr("198.18.1.1")
	addrB = netip.MustParseAddr("198.18.1.2")
)

func TestNetnsUnicast(t *testing.T) {
	netnstest.Require(t, "sysctl")
	f := families[0] // v2 IPv4 PASS
	vip := f.addr()
	unicast := func(c InstanceConfig, src, peer netip.Addr) InstanceConfig {
		c.UnicastSrcIP, c.UnicastPeers, c.CheckUnicastSrc = src, []netip.Addr{peer}, true
		return c
	}
	t.Run("gvs and gvs", func(t *testing.T) {
		p := newPair(t)
		neverBoth(t, p, vip)
		capA, capB := startCapture(t, p.a, "eth0"), startCapture(t, p.b, "eth0")
		master := startGVS(t, p.a, unicast(f.cfg("VI_A", 150), addrA, addrB))
		backup := startGVS(t, p.b, unicast(f.cfg("VI_B", 100), addrB, addrA))
		waitUntil(t, f.mdi(150)+2*time.Second, "VIP on the master", func() bool { return hasAddr(p.a, vip) })
		waitUntil(t, 3*f.interval, "backup hears the master", func() bool {
			s := backup.Status()
			return s.AdvertsReceived > 0 && s.State == StateBackup
		})
		if s := backup.Status(); len(s.Drops) != 0 {
			t.Fatalf("backup dropped unicast adverts: %v", s.Drops)
		}
		noGroup(t, p.a)
		noGroup(t, p.b)
		master.stop(t)
		took := waitUntil(t, time.Second, "VIP moves to the backup after a unicast priority 0 advert", func() bool { return hasAddr(p.b, vip) })
		t.Logf("takeover after priority 0: %v", took)
		if s := backup.Status(); s.PriorityZeroReceived == 0 {
			t.Fatalf("backup took over without the priority 0 advert: %+v", s)
		}
		time.Sleep(f.interval + 100*time.Millisecond) // an advert from the new master
		unicastOnly(t, vrrpFrames(capB.take()), addrA, addrB)
		unicastOnly(t, vrrpFrames(capA.take()), addrB, addrA)
	})
	t.Run("gvs and keepalived", func(t *testing.T) {
		netnstest.Require(t, "keepalived")
		p := newPair(t)
		neverBoth(t, p, vip)
		capA := startCapture(t, p.a, "eth0")
		extra := "    unicast_src_ip 198.18.1.2\n    unicast_peer {\n        198.18.1.1\n    }\n"
		g := startGVS(t, p.a, unicast(f.cfg("VI_G", 150), addrA, addrB))
		k := startKeepalived(t, p.b, keepalivedConf(t, f, 100, extra))
		waitUntil(t, f.mdi(150)+3*time.Second, "VIP on gvs", func() bool { return hasAddr(p.a, vip) })
		time.Sleep(f.mdi(100) + f.interval) // keepalived would have taken over without our adverts
		if hasAddr(p.b, vip) {
			t.Fatalf("keepalived took the VIP while gvs is master; keepalived says:\n%s", k.Output())
		}
		noGroup(t, p.a)
		g.stop(t)
		took := waitUntil(t, time.Second, "VIP moves to keepalived after priority 0", func() bool { return hasAddr(p.b, vip) })
		t.Logf("keepalived took over in %v", took)
		capA.take()
		g = startGVS(t, p.a, unicast(f.cfg("VI_G", 150), addrA, addrB))
		waitUntil(t, f.mdi(150)+3*time.Second, "gvs preempts keepalived", func() bool {
			return hasAddr(p.a, vip) && !hasAddr(p.b, vip)
		})
		if s := g.Status(); s.AdvertsReceived == 0 || len(s.Drops) != 0 {
			t.Fatalf("gvs did not take keepalived's unicast adverts cleanly: %+v", s)
		}
		unicastOnly(t, vrrpFrames(capA.take()), addrB, addrA)
		keepalivedComplains(t, k)
	})
}

func TestNetnsVirtualRoutes(t *testing.T) {
	netnstest.Require(t, "sysctl")
	f := families[1] // v3 IPv4, 200 ms
	var routes []Route
	for _, l := range []string{
		"198.19.5.0/24 via 198.18.1.254 dev eth0 metric 7",
		"blackhole 198.19.6.0/24",
		"198.19.7.0/24 dev eth0 src 198.18.1.100 table 100",
		"unreachable 2001:db8:9::/48",
	} {
		r, err := ParseRoute(strings.Fields(l))
		if err != nil {
			t.Fatal(err)
		}
		routes = append(routes, r)
	}
	cfg := func(name string, prio uint8) InstanceConfig {
		c := f.cfg(name, prio)
		c.Routes = routes
		c.ExcludedVIPs = []VIP{{Prefix: netip.MustParsePrefix("198.18.2.50/32")}, {Prefix: netip.MustParsePrefix("2001:db8:2::50/128")}}
		return c
	}
	// what `ip` shows on the MASTER
	checks := []struct {
		name string
		args []string
		want []string
	}{
		{name: "via route", args: []string{"-4", "route", "show", "198.19.5.0/24"}, want: []string{"via 198.18.1.254 dev eth0", "metric 7"}},
		{name: "blackhole", args: []string{"-4", "route", "show", "198.19.6.0/24"}, want: []string{"blackhole 198.19.6.0/24"}},
		{name: "table 100", args: []string{"-4", "route", "show", "table", "100", "198.19.7.0/24"}, want: []string{"dev eth0", "src 198.18.1.100"}},
		{name: "IPv6 unreachable", args: []string{"-6", "route", "show", "2001:db8:9::/48"}, want: []string{"unreachable 2001:db8:9::/48"}},
		{name: "excluded IPv4", args: []string{"-4", "addr", "show", "dev", "eth0"}, want: []string{"198.18.2.50/32"}},
		{name: "excluded IPv6", args: []string{"-6", "addr", "show", "dev", "eth0"}, want: []string{"2001:db8:2::50/128"}},
	}
	state := func(n *netnstest.NS) (present, absent []string) {
		for _, c := range checks {
			out, _ := n.Output("ip", c.args...)
			ok := true
			for _, w := range c.want {
				ok = ok && strings.Contains(out, w)
			}
			if ok {
				present = append(present, c.name)
			} else {
				absent = append(absent, c.name)
			}
		}
		return present, absent
	}
	isMaster := func(n *netnstest.NS) func() bool {
		return func() bool { _, absent := state(n); return len(absent) == 0 }
	}
	isBackup := func(n *netnstest.NS) func() bool {
		return func() bool { present, _ := state(n); return len(present) == 0 }
	}
	report := func(what string, n *netnstest.NS) {
		t.Helper()
		present, absent := state(n)
		t.Fatalf("%s: in %s present %v, absent %v", what, n.Name, present, absent)
	}
	waitFor := func(what string, limit time.Duration, n *netnstest.NS, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for !cond() {
			if time.Now().After(deadline) {
				report(what, n)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	p := newPair(t)
	master := startGVS(t, p.a, cfg("VI_A", 150))
	backup := startGVS(t, p.b, cfg("VI_B", 100))
	waitFor("routes and excluded VIPs on the master", f.mdi(150)+2*time.Second, p.a, isMaster(p.a))
	waitUntil(t, 3*f.interval+time.Second, "backup hears the master", func() bool { return backup.Status().AdvertsReceived > 0 })
	waitFor("nothing on the backup", time.Second, p.b, isBackup(p.b))
	if s := backup.Status(); len(s.Drops) != 0 || s.State != StateBackup {
		t.Fatalf("backup %v dropped adverts (excluded VIPs must not be in them): %v", s.State, s.Drops)
	}
	master.stop(t)
	waitFor("routes and excluded VIPs move to the new master", time.Second, p.b, isMaster(p.b))
	waitFor("routes and excluded VIPs leave the stopped master", time.Second, p.a, isBackup(p.a))
	backup.stop(t)
	waitFor("routes leave when the last instance stops", time.Second, p.b, isBackup(p.b))
}

// dialVIP connects to a closed TCP port of vip from the namespace: the
// MASTER's kernel answers with a reset, so "connection refused" says the
// VIP is reachable (and the client has resolved its MAC).
func dialVIP(n *netnstest.NS, vip string) error {
	return inNetns(n.Name, func() error {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(vip, "9"), time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		if errors.Is(err, syscall.ECONNREFUSED) {
			return nil
		}
		return err
	})
}

func TestNetnsVMACFailover(t *testing.T) {
	netnstest.Require(t, "sysctl")
	f := families[1] // v3 IPv4, 200 ms
	vip := f.addr()
	vipAddr := netip.MustParseAddr(vip)
	vmac := VMAC(51, false)
	hub, a, b, c := netnstest.New(t, "hub"), netnstest.New(t, "a"), netnstest.New(t, "b"), netnstest.New(t, "c")
	netnstest.Bridge(t, hub, "br0", "eth0", a, b, c)
	a.Addr("eth0", "198.18.1.1/24")
	b.Addr("eth0", "198.18.1.2/24")
	c.Addr("eth0", "198.18.1.3/24")
	capC := startCapture(t, c, "eth0")
	cfg := func(name string, prio uint8) InstanceConfig {
		cf := f.cfg(name, prio)
		cf.UseVMAC, cf.VMACName = true, "vrrp.51"
		cf.GARPMasterDelay = -1
		return cf
	}
	master := startGVS(t, a, cfg("VI_A", 150))
	backup := startGVS(t, b, cfg("VI_B", 100))
	waitUntil(t, f.mdi(150)+2*time.Second, "VIP on the master's vrrp.51", func() bool { return hasAddrOn(a, "vrrp.51", vip) })
	waitUntil(t, 3*f.interval+time.Second, "backup hears the master", func() bool { return backup.Status().AdvertsReceived > 0 })
	if hasAddrOn(b, "vrrp.51", vip) || hasAddr(a, vip) {
		t.Fatal("the VIP is on the backup's vmac, or on the master's eth0")
	}
	for _, n := range []*netnstest.NS{a, b} {
		if got := macOf(t, n, "vrrp.51"); !bytes.Equal(got, vmac) {
			t.Fatalf("vrrp.51 in %s has MAC %s, want %s", n.Name, got, vmac)
		}
	}
	neighbour := func(when string) {
		t.Helper()
		if err := dialVIP(c, vip); err != nil {
			t.Fatalf("%s: client cannot reach the VIP: %v", when, err)
		}
		out := c.Run("ip", "neigh", "show", vip, "dev", "eth0")
		if !strings.Contains(out, "lladdr "+vmac.String()) {
			t.Fatalf("%s: client's neighbour entry for the VIP is %q, want lladdr %s", when, strings.TrimSpace(out), vmac)
		}
	}
	neighbour("with the first master")
	capC.take()

	master.stop(t)
	took := waitUntil(t, time.Second, "VIP moves to the backup's vrrp.51", func() bool { return hasAddrOn(b, "vrrp.51", vip) })
	t.Logf("takeover in %v", took)
	if _, err := a.Output("ip", "link", "show", "vrrp.51"); err == nil {
		t.Fatal("the stopped master kept its vrrp.51")
	}
	for _, k := range []string{"arp_ignore", "arp_announce"} {
		if v := strings.TrimSpace(a.Run("sysctl", "-n", "net.ipv4.conf.eth0."+k)); v != "0" {
			t.Fatalf("%s of the stopped master's eth0 is %s, want it restored to 0", k, v)
		}
	}
	neighbour("after failover")
	// every ARP for the VIP the client saw came from the virtual MAC, and
	// the new master announced it
	time.Sleep(100 * time.Millisecond)
	garps := 0
	for _, fr := range capC.take() {
		x, ok := parseFrame(fr)
		if !ok || x.arp == nil || len(x.arp) < 28 {
			continue
		}
		if spa, _ := netip.AddrFromSlice(x.arp[14:18]); spa != vipAddr {
			continue
		}
		if !bytes.Equal(x.arp[8:14], vmac) || !bytes.Equal(x.src, vmac) {
			t.Fatalf("ARP for the VIP from %s (sender %s), want the virtual MAC %s", x.src, net.HardwareAddr(x.arp[8:14]), vmac)
		}
		if checkGratuitousARP(x, vmac, vipAddr) == "" {
			garps++
		}
	}
	if garps == 0 {
		t.Fatal("the client saw no gratuitous ARP from the new master")
	}
}
