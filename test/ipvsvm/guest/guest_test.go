// Package guest holds the end-to-end tests that run inside the IPVS VM
// (see test/ipvsvm): gvsd --engine ipvs on a real IPVS kernel from a
// keepalived.conf, next to the real ipvsadm. Outside the VM they skip.
package guest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/netns/netnstest"
)

// bin holds gvsd, gvsadm and rs (GVS_BIN, set by the VM's guest.sh).
var bin = os.Getenv("GVS_BIN")

func requireVM(t *testing.T) {
	t.Helper()
	if os.Getenv("GVS_IPVS_VM") == "" || bin == "" {
		t.Skip("runs inside the IPVS VM: go test ./test/ipvsvm")
	}
	netnstest.Require(t, "sysctl", "curl", "ipvsadm")
}

// lab is a director namespace running gvsd --engine ipvs, a client and
// two real servers.
type lab struct {
	t      *testing.T
	client *netnstest.NS
	dir    *netnstest.NS
	rs     [2]*netnstest.NS
	rsAddr [2]string
	rsProc [2]*netnstest.Proc
	socket string
}

const vip = "198.18.0.10"

// natLab is the seeds' NAT topology: the client on 198.18.0.0/24, the
// real servers on 198.19.0.0/24 behind the director, which forwards.
func natLab(t *testing.T) *lab {
	l := &lab{t: t, client: netnstest.New(t, "cli"), dir: netnstest.New(t, "dir"),
		rs: [2]*netnstest.NS{netnstest.New(t, "rs1"), netnstest.New(t, "rs2")}, rsAddr: [2]string{"198.19.0.11", "198.19.0.12"}}
	netnstest.Bridge(t, netnstest.New(t, "hubc"), "br0", "eth0", l.client, l.dir)
	netnstest.Bridge(t, netnstest.New(t, "hubr"), "br1", "eth1", l.dir, l.rs[0], l.rs[1])
	l.client.Addr("eth0", "198.18.0.2/24")
	l.dir.Addr("eth0", "198.18.0.1/24")
	l.dir.Addr("eth0", vip+"/32")
	l.dir.Addr("eth1", "198.19.0.1/24")
	l.dir.Run("sysctl", "-qw", "net.ipv4.ip_forward=1")
	for i, n := range l.rs {
		n.Addr("eth1", l.rsAddr[i]+"/24")
		n.Run("ip", "route", "add", "default", "via", "198.19.0.1")
		l.startRS(i)
	}
	return l
}

// drLab is the seeds' DR topology: one segment, the VIP on the director
// and on the real servers' lo (which do not answer ARP for it).
func drLab(t *testing.T) *lab {
	l := &lab{t: t, client: netnstest.New(t, "cli"), dir: netnstest.New(t, "dir"),
		rs: [2]*netnstest.NS{netnstest.New(t, "rs1"), netnstest.New(t, "rs2")}, rsAddr: [2]string{"198.18.0.11", "198.18.0.12"}}
	netnstest.Bridge(t, netnstest.New(t, "hub"), "br0", "eth0", l.client, l.dir, l.rs[0], l.rs[1])
	l.client.Addr("eth0", "198.18.0.2/24")
	l.dir.Addr("eth0", "198.18.0.1/24")
	l.dir.Addr("eth0", vip+"/32")
	for i, n := range l.rs {
		drRealServer(n, l.rsAddr[i], vip)
		l.startRS(i)
	}
	return l
}

// drRealServer gives a DR real server its address on eth0 and the VIPs
// on lo, and makes it answer no ARP for them.
func drRealServer(n *netnstest.NS, addr string, vips ...string) {
	n.Addr("eth0", addr+"/24")
	for _, v := range vips {
		n.Addr("lo", v+"/32")
	}
	n.Run("sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2",
		"net.ipv4.conf.eth0.arp_ignore=1", "net.ipv4.conf.eth0.arp_announce=2")
}

func (l *lab) startRS(i int) {
	l.rsProc[i] = l.rs[i].Start(filepath.Join(bin, "rs"), "-name", fmt.Sprintf("RS%d", i+1), "-listen", "0.0.0.0:80")
	l.waitFor(10*time.Second, fmt.Sprintf("RS%d listening", i+1), func() bool {
		_, err := l.rs[i].Output("curl", "-s", "--max-time", "1", "http://127.0.0.1/")
		return err == nil
	})
}

// startGVSD runs gvsd --engine ipvs in the director's namespace with the
// keepalived.conf at path, or when path is empty one of a virtual server
// (lvs_method kind) whose real servers are checked with TCP_CHECK every
// second.
func (l *lab) startGVSD(kind, path string) {
	if path == "" {
		path = l.writeConf(kind)
	}
	l.socket = filepath.Join(l.t.TempDir(), "gvsd.sock")
	l.dir.Start(filepath.Join(bin, "gvsd"), "--engine", "ipvs", "-f", path, "--socket", l.socket, "--grace", "1s")
	l.waitFor(15*time.Second, "gvsd's two real servers in the kernel", func() bool {
		out, _ := l.dir.Output("ipvsadm", "-Sn")
		return strings.Count(out, "-a -t") == 2
	})
}

func (l *lab) writeConf(kind string) string {
	conf := fmt.Sprintf(`virtual_server %s 80 {
    delay_loop 1
    lvs_sched rr
    lvs_method %s
    protocol TCP
`, vip, kind)
	for _, a := range l.rsAddr {
		conf += fmt.Sprintf(`    real_server %s 80 {
        weight 1
        TCP_CHECK {
            connect_timeout 1
            retry 0
        }
    }
`, a)
	}
	conf += "}\n"
	path := filepath.Join(l.t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		l.t.Fatal(err)
	}
	return path
}

func (l *lab) gvsadm(args ...string) string {
	l.t.Helper()
	cmd := l.dir.Cmd(filepath.Join(bin, "gvsadm"), args...)
	cmd.Env = append(os.Environ(), "GVS_SOCKET="+l.socket)
	out, err := cmd.CombinedOutput()
	if err != nil {
		l.t.Fatalf("gvsadm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (l *lab) waitFor(limit time.Duration, what string, ok func() bool) {
	l.t.Helper()
	for deadline := time.Now().Add(limit); !ok(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			l.t.Fatalf("not so after %s: %s", limit, what)
		}
	}
}

// curls fetches the VIP n times from the client and returns the answers.
func (l *lab) curls(n int) []string {
	l.t.Helper()
	var got []string
	for range n {
		out, err := l.client.Output("curl", "-s", "--max-time", "3", "http://"+vip+"/")
		if err != nil {
			l.t.Fatalf("curl http://%s/ from the client: %v", vip, err)
		}
		got = append(got, strings.TrimSpace(out))
	}
	return got
}

func alternates(got []string) bool {
	for i := range got {
		if got[i] != "RS1" && got[i] != "RS2" || i > 0 && got[i] == got[i-1] {
			return false
		}
	}
	return true
}

// sameListing checks that the real ipvsadm and gvsadm print the same for
// args. The expiry column of -c counts down each second, and under
// emulation a command takes a good part of one, so there gvsadm's output
// is read between two of ipvsadm's and each of its lines must be the line
// ipvsadm printed before or after it.
func (l *lab) sameListing(args ...string) {
	l.t.Helper()
	before := l.dir.Run("ipvsadm", args...)
	ours := l.gvsadm(args...)
	after := l.dir.Run("ipvsadm", args...)
	if ours == before || ours == after {
		return
	}
	b, o, a := strings.Split(before, "\n"), strings.Split(ours, "\n"), strings.Split(after, "\n")
	same := slices.Contains(args, "-Lnc") && len(b) == len(o) && len(o) == len(a)
	for i := range o {
		same = same && (o[i] == b[i] || o[i] == a[i])
	}
	if !same {
		l.t.Errorf("ipvsadm %s differs from gvsadm's:\n--- ipvsadm\n%s--- gvsadm\n%s--- ipvsadm again\n%s", strings.Join(args, " "), before, ours, after)
	}
}

// run is the lab's experiment: round robin alternates, ipvsadm and gvsadm
// read the same table, a stopped real server is taken out by its health
// check and comes back when it answers again.
func (l *lab) run(kind, conf string) {
	t := l.t
	l.startGVSD(kind, conf)
	if got := l.curls(6); !alternates(got) {
		t.Fatalf("rr through gvsd --engine ipvs (%s) answered %v, want RS1 and RS2 alternating", kind, got)
	}
	l.sameListing("-Ln")
	l.sameListing("-Sn")
	l.sameListing("-Lnc")
	// Counters reach ipvsadm through the kernel's estimator, every 2 s.
	time.Sleep(3 * time.Second)
	l.sameListing("-Ln", "--stats")
	t.Logf("ipvsadm -Ln --stats after 6 requests (%s):\n%s", kind, l.dir.Run("ipvsadm", "-Ln", "--stats"))

	l.rsProc[0].Stop()
	l.waitFor(30*time.Second, "RS1 taken out by its health check", func() bool {
		return !strings.Contains(l.dir.Run("ipvsadm", "-Sn"), l.rsAddr[0]+":80")
	})
	for _, got := range l.curls(3) {
		if got != "RS2" {
			t.Fatalf("with RS1 down, a request was answered by %q", got)
		}
	}
	l.sameListing("-Ln")
	l.startRS(0)
	l.waitFor(30*time.Second, "RS1 back after its health check passes", func() bool {
		return strings.Contains(l.dir.Run("ipvsadm", "-Sn"), l.rsAddr[0]+":80")
	})
	if got := l.curls(4); !alternates(got) {
		t.Fatalf("with RS1 back, rr answered %v, want RS1 and RS2 alternating", got)
	}
	l.sameListing("-Ln")
}

// TestNATLab runs examples/nat-http.conf (seed 001's director: HTTP_GET
// checks every 6 s) on the NAT topology it is written for.
func TestNATLab(t *testing.T) {
	requireVM(t)
	natLab(t).run("NAT", filepath.Join(bin, "..", "examples", "nat-http.conf"))
}

func TestDRLab(t *testing.T) {
	requireVM(t)
	drLab(t).run("DR", "")
}

// TestSyncDaemons: gvsadm --start-daemon on the ipvs engine starts the
// kernel's own sync daemons, which ipvsadm then lists as gvsadm does.
func TestSyncDaemons(t *testing.T) {
	requireVM(t)
	l := natLab(t)
	l.startGVSD("NAT", "")
	l.gvsadm("--start-daemon", "master", "--mcast-interface", "eth0", "--syncid", "3")
	l.gvsadm("--start-daemon", "backup", "--mcast-interface", "eth1", "--syncid", "4", "--mcast-port", "8849")
	real := l.dir.Run("ipvsadm", "-L", "--daemon")
	if !strings.Contains(real, "master sync daemon (mcast=eth0, syncid=3") || !strings.Contains(real, "backup sync daemon (mcast=eth1, syncid=4") {
		t.Fatalf("after gvsadm --start-daemon, the kernel's ipvsadm -L --daemon lists:\n%s", real)
	}
	l.sameListing("-L", "--daemon")
	l.gvsadm("--stop-daemon", "master")
	if real := l.dir.Run("ipvsadm", "-L", "--daemon"); strings.Contains(real, "master") {
		t.Fatalf("after gvsadm --stop-daemon master, ipvsadm -L --daemon lists:\n%s", real)
	}
	l.sameListing("-L", "--daemon")
}

// gvsd is a gvsd started in a namespace.
type gvsd struct {
	ns     *netnstest.NS
	socket string
}

func startGVSD(t *testing.T, ns *netnstest.NS, conf string, args ...string) *gvsd {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	g := &gvsd{ns: ns, socket: filepath.Join(dir, "gvsd.sock")}
	p := ns.Start(filepath.Join(bin, "gvsd"), append([]string{"-f", path, "--socket", g.socket, "--grace", "1s"}, args...)...)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(g.socket); err == nil {
			return g
		}
		select {
		case <-p.Done():
			// The xdp engine's program must load on the VM's kernel
			// (Debian 12's 6.1): see TestLinux61ControlFlow.
			t.Fatalf("gvsd %s exited on Linux %s:\n%s", strings.Join(args, " "), kernelRelease(), p.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("gvsd %s: no admin socket after 15 s:\n%s", strings.Join(args, " "), p.Output())
		}
	}
}

func kernelRelease() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return strings.TrimSpace(string(b))
}

func (g *gvsd) gvsadm(t *testing.T, args ...string) string {
	t.Helper()
	return (&lab{t: t, dir: g.ns, socket: g.socket}).gvsadm(args...)
}

// TestSyncInterop: connection sync between gvsd's own daemons (xdp
// engine) and the kernel's (ipvs engine), both ways. Director A runs the
// xdp engine and serves VIP1, director B the ipvs engine and serves VIP2;
// both have both services. A's master (syncid 1) feeds B's kernel backup,
// B's kernel master (syncid 2) feeds A's backup.
func TestSyncInterop(t *testing.T) {
	requireVM(t)
	const vip1, vip2, rsAddr = "198.18.0.10", "198.18.0.20", "198.18.0.11"
	client, a, b, rs := netnstest.New(t, "cli"), netnstest.New(t, "dira"), netnstest.New(t, "dirb"), netnstest.New(t, "rs")
	netnstest.Bridge(t, netnstest.New(t, "hub"), "br0", "eth0", client, a, b, rs)
	client.Addr("eth0", "198.18.0.2/24")
	a.Addr("eth0", "198.18.0.1/24")
	a.Addr("eth0", vip1+"/32")
	b.Addr("eth0", "198.18.0.3/24")
	b.Addr("eth0", vip2+"/32")
	drRealServer(rs, rsAddr, vip1, vip2)
	rs.Start(filepath.Join(bin, "rs"), "-name", "RS1", "-listen", "0.0.0.0:80")
	var conf string
	for _, v := range []string{vip1, vip2} {
		conf += fmt.Sprintf("virtual_server %s 80 {\n    lvs_sched rr\n    lvs_method DR\n    protocol TCP\n    real_server %s 80 {\n        weight 1\n    }\n}\n", v, rsAddr)
	}
	ga := startGVSD(t, a, conf, "--engine", "xdp", "--interface", "eth0")
	gb := startGVSD(t, b, conf, "--engine", "ipvs")
	ga.gvsadm(t, "--start-daemon", "master", "--mcast-interface", "eth0", "--syncid", "1")
	ga.gvsadm(t, "--start-daemon", "backup", "--mcast-interface", "eth0", "--syncid", "2")
	gb.gvsadm(t, "--start-daemon", "master", "--mcast-interface", "eth0", "--syncid", "2")
	gb.gvsadm(t, "--start-daemon", "backup", "--mcast-interface", "eth0", "--syncid", "1")

	l := &lab{t: t}
	curl := func(v string) {
		l.waitFor(15*time.Second, "an answer through "+v, func() bool {
			out, err := client.Output("curl", "-s", "--max-time", "2", "http://"+v+"/")
			return err == nil && strings.TrimSpace(out) == "RS1"
		})
	}
	curl(vip1)
	l.waitFor(20*time.Second, "the xdp master's connection in the kernel backup's table (ipvsadm -Lnc on B)", func() bool {
		return strings.Contains(b.Run("ipvsadm", "-Lnc"), vip1+":80")
	})
	t.Logf("B (kernel backup) after a connection through A (xdp master):\n%s", b.Run("ipvsadm", "-Lnc"))
	curl(vip2)
	l.waitFor(20*time.Second, "the kernel master's connection in the xdp backup's table (gvsadm -Lnc on A)", func() bool {
		return strings.Contains(ga.gvsadm(t, "-Lnc"), vip2+":80")
	})
	t.Logf("A (xdp backup) after a connection through B (kernel master):\n%s", ga.gvsadm(t, "-Lnc"))
}
