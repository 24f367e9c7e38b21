package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/internal/netns/netnstest"
)

// TestGvsadmRealServerSetupTeardown runs `gvsadm realserver setup` and
// `teardown` in a namespace and checks what the seeds do by hand: the VIP
// on lo as a /32 and the ARP sysctls, then everything put back.
func TestGvsadmRealServerSetupTeardown(t *testing.T) {
	netnstest.Require(t, "ip", "sysctl")
	ns := netnstest.New(t, "rsadm")
	gvsadm := filepath.Join(bin, "gvsadm")
	sysctl := func(key string) string {
		return strings.TrimSpace(ns.Run("sysctl", "-n", key))
	}
	before := sysctl("net.ipv4.conf.all.arp_ignore") + " " + sysctl("net.ipv4.conf.all.arp_announce")

	out := ns.Run(gvsadm, "realserver", "setup", "--vip", "198.18.0.100", "--mode", "dr")
	if !strings.Contains(out, "198.18.0.100") {
		t.Errorf("setup said %q", out)
	}
	if lo := ns.Run("ip", "-4", "addr", "show", "dev", "lo"); !strings.Contains(lo, "inet 198.18.0.100/32") {
		t.Errorf("the VIP is not on lo as a /32:\n%s", lo)
	}
	for key, want := range map[string]string{
		"net.ipv4.conf.all.arp_ignore": "1", "net.ipv4.conf.all.arp_announce": "2",
		"net.ipv4.conf.lo.arp_ignore": "1", "net.ipv4.conf.lo.arp_announce": "2",
	} {
		if got := sysctl(key); got != want {
			t.Errorf("%s = %s after setup, want %s", key, got, want)
		}
	}

	ns.Run(gvsadm, "realserver", "teardown", "--vip", "198.18.0.100")
	if lo := ns.Run("ip", "-4", "addr", "show", "dev", "lo"); strings.Contains(lo, "198.18.0.100") {
		t.Errorf("teardown left the VIP on lo:\n%s", lo)
	}
	if after := sysctl("net.ipv4.conf.all.arp_ignore") + " " + sysctl("net.ipv4.conf.all.arp_announce"); after != before {
		t.Errorf("teardown left arp_ignore/arp_announce at %s, were %s", after, before)
	}

	if out, err := ns.Output(gvsadm, "realserver", "setup", "--vip", "198.18.0.100", "--mode", "nat"); err == nil || !strings.Contains(out, "want dr or tun") {
		t.Errorf("setup --mode nat: %v\n%s\nwant a usage error naming dr and tun", err, out)
	}
}

// TestGvsadmRealServerTUN sets up two TUN real servers with the same VIP
// in two namespaces of one host (the seeds' lab on one machine), without
// --interface: each takes its default route's interface, the decap
// program stays attached after gvsadm exits (no BPF file system needed),
// and each teardown removes only its own.
func TestGvsadmRealServerTUN(t *testing.T) {
	netnstest.Require(t, "ip", "sysctl")
	gvsadm := filepath.Join(bin, "gvsadm")
	a, b := netnstest.New(t, "rstun"), netnstest.New(t, "rstun")
	netnstest.Veth(t, a, "eth0", b, "eth0")
	a.Addr("eth0", "198.18.5.1/24")
	b.Addr("eth0", "198.18.5.2/24")
	a.Run("ip", "route", "add", "default", "via", "198.18.5.2")
	b.Run("ip", "route", "add", "default", "via", "198.18.5.1")
	xdpOn := func(ns *netnstest.NS) bool {
		return strings.Contains(ns.Run("ip", "-d", "link", "show", "dev", "eth0"), "prog/xdp")
	}
	for _, ns := range []*netnstest.NS{a, b} {
		out, err := ns.Output(gvsadm, "realserver", "setup", "--vip", "198.18.5.100", "--mode", "tun", "--generic")
		if err != nil {
			t.Fatalf("setup in %s: %v\n%s", ns.Name, err, out)
		}
		if !strings.Contains(out, "taken on eth0, the interface of the default route") {
			t.Errorf("setup in %s did not say which interface it took:\n%s", ns.Name, out)
		}
		if !xdpOn(ns) {
			t.Errorf("no XDP program on eth0 in %s after gvsadm exited", ns.Name)
		}
	}
	a.Run(gvsadm, "realserver", "teardown", "--vip", "198.18.5.100")
	if xdpOn(a) {
		t.Error("teardown left the decap program on eth0")
	}
	if !xdpOn(b) {
		t.Error("teardown in one namespace removed the other's decap program")
	}
	b.Run(gvsadm, "realserver", "teardown", "--vip", "198.18.5.100")
	if xdpOn(b) {
		t.Error("the second teardown left its decap program")
	}

	lone := netnstest.New(t, "rstun")
	if out, err := lone.Output(gvsadm, "realserver", "setup", "--vip", "198.18.5.100", "--mode", "tun"); err == nil || !strings.Contains(out, "no default route") {
		t.Errorf("setup --mode tun without a default route or --interface: %v\n%s\nwant a usage error saying there is no default route", err, out)
	}
}
