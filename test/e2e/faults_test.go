package e2e

// Faults under load (issue 11): a real server killed, reloads, a director
// killed, gvsd restarted, the connection table overflowing. Each test runs
// a bounded load, logs its figures (requests sent and failed, when) and
// asserts what a client sees. bench/README.md ("Faults under load")
// summarises them.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	apiclient "github.com/gvs-lb/gvs/internal/api/client"
	"github.com/gvs-lb/gvs/internal/api/wire"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// startRSProc runs the test/rs binary on loopback and waits until it
// listens; the test's cleanup kills it (by pid) if it still runs.
func startRSProc(t *testing.T, name, addr string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "rs"), "-name", name, "-listen", addr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-done })
	waitFor(t, 10*time.Second, name+" listening on "+addr, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return cmd
}

// httpGetCheck is a real server's HTTP_GET health check with the seeds'
// timers (as tcpCheck).
const httpGetCheck = `		weight 1
		HTTP_GET {
			url {
				path /
				status_code 200
			}
			connect_timeout 1
			retry 1
			delay_before_retry 1
		}
`

// killUnderLoad runs a load of new connections (do), kills RS1 (kill)
// after a second and waits until RS1 is out of the pool (out). A client
// may see errors only for requests in flight when RS1 died or scheduled
// to it before its health check took it out; none started after that,
// and from then on RS2 answers everything.
func killUnderLoad(t *testing.T, do func(int) (string, error), kill func(), out func() bool) {
	t.Helper()
	ld := startLoad(4, 5*time.Millisecond, 20000, 30*time.Second, do)
	time.Sleep(time.Second)
	killed := ld.mark("RS1 killed")
	kill()
	waitFor(t, detectWithin+2*time.Second, "RS1 out of the pool", out)
	taken := ld.mark("RS1 out of the pool")
	time.Sleep(2 * time.Second)
	reqs := ld.finish()
	ld.report(t, reqs)

	if got := answers(reqs, ld.t0, killed); got["RS1"] == 0 || got["RS2"] == 0 {
		t.Errorf("before the kill the answers were %v, want both RS1 and RS2", got)
	}
	if got := answers(reqs, taken, time.Now()); got["RS1"] != 0 || got["RS2"] < 50 {
		t.Errorf("after RS1 was taken out the answers were %v, want RS2 only (at least 50)", got)
	}
	for _, r := range reqs {
		if r.err == nil {
			continue
		}
		if r.end.Before(killed) {
			t.Errorf("a request failed before RS1 was killed (at %s): %v", r.end.Sub(ld.t0), r.err)
		}
		if r.start.After(taken) {
			t.Errorf("a request started %s after RS1 was taken out failed: %v", r.start.Sub(taken), r.err)
		}
	}
}

// TestFaultRealServerKilledProxy: gvsd runs a keepalived.conf with two
// real servers (test/rs processes) behind a TCP_CHECK on the proxy
// engine; RS1 is SIGKILLed under load. The proxy resets a client whose
// connect to RS1 fails and skips RS1 for 2 s; the checker takes RS1 out
// within about 2-4 s. Figures of a run are in bench/README.md.
func TestFaultRealServerKilledProxy(t *testing.T) {
	addr1, addr2 := "127.0.0.1:"+freePort(t), "127.0.0.1:"+freePort(t)
	rs1 := startRSProc(t, "RS1", addr1)
	startRSProc(t, "RS2", addr2)
	vip := "127.0.0.1:" + freePort(t)
	names := map[string]string{addr1: "RS1", addr2: "RS2"}
	d := startKeepalived(t, writeConf(t, vsConf("", vip, []string{addr1, addr2}, []string{tcpCheck, tcpCheck})))
	do := func(int) (string, error) {
		body, err := tryGet("http://"+vip+"/", "")
		return strings.TrimSpace(body), err
	}
	killUnderLoad(t, do, func() { rs1.Process.Kill() }, func() bool { return d.pool(t, names) == "RS2:1" })
}

// TestFaultRealServerKilledXDP: the same on the xdp engine (gvsd -f with
// DR real servers and HTTP_GET checks, in namespaces). The director keeps
// no per-connection state on the real server's side: a SYN sent to the
// dead RS1 is answered by RS1's kernel with a reset, so every new
// connection scheduled to RS1 fails until the checker takes it out. Each
// request comes from a source port of its own; the second subtest reuses
// one that reached RS1.
func TestFaultRealServerKilledXDP(t *testing.T) {
	lab := newXDPLab(t, 1)
	lab.moveVIP(0)
	conf := strings.Replace(vsConf("", e2eVIP+":80", []string{"198.18.0.11:80", "198.18.0.12:80"}, []string{httpGetCheck, httpGetCheck}),
		"lb_kind NAT", "lb_kind DR", 1)
	lab.start(t, 0, "-f", writeConf(t, conf))
	lab.waitServing(t)
	var mu sync.Mutex
	port, rs1Ports := 20000, []int{}
	do := func(int) (string, error) {
		mu.Lock()
		port++
		p := port
		mu.Unlock()
		name, err := getInNSFrom(lab.client.Name, &net.TCPAddr{Port: p}, e2eVIP+":80")
		if name == "RS1" {
			mu.Lock()
			rs1Ports = append(rs1Ports, p)
			mu.Unlock()
		}
		return name, err
	}
	t.Run("new source ports", func(t *testing.T) {
		killUnderLoad(t, do, lab.rsProcs[0].Kill, func() bool { return lab.pool(0) == "RS2:1" })
	})
	// A SYN that finds the entry of an earlier connection to RS1 (the
	// client reuses its source port), which the checker took out, is
	// scheduled anew, as kernel IPVS does with expire_nodest_conn: it
	// reaches RS2.
	t.Run("a reused source port", func(t *testing.T) {
		if len(rs1Ports) == 0 {
			t.Fatal("no request reached RS1 before it was killed")
		}
		// The client's own kernel may still hold a port (a connection
		// that RS1's death left half-closed): take the first of RS1's
		// ports that it lets the client bind again.
		for _, port := range rs1Ports {
			name, err := getInNSFrom(lab.client.Name, &net.TCPAddr{Port: port}, e2eVIP+":80")
			if errors.Is(err, syscall.EADDRINUSE) {
				continue
			}
			if err != nil || name != "RS2" {
				t.Errorf("a new connection from source port %d, which an earlier connection to RS1 used, got %q, %v; want RS2", port, name, err)
			}
			return
		}
		t.Fatalf("the client could bind none of the %d source ports that reached RS1 (all in use)", len(rs1Ports))
	})
}

// weighted is a real server's check block with weight w.
func weighted(check string, w int) string {
	return strings.Replace(check, "weight 1", fmt.Sprintf("weight %d", w), 1)
}

// TestFaultReloadUnderLoad: gvsd -f on the proxy engine serves four
// test/rs real servers under load while SIGHUP reloads switch, six times,
// between two files that change weights, remove RS2 and add RS4: no
// request fails, and the pool follows each file. Then a file truncated at
// a line boundary (unclosed braces, which gvsd -t refuses) is refused
// under load: the pool does not change and no request fails.
func TestFaultReloadUnderLoad(t *testing.T) {
	var addrs []string
	names := map[string]string{}
	for i := range 4 {
		addr := "127.0.0.1:" + freePort(t)
		startRSProc(t, fmt.Sprintf("RS%d", i+1), addr)
		addrs = append(addrs, addr)
		names[addr] = fmt.Sprintf("RS%d", i+1)
	}
	vip := "127.0.0.1:" + freePort(t)
	first := strings.Replace(vsConf("", vip, addrs[:3], []string{tcpCheck, tcpCheck, tcpCheck}), "lb_algo rr", "lb_algo wrr", 1)
	second := strings.Replace(vsConf("", vip, []string{addrs[0], addrs[2], addrs[3]}, []string{weighted(tcpCheck, 3), tcpCheck, weighted(tcpCheck, 2)}),
		"lb_algo rr", "lb_algo wrr", 1)
	pools := []string{"RS1:1 RS2:1 RS3:1", "RS1:3 RS3:1 RS4:2"}
	d := startKeepalived(t, writeConf(t, first))
	if got := d.pool(t, names); got != pools[0] {
		t.Fatalf("pool at start: %s, want %s", got, pools[0])
	}
	do := func(int) (string, error) {
		body, err := tryGet("http://"+vip+"/", "")
		return strings.TrimSpace(body), err
	}

	t.Run("weights, added and removed servers", func(t *testing.T) {
		reload := func(t *testing.T, conf string) {
			t.Helper()
			d.rewrite(t, conf)
			d.hup(t, "configuration reloaded")
		}
		reloadsUnderLoad(t, do, reload, func() string { return d.pool(t, names) }, d.out.String, [2]string{second, first}, [2]string{pools[1], pools[0]})
	})

	t.Run("truncated file is refused", func(t *testing.T) {
		// A file cut at a line boundary: the virtual_server's braces are
		// not closed and its last real server is missing.
		cut := first[:strings.LastIndex(first, "\treal_server")]
		d.rewrite(t, cut)
		if out, err := exec.Command(filepath.Join(bin, "gvsd"), "-t", "-f", d.conf).CombinedOutput(); err == nil {
			t.Fatalf("gvsd -t accepts the truncated file:\n%s", out)
		}
		ld := startLoad(4, 5*time.Millisecond, 20000, 30*time.Second, do)
		time.Sleep(500 * time.Millisecond)
		before := d.out.String()
		ld.mark("SIGHUP with the truncated file")
		d.cmd.Process.Signal(syscall.SIGHUP)
		waitFor(t, 5*time.Second, "the reload to end", func() bool {
			log := strings.TrimPrefix(d.out.String(), before)
			return strings.Contains(log, "reload refused") || strings.Contains(log, "configuration reloaded")
		})
		time.Sleep(time.Second)
		reqs := ld.finish()
		ld.report(t, reqs)
		log := strings.TrimPrefix(d.out.String(), before)
		if strings.Contains(log, "configuration reloaded") {
			t.Fatalf("gvsd applied the truncated file that gvsd -t refuses (pool now %s)", d.pool(t, names))
		}
		if got := d.pool(t, names); got != pools[0] {
			t.Errorf("pool after the refused reload: %s, want %s", got, pools[0])
		}
		for _, r := range reqs {
			if r.err != nil {
				t.Errorf("request at %s failed: %v", r.start.Sub(ld.t0).Round(time.Millisecond), r.err)
			}
		}
		if got := answers(reqs, ld.t0, time.Now()); len(got) != 3 {
			t.Errorf("answers %v, want RS1, RS2 and RS3", got)
		}
	})
}

// reloadsUnderLoad runs a load of new connections (do) and reloads six
// times, alternating between confs; after each reload the pool must be
// the conf's. No request may fail, and every real server that any conf
// has must have answered.
func reloadsUnderLoad(t *testing.T, do func(int) (string, error), reload func(*testing.T, string), pool func() string, gvsdLog func() string, confs, pools [2]string) {
	t.Helper()
	ld := startLoad(4, 5*time.Millisecond, 20000, 30*time.Second, do)
	for i := range 6 {
		time.Sleep(500 * time.Millisecond)
		ld.mark(fmt.Sprintf("reload %d", i+1))
		reload(t, confs[i%2])
		if got := pool(); got != pools[i%2] {
			t.Errorf("pool after reload %d: %s, want %s", i+1, got, pools[i%2])
		}
	}
	time.Sleep(500 * time.Millisecond)
	reqs := ld.finish()
	ld.report(t, reqs)
	noFalseLoops(t, gvsdLog())
	for _, r := range reqs {
		if r.err != nil {
			t.Errorf("request at %s failed: %v", r.start.Sub(ld.t0).Round(time.Millisecond), r.err)
		}
	}
	servers := map[string]bool{}
	for _, p := range pools {
		for _, f := range strings.Fields(p) {
			name, _, _ := strings.Cut(f, ":")
			servers[name] = true
		}
	}
	if got := answers(reqs, ld.t0, time.Now()); len(got) != len(servers) {
		t.Errorf("answers %v, want every real server of %v", got, pools)
	}
}

// noFalseLoops fails the test when the proxy engine reset a client as a
// forwarding loop that was none: on loopback a client and gvsd's own
// socket to a real server can share a local port (Linux shares an
// ephemeral port between connections to different destinations), so the
// loop check must match the whole address pair (it once matched the port
// alone and reset about one request in 2,000 here).
func noFalseLoops(t *testing.T, gvsdLog string) {
	t.Helper()
	if n := strings.Count(gvsdLog, "connection from gvsd itself refused"); n > 0 {
		t.Errorf("%d client connections reset as forwarding loops that were none", n)
	}
}

// TestFaultReloadUnderLoadXDP: the same reloads on the xdp engine (DR, in
// namespaces): wrr with RS1 and RS2 at weight 1, then RS1 at 3 and RS2
// removed, and back. No request fails: a removed real server finishes its
// connections, an added one takes new ones at once.
func TestFaultReloadUnderLoadXDP(t *testing.T) {
	lab := newXDPLab(t, 1)
	lab.moveVIP(0)
	dr := func(conf string) string {
		return strings.Replace(strings.Replace(conf, "lb_kind NAT", "lb_kind DR", 1), "lb_algo rr", "lb_algo wrr", 1)
	}
	rss := []string{"198.18.0.11:80", "198.18.0.12:80"}
	first := dr(vsConf("", e2eVIP+":80", rss, []string{tcpCheck, tcpCheck}))
	second := dr(vsConf("", e2eVIP+":80", rss[:1], []string{weighted(tcpCheck, 3)}))
	conf := writeConf(t, first)
	p := lab.start(t, 0, "-f", conf)
	lab.waitServing(t)
	reload := func(t *testing.T, text string) {
		t.Helper()
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		before := strings.Count(p.Output(), "configuration reloaded")
		p.Cmd.Process.Signal(syscall.SIGHUP)
		waitFor(t, 5*time.Second, "the reload", func() bool { return strings.Count(p.Output(), "configuration reloaded") > before })
	}
	do := func(int) (string, error) { return getInNS(lab.client.Name, e2eVIP+":80") }
	reloadsUnderLoad(t, do, reload, func() string { return lab.pool(0) }, p.Output, [2]string{second, first}, [2]string{"RS1:3", "RS1:1 RS2:1"})
}

// TestFaultRestartProxy: on the proxy engine gvsd holds both halves of
// every connection, so a restart cuts the established ones (after
// --grace on SIGTERM); the new gvsd serves new connections at once.
func TestFaultRestartProxy(t *testing.T) {
	addr := "127.0.0.1:" + freePort(t)
	startRSProc(t, "RS1", addr)
	vip := "127.0.0.1:" + freePort(t)
	conf := writeConf(t, vsConf("", vip, []string{addr}, []string{tcpCheck}))
	d := startKeepalived(t, conf)
	conn, err := net.DialTimeout("tcp", vip, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	k := &keepAlive{conn: conn, r: bufio.NewReader(conn), addr: vip}
	if name, err := k.get(); err != nil || name != "RS1" {
		t.Fatalf("first request: %q, %v", name, err)
	}
	start := time.Now()
	d.cmd.Process.Signal(syscall.SIGTERM)
	<-d.exited
	startKeepalived(t, conf)
	t.Logf("gvsd restarted in %s (--grace 1s)", time.Since(start).Round(time.Millisecond))
	if name, err := k.get(); err == nil {
		t.Errorf("the established connection answered %q after the restart; the proxy engine cannot keep it", name)
	} else {
		t.Logf("the established connection after the restart: %v (as documented)", err)
	}
	if body, err := tryGet("http://"+vip+"/", ""); err != nil || strings.TrimSpace(body) != "RS1" {
		t.Errorf("a new connection after the restart: %q, %v", body, err)
	}
}

// TestFaultRestartXDP: on the xdp engine the connection table is a set
// of BPF maps.
//
//   - Without --bpf-pin they belong to the gvsd process: a restarted gvsd
//     starts with an empty table, so the next packet of an established
//     connection belongs to no connection, goes to the director's kernel
//     (which holds the VIP) and is reset.
//   - With --bpf-pin the maps and the XDP link are pinned on a BPF
//     filesystem: when gvsd is killed the program goes on forwarding, and
//     when it stops with -I (--dont-release-ipvs) it leaves them in
//     place; either way the next gvsd takes them over and every
//     established connection goes on to its real server.
//
// New connections are served as soon as the new gvsd has its
// configuration.
func TestFaultRestartXDP(t *testing.T) {
	conf := strings.Replace(vsConf("", e2eVIP+":80", []string{"198.18.0.11:80", "198.18.0.12:80"}, []string{tcpCheck, tcpCheck}),
		"lb_kind NAT", "lb_kind DR", 1)
	// restart starts gvsd, opens kept-alive connections, stops gvsd
	// (stop) and starts it again; it returns what each connection
	// answers afterwards.
	restart := func(t *testing.T, args []string, stop func(*xdpLab)) ([]string, []error) {
		lab := newXDPLab(t, 1)
		lab.moveVIP(0)
		file := writeConf(t, conf)
		lab.start(t, 0, append([]string{"-f", file}, args...)...)
		lab.waitServing(t)
		ks, names := lab.open(t, 4)
		start := time.Now()
		stop(lab)
		lab.start(t, 0, append([]string{"-f", file}, args...)...)
		lab.waitServing(t)
		t.Logf("gvsd restarted and serving in %s (--grace 1s)", time.Since(start).Round(time.Millisecond))
		got, errs := make([]string, len(ks)), make([]error, len(ks))
		for i, k := range ks {
			got[i], errs[i] = k.get()
			if errs[i] == nil && got[i] != names[i] {
				errs[i] = fmt.Errorf("connection %d to %s answered from %s", i, names[i], got[i])
			}
		}
		return got, errs
	}
	sigterm := func(l *xdpLab) { l.gvsd[0].Stop() }
	sigkill := func(l *xdpLab) { l.gvsd[0].Cmd.Process.Signal(syscall.SIGKILL); l.gvsd[0].Stop() }

	t.Run("not pinned", func(t *testing.T) {
		got, errs := restart(t, nil, sigterm)
		for i, err := range errs {
			if err == nil {
				t.Errorf("connection %d answered %q after the restart: the table survived; update this test and the README", i, got[i])
			} else {
				t.Logf("connection %d after the restart: %v (as documented)", i, err)
			}
		}
	})
	for _, tc := range []struct {
		name string
		args []string
		stop func(*xdpLab)
	}{
		{"pinned, gvsd killed", nil, sigkill},
		{"pinned, stopped with -I", []string{"-I"}, sigterm},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pin := filepath.Join(bpffs(t), "gvs", "e2e")
			_, errs := restart(t, append([]string{"--bpf-pin", pin}, tc.args...), tc.stop)
			for i, err := range errs {
				if err != nil {
					t.Errorf("connection %d after the restart: %v", i, err)
				}
			}
		})
	}
}

// bpffs mounts a BPF filesystem of the test's own on a temporary
// directory (gvsd in a namespace of the lab sees it); unmounting it at the
// end releases whatever gvsd left pinned there, whatever happened.
func bpffs(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bpf")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("bpf", dir, "bpf", 0, ""); err != nil {
		t.Fatalf("mounting a BPF filesystem: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	return dir
}

// TestFaultDirectorKilledWithSync: two directors run gvsd --engine xdp
// with the same DR service and the master and backup sync daemons; eight
// kept-alive connections through director A send requests under load
// (each every 20 ms). Director A is then killed, and 300 ms later the VIP
// moves to director B (what VRRP does after its master-down interval; the
// VRRP side is TestLVSSyncDaemonFollowsVRRP's).
//
//   - When the director host dies (its link goes down, then gvsd is
//     SIGKILLed) no established connection is lost: each goes on to the
//     same real server through B (a request caught in the gap is
//     retransmitted by TCP).
//   - When only gvsd dies and the host stays up with the VIP, the XDP
//     program goes with the process (this lab does not pass --bpf-pin),
//     so until the VIP moves every packet reaching A goes to A's kernel,
//     which resets the connection. With --bpf-pin the program and its
//     maps stay and A goes on forwarding, as kernel IPVS does when
//     keepalived dies (TestFaultRestartXDP).
func TestFaultDirectorKilledWithSync(t *testing.T) {
	t.Run("host dies", func(t *testing.T) { directorKilled(t, true) })
	t.Run("only gvsd dies", func(t *testing.T) { directorKilled(t, false) })
}

func directorKilled(t *testing.T, hostDies bool) {
	lab := newXDPLab(t, 2)
	for i := range lab.dirs {
		lab.start(t, i)
		lab.mustAdm(i, "-A", "-t", e2eVIP+":80", "-s", "rr")
		lab.mustAdm(i, "-a", "-t", e2eVIP+":80", "-r", "198.18.0.11:80", "-g")
		lab.mustAdm(i, "-a", "-t", e2eVIP+":80", "-r", "198.18.0.12:80", "-g")
	}
	lab.mustAdm(0, "--start-daemon", "master", "--mcast-interface", "eth0", "--syncid", "3")
	lab.mustAdm(1, "--start-daemon", "backup", "--mcast-interface", "eth0", "--syncid", "3")
	lab.moveVIP(0)
	lab.waitServing(t)
	ks, names := lab.open(t, 8)
	waitFor(t, 20*time.Second, "director B to list the synced connections", func() bool {
		out, _ := lab.adm(1, "-Lnc")
		flat := strings.Join(strings.Fields(out), " ")
		for _, k := range ks {
			if !strings.Contains(flat, "ESTABLISHED "+k.conn.LocalAddr().String()+" ") {
				return false
			}
		}
		return true
	})

	ld := startLoad(len(ks), 20*time.Millisecond, 20000, 30*time.Second, func(w int) (string, error) { return ks[w].get() })
	time.Sleep(time.Second)
	if hostDies {
		ld.mark("director A's link down")
		lab.dirs[0].Run("ip", "link", "set", "eth0", "down")
	}
	ld.mark("director A's gvsd killed")
	lab.gvsd[0].Kill()
	time.Sleep(300 * time.Millisecond)
	lab.moveVIP(1)
	ld.mark("VIP on director B")
	time.Sleep(2 * time.Second)
	reqs := ld.finish()
	ld.report(t, reqs)
	failed := 0
	for _, r := range reqs {
		if r.err != nil {
			failed++
		}
	}
	lost := 0
	for i, k := range ks {
		if name, err := k.get(); err != nil || name != names[i] {
			lost++
			if hostDies {
				t.Errorf("connection %d after the failover: %q, %v; want it to go on to %s", i, name, err, names[i])
			}
		}
	}
	t.Logf("%d of %d established connections lost", lost, len(ks))
	switch {
	case hostDies && failed > 0:
		t.Errorf("%d requests on established connections failed\ndirector B:\n%s", failed, lab.gvsd[1].Output())
	case !hostDies && lost == 0:
		t.Errorf("every connection survived gvsd's death on a live director: the program outlives gvsd now; update this test, the README and the xdp package doc")
	}
}

// Connection-table overflow: the table's size and the flood.
const (
	overflowTable = 512
	overflowFlows = 8 * overflowTable
)

// TestFaultConnTableOverflow: gvsd --xdp-max-conns overflowTable, a
// connection table of overflowTable entries per family. A UDP service
// on the VIP gets overflowFlows one-datagram flows, each from its own
// source port, while a TCP service on the same VIP serves four
// kept-alive connections and new connections under load. The table is an
// LRU: the flood's flows evict each other and nothing established; every
// request is answered. gvsadm engine shows it: the table at its bound
// (at most full: the UDP service counted each flow as a connection, so
// the rest was evicted) and no packet dropped for want of room (the
// engine has no such drop: it evicts).
func TestFaultConnTableOverflow(t *testing.T) {
	lab := newXDPLab(t, 1)
	lab.moveVIP(0)
	director := lab.start(t, 0, "--xdp-max-conns", fmt.Sprint(overflowTable))
	for _, proto := range []string{"-t", "-u"} {
		lab.mustAdm(0, "-A", proto, e2eVIP+":80", "-s", "rr")
		lab.mustAdm(0, "-a", proto, e2eVIP+":80", "-r", "198.18.0.11:80", "-g")
		lab.mustAdm(0, "-a", proto, e2eVIP+":80", "-r", "198.18.0.12:80", "-g")
	}
	lab.waitServing(t)
	ks, _ := lab.open(t, 4)
	engineView := func() *wire.XDPEngine {
		t.Helper()
		var v wire.Engine
		if err := json.Unmarshal([]byte(lab.mustAdm(0, "engine", "--json")), &v); err != nil || v.XDP == nil {
			t.Fatalf("gvsadm engine --json: %v, %+v; want the xdp engine's view", err, v)
		}
		return v.XDP
	}
	before := engineView()

	ld := startLoad(6, 20*time.Millisecond, 20000, 30*time.Second, func(w int) (string, error) {
		if w < len(ks) {
			return ks[w].get()
		}
		return getInNS(lab.client.Name, e2eVIP+":80")
	})
	time.Sleep(500 * time.Millisecond)
	ld.mark("flood starts")
	sent := 0
	err := inNetns(lab.client.Name, func() error {
		raddr := &net.UDPAddr{IP: net.ParseIP(e2eVIP), Port: 80}
		for range overflowFlows {
			c, err := net.DialUDP("udp", nil, raddr)
			if err != nil {
				return err
			}
			_, err = c.Write([]byte("flood"))
			c.Close()
			if err != nil {
				return err
			}
			sent++
		}
		return nil
	})
	ld.mark(fmt.Sprintf("flood of %d flows sent", sent))
	if err != nil {
		t.Fatalf("flooding after %d datagrams: %v", sent, err)
	}
	time.Sleep(time.Second)
	reqs := ld.finish()
	ld.report(t, reqs)
	for _, r := range reqs {
		if r.err != nil {
			t.Errorf("request at %s failed: %v\ndirector:\n%s", r.start.Sub(ld.t0).Round(time.Millisecond), r.err, director.Output())
			break
		}
	}
	if got := answers(reqs, ld.t0, time.Now()); got["RS1"] == 0 || got["RS2"] == 0 {
		t.Errorf("answers %v, want both real servers", got)
	}
	for i, k := range ks {
		if _, err := k.get(); err != nil {
			t.Errorf("kept-alive connection %d after the flood: %v", i, err)
		}
	}

	udp, ok, err := apiclient.New(lab.socks[0]).Service(context.Background(), ipvs.ServiceKey{Proto: ipvs.UDP, Addr: netip.MustParseAddr(e2eVIP), Port: 80})
	if err != nil || !ok {
		t.Fatalf("the UDP service: %v, found %v", err, ok)
	}
	// The entries are counted by the expiry pass, once a second.
	var after *wire.XDPEngine
	waitFor(t, 10*time.Second, "the flood's entries counted", func() bool {
		after = engineView()
		return after.ConnEntries4.Used > overflowTable/2
	})
	text := lab.mustAdm(0, "engine")
	entries := after.ConnEntries4
	t.Logf("table of %d entries: the UDP service counted %d connections for %d flows sent, %d entries left, so at least %d evicted\ngvsadm engine:\n%s",
		overflowTable, udp.Stats.Conns, sent, entries.Used, int(udp.Stats.Conns)-entries.Used, text)
	if udp.Stats.Conns < uint64(sent)*9/10 {
		t.Errorf("the UDP service counted %d connections for %d flows", udp.Stats.Conns, sent)
	}
	if entries.Limit != overflowTable || after.ConnEntries6.Limit != overflowTable || entries.Used > overflowTable {
		t.Errorf("connection entries: IPv4 %+v, IPv6 %+v; want at most %d of %d each", entries, after.ConnEntries6, overflowTable, overflowTable)
	}
	if want := fmt.Sprintf("\nIPv4 connection entries  %d", entries.Used); !strings.Contains(text, want) || !strings.Contains(text, "Engine xdp on eth0 (generic)\n") {
		t.Errorf("gvsadm engine does not show the interface and the table (%q):\n%s", want, text)
	}
	// Only the lab's own traffic (ARP, neighbour discovery) may have
	// reached the program without being forwarded during the flood.
	noise := map[string]bool{"not-ip": true, "not-tcp-udp": true}
	for i, r := range after.Packets {
		if n := r.Packets - before.Packets[i].Packets; n > 0 && !noise[r.Reason] {
			t.Errorf("%d packets counted %s during the flood (%s)", n, r.Reason, r.Meaning)
		}
	}
}
