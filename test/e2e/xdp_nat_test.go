package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/engine/xdp"
	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/netns/netnstest"
	"github.com/gvs-lb/gvs/internal/toa"
)

// The NAT and FullNAT topology, all inside namespaces this test makes:
//
//	client 198.18.0.100 ── br0 ── director eth0 198.18.0.1, VIP 198.18.0.200
//	                              director eth1 198.18.3.1, FullNAT local 198.18.3.50
//	                                 │
//	rs1 198.18.3.11 ─┬─ br1 ─────────┘   (NAT: their default gateway is the director)
//	rs2 198.18.3.12 ─┤
//	router 198.18.3.254 / 198.18.5.254 ── br2 ─┬─ rs3 198.18.5.11  (FullNAT: reached
//	                                           └─ rs4 198.18.5.12   only by routing)
//
// The director runs the XDP engine on eth0 and eth1. TCP :80 is NAT to
// rs1 and rs2 on :8080 (port mapping), TCP :9000 is NAT to their :9000
// (a one-byte echo for many short connections), TCP :81 is FullNAT to rs3
// and rs4 on :8080. Real servers answer with their name and the client
// address they learn: from the packet (NAT) or from TOA (FullNAT). TCP
// :9100 of natVIP and of natVIP2 is NAT to rs1's echo alone: the same
// real server behind two VIPs.
const (
	natVIP  = "198.18.0.200"
	natVIP2 = "198.18.0.201"
)

func TestXDPNATAndFullNAT(t *testing.T) { xdpNATLab(t, "generic") }

// TestXDPNATAndFullNATNative is the same lab with the director's XDP in
// native mode on its veths. Every sender in it hands over partial
// checksums (CHECKSUM_PARTIAL: only the pseudo-header seed in the field);
// native XDP turns the forwarded packet into a bare frame, so the program
// must complete them or the real servers drop every SYN (TcpInCsumErrors).
// The director's peers in the hub have GRO on: that gives them the NAPI
// instance XDP_REDIRECT into a veth needs (every packet here leaves by
// another interface than it came in; for XDP_TX see
// TestXDPDirectRoutingAndTunnelNative).
func TestXDPNATAndFullNATNative(t *testing.T) { xdpNATLab(t, "native") }

// xdpNATLab builds the topology above, with the director's XDP in mode,
// and checks NAT and FullNAT through it.
func xdpNATLab(t *testing.T, mode string) {
	netnstest.Require(t, "sysctl", "curl", "ethtool")
	hub := netnstest.New(t, "hub")
	client := netnstest.New(t, "cli")
	dir := netnstest.New(t, "dir")
	router := netnstest.New(t, "rtr")
	rs := []*netnstest.NS{netnstest.New(t, "rs1"), netnstest.New(t, "rs2"), netnstest.New(t, "rs3"), netnstest.New(t, "rs4")}

	netnstest.Bridge(t, hub, "br0", "eth0", client, dir)
	dir.Run("ip", "link", "set", "eth0", "name", "ext")
	netnstest.Bridge(t, hub, "br1", "eth0", dir, rs[0], rs[1], router)
	dir.Run("ip", "link", "set", "eth0", "name", "eth1")
	dir.Run("ip", "link", "set", "ext", "name", "eth0")
	router.Run("ip", "link", "set", "eth0", "name", "eth1")
	netnstest.Bridge(t, hub, "br2", "eth0", router, rs[2], rs[3])
	if mode == "native" {
		for _, peer := range []string{"br0-p1", "br1-p0"} { // the director's eth0 and eth1
			hub.Run("ethtool", "-K", peer, "gro", "on")
		}
	} else {
		// The director's generic XDP forwards its senders' partial
		// checksums as partial skbs. Past the director, checksums are
		// filled in in software at the skb's csum_start (the ports
		// towards the real servers, the router and the client do not
		// offload them), and the receivers verify them (no rx
		// offload, which on a veth marks any packet as verified).
		for _, port := range []string{"br0-p0", "br1-p1", "br1-p2", "br1-p3"} {
			hub.Run("ethtool", "-K", port, "tx", "off")
		}
		hub.Run("ethtool", "-K", "br2-p0", "rx", "off")
		router.Run("ethtool", "-K", "eth1", "rx", "off")
		for _, n := range append([]*netnstest.NS{client}, rs...) {
			n.Run("ethtool", "-K", "eth0", "rx", "off")
		}
	}

	client.Addr("eth0", "198.18.0.100/24")
	dir.Addr("eth0", "198.18.0.1/24")
	dir.Addr("eth0", natVIP+"/32")
	dir.Addr("eth0", natVIP2+"/32")
	dir.Addr("eth1", "198.18.3.1/24")
	dir.Addr("eth1", "198.18.3.50/32")
	dir.Run("ip", "route", "add", "198.18.5.0/24", "via", "198.18.3.254")
	dir.Run("sysctl", "-qw", "net.ipv4.ip_forward=1")
	router.Addr("eth1", "198.18.3.254/24")
	router.Addr("eth0", "198.18.5.254/24")
	router.Run("sysctl", "-qw", "net.ipv4.ip_forward=1")
	for i, n := range rs {
		if i < 2 {
			n.Addr("eth0", fmt.Sprintf("198.18.3.%d/24", 11+i))
			n.Run("ip", "route", "add", "default", "via", "198.18.3.1")
		} else {
			n.Addr("eth0", fmt.Sprintf("198.18.5.%d/24", 9+i))
			n.Run("ip", "route", "add", "default", "via", "198.18.5.254")
		}
	}

	for i, n := range rs {
		t.Setenv("GVS_XDPNAT_ROLE", "rs")
		t.Setenv("GVS_XDPNAT_NAME", fmt.Sprintf("RS%d", i+1))
		t.Setenv("GVS_XDPNAT_TOA", fmt.Sprint(i >= 2))
		n.Start(os.Args[0], "-test.run=^TestXDPNATHelper$", "-test.v")
	}
	for _, n := range rs {
		waitListening(t, n, "127.0.0.1:8080", "127.0.0.1:9000")
	}
	t.Setenv("GVS_XDPNAT_MODE", mode)
	director, ctl := startXDPDirector(t, dir, "GVS_XDPNAT", "TestXDPNATHelper")

	vip := netip.MustParseAddr(natVIP)
	rsAddr := func(s string) netip.Addr { return netip.MustParseAddr(s) }
	svcOn := func(vip netip.Addr, port uint16, m ipvs.Method, dport uint16, addrs ...string) ipvs.ServiceConfig {
		sc := ipvs.ServiceConfig{Service: ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip, Port: port}, Scheduler: "rr"}}
		if m == ipvs.FullNAT {
			sc.LocalAddrs = []netip.Addr{rsAddr("198.18.3.50")}
		}
		for _, a := range addrs {
			sc.Dests = append(sc.Dests, ipvs.Dest{Addr: rsAddr(a), Port: dport, Method: m, Weight: 1})
		}
		return sc
	}
	svc := func(port uint16, m ipvs.Method, dport uint16, addrs ...string) ipvs.ServiceConfig {
		return svcOn(vip, port, m, dport, addrs...)
	}
	// Short timeouts (ipvsadm --set 2 1 2) keep the expiry test bounded.
	ctl.call(t, "POST", "/apply", &ipvs.Snapshot{Timeouts: ipvs.Timeouts{TCP: 2, TCPFin: 1, UDP: 2}, Services: []ipvs.ServiceConfig{
		svc(80, ipvs.Masq, 8080, "198.18.3.11", "198.18.3.12"),
		svc(9000, ipvs.Masq, 9000, "198.18.3.11", "198.18.3.12"),
		svc(81, ipvs.FullNAT, 8080, "198.18.5.11", "198.18.5.12"),
		svc(9100, ipvs.Masq, 9000, "198.18.3.11"),
		svcOn(netip.MustParseAddr(natVIP2), 9100, ipvs.Masq, 9000, "198.18.3.11"),
	}}, nil)

	fetch := func(t *testing.T, port string, n int) []string {
		t.Helper()
		return fetchFrom(t, client.Name, natVIP+":"+port, n, director)
	}
	check := func(t *testing.T, seq []string, a, b string) {
		t.Helper()
		alternate(t, seq, a, b)
		for _, s := range seq {
			name, seen, _ := strings.Cut(s, " ")
			if !strings.HasPrefix(seen, "198.18.0.100:") {
				t.Fatalf("%s saw the client as %q, want 198.18.0.100:port", name, seen)
			}
		}
	}

	t.Run("NAT answers alternate and real servers see the client", func(t *testing.T) { check(t, fetch(t, "80", 6), "RS1", "RS2") })
	t.Run("FullNAT answers alternate and real servers learn the client from TOA", func(t *testing.T) { check(t, fetch(t, "81", 6), "RS3", "RS4") })
	t.Run("replies are counted out", func(t *testing.T) {
		var st []ipvs.ServiceStatus
		ctl.call(t, "GET", "/status", nil, &st)
		for _, s := range st {
			if s.Port == 9000 || s.Port == 9100 {
				continue
			}
			if s.Stats.Conns != 6 || s.Stats.OutPkts < 6*2 || s.Stats.OutBytes == 0 {
				t.Errorf("%s: stats %+v, want 6 connections and their replies counted out", s.ServiceKey, s.Stats)
			}
		}
	})

	t.Run("a client port reused towards another VIP of the same real server is served", func(t *testing.T) {
		// The first connection closes (the client first), so the
		// director holds it in TIME_WAIT (one second here) when the
		// second one's SYN comes; the real server sees the same tuple.
		// A try whose old entry expired before the second SYN proves
		// nothing: the next port tries again.
		for port := 43100; port < 43103; port++ {
			from := fmt.Sprintf("198.18.0.100:%d", port)
			if err := echoFromInNS(client.Name, from, natVIP+":9100", 3*time.Second); err != nil {
				t.Fatalf("first connection from %s: %v", from, err)
			}
			waitFor(t, 3*time.Second, "the first connection in TIME_WAIT", func() bool {
				return connState(t, ctl, from, natVIP+":9100") == "TIME_WAIT"
			})
			if err := echoFromInNS(client.Name, from, natVIP2+":9100", 3*time.Second); err != nil {
				t.Fatalf("second connection from %s, to the other VIP: %v\ndrops: %v", from, err, drops(t, ctl))
			}
			if connState(t, ctl, from, natVIP+":9100") == "TIME_WAIT" {
				return
			}
		}
		t.Fatal("the first connection's entry expired before the second connection each time: no clash was tried")
	})
	t.Run("a client port reused while its connection to the other VIP is live is refused", func(t *testing.T) {
		const from = "198.18.0.100:43200"
		live, err := dialFromInNS(client.Name, from, natVIP+":9100", 3*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer live.Close()
		before := drops(t, ctl)["nat-clash"]
		if c, err := dialFromInNS(client.Name, from, natVIP2+":9100", 1500*time.Millisecond); err == nil {
			c.Close()
			t.Fatal("a second connection with the live connection's tuple at the real server was made")
		}
		if n := drops(t, ctl)["nat-clash"]; n <= before {
			t.Errorf("nat-clash counted %d, want more than %d", n, before)
		}
		if err := echo(live); err != nil {
			t.Errorf("the live connection after the refused one: %v", err)
		}
	})

	t.Run("curl gets answers through NAT and FullNAT", func(t *testing.T) {
		for _, port := range []string{"80", "81"} {
			out, err := client.Output("curl", "-sS", "--max-time", "5", "http://"+natVIP+":"+port+"/")
			if err != nil || !strings.HasPrefix(out, "RS") {
				t.Fatalf("curl to :%s: %q, %v\ndirector log:\n%s", port, out, err, director.Output())
			}
		}
	})
	t.Run("10000 short connections leave no entries after their timeouts", func(t *testing.T) {
		const total, workers = 10000, 8
		var next, failed atomic.Int64
		var firstErr atomic.Value
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for next.Add(1) <= total && failed.Load() < 20 { // a broken path ends the loop early
					if err := echoInNS(client.Name, natVIP+":9000"); err != nil {
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err)
					}
				}
			}()
		}
		wg.Wait()
		// A lost SYN under load is retried by the kernel; a few outright
		// failures would still be a bug worth seeing.
		if n := failed.Load(); n > 0 {
			t.Fatalf("%d of %d connections failed, the first: %v", n, total, firstErr.Load())
		}
		var st []ipvs.ServiceStatus
		ctl.call(t, "GET", "/status", nil, &st)
		for _, s := range st {
			if s.Port == 9000 && s.Stats.Conns != total {
				t.Errorf("service :9000 counted %d connections, want %d", s.Stats.Conns, total)
			}
		}
		var entries int
		waitFor(t, 20*time.Second, "the connection table to empty", func() bool {
			ctl.call(t, "GET", "/entries", nil, &entries)
			return entries == 0
		})
		var conns []ipvs.Conn
		ctl.call(t, "GET", "/conns", nil, &conns)
		if len(conns) != 0 {
			t.Errorf("%d connections listed after their timeouts, e.g. %+v", len(conns), conns[0])
		}
	})
}

// echoInNS connects from the namespace ns, sends one byte and reads it
// back, then closes.
func echoInNS(ns, addr string) error {
	c, err := dialInNS(ns, addr)
	if err != nil {
		return err
	}
	defer c.Close()
	return echo(c)
}

// echo sends one byte on c and reads it back.
func echo(c net.Conn) error {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte{'x'}); err != nil {
		return err
	}
	b := make([]byte, 1)
	if _, err := io.ReadFull(c, b); err != nil {
		return fmt.Errorf("reading the echo: %w", err)
	}
	return nil
}

// echoFromInNS is echoInNS from the local address from.
func echoFromInNS(ns, from, addr string, timeout time.Duration) error {
	c, err := dialFromInNS(ns, from, addr, timeout)
	if err != nil {
		return err
	}
	defer c.Close()
	return echo(c)
}

// dialFromInNS opens a TCP connection from the namespace ns and the local
// address from, which other sockets may hold too (SO_REUSEADDR).
func dialFromInNS(ns, from, addr string, timeout time.Duration) (net.Conn, error) {
	la, err := net.ResolveTCPAddr("tcp", from)
	if err != nil {
		return nil, err
	}
	d := net.Dialer{Timeout: timeout, LocalAddr: la, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1) })
		return errors.Join(err, serr)
	}}
	var conn net.Conn
	err = inNetns(ns, func() error {
		var err error
		conn, err = d.Dial("tcp", addr)
		return err
	})
	return conn, err
}

// connState is the state the director lists for the connection from
// client to vip, or "".
func connState(t *testing.T, ctl *directorCtl, client, vip string) string {
	t.Helper()
	var conns []ipvs.Conn
	ctl.call(t, "GET", "/conns", nil, &conns)
	for _, c := range conns {
		if c.Client.String() == client && c.Virtual.String() == vip {
			return c.State
		}
	}
	return ""
}

// drops is the director's drop counters by reason.
func drops(t *testing.T, ctl *directorCtl) map[string]uint64 {
	t.Helper()
	var d map[string]uint64
	ctl.call(t, "GET", "/drops", nil, &d)
	return d
}

// TestXDPNATHelper is not a test: it is the director or a real server of
// TestXDPNATAndFullNAT, run by it in a namespace (GVS_XDPNAT_ROLE).
func TestXDPNATHelper(t *testing.T) {
	role := helperRole(t, "GVS_XDPNAT_ROLE", "TestXDPNATAndFullNAT or TestXDPNATAndFullNATNative")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	switch role {
	case "rs":
		name := os.Getenv("GVS_XDPNAT_NAME")
		var r *toa.Reader
		if os.Getenv("GVS_XDPNAT_TOA") == "true" {
			var err error
			r, err = toa.NewReader(toa.Options{Interfaces: []string{"eth0"}, Mode: "generic"})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
		}
		ln, err := net.Listen("tcp", ":8080")
		if err != nil {
			t.Fatal(err)
		}
		if r != nil {
			ln = r.Listener(ln)
		}
		hs := &http.Server{
			Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) { fmt.Fprintln(w, name, req.RemoteAddr) }),
		}
		go hs.Serve(ln)
		echo, err := net.Listen("tcp", ":9000")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for {
				c, err := echo.Accept()
				if err != nil {
					return
				}
				go func() {
					defer c.Close()
					c.SetDeadline(time.Now().Add(5 * time.Second))
					b := make([]byte, 1)
					if _, err := io.ReadFull(c, b); err == nil {
						c.Write(b)
					}
					io.Copy(io.Discard, c)
				}()
			}
		}()
		<-ctx.Done()
		hs.Close()
		echo.Close()
		if r != nil {
			log.Info("TOA options seen", "n", r.Seen())
		}
	case "director":
		serveXDPDirector(t, ctx, log, xdp.Options{
			Interfaces:     []string{"eth0", "eth1"},
			Mode:           os.Getenv("GVS_XDPNAT_MODE"),
			ExpiryInterval: 200 * time.Millisecond,
			StateTimeouts:  map[string]time.Duration{"TIME_WAIT": time.Second, "CLOSE": time.Second, "CLOSE_WAIT": time.Second, "LAST_ACK": time.Second, "SYN_RECV": 2 * time.Second},
		}, os.Getenv("GVS_XDPNAT_SOCK"))
	}
}

// dialInNS opens a TCP connection from the namespace ns (inNetns makes the
// socket on a thread moved into it).
func dialInNS(ns, addr string) (net.Conn, error) {
	var conn net.Conn
	err := inNetns(ns, func() error {
		var err error
		conn, err = net.DialTimeout("tcp", addr, 3*time.Second)
		return err
	})
	return conn, err
}
