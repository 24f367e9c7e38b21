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
