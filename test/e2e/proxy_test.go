package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// vip starts a gvsd with the proxy engine and a TCP service on a free
// loopback port with scheduler args, returning the daemon and "ip:port".
func vip(t *testing.T, schedArgs ...string) (*daemon, string) {
	t.Helper()
	d := startGVSD(t, "--engine", "proxy")
	addr := "127.0.0.1:" + freePort(t)
	d.gvsadm(t, append([]string{"-A", "-t", addr}, schedArgs...)...)
	return d, addr
}

func TestProxyRoundRobinAlternates(t *testing.T) {
	rs1 := startRS(t, "RS1", "127.0.0.1:0")
	rs2 := startRS(t, "RS2", "127.0.0.1:0")
	d, addr := vip(t, "-s", "rr")
	d.gvsadm(t, "-a", "-t", addr, "-r", rs1.addr, "-m")
	d.gvsadm(t, "-a", "-t", addr, "-r", rs2.addr, "-m")

	want := fmt.Sprintf(`IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn
TCP  %s rr
  -> %-28s Masq    1      0          0         
  -> %-28s Masq    1      0          0         
`, addr, rs1.addr, rs2.addr)
	if rs2.addr < rs1.addr { // ipvsadm sorts real servers by address and port
		want = strings.Replace(strings.Replace(want, rs1.addr, "@", 1), rs2.addr, rs1.addr, 1)
		want = strings.Replace(want, "@", rs2.addr, 1)
	}
	if got := d.gvsadm(t, "-Ln"); got != want {
		t.Errorf("gvsadm -Ln:\n%s\nwant:\n%s", got, want)
	}

	var seq []string
	for range 6 {
		seq = append(seq, get(t, "http://"+addr+"/", ""))
	}
	// The kernel adds a new real server at the head of its list, so rr
	// starts with the last one added, like the seeds' lab: RS2 RS1 RS2 ...
	if got, want := strings.Join(seq, " "), "RS2 RS1 RS2 RS1 RS2 RS1"; got != want {
		t.Errorf("curl answers %q, want %q", got, want)
	}
	// Finished connections stay listed in TIME_WAIT, as in IPVS NAT.
	waitFor(t, 3*time.Second, "6 TIME_WAIT entries in -Lnc", func() bool {
		return strings.Count(d.gvsadm(t, "-Lnc"), "TIME_WAIT") == 6
	})
	stats := d.gvsadm(t, "-Ln", "--stats")
	if !strings.Contains(stats, fmt.Sprintf("TCP  %-21s %15d", addr, 6)) {
		t.Errorf("gvsadm -Ln --stats does not count 6 connections for the service:\n%s", stats)
	}
}

func TestProxyWeightedRoundRobin(t *testing.T) {
	rs1 := startRS(t, "RS1", "127.0.0.1:0")
	rs2 := startRS(t, "RS2", "127.0.0.1:0")
	d, addr := vip(t, "-s", "wrr")
	d.gvsadm(t, "-a", "-t", addr, "-r", rs1.addr, "-m", "-w", "3")
	d.gvsadm(t, "-a", "-t", addr, "-r", rs2.addr, "-m", "-w", "1")
	count := map[string]int{}
	for range 12 {
		count[get(t, "http://"+addr+"/", "")]++
	}
	if count["RS1"] != 9 || count["RS2"] != 3 {
		t.Errorf("wrr 3:1 over 12 connections gave %v, want RS1:9 RS2:3", count)
	}
}

// holdServer is a TCP real server that writes its name on each connection
// and keeps the connection open until the client closes it.
func holdServer(t *testing.T, name string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.WriteString(c, name+"\n")
				io.Copy(io.Discard, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// openHeld opens n connections through addr one after the other, each
// kept open, and counts which real server answered them.
func openHeld(t *testing.T, addr string, n int) map[string]int {
	t.Helper()
	count := map[string]int{}
	for range n {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetReadDeadline(time.Now().Add(3 * time.Second))
		name, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			t.Fatalf("reading the real server's name: %v", err)
		}
		count[strings.TrimSpace(name)]++
	}
	return count
}

func TestProxyLeastConnectionBalancesLongLivedConnections(t *testing.T) {
	tests := []struct {
		name   string
		sched  string
		w1, w2 string
		n      int
		want   map[string]int
	}{
		{"lc", "lc", "1", "1", 6, map[string]int{"RS1": 3, "RS2": 3}},
		{"wlc 3:1", "wlc", "3", "1", 8, map[string]int{"RS1": 6, "RS2": 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs1, rs2 := holdServer(t, "RS1"), holdServer(t, "RS2")
			d, addr := vip(t, "-s", tt.sched)
			d.gvsadm(t, "-a", "-t", addr, "-r", rs1, "-m", "-w", tt.w1)
			d.gvsadm(t, "-a", "-t", addr, "-r", rs2, "-m", "-w", tt.w2)
			got := openHeld(t, addr, tt.n)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("%d long-lived connections spread as %v, want %v", tt.n, got, tt.want)
			}
			if out := d.gvsadm(t, "-Ln"); !strings.Contains(out, fmt.Sprintf("%-6d     0", tt.want["RS1"])) {
				t.Errorf("-Ln does not show %d active connections:\n%s", tt.want["RS1"], out)
			}
		})
	}
}

func TestProxyHashingSticksPerClient(t *testing.T) {
	for _, sched := range []string{"sh", "mh"} {
		t.Run(sched, func(t *testing.T) {
			rs1 := startRS(t, "RS1", "127.0.0.1:0")
			rs2 := startRS(t, "RS2", "127.0.0.1:0")
			d, addr := vip(t, "-s", sched)
			d.gvsadm(t, "-a", "-t", addr, "-r", rs1.addr, "-m")
			d.gvsadm(t, "-a", "-t", addr, "-r", rs2.addr, "-m")
			seen := map[string]bool{}
			for i := 2; i < 18; i++ {
				src := fmt.Sprintf("127.0.0.%d", i)
				first := get(t, "http://"+addr+"/", src)
				for range 2 {
					if again := get(t, "http://"+addr+"/", src); again != first {
						t.Fatalf("client %s went to %s then %s", src, first, again)
					}
				}
				seen[first] = true
			}
			if len(seen) != 2 {
				t.Errorf("16 client addresses all hashed to %v", seen)
			}
		})
	}
}

func TestProxyPersistence(t *testing.T) {
	rs1 := startRS(t, "RS1", "127.0.0.1:0")
	rs2 := startRS(t, "RS2", "127.0.0.1:0")
	d, addr := vip(t, "-s", "rr", "-p", "60")
	d.gvsadm(t, "-a", "-t", addr, "-r", rs1.addr, "-m")
	d.gvsadm(t, "-a", "-t", addr, "-r", rs2.addr, "-m")
	first := get(t, "http://"+addr+"/", "127.0.0.2")
	for range 3 {
		if got := get(t, "http://"+addr+"/", "127.0.0.2"); got != first {
			t.Fatalf("persistent client moved from %s to %s", first, got)
		}
	}
	if other := get(t, "http://"+addr+"/", "127.0.0.3"); other == first {
		t.Errorf("a second client went to %s too; rr should pick the other server", other)
	}
	conns := d.gvsadm(t, "-Lnc")
	if !strings.Contains(conns, "NONE        127.0.0.2:0") {
		t.Errorf("-Lnc lists no persistence template for 127.0.0.2:\n%s", conns)
	}
	if out := d.gvsadm(t, "-Ln"); !strings.Contains(out, "rr persistent 60") {
		t.Errorf("-Ln does not show the persistence:\n%s", out)
	}
}

func TestProxyPersistenceNetmask(t *testing.T) {
	rs1 := startRS(t, "RS1", "127.0.0.1:0")
	rs2 := startRS(t, "RS2", "127.0.0.1:0")
	d, addr := vip(t, "-s", "rr", "-p", "60", "-M", "255.255.255.0")
	d.gvsadm(t, "-a", "-t", addr, "-r", rs1.addr, "-m")
	d.gvsadm(t, "-a", "-t", addr, "-r", rs2.addr, "-m")
	first := get(t, "http://"+addr+"/", "127.0.0.2")
	for i := 3; i < 8; i++ {
		if got := get(t, "http://"+addr+"/", fmt.Sprintf("127.0.0.%d", i)); got != first {
			t.Fatalf("client 127.0.0.%d in the same /24 went to %s, not %s", i, got, first)
		}
	}
	if other := get(t, "http://"+addr+"/", "127.0.1.2"); other == first {
		t.Errorf("a client in another /24 went to %s too", other)
	}
}

func TestProxyWeightZeroDrains(t *testing.T) {
	rs1 := startRS(t, "RS1", "127.0.0.1:0")
	rs2 := startRS(t, "RS2", "127.0.0.1:0")
	d, addr := vip(t, "-s", "rr")
	d.gvsadm(t, "-a", "-t", addr, "-r", rs1.addr, "-m")
	d.gvsadm(t, "-a", "-t", addr, "-r", rs2.addr, "-m")

	// The first connection goes to RS2 (the last added); hold it.
	var wg sync.WaitGroup
	var held string
	var heldErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		held, heldErr = tryGet("http://"+addr+"/?hold=1s", "")
	}()
	waitFor(t, 2*time.Second, "the held connection", func() bool {
		return strings.Contains(d.gvsadm(t, "-Lnc"), "ESTABLISHED")
	})
	d.gvsadm(t, "-e", "-t", addr, "-r", rs2.addr, "-m", "-w", "0")
	for range 4 {
		if got := get(t, "http://"+addr+"/", ""); got != "RS1" {
			t.Fatalf("a new connection went to %s with RS2 at weight 0", got)
		}
	}
	wg.Wait()
	if heldErr != nil || held != "RS2" {
		t.Errorf("the established connection to the drained server: %q, %v; want RS2", held, heldErr)
	}
}

func TestProxyStoppedServerIsSkipped(t *testing.T) {
	rs1 := startRS(t, "RS1", "127.0.0.1:0")
	rs2 := startRS(t, "RS2", "127.0.0.1:0")
	d, addr := vip(t, "-s", "rr")
	d.gvsadm(t, "-a", "-t", addr, "-r", rs1.addr, "-m")
	d.gvsadm(t, "-a", "-t", addr, "-r", rs2.addr, "-m")
	rs1.stop()

	failures := 0
	for range 8 {
		body, err := tryGet("http://"+addr+"/", "")
		switch {
		case err != nil:
			failures++ // the one connection that met the stopped server is reset
		case body != "RS2":
			t.Fatalf("answer %q from a stopped server", body)
		}
	}
	if failures > 1 {
		t.Errorf("%d of 8 connections failed; only the first one to meet the stopped server may", failures)
	}

	startRS(t, "RS1", rs1.addr)
	waitFor(t, 10*time.Second, "RS1 back in rotation", func() bool {
		body, _ := tryGet("http://"+addr+"/", "")
		return body == "RS1"
	})
}

// udpServer is a UDP real server on loopback answering each datagram with
// "name:payload"; it returns its "ip:port".
func udpServer(t *testing.T, name string) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte(name+":"), buf[:n]...), from)
		}
	}()
	return pc.LocalAddr().String()
}

func TestProxyUDP(t *testing.T) {
	rs1, rs2 := udpServer(t, "RS1"), udpServer(t, "RS2")
	d := startGVSD(t, "--engine", "proxy")
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := pc.LocalAddr().String()
	pc.Close()
	d.gvsadm(t, "-A", "-u", addr, "-s", "rr")
	d.gvsadm(t, "-a", "-u", addr, "-r", rs1, "-m")
	d.gvsadm(t, "-a", "-u", addr, "-r", rs2, "-m")

	ask := func(c net.Conn, msg string) string {
		t.Helper()
		c.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1500)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no UDP answer to %q: %v", msg, err)
		}
		return string(buf[:n])
	}
	var firsts []string
	for i := range 2 {
		c, err := net.Dial("udp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		first := ask(c, fmt.Sprintf("hello %d", i))
		if again := ask(c, "again"); again[:3] != first[:3] {
			t.Errorf("one client socket answered by %s then %s", first[:3], again[:3])
		}
		firsts = append(firsts, first)
	}
	if got := firsts[0][:3] + " " + firsts[1][:3]; got != "RS2 RS1" {
		t.Errorf("two UDP clients went to %s, want RS2 RS1 (rr, last added first)", got)
	}
	if !strings.HasSuffix(firsts[0], "hello 0") {
		t.Errorf("payload not relayed: %q", firsts[0])
	}
	if conns := d.gvsadm(t, "-Lnc"); strings.Count(conns, "UDP ") < 2 {
		t.Errorf("-Lnc lists fewer than 2 UDP entries:\n%s", conns)
	}
}

func TestProxyUDPOnePacket(t *testing.T) {
	rs1, rs2 := udpServer(t, "RS1"), udpServer(t, "RS2")
	d := startGVSD(t, "--engine", "proxy")
	addr := "127.0.0.1:" + freePort(t)
	d.gvsadm(t, "-A", "-u", addr, "-s", "rr", "-o")
	d.gvsadm(t, "-a", "-u", addr, "-r", rs2, "-m")
	d.gvsadm(t, "-a", "-u", addr, "-r", rs1, "-m")
	if out := d.gvsadm(t, "-Ln"); !strings.Contains(out, "UDP  "+addr+" rr ops\n") {
		t.Errorf("-Ln does not show the one-packet flag:\n%s", out)
	}

	// One client socket: each datagram is scheduled on its own (rr starts
	// with the last added, RS1), and every answer comes from the virtual
	// address (a connected socket receives from nowhere else).
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var seq []string
	for i := range 4 {
		c.SetDeadline(time.Now().Add(2 * time.Second))
		msg := fmt.Sprintf("q%d", i)
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 1500)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("no UDP answer to %q: %v", msg, err)
		}
		if !strings.HasSuffix(string(buf[:n]), ":"+msg) {
			t.Fatalf("answer %q to %q", buf[:n], msg)
		}
		seq = append(seq, string(buf[:3]))
	}
	if got := strings.Join(seq, " "); got != "RS1 RS2 RS1 RS2" {
		t.Errorf("4 datagrams from one socket went to %s, want RS1 RS2 RS1 RS2", got)
	}
	// IPVS keeps no entry for a one-packet datagram, but counts each as a
	// connection.
	if conns := d.gvsadm(t, "-Lnc"); strings.Contains(conns, "UDP ") {
		t.Errorf("-Lnc lists one-packet datagrams:\n%s", conns)
	}
	stats := d.gvsadm(t, "-Ln", "--stats")
	want := []string{"UDP", addr, "4", "4", "4", "8", "24"} // conns, packets and bytes in and out
	found := false
	for _, line := range strings.Split(stats, "\n") {
		found = found || strings.Join(strings.Fields(line), " ") == strings.Join(want, " ")
	}
	if !found {
		t.Errorf("-Ln --stats does not count 4 connections, 4 packets and 8 bytes in, 4 packets and 24 bytes out:\n%s", stats)
	}

	// As ipvsadm, gvsadm refuses -o on a TCP service.
	out, err := d.gvsadmErr("-A", "-t", "127.0.0.1:"+freePort(t), "-o")
	if err == nil || !strings.Contains(out, "One-Packet Scheduling is only for UDP virtual services") {
		t.Errorf("-A -t ... -o: %v\n%s\nwant ipvsadm's refusal", err, out)
	}
}

func TestGvsadmWithoutDaemon(t *testing.T) {
	d := &daemon{socket: t.TempDir() + "/none.sock"}
	out, err := d.gvsadmErr("-Ln")
	if err == nil {
		t.Fatalf("gvsadm -Ln with no gvsd succeeded:\n%s", out)
	}
	if !strings.Contains(out, "gvsd") || !strings.Contains(out, "--socket") {
		t.Errorf("the message does not say gvsd is not running and how to start it:\n%s", out)
	}
}

func TestProxyRefusesDirectRouting(t *testing.T) {
	d, addr := vip(t, "-s", "rr")
	out, err := d.gvsadmErr("-a", "-t", addr, "-r", "127.0.0.1:9", "-g")
	if err == nil || !strings.Contains(out, "xdp") {
		t.Errorf("-g on the proxy engine: %v\n%s\nwant an error naming the xdp engine", err, out)
	}
}
