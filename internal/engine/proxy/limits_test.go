package proxy

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// udpAsk sends msg from a new client socket and returns the answer ("" on
// none); the socket stays open until the test ends.
func udpAsk(t *testing.T, vip netip.AddrPort, msg string) (string, *net.UDPConn) {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(vip))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return udpAskOn(t, c, msg), c
}

func udpAskOn(t *testing.T, c *net.UDPConn, msg string) string {
	t.Helper()
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

func serviceState(t *testing.T, e *Engine, key ipvs.ServiceKey) engine.ServiceState {
	t.Helper()
	for _, s := range e.State().Services {
		if s.Service == key.String() {
			return s
		}
	}
	t.Fatalf("no state for %s in %+v", key, e.State())
	return engine.ServiceState{}
}

func clientsOf(list []ipvs.Conn) map[netip.AddrPort]bool {
	m := make(map[netip.AddrPort]bool, len(list))
	for _, c := range list {
		m[c.Client] = true
	}
	return m
}

// TestUDPFlowBound: a service holds at most UDPFlowsPerService flows; a
// new client over the bound evicts the least recently used flow, so the
// latest clients and a client that keeps talking are the ones kept. Each
// reply socket carries one flow per real server.
func TestUDPFlowBound(t *testing.T) {
	e := newEngine(t, Options{UDPFlows: 100, UDPFlowsPerService: 4})
	svc := vs(t, ipvs.UDP, lo4, "rr")
	rs1, rs2 := startUDP(t, lo4, "rs1"), startUDP(t, lo4, "rs2")
	newTable(t, e).exec(addSvc(svc), addDest(svc, rs1, 1), addDest(svc, rs2, 1))

	got, tc := udpAsk(t, svc.AddrPort(), "x")
	if !strings.HasSuffix(got, ":x") {
		t.Fatalf("answer %q", got)
	}
	talker := tc.LocalAddr().(*net.UDPAddr).AddrPort()

	var last []netip.AddrPort
	for i := range 10 {
		got, c := udpAsk(t, svc.AddrPort(), fmt.Sprint(i))
		if !strings.HasSuffix(got, fmt.Sprintf(":%d", i)) {
			t.Fatalf("client %d: answer %q", i, got)
		}
		last = append(last, c.LocalAddr().(*net.UDPAddr).AddrPort())
		if i%2 == 1 { // the talker talks more often than the flood renews
			if got := udpAskOn(t, tc, "still"); !strings.HasSuffix(got, ":still") {
				t.Fatalf("talker: answer %q", got)
			}
		}
	}
	list := connsOf(e, svc.AddrPort())
	kept := clientsOf(list)
	if len(list) != 4 || !kept[talker] || !kept[last[9]] || !kept[last[8]] {
		t.Fatalf("entries %+v, want 4: the talker %s and the latest clients %v", list, talker, last[7:])
	}
	st := serviceState(t, e, svc.ServiceKey)
	if st.Flows != 4 || st.Evicted != 7 || st.Refused != 0 {
		t.Fatalf("state %+v, want 4 flows, 7 evicted (11 clients, 4 kept), none refused", st)
	}
	if st.Sockets < 2 || st.Sockets > 4 {
		t.Fatalf("%d reply sockets for 4 flows over 2 real servers, want 2 to 4", st.Sockets)
	}
	// IPVS's counters are unchanged by the bound: 11 connections, of
	// which the 4 kept are still counted inactive.
	status := e.Status()[0]
	inact := status.Dests[0].InactConns + status.Dests[1].InactConns
	if status.Stats.Conns != 11 || inact != 4 {
		t.Fatalf("%d connections, %d inactive; want 11 and 4", status.Stats.Conns, inact)
	}
	if st := e.State(); st.UDPFlows != 4 || st.UDPFlowLimit != 100 || st.UDPFlowLimitPerService != 4 {
		t.Fatalf("engine state %+v", st)
	}
}

// TestUDPOverallBound: at the overall bound a new flow evicts the oldest
// flow of the service holding the most, so a flooded service cannot keep
// another from getting flows.
func TestUDPOverallBound(t *testing.T) {
	e := newEngine(t, Options{UDPFlows: 6, UDPFlowsPerService: 6})
	flooded, quiet := vs(t, ipvs.UDP, lo4, "rr"), vs(t, ipvs.UDP, lo4, "rr")
	rs := startUDP(t, lo4, "rs")
	newTable(t, e).exec(addSvc(flooded), addDest(flooded, rs, 1), addSvc(quiet), addDest(quiet, rs, 1))
	for i := range 10 {
		if got, _ := udpAsk(t, flooded.AddrPort(), "f"); got != "rs:f" {
			t.Fatalf("flood client %d: answer %q", i, got)
		}
	}
	if n := len(connsOf(e, flooded.AddrPort())); n != 6 {
		t.Fatalf("flooded service holds %d flows, want 6", n)
	}
	for i := range 2 {
		if got, _ := udpAsk(t, quiet.AddrPort(), "q"); got != "rs:q" {
			t.Fatalf("quiet service client %d: answer %q", i, got)
		}
	}
	if n, m := len(connsOf(e, flooded.AddrPort())), len(connsOf(e, quiet.AddrPort())); n != 4 || m != 2 {
		t.Fatalf("flows: flooded %d, quiet %d; want 4 and 2", n, m)
	}
	if f, q := serviceState(t, e, flooded.ServiceKey), serviceState(t, e, quiet.ServiceKey); f.Evicted != 6 || q.Evicted != 0 || q.Refused != 0 {
		t.Fatalf("flooded %+v, quiet %+v: want 6 evicted from the flooded one only", f, q)
	}
}

// TestUDPFlowExpiry: idle flows end with the udp timeout and their
// sockets close.
func TestUDPFlowExpiry(t *testing.T) {
	e := newEngine(t, Options{})
	svc := vs(t, ipvs.UDP, lo4, "rr")
	rs := startUDP(t, lo4, "rs")
	tb := newTable(t, e)
	tb.exec(addSvc(svc), addDest(svc, rs, 1), ipvs.Command{Op: ipvs.OpSetTimeout, Timeouts: &ipvs.Timeouts{UDP: 1}})
	for range 3 {
		if got, _ := udpAsk(t, svc.AddrPort(), "a"); got != "rs:a" {
			t.Fatalf("answer %q", got)
		}
	}
	if st := serviceState(t, e, svc.ServiceKey); st.Flows != 3 || st.Sockets != 3 {
		t.Fatalf("state %+v, want 3 flows on 3 sockets (one real server)", st)
	}
	eventually(t, 5*time.Second, "the flows to expire", func() bool {
		st := serviceState(t, e, svc.ServiceKey)
		return st.Flows == 0 && st.Sockets == 0 && len(connsOf(e, svc.AddrPort())) == 0
	})
	if st := serviceState(t, e, svc.ServiceKey); st.Evicted != 0 {
		t.Fatalf("expired flows counted as evicted: %+v", st)
	}
}

// TestUDPOnePacketBound: one-packet reply paths share the bounds; over
// them a new client's datagram is refused and counted.
func TestUDPOnePacketBound(t *testing.T) {
	e := newEngine(t, Options{UDPFlows: 3, UDPFlowsPerService: 3})
	svc := vs(t, ipvs.UDP, lo4, "rr")
	svc.Flags = ipvs.FlagOnePacket
	rs := startUDP(t, lo4, "rs")
	newTable(t, e).exec(addSvc(svc), addDest(svc, rs, 1))
	answered := 0
	for range 5 {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(svc.AddrPort()))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write([]byte("o"))
		c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, err := c.Read(make([]byte, 100)); err == nil {
			answered++
		}
	}
	if st := serviceState(t, e, svc.ServiceKey); answered != 3 || st.Flows != 3 || st.Refused != 2 {
		t.Fatalf("%d answered, state %+v; want 3 answered and kept, 2 refused", answered, st)
	}
}

// TestLoopRefusedAtConfig: a real server that is one of the engine's own
// virtual services, directly or through a wildcard address, is refused.
func TestLoopRefusedAtConfig(t *testing.T) {
	e := newEngine(t, Options{})
	tb := newTable(t, e)
	other := vs(t, ipvs.TCP, lo4, "rr")
	tb.exec(addSvc(other))
	wild := ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: ipvs.TCP, Addr: netip.IPv4Unspecified(), Port: freePort(t, "tcp4", netip.IPv4Unspecified())}, Scheduler: "rr"}
	tb.exec(addSvc(wild))
	self := vs(t, ipvs.TCP, lo4, "rr")
	tb.exec(addSvc(self))
	udp := vs(t, ipvs.UDP, lo4, "rr")
	tb.exec(addSvc(udp))

	for _, tc := range []struct {
		name string
		svc  ipvs.Service
		dest netip.AddrPort
		loop string // the service named in the error, "" for none
	}{
		{"itself", self, self.AddrPort(), self.ServiceKey.String()},
		{"another service", self, other.AddrPort(), other.ServiceKey.String()},
		{"a wildcard service through loopback", self, netip.AddrPortFrom(lo4, wild.Port), wild.ServiceKey.String()},
		{"a wildcard service through 127.0.0.2", self, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), wild.Port), wild.ServiceKey.String()},
		{"a UDP service on a TCP port", udp, netip.AddrPortFrom(lo4, self.Port), ""},
		{"another loopback address", self, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.3"), other.Port), ""},
		{"a remote server on a service's port", self, netip.AddrPortFrom(netip.MustParseAddr("198.18.0.10"), wild.Port), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tb.tb.Exec(addDest(tc.svc, tc.dest, 1))
			switch {
			case tc.loop == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.loop != "" && err == nil:
				t.Fatalf("real server %s accepted; want a loop refused", tc.dest)
			case tc.loop != "" && !strings.Contains(err.Error(), "own virtual service "+tc.loop):
				t.Fatalf("error %q does not name %s", err, tc.loop)
			}
			if err == nil {
				tb.tb.Exec(delDest(tc.svc, tc.dest))
			}
		})
	}
}

// TestLoopRefusedAtConnect: a path back into gvsd that the configuration
// check cannot see (here: A's real server is an address where service B
// is added only afterwards, so no check ever compares the two) ends at
// the first connection that arrives from the engine's own socket, instead
// of chaining connections. B has a live real server, so that it listens
// (a service without one refuses at connect) and stays available when a
// hop gets through.
func TestLoopRefusedAtConnect(t *testing.T) {
	for _, path := range []string{"loops", "goroutines"} {
		t.Run("TCP "+path, func(t *testing.T) {
			e := newEngine(t, Options{})
			e.goroutines = path == "goroutines"
			svc, later := vs(t, ipvs.TCP, lo4, "rr"), vs(t, ipvs.TCP, lo4, "rr")
			tb := &table{t: t, e: e, tb: ipvs.NewTable(func(*ipvs.Service, *ipvs.Dest) error { return nil })}
			rs := startTCP(t, lo4, "rs")
			tb.exec(addSvc(svc), addDest(svc, later.AddrPort(), 1), addSvc(later), addDest(later, rs.addr, 1))

			// On loopback the handshake can complete, and the looped
			// connection be accepted, before the connecting side has
			// recorded its port: the check must wait for it
			// (outgoing.connecting), on both paths, from the first
			// connection.
			loopOnce(t, svc.AddrPort())
			eventually(t, 2*time.Second, "the loop refused", func() bool { return e.State().LoopsRefused >= 1 })
			if n := e.Status()[0].Stats.Conns; n > 8 {
				t.Fatalf("%d connections for one client: the loop chained", n)
			}
		})
	}
	t.Run("UDP", func(t *testing.T) {
		e := newEngine(t, Options{})
		svc, later := vs(t, ipvs.UDP, lo4, "rr"), vs(t, ipvs.UDP, lo4, "rr")
		tb := &table{t: t, e: e, tb: ipvs.NewTable(func(*ipvs.Service, *ipvs.Dest) error { return nil })}
		dead := netip.AddrPortFrom(lo4, freePort(t, "udp4", lo4))
		tb.exec(addSvc(svc), addDest(svc, later.AddrPort(), 1), addSvc(later), addDest(later, dead, 1))
		if got, _ := udpAsk(t, svc.AddrPort(), "loop"); got != "" {
			t.Fatalf("answer %q through a loop", got)
		}
		eventually(t, 2*time.Second, "the loop refused", func() bool { return e.State().LoopsRefused >= 1 })
		if st := serviceState(t, e, svc.ServiceKey); st.Flows != 1 {
			t.Fatalf("state of %s: %+v, want the client's flow only", svc.ServiceKey, st)
		}
		if st := serviceState(t, e, later.ServiceKey); st.Flows != 0 || st.Refused < 1 {
			t.Fatalf("state of %s: %+v, want no flow and the loop refused", later.ServiceKey, st)
		}
	})
}

// loopOnce connects a client to vip, whose real server leads back into
// gvsd, and waits for the connection to end.
func loopOnce(t *testing.T, vip netip.AddrPort) {
	t.Helper()
	// On loopback the reset may come before the dial returns.
	c, err := net.DialTimeout("tcp", vip.String(), time.Second)
	if err != nil && !isReset(err) {
		t.Fatal(err)
	}
	if err != nil {
		return
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	c.Write([]byte("hello\n"))
	c.(*net.TCPConn).CloseWrite()
	if _, err := io.ReadAll(c); err != nil && !isReset(err) {
		t.Fatalf("the looping connection did not end: %v", err)
	}
}

func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

// TestOutgoingLoopsBothEnds: a client connection is the engine's own only
// when it comes from the local address of a connection to a real server
// and arrives at that real server's address. On loopback a real client can
// get the same ephemeral port as an outgoing socket (the 4-tuples differ),
// and must not be refused for it (faults under load saw 1 in 2,000).
func TestOutgoingLoopsBothEnds(t *testing.T) {
	var o outgoing
	c := &tcpConn{}
	local := netip.MustParseAddrPort("127.0.0.1:40001")
	rs := netip.MustParseAddrPort("127.0.0.1:8080") // a real server that is our own service
	o.add(local, rs, c)
	at := func(ap netip.AddrPort) func() netip.AddrPort { return func() netip.AddrPort { return ap } }
	if !o.loops(local, at(rs)) {
		t.Error("a connection from our socket to our own service is not seen as a loop")
	}
	if o.loops(local, at(netip.MustParseAddrPort("127.0.0.1:9090"))) {
		t.Error("a client sharing our socket's port but connecting elsewhere is refused as a loop")
	}
	if o.loops(netip.MustParseAddrPort("127.0.0.1:40002"), at(rs)) {
		t.Error("a client from another port is refused as a loop")
	}
	o.remove(local, c)
	if o.loops(local, at(rs)) {
		t.Error("a closed connection still counts as a loop")
	}
}
