package e2e

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestXDPFirewallMark runs examples/fwmark-xdp.conf with its rules file
// as written on the xdp engine (the lab of xdpLab): the firewall-mark
// service of ports 80 and 443 reaches the real servers on both ports, a
// client's connections to both ports go to one real server (persistence
// by mark), two clients get the two real servers (rr), and an unmarked
// port is not served by it. A reload (SIGHUP) with a broken rules file
// keeps the running rules; one without 443 stops serving 443.
func TestXDPFirewallMark(t *testing.T) {
	l := newXDPLab(t, 1)
	for i, n := range l.rs {
		n.Start(filepath.Join(bin, "rs"), "-name", fmt.Sprintf("RS%d", i+1), "-listen", ":443")
		waitListening(t, n, e2eVIP+":443")
	}
	l.client.Addr("eth0", "198.18.0.101/24")
	l.moveVIP(0)
	rules := filepath.Join(t.TempDir(), "fwmark.rules")
	text, err := os.ReadFile("../../examples/fwmark-xdp.rules")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rules, text, 0o644); err != nil {
		t.Fatal(err)
	}
	conf, _ := filepath.Abs("../../examples/fwmark-xdp.conf")
	p := l.start(t, 0, "-f", conf, "--fwmark-rules", rules)
	waitFor(t, 30*time.Second, "both real servers up (TCP_CHECK)", func() bool {
		return strings.Contains(l.pool(0), "RS1:1 RS2:1")
	})
	if ln := l.mustAdm(0, "-Ln"); !strings.Contains(ln, "FWM  1 rr persistent 300") {
		t.Fatalf("gvsadm -Ln does not list the firewall-mark service:\n%s", ln)
	}
	waitFor(t, 30*time.Second, "an answer through the VIP", func() bool {
		_, err := getFrom(l.client.Name, "198.18.0.100", e2eVIP+":80")
		return err == nil
	})

	served := map[string]string{} // client address: real server
	for _, src := range []string{"198.18.0.100", "198.18.0.101"} {
		for i := range 6 {
			port := []string{"80", "443"}[i%2]
			body, err := getFrom(l.client.Name, src, e2eVIP+":"+port)
			if err != nil {
				t.Fatalf("GET %s:%s from %s: %v\ngvsd log:\n%s", e2eVIP, port, src, err, p.Output())
			}
			name := strings.Fields(body)[0]
			if served[src] == "" {
				served[src] = name
			} else if served[src] != name {
				t.Errorf("client %s got %s on port %s after %s: persistence by mark should keep one real server", src, name, port, served[src])
			}
		}
	}
	if served["198.18.0.100"] == served["198.18.0.101"] {
		t.Errorf("both clients went to %s: rr should give the second client the other real server", served["198.18.0.100"])
	}
	// Nothing marks 8080 and no service has it: the director's own stack
	// refuses it.
	if body, err := getFrom(l.client.Name, "198.18.0.100", e2eVIP+":8080"); err == nil || !strings.Contains(err.Error(), "refused") {
		t.Errorf("unmarked port 8080: %q, %v; want the director's connection refused", body, err)
	}
	conns := l.mustAdm(0, "-Lnc")
	if !strings.Contains(conns, e2eVIP+":443") || !strings.Contains(conns, e2eVIP+":80") {
		t.Errorf("gvsadm -Lnc lists no connections to both ports:\n%s", conns)
	}

	// A broken file keeps the running rules.
	os.WriteFile(rules, []byte("*mangle\n-A PREROUTING -d 198.18.0.200/32 -p tcp -j ACCEPT\nCOMMIT\n"), 0o644)
	p.Cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "the refused reload in gvsd's log", func() bool {
		return strings.Contains(p.Output(), "firewall-mark rules reload refused, still running the previous rules: "+rules+":2: -j ACCEPT")
	})
	if _, err := getFrom(l.client.Name, "198.18.0.100", e2eVIP+":443"); err != nil {
		t.Fatalf("443 after a refused reload: %v", err)
	}
	// Rules without 443: new connections to 443 go to the stack.
	os.WriteFile(rules, []byte(strings.Replace(string(text), "--dports 80,443", "--dports 80", 1)), 0o644)
	p.Cmd.Process.Signal(syscall.SIGHUP)
	waitFor(t, 10*time.Second, "443 unserved after the reload", func() bool {
		_, err := getFrom(l.client.Name, "198.18.0.100", e2eVIP+":443")
		return err != nil && strings.Contains(err.Error(), "refused")
	})
	if _, err := getFrom(l.client.Name, "198.18.0.100", e2eVIP+":80"); err != nil {
		t.Fatalf("80 after the reload: %v\ngvsd log:\n%s", err, p.Output())
	}
}

// getFrom is getInNS from the local address src.
func getFrom(ns, src, addr string) (string, error) {
	return getInNSFrom(ns, &net.TCPAddr{IP: net.ParseIP(src)}, addr)
}
