package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// dialUDP returns a client socket connected to vip: it only receives what
// comes from vip, so every reply read from it came from the virtual
// address.
func dialUDP(t testing.TB, vip netip.AddrPort) *net.UDPConn {
	t.Helper()
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(vip))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readReply reads one datagram within d, or returns "".
func readReply(c *net.UDPConn, d time.Duration) string {
	c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}

// replyPaths counts the service's one-packet reply paths.
func replyPaths(e *Engine, key ipvs.ServiceKey) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	if s := e.services[key]; s != nil && s.udp != nil {
		s.udp.ops.Range(func(_, _ any) bool { n++; return true })
	}
	return n
}

func TestUDPOnePacket(t *testing.T) {
	tests := []struct {
		name       string
		addr       netip.Addr
		persistent bool
		burst      bool     // send all four datagrams before reading any reply
		want       []string // the servers that answer, in order (sorted with burst)
		wantConns  []uint64 // rs1's and rs2's connection counts
		wantList   []string // -Lnc states
	}{
		{name: "rr alternates per datagram", addr: lo4, want: []string{"rs1", "rs2", "rs1", "rs2"}, wantConns: []uint64{2, 2}},
		{name: "rr alternates per datagram over IPv6", addr: netip.IPv6Loopback(), want: []string{"rs1", "rs2", "rs1", "rs2"}, wantConns: []uint64{2, 2}},
		{name: "a burst from one port is answered by both servers", addr: lo4, burst: true, want: []string{"rs1", "rs1", "rs2", "rs2"}, wantConns: []uint64{2, 2}},
		{name: "persistence template picks, each datagram still counts", addr: lo4, persistent: true,
			want: []string{"rs1", "rs1", "rs1", "rs1"}, wantConns: []uint64{4, 0}, wantList: []string{"NONE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.addr.Is6() {
				needIPv6(t)
			}
			e := newEngine(t, Options{OnePacketWindow: time.Second})
			svc := vs(t, ipvs.UDP, tt.addr, "rr")
			svc.Flags = ipvs.FlagOnePacket
			if tt.persistent {
				svc.Flags |= ipvs.FlagPersistent
				svc.Timeout, svc.Netmask = 60, 32
				if tt.addr.Is6() {
					svc.Netmask = 128
				}
			}
			rs1, rs2 := startUDP(t, tt.addr, "rs1"), startUDP(t, tt.addr, "rs2")
			// rr starts with the last added: rs1.
			newTable(t, e).exec(addSvc(svc), addDest(svc, rs2, 1), addDest(svc, rs1, 1))

			c := dialUDP(t, svc.AddrPort())
			var got []string
			for i := range 4 {
				msg := fmt.Sprintf("q%d", i)
				if _, err := c.Write([]byte(msg)); err != nil {
					t.Fatal(err)
				}
				if !tt.burst {
					r := readReply(c, 2*time.Second)
					if r == "" || r[4:] != msg {
						t.Fatalf("reply to %q: %q", msg, r)
					}
					got = append(got, r[:3])
				}
			}
			if tt.burst {
				for range 4 {
					r := readReply(c, 2*time.Second)
					if r == "" {
						t.Fatalf("only %d of 4 replies arrived: %v", len(got), got)
					}
					got = append(got, r[:3])
				}
				slices.Sort(got)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("answered by %v, want %v", got, tt.want)
			}

			var states []string
			for _, cn := range connsOf(e, svc.AddrPort()) {
				states = append(states, cn.State)
			}
			if !slices.Equal(states, tt.wantList) {
				t.Fatalf("-Lnc states %v, want %v: one-packet datagrams leave no entry", states, tt.wantList)
			}
			st := e.Status()[0]
			if want := (ipvs.Stats{Conns: 4, InPkts: 4, OutPkts: 4, InBytes: 8, OutBytes: 24}); st.Stats != want {
				t.Fatalf("service stats %+v, want %+v (each datagram one connection)", st.Stats, want)
			}
			for i, ap := range []netip.AddrPort{rs1, rs2} {
				d, _ := destStatus(t, e, svc.ServiceKey, ap)
				if d.Stats.Conns != tt.wantConns[i] || d.ActiveConns != 0 || d.InactConns != 0 {
					t.Fatalf("server rs%d: conns %d active %d inactive %d, want %d 0 0",
						i+1, d.Stats.Conns, d.ActiveConns, d.InactConns, tt.wantConns[i])
				}
			}
			eventually(t, 5*time.Second, "the reply path to end after the reply window", func() bool {
				return replyPaths(e, svc.ServiceKey) == 0
			})
			// The client is served again on a new path.
			if _, err := c.Write([]byte("q4")); err != nil {
				t.Fatal(err)
			}
			if r := readReply(c, 2*time.Second); r == "" || r[4:] != "q4" {
				t.Fatalf("reply after the window: %q", r)
			}
		})
	}
}

// heldUDP is a real server that answers each datagram with "name:payload"
// only once release is closed.
func heldUDP(t testing.TB, addr netip.Addr, name string, release chan struct{}) (netip.AddrPort, chan netip.AddrPort) {
	t.Helper()
	pc, err := net.ListenPacket("udp", netip.AddrPortFrom(addr, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	from := make(chan netip.AddrPort, 16)
	go func() {
		buf := make([]byte, 2048)
		for {
			n, src, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			from <- src.(*net.UDPAddr).AddrPort()
			<-release
			pc.WriteTo(append([]byte(name+":"), buf[:n]...), src)
		}
	}()
	return pc.LocalAddr().(*net.UDPAddr).AddrPort(), from
}

func TestUDPOnePacketReplies(t *testing.T) {
	tests := []struct {
		name string
		// act runs after the server got the datagram from the proxy's
		// reply socket and before it answers; it returns what the client
		// should then read ("" for nothing).
		act func(t *testing.T, e *Engine, key ipvs.ServiceKey, path netip.AddrPort) string
	}{
		{name: "the server's answer is relayed", act: func(*testing.T, *Engine, ipvs.ServiceKey, netip.AddrPort) string {
			return "rs1:ping"
		}},
		{name: "a stranger's datagram to the reply socket is dropped", act: func(t *testing.T, _ *Engine, _ ipvs.ServiceKey, path netip.AddrPort) string {
			s, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(path))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			s.Write([]byte("spoofed"))
			return "rs1:ping" // and not "spoofed" first
		}},
		{name: "an answer after the reply window is dropped", act: func(t *testing.T, e *Engine, key ipvs.ServiceKey, _ netip.AddrPort) string {
			eventually(t, 5*time.Second, "the reply path to end", func() bool { return replyPaths(e, key) == 0 })
			return ""
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, Options{OnePacketWindow: time.Second})
			svc := vs(t, ipvs.UDP, lo4, "rr")
			svc.Flags = ipvs.FlagOnePacket
			release := make(chan struct{})
			rs1, from := heldUDP(t, lo4, "rs1", release)
			newTable(t, e).exec(addSvc(svc), addDest(svc, rs1, 1))

			c := dialUDP(t, svc.AddrPort())
			if _, err := c.Write([]byte("ping")); err != nil {
				t.Fatal(err)
			}
			var path netip.AddrPort
			select {
			case path = <-from:
			case <-time.After(2 * time.Second):
				t.Fatal("the datagram did not reach the server")
			}
			want := tt.act(t, e, svc.ServiceKey, path)
			close(release)
			wait := 2 * time.Second
			if want == "" {
				wait = 500 * time.Millisecond
			}
			if got := readReply(c, wait); got != want {
				t.Fatalf("client read %q, want %q", got, want)
			}
		})
	}
}

func TestUDPOnePacketEditedOff(t *testing.T) {
	e := newEngine(t, Options{OnePacketWindow: time.Second})
	svc := vs(t, ipvs.UDP, lo4, "rr")
	svc.Flags = ipvs.FlagOnePacket
	rs1, rs2 := startUDP(t, lo4, "rs1"), startUDP(t, lo4, "rs2")
	tb := newTable(t, e)
	tb.exec(addSvc(svc), addDest(svc, rs2, 1), addDest(svc, rs1, 1))
	c := dialUDP(t, svc.AddrPort())
	c.Write([]byte("a"))
	if r := readReply(c, 2*time.Second); r != "rs1:a" {
		t.Fatalf("one-packet reply %q, want rs1:a", r)
	}
	// ipvsadm -E without -o: the client is one flow again, listed.
	edited := svc
	edited.Flags = 0
	tb.exec(ipvs.Command{Op: ipvs.OpEditService, Service: &edited})
	for range 3 {
		c.Write([]byte("b"))
		if r := readReply(c, 2*time.Second); r != "rs2:b" {
			t.Fatalf("reply %q, want every datagram answered by rs2:b", r)
		}
	}
	if list := connsOf(e, svc.AddrPort()); len(list) != 1 || list[0].State != "UDP" {
		t.Fatalf("-Lnc %+v, want one UDP flow", list)
	}
}

// The kernel applies one-packet scheduling to UDP only: a TCP service
// given the flag (keepalived's ops, the API) is served as usual.
func TestOnePacketIgnoredOnTCP(t *testing.T) {
	e := newEngine(t, Options{})
	svc := vs(t, ipvs.TCP, lo4, "rr")
	svc.Flags = ipvs.FlagOnePacket
	rs := startTCP(t, lo4, "rs1")
	newTable(t, e).exec(addSvc(svc), addDest(svc, rs.addr, 1))
	c := mustDial(t, svc.AddrPort())
	c.echo(t, "hello\n")
	if list := connsOf(e, svc.AddrPort()); len(list) != 1 || list[0].State != "ESTABLISHED" {
		t.Fatalf("-Lnc %+v, want the TCP connection ESTABLISHED", list)
	}
	c.finish(t)
}
