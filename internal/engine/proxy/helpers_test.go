package proxy

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/porttest"
)

// testLog sends the engine's log to the test's log.
type testLog struct{ t testing.TB }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// newEngine returns an engine with a short tick and back-off, closed at
// the end of the test.
func newEngine(t testing.TB, opts Options) *Engine {
	t.Helper()
	if opts.Tick == 0 {
		opts.Tick = 100 * time.Millisecond
	}
	if opts.FailBackoff == 0 {
		opts.FailBackoff = 500 * time.Millisecond
	}
	e := New(slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: slog.LevelDebug})), opts)
	// GVS_PROXY_PATH=goroutines runs the tests on the portable TCP path.
	e.goroutines = os.Getenv("GVS_PROXY_PATH") == "goroutines"
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		e.Close(ctx)
	})
	return e
}

// table is a real IPVS table whose snapshots the test applies.
type table struct {
	t  testing.TB
	e  *Engine
	tb *ipvs.Table
}

func newTable(t testing.TB, e *Engine) *table {
	return &table{t: t, e: e, tb: ipvs.NewTable(e.CheckDest)}
}

// exec runs table commands and applies the result; it fails the test on
// any error.
func (tb *table) exec(cmds ...ipvs.Command) {
	tb.t.Helper()
	for _, c := range cmds {
		if err := tb.tb.Exec(c); err != nil {
			tb.t.Fatalf("%s: %v", c.Op, err)
		}
	}
	if err := engine.ApplySnapshot(tb.e, tb.tb.Snapshot()); err != nil {
		tb.t.Fatalf("Apply: %v", err)
	}
}

func addSvc(s ipvs.Service) ipvs.Command { return ipvs.Command{Op: ipvs.OpAddService, Service: &s} }

func addDest(s ipvs.Service, ap netip.AddrPort, w int32) ipvs.Command {
	return ipvs.Command{Op: ipvs.OpAddDest, Service: &s, Dest: &ipvs.Dest{Addr: ap.Addr(), Port: ap.Port(), Method: ipvs.Masq, Weight: w}}
}

func editDest(s ipvs.Service, ap netip.AddrPort, w int32) ipvs.Command {
	c := addDest(s, ap, w)
	c.Op = ipvs.OpEditDest
	return c
}

func delDest(s ipvs.Service, ap netip.AddrPort) ipvs.Command {
	c := addDest(s, ap, 0)
	c.Op = ipvs.OpDelDest
	return c
}

// freePort returns a port that was free on addr for network.
func freePort(t testing.TB, network string, addr netip.Addr) uint16 {
	return porttest.Free(t, network, addr)
}

var lo4 = netip.MustParseAddr("127.0.0.1")

// vs returns a TCP service on a free loopback port.
func vs(t testing.TB, proto ipvs.Protocol, addr netip.Addr, scheduler string) ipvs.Service {
	network := "tcp"
	if proto == ipvs.UDP {
		network = "udp"
	}
	return ipvs.Service{
		ServiceKey: ipvs.ServiceKey{Proto: proto, Addr: addr, Port: freePort(t, network, addr)},
		Scheduler:  scheduler,
	}
}

// tcpServer is a real server: it greets each connection with its name and
// a newline, then echoes until the client half-closes, then closes. With
// proxyHeader it first reads a PROXY header and greets with
// "name src dst" instead.
type tcpServer struct {
	name        string
	addr        netip.AddrPort
	ln          net.Listener
	proxyHeader bool
	hold        chan struct{} // when set, wait for it to close before closing after EOF
}

func withProxyHeader(s *tcpServer) { s.proxyHeader = true }

// withHold makes the server wait for hold to close before it closes its
// side after the client's half-close.
func withHold(hold chan struct{}) func(*tcpServer) {
	return func(s *tcpServer) { s.hold = hold }
}

// startTCP starts a real server named name on a free port of addr.
func startTCP(t testing.TB, addr netip.Addr, name string, opts ...func(*tcpServer)) *tcpServer {
	t.Helper()
	return startTCPAt(t, "tcp", netip.AddrPortFrom(addr, 0), name, opts...)
}

// startTCPAt starts a real server named name listening on network at ap.
func startTCPAt(t testing.TB, network string, ap netip.AddrPort, name string, opts ...func(*tcpServer)) *tcpServer {
	t.Helper()
	ln, err := net.Listen(network, ap.String())
	if err != nil {
		t.Fatal(err)
	}
	s := &tcpServer{name: name, ln: ln, addr: ln.Addr().(*net.TCPAddr).AddrPort()}
	for _, o := range opts {
		o(s)
	}
	t.Cleanup(func() { ln.Close() })
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

func (s *tcpServer) serve(c net.Conn) {
	defer c.Close()
	br := bufio.NewReader(c)
	greet := s.name
	if s.proxyHeader {
		src, dst, err := readProxyHeader(br)
		if err != nil {
			io.WriteString(c, "bad header: "+err.Error()+"\n")
			return
		}
		greet += " " + src.String() + " " + dst.String()
	}
	if _, err := io.WriteString(c, greet+"\n"); err != nil {
		return
	}
	io.Copy(c, br)
	if s.hold != nil {
		<-s.hold
	}
}

// client is a connection to a virtual service and the server it reached.
type client struct {
	net.Conn
	br     *bufio.Reader
	server string
}

// dialVS connects to vip (from local when valid) and reads the greeting.
func dialVS(t testing.TB, vip netip.AddrPort, local netip.Addr) (*client, error) {
	t.Helper()
	d := net.Dialer{Timeout: 2 * time.Second}
	if local.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: local.AsSlice()}
	}
	c, err := d.Dial("tcp", vip.String())
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		c.Close()
		return nil, err
	}
	return &client{Conn: c, br: br, server: strings.TrimSuffix(line, "\n")}, nil
}

// mustDial is dialVS that fails the test on error and returns the server.
func mustDial(t testing.TB, vip netip.AddrPort) *client {
	t.Helper()
	c, err := dialVS(t, vip, netip.Addr{})
	if err != nil {
		t.Fatalf("connect to %s: %v", vip, err)
	}
	return c
}

// echo sends msg and reads it back.
func (c *client) echo(t testing.TB, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c.br, buf); err != nil {
		t.Fatalf("read echo: %v", err)
	}
	if string(buf) != msg {
		t.Fatalf("echo = %q, want %q", buf, msg)
	}
}

// finish half-closes and waits for the server's close.
func (c *client) finish(t testing.TB) {
	t.Helper()
	c.Conn.(*net.TCPConn).CloseWrite()
	if rest, err := io.ReadAll(c.br); err != nil || len(rest) != 0 {
		t.Fatalf("after half-close: %q, %v", rest, err)
	}
	c.Close()
}

// udpServer answers each datagram with "name:payload".
func startUDP(t testing.TB, addr netip.Addr, name string) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(append([]byte(name+":"), buf[:n]...), from)
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// eventually polls cond every 20 ms for up to d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(d)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// destStatus returns a real server's status line.
func destStatus(t testing.TB, e *Engine, key ipvs.ServiceKey, ap netip.AddrPort) (ipvs.DestStatus, bool) {
	t.Helper()
	for _, s := range e.Status() {
		if s.ServiceKey != key {
			continue
		}
		for _, d := range s.Dests {
			if d.AddrPort() == ap {
				return d, true
			}
		}
	}
	return ipvs.DestStatus{}, false
}

// connsOf lists the entries of one virtual service.
func connsOf(e *Engine, vip netip.AddrPort) []ipvs.Conn {
	var out []ipvs.Conn
	for _, c := range e.Conns() {
		if c.Virtual == vip {
			out = append(out, c)
		}
	}
	return out
}

// needCI fails in CI and skips elsewhere.
func needCI(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(why)
	}
	t.Skip(why)
}

var errBadHeader = errors.New("bad PROXY header")
