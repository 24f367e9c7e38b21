package e2e

// gvsd running a keepalived.conf: the seeds' experiments on loopback with
// the proxy engine (health checks taking servers out and back, reloads,
// smtp_alert, the config test), and VRRP failover between two gvsd in
// network namespaces.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	apiclient "github.com/gvs-lb/gvs/internal/api/client"
	"github.com/gvs-lb/gvs/internal/netns/netnstest"
)

// kaDaemon is a gvsd started with -f, with its log readable while it runs.
type kaDaemon struct {
	socket string
	conf   string
	cmd    *exec.Cmd
	out    *lockedBuffer
	exited chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// writeConf writes a keepalived.conf into a fresh directory.
func writeConf(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// rewrite replaces the configuration file's text (for a reload).
func (d *kaDaemon) rewrite(t *testing.T, text string) {
	t.Helper()
	if err := os.WriteFile(d.conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// startKeepalived runs gvsd -f conf with the proxy engine and waits for its
// admin socket; the test's cleanup stops it.
func startKeepalived(t *testing.T, conf string) *kaDaemon {
	t.Helper()
	d := &kaDaemon{socket: filepath.Join(t.TempDir(), "gvsd.sock"), conf: conf, out: &lockedBuffer{},
		exited: make(chan struct{})}
	d.cmd = exec.Command(filepath.Join(bin, "gvsd"), "--engine", "proxy", "--socket", d.socket, "--grace", "1s", "-f", conf)
	d.cmd.Stdout, d.cmd.Stderr = d.out, d.out
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.cmd.Wait(); close(d.exited) }()
	t.Cleanup(func() {
		d.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-d.exited:
		case <-time.After(5 * time.Second):
			d.cmd.Process.Kill()
			<-d.exited
		}
		noRace(t, d.out.String())
		if t.Failed() {
			t.Logf("gvsd log:\n%s", d.out)
		}
	})
	waitFor(t, 5*time.Second, "gvsd's admin socket", func() bool {
		select {
		case <-d.exited:
			t.Fatalf("gvsd exited: %v\n%s", d.cmd.ProcessState, d.out)
		default:
		}
		c, err := net.Dial("unix", d.socket)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return d
}

// noRace fails the test when a gvsd built with -race reported a data race.
func noRace(t *testing.T, log string) {
	t.Helper()
	if strings.Contains(log, "WARNING: DATA RACE") {
		t.Errorf("gvsd reported a data race:\n%s", log)
	}
}

func (d *kaDaemon) client() *apiclient.Client { return apiclient.New(d.socket) }

// gvsadm runs gvsadm against the daemon; the test fails when it fails.
func (d *kaDaemon) gvsadm(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(bin, "gvsadm"), args...)
	cmd.Env = append(os.Environ(), "GVS_SOCKET="+d.socket)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("gvsadm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ipvsadmL is what ipvsadm -Ln prints for an rr TCP service at vip with
// the real servers rss (masquerading, weight 1, no connections).
func ipvsadmL(vip string, rss ...string) string {
	rss = slices.Clone(rss)
	slices.SortFunc(rss, func(a, b string) int { // ipvsadm sorts by address and port
		return netip.MustParseAddrPort(a).Compare(netip.MustParseAddrPort(b))
	})
	var b strings.Builder
	fmt.Fprintf(&b, "IP Virtual Server version 1.2.1 (size=4096)\n"+
		"Prot LocalAddress:Port Scheduler Flags\n"+
		"  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n"+
		"TCP  %s rr\n", vip)
	for _, rs := range rss {
		fmt.Fprintf(&b, "  -> %-28s Masq    1      0          0         \n", rs)
	}
	return b.String()
}

// pool describes the first service's real servers as "NAME:weight"
// sorted, naming addresses with names.
func (d *kaDaemon) pool(t *testing.T, names map[string]string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	svcs, err := d.client().Services(ctx)
	if err != nil {
		t.Fatalf("listing services: %v", err)
	}
	if len(svcs) != 1 {
		t.Fatalf("gvsd has %d services, want 1: %+v", len(svcs), svcs)
	}
	var out []string
	for _, ds := range svcs[0].Dests {
		name := names[ds.AddrPort().String()]
		if name == "" {
			name = ds.AddrPort().String()
		}
		out = append(out, fmt.Sprintf("%s:%d", name, ds.Weight))
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// hup sends SIGHUP and waits for the log line that ends the reload.
func (d *kaDaemon) hup(t *testing.T, want string) {
	t.Helper()
	before := strings.Count(d.out.String(), want)
	if err := d.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, fmt.Sprintf("%q in gvsd's log", want), func() bool {
		return strings.Count(d.out.String(), want) > before
	})
}

// vsConf is a keepalived.conf with one rr NAT virtual server on addr and
// a real server per entry of rss ("ADDR PORT" -> body inside real_server).
func vsConf(global, addr string, rss []string, bodies []string) string {
	host, port, _ := net.SplitHostPort(addr)
	var b strings.Builder
	fmt.Fprintf(&b, "global_defs {\n\trouter_id GVS_E2E\n%s}\n\n", global)
	fmt.Fprintf(&b, "virtual_server %s %s {\n\tdelay_loop 1\n\tlb_algo rr\n\tlb_kind NAT\n\tprotocol TCP\n", host, port)
	for i, rs := range rss {
		h, p, _ := net.SplitHostPort(rs)
		fmt.Fprintf(&b, "\n\treal_server %s %s {\n%s\t}\n", h, p, bodies[i])
	}
	b.WriteString("}\n")
	return b.String()
}

const tcpCheck = `		weight 1
		TCP_CHECK {
			connect_timeout 1
			retry 1
			delay_before_retry 1
		}
`

// The seeds' timers: a stopped server is out within delay_loop +
// connect_timeout x (retry + 1) + delay_before_retry x retry.
const detectWithin = 1*time.Second + 1*time.Second*2 + 1*time.Second*1 + 1500*time.Millisecond

func TestKeepalivedHealthChecksTakeServersOutAndBack(t *testing.T) {
	tests := []struct {
		name  string
		check string
	}{
		{"TCP_CHECK", tcpCheck},
		{"HTTP_GET status_code", `		weight 1
		HTTP_GET {
			url {
				path /healthz
				status_code 200
			}
			connect_timeout 1
			retry 1
			delay_before_retry 1
		}
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs1 := startRS(t, "RS1", "127.0.0.1:0")
			rs2 := startRS(t, "RS2", "127.0.0.1:0")
			vip := "127.0.0.1:" + freePort(t)
			names := map[string]string{rs1.addr: "RS1", rs2.addr: "RS2"}
			d := startKeepalived(t, writeConf(t, vsConf("", vip, []string{rs1.addr, rs2.addr}, []string{tt.check, tt.check})))

			// Experiment 1: curl alternates, the last real server first.
			if got, want := d.gvsadm(t, "-Ln"), ipvsadmL(vip, rs1.addr, rs2.addr); got != want {
				t.Fatalf("gvsadm -Ln at start:\n%s\nwant:\n%s", got, want)
			}
			if got, want := curls(t, vip, 6), "RS2 RS1 RS2 RS1 RS2 RS1"; got != want {
				t.Errorf("curl answers %q, want %q", got, want)
			}

			// Experiment 2: RS1 stops; it is out within the seeds' bound.
			rs1.stop()
			start := time.Now()
			waitFor(t, detectWithin, "RS1 out of the pool", func() bool { return d.pool(t, names) == "RS2:1" })
			t.Logf("RS1 out after %v", time.Since(start).Round(100*time.Millisecond))
			if got, want := curls(t, vip, 4), "RS2 RS2 RS2 RS2"; got != want {
				t.Errorf("with RS1 stopped, curl answers %q, want %q", got, want)
			}
			if got := d.gvsadm(t, "-Ln"); strings.Contains(got, rs1.addr) || !strings.Contains(got, rs2.addr) {
				t.Errorf("gvsadm -Ln with RS1 stopped still lists it, or not RS2:\n%s", got)
			}
			checkerStates(t, d, map[string]string{rs1.addr: "DOWN", rs2.addr: "UP"})
			if got := d.gvsadm(t, "checkers"); !regexp.MustCompile(regexp.QuoteMeta(rs1.addr) + `\s+\S+\s+\S+\s+DOWN`).MatchString(got) {
				t.Errorf("gvsadm checkers does not show RS1's checker DOWN:\n%s", got)
			}

			// RS1 comes back: the next check passes and alternation returns.
			startRS(t, "RS1", rs1.addr)
			// Back at the next check: within delay_loop + connect_timeout.
			waitFor(t, 1*time.Second+1*time.Second+3*time.Second, "RS1 back in the pool", func() bool { return d.pool(t, names) == "RS1:1 RS2:1" })
			if got := curls(t, vip, 4); strings.Count(got, "RS1") != 2 || strings.Count(got, "RS2") != 2 {
				t.Errorf("with RS1 back, curl answers %q, want RS1 and RS2 alternating", got)
			}
			checkerStates(t, d, map[string]string{rs1.addr: "UP", rs2.addr: "UP"})
		})
	}
}

func TestKeepalivedHTTPGetWrongStatusTakesServerOut(t *testing.T) {
	rs1 := startRS(t, "RS1", "127.0.0.1:0")
	rs2 := startRS(t, "RS2", "127.0.0.1:0")
	vip := "127.0.0.1:" + freePort(t)
	names := map[string]string{rs1.addr: "RS1", rs2.addr: "RS2"}
	want418 := strings.Replace(tcpCheck, "TCP_CHECK {", "HTTP_GET {\n\t\t\turl {\n\t\t\t\tpath /\n\t\t\t\tstatus_code 418\n\t\t\t}", 1)
	d := startKeepalived(t, writeConf(t, vsConf("", vip, []string{rs1.addr, rs2.addr}, []string{want418, tcpCheck})))
	// RS1 answers 200 where 418 is wanted: its first check takes it out.
	waitFor(t, detectWithin, "RS1 out of the pool", func() bool { return d.pool(t, names) == "RS2:1" })
	if got, want := curls(t, vip, 3), "RS2 RS2 RS2"; got != want {
		t.Errorf("curl answers %q, want %q", got, want)
	}
}

// curls GETs the VIP n times on new connections and lists the answers.
func curls(t *testing.T, vip string, n int) string {
	t.Helper()
	var seq []string
	for range n {
		seq = append(seq, get(t, "http://"+vip+"/", ""))
	}
	return strings.Join(seq, " ")
}

// checkerStates compares the "checkers" view with want (real server ->
// state).
func checkerStates(t *testing.T, d *kaDaemon, want map[string]string) {
	t.Helper()
	var view []struct {
		Service    string `json:"service"`
		RealServer string `json:"real_server"`
		Type       string `json:"type"`
		Target     string `json:"target"`
		State      string `json:"state"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := d.client().State(ctx, "checkers", &view); err != nil {
		t.Fatalf("GET /v1/state/checkers: %v", err)
	}
	got := map[string]string{}
	for _, c := range view {
		got[c.RealServer] = c.State
		if c.Target != c.RealServer || c.Service == "" || c.Type == "" {
			t.Errorf("checker %+v: want service, type and target set", c)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("checker states %v, want %v", got, want)
	}
}

// holdRS is a TCP real server that writes its name and keeps each
// connection open; it can stop and start again on the same address.
type holdRS struct {
	name, addr string
	mu         sync.Mutex
	ln         net.Listener
	conns      []net.Conn
}

func startHold(t *testing.T, name string) *holdRS {
	t.Helper()
	h := &holdRS{name: name, addr: "127.0.0.1:0"}
	h.start(t)
	t.Cleanup(h.stop)
	return h
}

func (h *holdRS) start(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	h.mu.Lock()
	h.ln, h.addr = ln, ln.Addr().String()
	h.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
			go func() {
				defer c.Close()
				io.WriteString(c, h.name+"\n")
				io.Copy(c, c) // echo, so a held connection can be probed
			}()
		}
	}()
}

// stop closes the listener (new connections are refused); established
// connections stay.
func (h *holdRS) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ln.Close()
}

func TestKeepalivedReload(t *testing.T) {
	a, b, c, e := startHold(t, "A"), startHold(t, "B"), startHold(t, "C"), startHold(t, "E")
	names := map[string]string{a.addr: "A", b.addr: "B", c.addr: "C", e.addr: "E"}
	vip := "127.0.0.1:" + freePort(t)
	weight := func(w int) string { return strings.Replace(tcpCheck, "weight 1", fmt.Sprintf("weight %d", w), 1) }
	first := vsConf("", vip, []string{a.addr, b.addr, c.addr}, []string{tcpCheck, tcpCheck, tcpCheck})
	d := startKeepalived(t, writeConf(t, first))
	if got := d.pool(t, names); got != "A:1 B:1 C:1" {
		t.Fatalf("pool at start: %s", got)
	}

	// A held connection through the VIP, to the first server rr picks (C,
	// the last configured).
	held, err := net.DialTimeout("tcp", vip, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	r := bufio.NewReader(held)
	held.SetReadDeadline(time.Now().Add(3 * time.Second))
	heldBy, err := r.ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	heldBy = strings.TrimSpace(heldBy)
	if heldBy != "C" {
		t.Fatalf("the first connection went to %s, want C", heldBy)
	}
	alive := func(when string) {
		t.Helper()
		held.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := io.WriteString(held, "ping\n"); err != nil {
			t.Fatalf("%s: the held connection is gone: %v", when, err)
		}
		if line, err := r.ReadString('\n'); err != nil || line != "ping\n" {
			t.Fatalf("%s: the held connection is gone: %q %v", when, line, err)
		}
	}
	alive("before the reloads")

	// B stops: its checker takes it out.
	b.stop()
	waitFor(t, detectWithin, "B out of the pool", func() bool { return d.pool(t, names) == "A:1 C:1" })

	t.Run("broken file keeps the old configuration", func(t *testing.T) {
		broken := strings.Replace(first, "lb_kind NAT", "lb_kind NATT", 1)
		line := 1 + strings.Count(broken[:strings.Index(broken, "lb_kind NATT")], "\n")
		d.rewrite(t, broken)
		d.hup(t, "reload refused")
		log := d.out.String()
		if want := fmt.Sprintf("%s:%d", d.conf, line); !strings.Contains(log, want) {
			t.Errorf("the refused reload does not say where (%s):\n%s", want, log)
		}
		if got := d.pool(t, names); got != "A:1 C:1" {
			t.Errorf("pool after a refused reload: %s, want A:1 C:1", got)
		}
		alive("after the refused reload")
		if got := openHeld(t, vip, 2); got["A"] != 1 || got["C"] != 1 {
			t.Errorf("new connections after the refused reload went to %v, want A and C", got)
		}
	})

	t.Run("changed file is applied", func(t *testing.T) {
		// A is removed, C (holding our connection) gets weight 3, B
		// (down) stays configured, E is added.
		next := vsConf("", vip, []string{b.addr, c.addr, e.addr}, []string{tcpCheck, weight(3), tcpCheck})
		d.rewrite(t, next)
		d.hup(t, "configuration reloaded")
		// B is still down: it stays out until its checker passes.
		if got := d.pool(t, names); got != "C:3 E:1" {
			t.Errorf("pool after the reload: %s, want C:3 E:1", got)
		}
		alive("after the reload")

		b.start(t)
		waitFor(t, 5*time.Second, "B back in the pool", func() bool { return d.pool(t, names) == "B:1 C:3 E:1" })
		alive("after B came back")
	})

	t.Run("unchanged file keeps everything", func(t *testing.T) {
		var before []struct {
			RealServer string `json:"real_server"`
			Checks     uint64 `json:"checks"`
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := d.client().State(ctx, "checkers", &before); err != nil {
			t.Fatal(err)
		}
		d.hup(t, "configuration reloaded")
		after := before[:0:0]
		if err := d.client().State(ctx, "checkers", &after); err != nil {
			t.Fatal(err)
		}
		// The same checkers keep counting: none was restarted.
		for i := range before {
			if i >= len(after) || after[i].RealServer != before[i].RealServer || after[i].Checks < before[i].Checks {
				t.Fatalf("checkers restarted by a reload that changed nothing: before %+v, after %+v", before, after)
			}
		}
		alive("after a reload that changed nothing")
	})
}

// TestKeepalivedReloadRefusesTruncatedFile: a SIGHUP that finds the file
// half written (cut at a line boundary inside a block, so the blocks are
// never closed) changes nothing and says where; the whole file, once
// written, is applied.
func TestKeepalivedReloadRefusesTruncatedFile(t *testing.T) {
	a, b := startHold(t, "A"), startHold(t, "B")
	vip := "127.0.0.1:" + freePort(t)
	first := vsConf("", vip, []string{a.addr, b.addr}, []string{tcpCheck, tcpCheck})
	d := startKeepalived(t, writeConf(t, first))
	before := d.gvsadm(t, "-Ln")
	if want := ipvsadmL(vip, a.addr, b.addr); before != want {
		t.Fatalf("gvsadm -Ln at start:\n%s\nwant:\n%s", before, want)
	}

	// The next file drops B; cut just after A's block it would leave
	// the virtual_server open, with only A.
	next := vsConf("", vip, []string{a.addr}, []string{tcpCheck})
	cut := strings.LastIndex(next, "\t}\n") + len("\t}\n")
	truncated := next[:cut]
	vsLine := 1 + strings.Count(next[:strings.Index(next, "virtual_server")], "\n")
	d.rewrite(t, truncated)
	d.hup(t, "reload refused")
	if want := fmt.Sprintf("%s:%d", d.conf, vsLine); !strings.Contains(d.out.String(), want) {
		t.Errorf("the refused reload does not name the unclosed block (%s):\n%s", want, d.out)
	}
	if got := d.gvsadm(t, "-Ln"); got != before {
		t.Errorf("gvsadm -Ln after a truncated file:\n%s\nwant it unchanged:\n%s", got, before)
	}

	d.rewrite(t, next)
	d.hup(t, "configuration reloaded")
	if got, want := d.gvsadm(t, "-Ln"), ipvsadmL(vip, a.addr); got != want {
		t.Errorf("gvsadm -Ln after the whole file:\n%s\nwant:\n%s", got, want)
	}
}

// smtpSink is a minimal SMTP server on loopback that collects messages.
type smtpSink struct {
	addr string
	msgs chan string
}

func startSMTP(t *testing.T) *smtpSink { return startSMTPIn(t, "") }

// startSMTPIn starts the sink on loopback in network namespace ns (""
// for the test's own).
func startSMTPIn(t *testing.T, ns string) *smtpSink {
	t.Helper()
	var ln net.Listener
	listen := func() (err error) {
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}
	var err error
	if ns == "" {
		err = listen()
	} else {
		err = inNetns(ns, listen)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	s := &smtpSink{addr: ln.Addr().String(), msgs: make(chan string, 16)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s
}

func (s *smtpSink) serve(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	say := func(line string) { io.WriteString(c, line+"\r\n") }
	say("220 sink.test ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "DATA"):
			say("354 go ahead")
			var msg strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				msg.WriteString(l)
			}
			s.msgs <- msg.String()
			say("250 queued")
		case strings.HasPrefix(cmd, "QUIT"):
			say("221 bye")
			return
		default:
			say("250 ok")
		}
	}
}

func TestKeepalivedSMTPAlertOnRealServerDown(t *testing.T) {
	sink := startSMTP(t)
	rs1 := startRS(t, "RS1", "127.0.0.1:0")
	rs2 := startRS(t, "RS2", "127.0.0.1:0")
	vip := "127.0.0.1:" + freePort(t)
	host, port, _ := net.SplitHostPort(sink.addr)
	global := fmt.Sprintf("\tnotification_email {\n\t\tops@example.com\n\t}\n\tnotification_email_from gvsd@example.com\n"+
		"\tsmtp_server %s %s\n\tsmtp_connect_timeout 5\n", host, port)
	conf := vsConf(global, vip, []string{rs1.addr, rs2.addr}, []string{tcpCheck, tcpCheck})
	conf = strings.Replace(conf, "\tprotocol TCP\n", "\tprotocol TCP\n\tsmtp_alert\n", 1)
	d := startKeepalived(t, writeConf(t, conf))
	rs1.stop()
	select {
	case msg := <-sink.msgs:
		for _, want := range []string{"Subject: [GVS_E2E] Realserver " + rs1.addr, "DOWN", "To: ops@example.com", "From: gvsd@example.com"} {
			if !strings.Contains(msg, want) {
				t.Errorf("the alert does not contain %q:\n%s", want, msg)
			}
		}
	case <-time.After(detectWithin + 2*time.Second):
		t.Fatalf("no mail within %v of RS1 stopping\n%s", detectWithin+2*time.Second, d.out)
	}
}

func TestKeepalivedConfigTest(t *testing.T) {
	good := vsConf("", "127.0.0.1:8080", []string{"127.0.0.1:9001"}, []string{tcpCheck})
	bad := strings.Replace(good, "lb_algo rr", "lb_algo rrr", 1)
	badLine := 1 + strings.Count(bad[:strings.Index(bad, "lb_algo rrr")], "\n")
	dir := t.TempDir()
	fnat, err := os.ReadFile("../../examples/fnat-xdp.conf")
	if err != nil {
		t.Fatal(err)
	}
	fnatLine := 1 + strings.Count(string(fnat[:strings.Index(string(fnat), "real_server")]), "\n")
	tests := []struct {
		name string
		text string // "" for a missing file
		args []string
		code int
		want string // a regexp the output must match; FILE is the path
	}{
		{"good", good, nil, 0, `FILE: configuration OK`},
		{"bad scheduler", bad, nil, 5, fmt.Sprintf(`FILE:%d: .*rrr`, badLine)},
		{"missing", "", nil, 4, `FILE`},
		// gvsd -f with this file and the default engine exits at once.
		{"FullNAT example on the default engine", string(fnat), nil, 5, fmt.Sprintf(`FILE:%d: .*--fullnat needs the xdp engine`, fnatLine)},
		{"FullNAT example on the xdp engine", string(fnat), []string{"--engine", "xdp"}, 0, `FILE: configuration OK`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".conf")
			if tt.text != "" {
				if err := os.WriteFile(path, []byte(tt.text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			out, err := exec.Command(filepath.Join(bin, "gvsd"), append([]string{"-t", "-f", path}, tt.args...)...).CombinedOutput()
			if code := exitCode(t, err); code != tt.code {
				t.Errorf("gvsd -t exit code %d, want %d\n%s", code, tt.code, out)
			}
			re := regexp.MustCompile(strings.ReplaceAll(tt.want, "FILE", regexp.QuoteMeta(path)))
			if !re.Match(out) {
				t.Errorf("gvsd -t output does not match %s:\n%s", re, out)
			}
		})
	}
}

func TestKeepalivedRefusesDirectRoutingOnProxyEngine(t *testing.T) {
	conf := vsConf("", "127.0.0.1:"+freePort(t), []string{"127.0.0.1:9001"}, []string{tcpCheck})
	conf = strings.Replace(conf, "lb_kind NAT", "lb_kind DR", 1)
	path := writeConf(t, conf)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bin, "gvsd"), "--engine", "proxy",
		"--socket", filepath.Join(t.TempDir(), "gvsd.sock"), "-f", path)
	out, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("gvsd ran a DR virtual server on the proxy engine (err %v):\n%s", err, out)
	}
	for _, want := range []string{path + ":", "xdp engine"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("gvsd's refusal does not say %q:\n%s", want, out)
		}
	}
}

// labConf is the seeds' director configuration: VRRP instance VI_1 holding
// the VIP, and an rr NAT virtual server on it with TCP_CHECK.
func labConf(state string, priority int, vip string, rss ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `global_defs {
	router_id LVS_%s
}
vrrp_instance VI_1 {
	state %s
	interface eth0
	virtual_router_id 51
	priority %d
	advert_int 1
	authentication {
		auth_type PASS
		auth_pass 1111
	}
	virtual_ipaddress {
		%s/24 dev eth0
	}
}
virtual_server %s 80 {
	delay_loop 1
	lb_algo rr
	lb_kind NAT
	protocol TCP
`, state, state, priority, vip, vip)
	for _, rs := range rss {
		fmt.Fprintf(&b, "\treal_server %s 80 {\n%s\t}\n", rs, tcpCheck)
	}
	b.WriteString("}\n")
	return b.String()
}

// inNetns runs fn on a thread switched into the named network namespace;
// sockets fn opens belong to that namespace.
func inNetns(name string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	target, err := os.Open("/var/run/netns/" + name)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("entering network namespace %s: %w", name, err)
	}
	defer func() {
		// A thread that cannot go back stays locked and dies with the
		// goroutine.
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
	}()
	return fn()
}

// nsHTTP is an HTTP client whose connections start in namespace ns.
func nsHTTP(ns string, timeout time.Duration) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNetns(ns, func() error {
			var err error
			c, err = (&net.Dialer{Timeout: timeout}).DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
}

// answer is one client request through the VIP.
type answer struct {
	at   time.Time
	body string // the real server's name, "" when it failed
	via  string // the director that proxied it (X-Client seen by the real server)
}

func nsHasAddr(n *netnstest.NS, addr string) bool {
	out, err := n.Output("ip", "-4", "-o", "addr", "show", "dev", "eth0")
	return err == nil && strings.Contains(out, " "+addr+"/")
}

// TestKeepalivedVRRPFailover is the seeds' experiment 3: two directors run
// gvsd with the same virtual server and a VRRP instance (MASTER 100,
// BACKUP 90) on one LAN with the client and two real servers. SIGTERM on
// the master moves the VIP to the backup within a second, and the client
// keeps getting answers.
func TestKeepalivedVRRPFailover(t *testing.T) {
	netnstest.Require(t)
	const vip = "198.18.0.100"
	lan := netnstest.New(t, "lan")
	client, dir1, dir2 := netnstest.New(t, "cli"), netnstest.New(t, "dir1"), netnstest.New(t, "dir2")
	rs1, rs2 := netnstest.New(t, "rs1"), netnstest.New(t, "rs2")
	netnstest.Bridge(t, lan, "br0", "eth0", client, dir1, dir2, rs1, rs2)
	for n, addr := range map[*netnstest.NS]string{client: "198.18.0.2", dir1: "198.18.0.3", dir2: "198.18.0.4",
		rs1: "198.18.0.11", rs2: "198.18.0.12"} {
		n.Addr("eth0", addr+"/24")
	}
	rs1.Start(filepath.Join(bin, "rs"), "--name", "RS1", "--listen", "198.18.0.11:80")
	rs2.Start(filepath.Join(bin, "rs"), "--name", "RS2", "--listen", "198.18.0.12:80")

	sink := startSMTPIn(t, dir2.Name)
	dir := t.TempDir()
	var socks [2]string
	var gvsd [2]*netnstest.Proc
	for i, n := range []*netnstest.NS{dir1, dir2} {
		state, prio := "MASTER", 100
		if i == 1 {
			state, prio = "BACKUP", 90
		}
		conf := filepath.Join(dir, fmt.Sprintf("dir%d.conf", i+1))
		text := labConf(state, prio, vip, "198.18.0.11", "198.18.0.12")
		if i == 1 {
			// The backup mails its VRRP transitions to a sink on its own
			// loopback.
			host, port, _ := net.SplitHostPort(sink.addr)
			text = strings.Replace(text, "global_defs {\n", fmt.Sprintf("global_defs {\n\tnotification_email {\n"+
				"\t\tops@example.com\n\t}\n\tsmtp_server %s %s\n\tsmtp_alert_vrrp\n", host, port), 1)
		}
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		socks[i] = filepath.Join(dir, fmt.Sprintf("dir%d.sock", i+1))
		gvsd[i] = n.Start(filepath.Join(bin, "gvsd"), "--engine", "proxy", "--grace", "1s", "-f", conf, "--socket", socks[i])
	}
	waitFor(t, 10*time.Second, "the VIP on director 1", func() bool { return nsHasAddr(dir1, vip) })
	if nsHasAddr(dir2, vip) {
		t.Fatal("the VIP is on both directors")
	}
	httpc := nsHTTP(client.Name, time.Second)
	ask := func() answer {
		a := answer{at: time.Now()}
		resp, err := httpc.Get("http://" + vip + "/")
		if err != nil {
			return a
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err == nil {
			a.body = strings.TrimSpace(string(body))
			a.via, _, _ = net.SplitHostPort(resp.Header.Get("X-Client"))
		}
		return a
	}
	waitFor(t, 5*time.Second, "an answer through the VIP", func() bool { return ask().body != "" })

	// The client asks every 50 ms while the master stops.
	ctx, cancel := context.WithCancel(context.Background())
	var answers []answer
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			answers = append(answers, ask())
			time.Sleep(50 * time.Millisecond)
		}
	}()
	time.Sleep(time.Second)
	stopAt := time.Now()
	if err := syscall.Kill(-gvsd[0].Cmd.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 3*time.Second, "the VIP on director 2", func() bool { return nsHasAddr(dir2, vip) })
	moved := time.Since(stopAt)
	t.Logf("VIP on director 2 after %v", moved.Round(10*time.Millisecond))
	if moved > time.Second {
		t.Errorf("the VIP took %v to move to the backup, want at most 1s", moved)
	}
	select {
	case <-gvsd[0].Done():
	case <-time.After(5 * time.Second):
		t.Error("director 1's gvsd did not exit within 5 s of SIGTERM")
	}
	if nsHasAddr(dir1, vip) {
		t.Error("director 1 kept the VIP after it stopped")
	}
	time.Sleep(2 * time.Second)
	cancel()
	<-done

	var gap time.Duration
	okBefore, okAfter, failed := 0, 0, 0
	var prev time.Time
	for _, a := range answers {
		switch {
		case a.body == "":
			failed++
			continue
		case a.at.Before(stopAt):
			okBefore++
			if a.via != "198.18.0.3" {
				t.Errorf("before the failover an answer came via %q, want director 1 (198.18.0.3)", a.via)
			}
		case a.at.After(stopAt.Add(moved)):
			okAfter++
			if a.via != "198.18.0.4" {
				t.Errorf("after the failover an answer came via %q, want director 2 (198.18.0.4)", a.via)
			}
		}
		if !prev.IsZero() {
			gap = max(gap, a.at.Sub(prev))
		}
		prev = a.at
	}
	t.Logf("%d answers before the SIGTERM, %d after the VIP moved, %d failed; longest gap %v",
		okBefore, okAfter, failed, gap.Round(10*time.Millisecond))
	if okBefore == 0 || okAfter < 10 {
		t.Errorf("answers: %d before, %d after the failover; want some before and at least 10 after", okBefore, okAfter)
	}
	if gap > 2*time.Second {
		t.Errorf("the client went %v without an answer during the failover, want under 2s", gap)
	}

	var view []struct {
		Name  string `json:"name"`
		State string `json:"state"`
	}
	vctx, vcancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer vcancel()
	if err := apiclient.New(socks[1]).State(vctx, "vrrp", &view); err != nil {
		t.Fatal(err)
	}
	if len(view) != 1 || view[0].Name != "VI_1" || view[0].State != "MASTER" {
		t.Errorf("director 2's vrrp view: %+v, want VI_1 MASTER", view)
	}
	var mails []string
	waitFor(t, 3*time.Second, "director 2's mail about becoming MASTER", func() bool {
		for {
			select {
			case m := <-sink.msgs:
				mails = append(mails, m)
			default:
				return slices.ContainsFunc(mails, func(m string) bool {
					return strings.Contains(m, "Subject: [LVS_BACKUP] Entering MASTER state") &&
						strings.Contains(m, "VI_1 is now MASTER")
				})
			}
		}
	})
	gvsd[1].Stop()
	noRace(t, gvsd[0].Output()+gvsd[1].Output())
}

// vrrpConf is a configuration of VRRP instances only: name -> "VRID PRIO VIP".
func vrrpConf(instances ...string) string {
	var b strings.Builder
	for _, in := range instances {
		var name, vip string
		var vrid, prio int
		fmt.Sscan(in, &name, &vrid, &prio, &vip)
		fmt.Fprintf(&b, "vrrp_instance %s {\n\tstate MASTER\n\tinterface eth0\n\tvirtual_router_id %d\n\tpriority %d\n"+
			"\tadvert_int 1\n\tvirtual_ipaddress {\n\t\t%s/24\n\t}\n}\n", name, vrid, prio, vip)
	}
	return b.String()
}

// TestKeepalivedVRRPReload: a reload keeps unchanged VRRP instances
// running, restarts changed ones and stops removed ones, releasing their
// VIPs.
func TestKeepalivedVRRPReload(t *testing.T) {
	netnstest.Require(t)
	dir, peer := netnstest.New(t, "dir"), netnstest.New(t, "peer")
	netnstest.Veth(t, dir, "eth0", peer, "eth0")
	dir.Addr("eth0", "198.18.2.1/24")
	peer.Addr("eth0", "198.18.2.2/24")

	conf := filepath.Join(t.TempDir(), "keepalived.conf")
	write := func(text string) {
		if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(vrrpConf("VI_1 61 100 198.18.2.100", "VI_2 62 100 198.18.2.101"))
	sock := filepath.Join(t.TempDir(), "gvsd.sock")
	p := dir.Start(filepath.Join(bin, "gvsd"), "--engine", "proxy", "-f", conf, "--socket", sock)
	waitFor(t, 10*time.Second, "both VIPs", func() bool {
		return nsHasAddr(dir, "198.18.2.100") && nsHasAddr(dir, "198.18.2.101")
	})
	type inst struct {
		Name         string `json:"name"`
		State        string `json:"state"`
		Priority     int    `json:"priority"`
		AdvertsSent  uint64 `json:"adverts_sent"`
		BecomeMaster uint64 `json:"become_master"`
	}
	view := func() map[string]inst {
		t.Helper()
		var v []inst
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := apiclient.New(sock).State(ctx, "vrrp", &v); err != nil {
			t.Fatal(err)
		}
		m := map[string]inst{}
		for _, i := range v {
			m[i.Name] = i
		}
		return m
	}
	hup := func(want string) {
		t.Helper()
		before := strings.Count(p.Output(), want)
		if err := syscall.Kill(p.Cmd.Process.Pid, syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, fmt.Sprintf("%q in gvsd's log", want), func() bool {
			return strings.Count(p.Output(), want) > before
		})
	}
	time.Sleep(2 * time.Second) // a few adverts
	before := view()["VI_1"]

	// VI_2 goes, VI_3 comes, VI_1 stays as it was.
	write(vrrpConf("VI_1 61 100 198.18.2.100", "VI_3 63 100 198.18.2.102"))
	hup("configuration reloaded")
	waitFor(t, 5*time.Second, "VI_2's VIP gone and VI_3's there", func() bool {
		return !nsHasAddr(dir, "198.18.2.101") && nsHasAddr(dir, "198.18.2.102")
	})
	if !nsHasAddr(dir, "198.18.2.100") {
		t.Error("the unchanged VI_1 lost its VIP")
	}
	after := view()
	if _, ok := after["VI_2"]; ok || after["VI_3"].Name == "" {
		t.Errorf("instances after the reload: %v, want VI_1 and VI_3", after)
	}
	if a := after["VI_1"]; a.AdvertsSent < before.AdvertsSent || a.BecomeMaster != 1 {
		t.Errorf("VI_1 was restarted by a reload that did not change it: before %+v, after %+v", before, a)
	}

	// VI_1 changes priority: it restarts with it.
	write(vrrpConf("VI_1 61 120 198.18.2.100", "VI_3 63 100 198.18.2.102"))
	hup("configuration reloaded")
	waitFor(t, 5*time.Second, "VI_1 running at priority 120", func() bool {
		v := view()["VI_1"]
		return v.Priority == 120 && v.State == "MASTER" && nsHasAddr(dir, "198.18.2.100")
	})
	p.Stop()
	noRace(t, p.Output())
	for _, vip := range []string{"198.18.2.100", "198.18.2.102"} {
		if nsHasAddr(dir, vip) {
			t.Errorf("gvsd left %s behind after SIGTERM", vip)
		}
	}
}

// TestKeepalivedVRRPAuthAH runs gvsd against the real keepalived with
// auth_type AH (IPsec AH, HMAC-MD5-96) both ways round, as
// TestGvsdVRRPWithKeepalived does with PASS: each accepts the other's
// adverts (no auth failure, no replay on either side), a SIGTERM on the
// master moves the VIP within about a second, and the restarted master,
// whose sequence counter starts again from 0, takes it back. With unicast
// peers the ICV leaves the TTL out; with multicast it covers it.
func TestKeepalivedVRRPAuthAH(t *testing.T) {
	netnstest.Require(t, "keepalived")
	tests := []struct {
		name       string
		gvsdMaster bool
		unicast    bool
	}{
		{"gvsd master", true, false},
		{"keepalived master", false, false},
		{"unicast gvsd master", true, true},
		{"unicast keepalived master", false, true},
	}
	for _, tt := range tests {
		gvsdMaster := tt.gvsdMaster
		t.Run(tt.name, func(t *testing.T) {
			p := newVRRPPair(t)
			var gvsdSock string
			start := func(i int) *netnstest.Proc {
				state, prio := "MASTER", 100
				if i == 1 {
					state, prio = "BACKUP", 90
				}
				extra := ""
				if tt.unicast {
					extra = fmt.Sprintf("\tunicast_src_ip 198.18.3.%d\n\tunicast_peer {\n\t\t198.18.3.%d\n\t}\n", i+1, 2-i)
				}
				conf := strings.Replace(vrrpInstanceConf("2", state, prio, extra), "auth_type PASS", "auth_type AH", 1)
				if (i == 0) == gvsdMaster {
					proc := p.startGVSD(t, i, conf)
					gvsdSock = proc.Cmd.Args[len(proc.Cmd.Args)-1]
					return proc
				}
				return p.startKeepalived(t, i, conf)
			}
			master, backup, restarted := p.failoverAndBack(t, start)
			time.Sleep(2 * time.Second) // a few adverts from the restarted master

			ka := backup
			if !gvsdMaster {
				ka = restarted
			}
			for _, line := range strings.Split(master.Output()+backup.Output()+restarted.Output(), "\n") {
				if strings.Contains(line, "IPSEC") || strings.Contains(line, "invalid") || strings.Contains(line, "mismatch") {
					t.Errorf("a router complains about the other's adverts: %s", line)
				}
			}
			if !strings.Contains(ka.Output(), "Entering MASTER STATE") {
				t.Errorf("keepalived never became MASTER; it says:\n%s", tail(ka.Output()))
			}
			var view []struct {
				Name            string            `json:"name"`
				State           string            `json:"state"`
				AdvertsReceived uint64            `json:"adverts_received"`
				Drops           map[string]uint64 `json:"drops"`
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			if err := apiclient.New(gvsdSock).State(ctx, "vrrp", &view); err != nil {
				t.Fatal(err)
			}
			if len(view) != 1 || view[0].AdvertsReceived == 0 {
				t.Fatalf("gvsd's vrrp view %+v, want VI_1 with adverts received from keepalived", view)
			}
			for _, why := range []string{"auth_failure", "ah_replay", "auth_type_mismatch", "bad_checksum"} {
				if n := view[0].Drops[why]; n > 0 {
					t.Errorf("gvsd dropped %d of keepalived's adverts as %s", n, why)
				}
			}
		})
	}
}
