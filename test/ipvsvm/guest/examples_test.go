package guest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/netns/netnstest"
)

// share is what the host copied into the VM beside bin: examples/ and
// README.md.
func share(name string) string { return filepath.Join(bin, "..", name) }

// TestReadmeQuickStart runs the README's quick start on the ipvs engine:
// the block as written from its first gvsd line on (the guest has no Go,
// so bin/ is the binaries the host built), with --engine ipvs, in a
// namespace of its own. The kernel NATs the loopback client to the
// loopback real servers.
func TestReadmeQuickStart(t *testing.T) {
	requireVM(t)
	readme, err := os.ReadFile(share("README.md"))
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile("(?s)```sh\n(go build -o bin/ .*?curl [^\n]*\n)```").FindSubmatch(readme)
	if block == nil {
		t.Fatal("README.md has no quick-start block from `go build -o bin/` to `curl`")
	}
	script := string(block[1])
	script = script[strings.Index(script, "\n")+1:] // the go build line
	if !strings.Contains(script, "--engine proxy") || !strings.Contains(script, "sleep 1") {
		t.Fatalf("the quick start no longer starts gvsd with --engine proxy and then sleeps 1 s; adapt this test:\n%s", script)
	}
	sock := filepath.Join(t.TempDir(), "gvs.sock")
	script = strings.NewReplacer(
		"bin/", bin+"/",
		"--engine proxy", "--engine ipvs",
		"/tmp/gvs.sock", sock,
		// Under emulation gvsd takes longer than a second to start.
		"sleep 1", "for i in $(seq 150); do [ -S "+sock+" ] && break; sleep 0.1; done",
	).Replace(script)
	ns := netnstest.New(t, "qs")
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns.Name, "bash", "-c",
		"set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null; wait' EXIT\n"+script+bin+"/gvsadm -Ln\nipvsadm -Ln\n")
	out, err := cmd.CombinedOutput()
	t.Logf("the quick start on the ipvs engine:\n%s\noutput:\n%s", script, out)
	if err != nil {
		t.Fatalf("the README's quick start failed on the ipvs engine: %v", err)
	}
	// The quick start's gvsadm -Ln; after the curl, gvsadm's and the
	// kernel's own listing of the same table.
	listing := regexp.MustCompile(`IP Virtual Server version[^\n]*\nProt[^\n]*\n  -> RemoteAddress[^\n]*\n(?:(?:TCP|UDP)  [^\n]*\n(?:  -> [^\n]*\n)*)*`).FindAllString(string(out), -1)
	if len(listing) != 3 || listing[1] != listing[2] || !strings.Contains(listing[0], "Masq    2") {
		t.Errorf("gvsadm -Ln should list two NAT real servers (weights 1 and 2), the same as ipvsadm -Ln after the curl; got %q", listing)
	}
	if !regexp.MustCompile(`(?m)^RS[12]$`).Match(out) {
		t.Error("curl got no answer from RS1 or RS2 through the kernel's IPVS")
	}
}

// TestExamples: every keepalived.conf in examples/ either runs on the
// ipvs engine in a lab of its own here, or is refused by gvsd -t naming
// the engine that can run it (FullNAT and the PROXY protocol are not in
// the kernel).
func TestExamples(t *testing.T) {
	requireVM(t)
	ranHere := map[string]string{ // file: the test that runs it
		"nat-http.conf":   "TestNATLab",
		"dr-vrrp.conf":    "TestDRVRRPLab",
		"fwmark-xdp.conf": "TestFWMarkLab",
	}
	files, _ := filepath.Glob(share("examples/*.conf"))
	if len(files) == 0 {
		t.Fatalf("no examples/*.conf in %s", share("examples"))
	}
	for _, f := range files {
		name := filepath.Base(f)
		out, err := exec.Command(filepath.Join(bin, "gvsd"), "--engine", "ipvs", "-t", "-f", f).CombinedOutput()
		switch test, ok := ranHere[name]; {
		case err == nil && ok:
			t.Logf("%s: configuration OK on the ipvs engine, run by %s", name, test)
		case err == nil:
			t.Errorf("%s runs on the ipvs engine (gvsd -t accepts it) but no test here runs it: give it a lab as TestDRVRRPLab does", name)
		case ok:
			t.Errorf("gvsd --engine ipvs -t refuses %s, which %s runs: %v\n%s", name, test, err, out)
		case !regexp.MustCompile(`is not in the kernel's IPVS: run gvsd --engine (xdp|proxy)`).Match(out):
			t.Errorf("gvsd --engine ipvs -t refuses %s without naming the engine that can run it: %v\n%s", name, err, out)
		default:
			t.Logf("%s: refused on the ipvs engine, as it should be:\n%s", name, out)
		}
	}
}

// TestDRVRRPLab is seed 004's lab with examples/dr-vrrp.conf as written:
// two directors running gvsd --engine ipvs, the MASTER with the file and
// the BACKUP with state BACKUP and priority 90, the real servers
// 198.18.0.2 and .3 with the VIP on lo. The seeds' three experiments: rr
// alternates, a stopped real server is taken out and comes back, and
// when the MASTER stops the BACKUP takes the VIP and answers.
func TestDRVRRPLab(t *testing.T) {
	requireVM(t)
	const vip = "198.18.0.100"
	conf, err := os.ReadFile(share("examples/dr-vrrp.conf"))
	if err != nil {
		t.Fatal(err)
	}
	backup := strings.NewReplacer("state MASTER", "state BACKUP", "priority 100", "priority 90").Replace(string(conf))
	if backup == string(conf) {
		t.Fatal("examples/dr-vrrp.conf no longer has state MASTER and priority 100, which this test turns into the BACKUP's")
	}
	client, dir1, dir2 := netnstest.New(t, "cli"), netnstest.New(t, "dir1"), netnstest.New(t, "dir2")
	rs := [2]*netnstest.NS{netnstest.New(t, "rs1"), netnstest.New(t, "rs2")}
	netnstest.Bridge(t, netnstest.New(t, "hub"), "br0", "eth0", client, dir1, dir2, rs[0], rs[1])
	client.Addr("eth0", "198.18.0.50/24")
	dir1.Addr("eth0", "198.18.0.4/24")
	dir2.Addr("eth0", "198.18.0.5/24")
	l := &lab{t: t, client: client, dir: dir1, rs: rs, rsAddr: [2]string{"198.18.0.2", "198.18.0.3"}}
	for i, n := range rs {
		drRealServer(n, l.rsAddr[i], vip)
		l.startRS(i)
	}
	dir := t.TempDir()
	backupPath := filepath.Join(dir, "backup.conf")
	if err := os.WriteFile(backupPath, []byte(backup), 0o644); err != nil {
		t.Fatal(err)
	}
	start := func(ns *netnstest.NS, conf, sock string) *netnstest.Proc {
		return ns.Start(filepath.Join(bin, "gvsd"), "--engine", "ipvs", "-f", conf, "--socket", sock, "--grace", "1s")
	}
	master := start(dir1, share("examples/dr-vrrp.conf"), filepath.Join(dir, "master.sock"))
	start(dir2, backupPath, filepath.Join(dir, "backup.sock"))
	hasVIP := func(ns *netnstest.NS) bool {
		return strings.Contains(ns.Run("ip", "-4", "addr", "show", "dev", "eth0"), vip+"/32")
	}
	l.waitFor(30*time.Second, "the MASTER (dir1) holds the VIP and has both real servers", func() bool {
		return hasVIP(dir1) && strings.Count(dir1.Run("ipvsadm", "-Sn"), "-a -t") == 2
	})
	if hasVIP(dir2) {
		t.Fatal("the BACKUP (dir2) holds the VIP too")
	}
	curls := func(n int) []string {
		var got []string
		for range n {
			out, err := client.Output("curl", "-s", "--max-time", "3", "http://"+vip+"/")
			if err != nil {
				t.Fatalf("curl http://%s/ from the client: %v", vip, err)
			}
			got = append(got, strings.TrimSpace(out))
		}
		return got
	}

	// 1: round robin through the MASTER's kernel.
	if got := curls(6); !alternates(got) {
		t.Fatalf("rr through the MASTER answered %v, want RS1 and RS2 alternating", got)
	}
	// 2: a stopped real server is taken out by TCP_CHECK (retry 3,
	// delay_before_retry 3) and comes back.
	l.rsProc[0].Stop()
	l.waitFor(60*time.Second, "RS1 (198.18.0.2) taken out of the MASTER's table", func() bool {
		return !strings.Contains(dir1.Run("ipvsadm", "-Sn"), l.rsAddr[0]+":80")
	})
	for _, got := range curls(3) {
		if got != "RS2" {
			t.Fatalf("with RS1 down, a request was answered by %q", got)
		}
	}
	l.startRS(0)
	l.waitFor(30*time.Second, "RS1 back in the MASTER's table", func() bool {
		return strings.Contains(dir1.Run("ipvsadm", "-Sn"), l.rsAddr[0]+":80")
	})
	// 3: the MASTER stops; the BACKUP takes the VIP and its kernel
	// answers.
	l.waitFor(30*time.Second, "both real servers in the BACKUP's table", func() bool {
		return strings.Count(dir2.Run("ipvsadm", "-Sn"), "-a -t") == 2
	})
	master.Stop()
	l.waitFor(15*time.Second, "the BACKUP (dir2) holds the VIP after the MASTER stopped", func() bool { return hasVIP(dir2) })
	if hasVIP(dir1) {
		t.Error("the stopped MASTER still holds the VIP")
	}
	l.waitFor(15*time.Second, "an answer through the BACKUP", func() bool {
		out, err := client.Output("curl", "-s", "--max-time", "2", "http://"+vip+"/")
		return err == nil && strings.HasPrefix(strings.TrimSpace(out), "RS")
	})
	if got := curls(4); !alternates(got) {
		t.Fatalf("rr through the BACKUP answered %v, want RS1 and RS2 alternating", got)
	}
	t.Logf("the BACKUP's table after the failover:\n%s", dir2.Run("ipvsadm", "-Ln", "--stats"))
}

// TestFWMarkLab runs examples/fwmark-xdp.conf as written on the ipvs
// engine, with its rules file loaded by iptables-restore as the file's
// header says: the kernel's IPVS serves the mark iptables gives ports 80
// and 443. What test/e2e's TestXDPFirewallMark asserts of the xdp engine
// holds of the kernel too: a client's connections to both ports go to
// one real server (persistence by mark), a second client gets the other
// (rr), an unmarked port is not served, and gvsadm lists the service and
// its connections as ipvsadm does.
func TestFWMarkLab(t *testing.T) {
	requireVM(t)
	netnstest.Require(t, "iptables-restore")
	const vip = "198.18.0.200"
	client, dir := netnstest.New(t, "cli"), netnstest.New(t, "dir")
	rs := [2]*netnstest.NS{netnstest.New(t, "rs1"), netnstest.New(t, "rs2")}
	netnstest.Bridge(t, netnstest.New(t, "hub"), "br0", "eth0", client, dir, rs[0], rs[1])
	client.Addr("eth0", "198.18.0.100/24")
	client.Addr("eth0", "198.18.0.101/24")
	dir.Addr("eth0", "198.18.0.1/24")
	dir.Addr("eth0", vip+"/32")
	l := &lab{t: t, client: client, dir: dir, rs: rs, rsAddr: [2]string{"198.18.0.11", "198.18.0.12"}}
	for i, n := range rs {
		drRealServer(n, l.rsAddr[i], vip)
		l.startRS(i)
		n.Start(filepath.Join(bin, "rs"), "-name", fmt.Sprintf("RS%d", i+1), "-listen", "0.0.0.0:443")
	}
	rules, err := os.ReadFile(share("examples/fwmark-xdp.rules"))
	if err != nil {
		t.Fatal(err)
	}
	restore := dir.Cmd("iptables-restore")
	restore.Stdin = strings.NewReader(string(rules))
	if out, err := restore.CombinedOutput(); err != nil {
		t.Fatalf("iptables-restore examples/fwmark-xdp.rules in the director: %v\n%s", err, out)
	}
	l.socket = filepath.Join(t.TempDir(), "gvsd.sock")
	dir.Start(filepath.Join(bin, "gvsd"), "--engine", "ipvs", "-f", share("examples/fwmark-xdp.conf"), "--socket", l.socket, "--grace", "1s")
	l.waitFor(30*time.Second, "both real servers of FWM 1 in the kernel (TCP_CHECK)", func() bool {
		return strings.Count(dir.Run("ipvsadm", "-Sn"), "-a -f 1") == 2
	})
	get := func(src, port string) (string, error) {
		out, err := client.Output("curl", "-s", "--max-time", "3", "--interface", src, "http://"+vip+":"+port+"/")
		return strings.TrimSpace(out), err
	}
	served := map[string]string{} // client address: real server
	for _, src := range []string{"198.18.0.100", "198.18.0.101"} {
		for i := range 6 {
			port := []string{"80", "443"}[i%2]
			name, err := get(src, port)
			if err != nil {
				t.Fatalf("curl %s:%s from %s through the kernel's fwmark service: %v", vip, port, src, err)
			}
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
	if out, err := get("198.18.0.100", "8080"); err == nil {
		t.Errorf("unmarked port 8080 answered %q; nothing marks it and no service has it", out)
	}
	l.sameListing("-Ln")
	l.sameListing("-Sn")
	l.sameListing("-Lnc")
	t.Logf("ipvsadm -Lnc after the requests:\n%s", dir.Run("ipvsadm", "-Lnc"))
}
