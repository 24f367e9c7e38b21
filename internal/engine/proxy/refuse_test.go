package proxy

import (
	"errors"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// What a client sees of a service that no real server can take: its
// connect() is refused, as kernel IPVS refuses it (gate.go).

// wantRefused checks that a connect() to vip fails with "connection
// refused": not accepted and then reset, not left to time out.
func wantRefused(t *testing.T, vip netip.AddrPort) {
	t.Helper()
	c, err := dialVS(t, vip, netip.Addr{})
	if err == nil {
		t.Fatalf("%s: served by %s, want the connect refused", vip, c.server)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("%s: %v, want the connect refused (ECONNREFUSED)", vip, err)
	}
}

// eventuallyRefused waits until a connect() to vip is refused: a
// threshold or a failed server closes the socket a moment after the
// connection that reached it.
func eventuallyRefused(t *testing.T, vip netip.AddrPort) {
	t.Helper()
	eventually(t, 2*time.Second, "connect() to "+vip.String()+" refused", func() bool {
		c, err := dialVS(t, vip, netip.Addr{})
		if c != nil {
			c.Close()
		}
		return errors.Is(err, syscall.ECONNREFUSED)
	})
}

// eventuallyServed waits until a connection to vip is served, and returns it.
func eventuallyServed(t *testing.T, vip netip.AddrPort) *client {
	t.Helper()
	var c *client
	eventually(t, 2*time.Second, vip.String()+" serving again", func() bool {
		c, _ = dialVS(t, vip, netip.Addr{})
		return c != nil
	})
	return c
}

// onPaths runs f on both TCP data paths.
func onPaths(t *testing.T, f func(t *testing.T, e *Engine)) {
	for _, path := range []string{"loops", "goroutines"} {
		t.Run(path, func(t *testing.T) {
			e := newEngine(t, Options{})
			e.goroutines = path == "goroutines"
			f(t, e)
		})
	}
}

// TestRefuseWithoutServer: a service without real servers refuses; the
// real server added next serves the next connection; deleting it refuses
// again. IPv4 and IPv6.
func TestRefuseWithoutServer(t *testing.T) {
	onPaths(t, func(t *testing.T, e *Engine) {
		for _, addr := range []netip.Addr{lo4, netip.IPv6Loopback()} {
			if addr.Is6() {
				needIPv6(t)
			}
			svc := vs(t, ipvs.TCP, addr, "rr")
			rs := startTCP(t, addr, "rs")
			tb := newTable(t, e)
			tb.exec(addSvc(svc))
			wantRefused(t, svc.AddrPort())
			if st := serviceState(t, e, svc.ServiceKey); st.Listening {
				t.Errorf("state %+v: listening without a real server", st)
			}
			tb.exec(addDest(svc, rs.addr, 1))
			if st := serviceState(t, e, svc.ServiceKey); !st.Listening {
				t.Errorf("state %+v: not listening with a real server", st)
			}
			c := mustDial(t, svc.AddrPort())
			c.echo(t, "first")
			tb.exec(delDest(svc, rs.addr))
			wantRefused(t, svc.AddrPort())
			c.echo(t, "still") // a deleted server's connection goes on
		}
	})
}

// TestRefuseAllQuiesced: with every real server at weight 0 the service
// refuses new connections and its established ones go on; a weight above
// 0 serves again.
func TestRefuseAllQuiesced(t *testing.T) {
	onPaths(t, func(t *testing.T, e *Engine) {
		svc := vs(t, ipvs.TCP, lo4, "wlc")
		rs1, rs2 := startTCP(t, lo4, "rs1"), startTCP(t, lo4, "rs2")
		tb := newTable(t, e)
		tb.exec(addSvc(svc), addDest(svc, rs1.addr, 1), addDest(svc, rs2.addr, 1))
		held := mustDial(t, svc.AddrPort())
		tb.exec(editDest(svc, rs1.addr, 0), editDest(svc, rs2.addr, 0))
		wantRefused(t, svc.AddrPort())
		held.echo(t, "through the pause")
		tb.exec(editDest(svc, rs1.addr, 2))
		c := mustDial(t, svc.AddrPort())
		if c.server != "rs1" {
			t.Fatalf("served by %s, want rs1 (the only weight above 0)", c.server)
		}
		held.echo(t, "after the pause")
	})
}

// TestRefuseOverThreshold: real servers over their -x upper threshold
// take no new connection; when every one is, the service refuses, and
// when a connection ends below the threshold it serves again.
func TestRefuseOverThreshold(t *testing.T) {
	onPaths(t, func(t *testing.T, e *Engine) {
		svc := vs(t, ipvs.TCP, lo4, "rr")
		rs1, rs2 := startTCP(t, lo4, "rs1"), startTCP(t, lo4, "rs2")
		tb := newTable(t, e)
		d1, d2 := addDest(svc, rs1.addr, 1), addDest(svc, rs2.addr, 1)
		d1.Dest.UThreshold, d2.Dest.UThreshold = 1, 2
		// A connection counts until its entry expires: TIME_WAIT for 1 s.
		tb.exec(ipvs.Command{Op: ipvs.OpSetTimeout, Timeouts: &ipvs.Timeouts{TCPFin: 1}}, addSvc(svc), d1, d2)
		held := []*client{mustDial(t, svc.AddrPort()), mustDial(t, svc.AddrPort()), mustDial(t, svc.AddrPort())}
		eventuallyRefused(t, svc.AddrPort())
		for _, c := range held {
			c.echo(t, "over the threshold")
		}
		// rs2 held two of its 2: one ending (and its TIME_WAIT entry
		// expiring) leaves it at 1, under 3/4 of 2.
		for _, c := range held {
			if c.server == "rs2" {
				c.finish(t)
				break
			}
		}
		var c *client
		eventually(t, 5*time.Second, "serving again", func() bool {
			c, _ = dialVS(t, svc.AddrPort(), netip.Addr{})
			return c != nil
		})
		if c.server != "rs2" {
			t.Fatalf("served by %s, want rs2 (rs1 is still at its threshold)", c.server)
		}
	})
}

// TestRefuseFailedServers: a real server that refused a connection is
// skipped for the back-off; with none left the service refuses until
// the back-off ends.
func TestRefuseFailedServers(t *testing.T) {
	onPaths(t, func(t *testing.T, e *Engine) {
		svc := vs(t, ipvs.TCP, lo4, "rr")
		dead := netip.AddrPortFrom(lo4, freePort(t, "tcp4", lo4))
		tb := newTable(t, e)
		tb.exec(addSvc(svc), addDest(svc, dead, 1))
		if c, err := dialVS(t, svc.AddrPort(), netip.Addr{}); err == nil {
			t.Fatalf("served by %s through a real server that is down", c.server)
		}
		eventuallyRefused(t, svc.AddrPort())
		// The back-off (500 ms in tests) ends: the service listens again
		// and the next connection tries the server, which is up now.
		startTCPAt(t, "tcp4", dead, "late")
		if c := eventuallyServed(t, svc.AddrPort()); c.server != "late" {
			t.Fatalf("served by %s, want late", c.server)
		}
	})
}

// TestRefuseRebindsAfterPortTaken: another program takes the port while
// the service does not listen; the engine keeps trying and listens again
// once the port is free.
func TestRefuseRebindsAfterPortTaken(t *testing.T) {
	onPaths(t, func(t *testing.T, e *Engine) {
		svc := vs(t, ipvs.TCP, lo4, "rr")
		rs := startTCP(t, lo4, "rs")
		tb := newTable(t, e)
		tb.exec(addSvc(svc), addDest(svc, rs.addr, 0))
		wantRefused(t, svc.AddrPort())
		squatter, err := net.Listen("tcp4", svc.AddrPort().String())
		if err != nil {
			t.Fatal(err)
		}
		tb.exec(editDest(svc, rs.addr, 1)) // cannot listen: logged, retried
		squatter.Close()
		if c := eventuallyServed(t, svc.AddrPort()); c.server != "rs" {
			t.Fatalf("served by %s, want rs", c.server)
		}
	})
}

// TestRefusePersistentTemplate: a persistent service whose servers are
// all quiesced still serves a client its template leads to (the kernel
// uses a template to a quiesced server), and refuses once the templates
// are gone.
func TestRefusePersistentTemplate(t *testing.T) {
	e := newEngine(t, Options{})
	svc := vs(t, ipvs.TCP, lo4, "rr")
	svc.Flags = ipvs.FlagPersistent
	svc.Timeout = 1
	rs := startTCP(t, lo4, "rs")
	tb := newTable(t, e)
	// The template lives while its connections' entries do: TIME_WAIT
	// lasts 1 s here.
	tb.exec(ipvs.Command{Op: ipvs.OpSetTimeout, Timeouts: &ipvs.Timeouts{TCPFin: 1}}, addSvc(svc), addDest(svc, rs.addr, 1))
	mustDial(t, svc.AddrPort()).finish(t)
	tb.exec(editDest(svc, rs.addr, 0))
	c := mustDial(t, svc.AddrPort())
	if c.server != "rs" {
		t.Fatalf("served by %s, want rs through the template", c.server)
	}
	c.finish(t)
	// The template expires a second after its last entry does (a
	// connection meanwhile would renew it).
	eventually(t, 5*time.Second, "the entries and the template expired", func() bool { return len(connsOf(e, svc.AddrPort())) == 0 })
	eventuallyRefused(t, svc.AddrPort())
}

// udpRefused sends a datagram to vip from a new client and says whether
// the read that follows fails with "connection refused" (the ICMP port
// unreachable the kernel answers for a port nobody listens on).
func udpRefused(t *testing.T, vip netip.AddrPort) bool {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(vip))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("hello")); err != nil {
		return errors.Is(err, syscall.ECONNREFUSED)
	}
	_, err = c.Read(make([]byte, 64))
	return errors.Is(err, syscall.ECONNREFUSED)
}

// TestRefuseUDP: a UDP service without a real server that can take a new
// flow answers an ICMP port unreachable (the client's read fails with
// "connection refused"); a real server added serves the next datagram; a
// live flow keeps the socket (and is served) until it expires.
func TestRefuseUDP(t *testing.T) {
	e := newEngine(t, Options{})
	svc := vs(t, ipvs.UDP, lo4, "rr")
	rs := startUDP(t, lo4, "rs")
	tb := newTable(t, e)
	tb.exec(addSvc(svc))
	if !udpRefused(t, svc.AddrPort()) {
		t.Fatal("a UDP client of a service without real servers got no port unreachable")
	}
	if st := serviceState(t, e, svc.ServiceKey); st.Listening {
		t.Errorf("state %+v: listening without a real server", st)
	}
	tb.exec(addDest(svc, rs, 1))
	got, flow := udpAsk(t, svc.AddrPort(), "one")
	if got != "rs:one" {
		t.Fatalf("answer %q, want rs:one", got)
	}
	tb.exec(ipvs.Command{Op: ipvs.OpSetTimeout, Timeouts: &ipvs.Timeouts{UDP: 1}}, editDest(svc, rs, 0))
	if got := udpAskOn(t, flow, "two"); got != "rs:two" {
		t.Fatalf("the live flow got %q, want rs:two", got)
	}
	eventually(t, 5*time.Second, "the port unreachable once the flow expired", func() bool {
		return udpRefused(t, svc.AddrPort())
	})
	tb.exec(editDest(svc, rs, 1))
	if got, _ := udpAsk(t, svc.AddrPort(), "three"); got != "rs:three" {
		t.Fatalf("answer %q, want rs:three", got)
	}
}

// TestRefuseKeepsThePort: a service that does not listen still holds its
// port for the engine: a service on the same port on 0.0.0.0 (which
// could not be bound beside it once it listens again, and would take its
// connections meanwhile) is refused as if the port were in use, and so is
// the reverse.
func TestRefuseKeepsThePort(t *testing.T) {
	e := newEngine(t, Options{})
	for _, proto := range []ipvs.Protocol{ipvs.TCP, ipvs.UDP} {
		network := "tcp4"
		if proto == ipvs.UDP {
			network = "udp4"
		}
		port := freePort(t, network, netip.IPv4Unspecified())
		wild := ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: proto, Addr: netip.IPv4Unspecified(), Port: port}, Scheduler: "rr"}
		own := ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: proto, Addr: lo4, Port: port}, Scheduler: "rr"}
		for _, order := range [][2]ipvs.Service{{own, wild}, {wild, own}} {
			paused, other := order[0], order[1]
			tb := newTable(t, e)
			tb.exec(addSvc(paused))
			if st := serviceState(t, e, paused.ServiceKey); st.Listening {
				t.Fatalf("%s listens without a real server", paused.ServiceKey)
			}
			tb.tb.Exec(addSvc(other))
			err := engine.ApplySnapshot(e, tb.tb.Snapshot())
			if err == nil || !strings.Contains(err.Error(), "holds the port") {
				t.Fatalf("adding %s beside %s, which does not listen: %v; want the port held", other.ServiceKey, paused.ServiceKey, err)
			}
			tb.tb.Exec(ipvs.Command{Op: ipvs.OpDelService, Service: &other})
			tb.exec(ipvs.Command{Op: ipvs.OpDelService, Service: &paused})
		}
	}
}
