package e2e

import (
	"bufio"
	"cmp"
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
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"

	"github.com/gvs-lb/gvs/internal/engine/xdp"
	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/netns/netnstest"
	"github.com/gvs-lb/gvs/internal/realserver"
)

// The xdp end-to-end topology, all inside namespaces this test makes:
//
//	client 198.18.0.100 ─┐
//	director 198.18.0.1 ─┼─ br0 (198.18.0.0/24) ── router 198.18.0.254
//	rs1 198.18.0.11 ─────┤                         │ 198.18.2.254
//	rs2 198.18.0.12 ─────┘                         br1 ── rs3 198.18.2.11
//	director eth1 198.18.1.1 ── router eth1 .254       └─ rs4 198.18.2.12
//
// The VIP 198.18.0.200 is on the director's eth0 and on every real
// server's lo. TCP :80 is DR to rs1 and rs2; TCP :8080 is TUN to rs3
// (IPIP) and rs4 (GUE), reached via the router. Real servers answer the
// client directly (DR on br0, TUN through the router onto br0), never
// through the director.
const (
	e2eVIP     = "198.18.0.200"
	e2eGUEPort = 6080
)

func TestXDPDirectRoutingAndTunnel(t *testing.T) { xdpDRLab(t, "generic") }

// TestXDPDirectRoutingAndTunnelNative is the same lab with the director's
// XDP in native mode on its veths: its senders hand over partial checksums
// (CHECKSUM_PARTIAL), and DR's and TUN's bare frames must reach the real
// servers with complete ones (no TcpInCsumErrors there). The director's
// peers have GRO on, the NAPI instance XDP_REDIRECT into a veth needs
// (TUN, out of eth1); XDP_TX (DR, back out of eth0) needs more: the veth
// wakes its peer for XDP_TX frames only when the peer has an XDP program
// (veth_xdp_flush), so eth0's peer gets one that passes everything.
func TestXDPDirectRoutingAndTunnelNative(t *testing.T) { xdpDRLab(t, "native") }

// xdpDRLab builds the topology above, with the director's XDP in mode, and
// checks DR and TUN through it.
func xdpDRLab(t *testing.T, mode string) {
	netnstest.Require(t, "sysctl", "ethtool")
	hub := netnstest.New(t, "hub")
	client := netnstest.New(t, "cli")
	dir := netnstest.New(t, "dir")
	router := netnstest.New(t, "rtr")
	rs := []*netnstest.NS{netnstest.New(t, "rs1"), netnstest.New(t, "rs2"), netnstest.New(t, "rs3"), netnstest.New(t, "rs4")}

	netnstest.Bridge(t, hub, "br0", "eth0", client, dir, router, rs[0], rs[1])
	netnstest.Bridge(t, hub, "br1", "eth0", rs[2], rs[3])
	netnstest.Veth(t, dir, "eth1", router, "eth1")
	// The router's second br0 port has to have another name.
	router.Run("ip", "link", "set", "eth0", "name", "eth2")
	netnstest.Veth(t, router, "eth0", hub, "br1-r")
	hub.Run("ip", "link", "set", "br1-r", "master", "br1")
	if mode == "native" {
		hub.Run("ethtool", "-K", "br0-p1", "gro", "on")  // the director's eth0
		router.Run("ethtool", "-K", "eth1", "gro", "on") // and eth1
		passXDP(t, hub, "br0-p1")
	}

	client.Addr("eth0", "198.18.0.100/24")
	dir.Addr("eth0", "198.18.0.1/24")
	dir.Addr("eth0", e2eVIP+"/32")
	dir.Addr("eth1", "198.18.1.1/24")
	dir.Run("ip", "route", "add", "198.18.2.0/24", "via", "198.18.1.254")
	router.Addr("eth2", "198.18.0.254/24")
	router.Addr("eth1", "198.18.1.254/24")
	router.Addr("eth0", "198.18.2.254/24")
	router.Run("sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0",
		"net.ipv4.conf.eth0.rp_filter=0", "net.ipv4.conf.eth1.rp_filter=0", "net.ipv4.conf.eth2.rp_filter=0")
	for i, n := range rs {
		if i < 2 {
			n.Addr("eth0", fmt.Sprintf("198.18.0.%d/24", 11+i))
		} else {
			n.Addr("eth0", fmt.Sprintf("198.18.2.%d/24", 9+i))
			n.Run("ip", "route", "add", "default", "via", "198.18.2.254")
		}
	}

	// Real servers: realserver.Setup plus an HTTP server naming itself.
	for i, n := range rs {
		mode, port := "dr", "80"
		if i >= 2 {
			mode, port = "tun", "8080"
		}
		startXDPRealServer(t, n, fmt.Sprintf("RS%d", i+1), mode, port)
	}
	t.Setenv("GVS_XDP_XDPMODE", mode)
	director, ctl := startXDPDirector(t, dir, "GVS_XDP", "TestXDPHelper")

	vip := netip.MustParseAddr(e2eVIP)
	snap := func(w1 int32) *ipvs.Snapshot {
		return &ipvs.Snapshot{Timeouts: ipvs.DefaultTimeouts, Services: []ipvs.ServiceConfig{
			{Service: ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip, Port: 80}, Scheduler: "rr"}, Dests: []ipvs.Dest{
				{Addr: netip.MustParseAddr("198.18.0.11"), Port: 80, Method: ipvs.Route, Weight: w1},
				{Addr: netip.MustParseAddr("198.18.0.12"), Port: 80, Method: ipvs.Route, Weight: 1},
			}},
			{Service: ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip, Port: 8080}, Scheduler: "rr"}, Dests: []ipvs.Dest{
				{Addr: netip.MustParseAddr("198.18.2.11"), Port: 8080, Method: ipvs.Tunnel, Weight: 1},
				{Addr: netip.MustParseAddr("198.18.2.12"), Port: 8080, Method: ipvs.Tunnel, Weight: 1, TunType: ipvs.TunGUE, TunPort: e2eGUEPort},
			}},
		}}
	}
	apply := func(t *testing.T, s *ipvs.Snapshot) { t.Helper(); ctl.call(t, "POST", "/apply", s, nil) }
	apply(t, snap(1))

	fetch := func(t *testing.T, port string, n int) []string {
		t.Helper()
		return fetchFrom(t, client.Name, e2eVIP+":"+port, n, director)
	}

	t.Run("DR answers alternate", func(t *testing.T) { alternate(t, fetch(t, "80", 6), "RS1", "RS2") })
	t.Run("TUN answers alternate over IPIP and GUE", func(t *testing.T) { alternate(t, fetch(t, "8080", 6), "RS3", "RS4") })
	t.Run("real servers got no bad checksums", func(t *testing.T) {
		for _, n := range rs {
			if errs := tcpInCsumErrors(t, n); errs != 0 {
				t.Errorf("%s: TcpInCsumErrors %d, want 0", n.Name, errs)
			}
		}
	})
	t.Run("replies bypass the director", func(t *testing.T) {
		var st []ipvs.ServiceStatus
		ctl.call(t, "GET", "/status", nil, &st)
		if len(st) != 2 {
			t.Fatalf("status of %d services", len(st))
		}
		for _, s := range st {
			if s.Stats.Conns != 6 || s.Stats.InPkts < 6*3 || s.Stats.OutPkts != 0 || s.Stats.OutBytes != 0 {
				t.Errorf("%s: stats %+v, want 6 conns, at least 18 packets in, none out", s.ServiceKey, s.Stats)
			}
			for _, d := range s.Dests {
				if d.Stats.Conns != 3 || d.Stats.OutPkts != 0 {
					t.Errorf("%s -> %s: stats %+v, want 3 conns, no packets out", s.ServiceKey, d.AddrPort(), d.Stats)
				}
			}
		}
	})
	// No real server available: the client hears so at once, as from
	// the kernel's IPVS (an ICMP port unreachable: connection refused),
	// rather than waiting for its SYN to time out.
	t.Run("no server available: connection refused", func(t *testing.T) {
		none := snap(0)
		none.Services[0].Dests[1].Weight = 0
		apply(t, none)
		defer apply(t, snap(1))
		var before map[string]uint64
		ctl.call(t, "GET", "/drops", nil, &before)
		conn, err := dialInNS(client.Name, e2eVIP+":80")
		if err == nil {
			conn.Close()
			t.Fatal("connected with every real server at weight 0")
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("connect: %v, want connection refused", err)
		}
		var after map[string]uint64
		ctl.call(t, "GET", "/drops", nil, &after)
		if after["refused"] <= before["refused"] {
			t.Errorf("the program counted no refusal (drops %v)", after)
		}
	})
	// Draining: a real server at weight 0, or deleted (-d), gets no new
	// connections while its established ones go on.
	without := func(s *ipvs.Snapshot) *ipvs.Snapshot {
		s.Services[0].Dests = s.Services[0].Dests[1:]
		return s
	}
	for _, tt := range []struct {
		name string
		snap *ipvs.Snapshot
	}{
		{"weight 0 drains", snap(0)},
		{"a deleted server finishes its connections", without(snap(1))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			apply(t, snap(1))
			var held *keepAlive
			for range 4 {
				k, err := dialKeepAlive(client.Name, e2eVIP+":80")
				if err != nil {
					t.Fatal(err)
				}
				if name, err := k.get(); err == nil && name == "RS1" {
					held = k
					break
				}
				k.conn.Close()
			}
			if held == nil {
				t.Fatal("no connection reached RS1 in 4 tries")
			}
			defer held.conn.Close()
			apply(t, tt.snap)
			for i, s := range fetch(t, "80", 4) {
				if s != "RS2" {
					t.Fatalf("new connection %d went to %s", i, s)
				}
			}
			if name, err := held.get(); err != nil || name != "RS1" {
				t.Errorf("the established connection to RS1: %q, %v; want it to go on", name, err)
			}
		})
	}
}

// passXDP attaches, in native mode, an XDP program that passes every
// packet to ifName in the namespace ns, until the test ends.
func passXDP(t *testing.T, ns *netnstest.NS, ifName string) {
	t.Helper()
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.XDP, License: "GPL", Instructions: asm.Instructions{
		asm.Mov.Imm(asm.R0, 2), // XDP_PASS
		asm.Return(),
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	var l link.Link
	err = ns.Do(func() error {
		iface, err := net.InterfaceByName(ifName)
		if err != nil {
			return err
		}
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: iface.Index, Flags: link.XDPDriverMode})
		return err
	})
	if err != nil {
		t.Fatalf("attaching a passing XDP program to %s in %s: %v", ifName, ns.Name, err)
	}
	t.Cleanup(func() { l.Close() })
}

// tcpInCsumErrors is the namespace's count of TCP segments dropped for a
// bad checksum (InCsumErrors in /proc/net/snmp).
func tcpInCsumErrors(t *testing.T, n *netnstest.NS) int {
	t.Helper()
	out, err := n.Output("cat", "/proc/net/snmp")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Tcp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, name := range names {
			if name == "InCsumErrors" && i < len(f) {
				v, err := strconv.Atoi(f[i])
				if err != nil {
					t.Fatalf("/proc/net/snmp: %q: %v", line, err)
				}
				return v
			}
		}
	}
	t.Fatalf("/proc/net/snmp has no Tcp InCsumErrors:\n%s", out)
	return 0
}

// keepAlive is an HTTP/1.1 connection kept open for several requests.
type keepAlive struct {
	conn net.Conn
	r    *bufio.Reader
	addr string
}

func dialKeepAlive(ns, addr string) (*keepAlive, error) {
	conn, err := dialInNS(ns, addr)
	if err != nil {
		return nil, err
	}
	return &keepAlive{conn: conn, r: bufio.NewReader(conn), addr: addr}, nil
}

// get sends one request on the connection and returns the body, trimmed.
func (k *keepAlive) get() (string, error) {
	k.conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(k.conn, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", k.addr); err != nil {
		return "", err
	}
	resp, err := http.ReadResponse(k.r, nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), err
}

// getInNS makes one HTTP/1.0 request to addr from the namespace ns and
// returns the body, trimmed. The socket is made on a thread moved into ns.
func getInNS(ns, addr string) (string, error) { return getInNSFrom(ns, nil, addr) }

// getInNSFrom is getInNS from the local address and port local (any when
// nil or zero).
func getInNSFrom(ns string, local *net.TCPAddr, addr string) (string, error) {
	var conn net.Conn
	err := inNetns(ns, func() error {
		var err error
		d := net.Dialer{Timeout: 3 * time.Second}
		if local != nil {
			d.LocalAddr = local
		}
		conn, err = d.Dial("tcp", addr)
		return err
	})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET / HTTP/1.0\r\nHost: %s\r\n\r\n", addr)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return strings.TrimSpace(string(b)), err
}

// startXDPRealServer starts TestXDPHelper in n as the real server name:
// realserver.Setup in mode (dr or tun) and an HTTP server on the VIP's
// port naming itself; it returns once that listens.
func startXDPRealServer(t *testing.T, n *netnstest.NS, name, mode, port string) {
	t.Helper()
	t.Setenv("GVS_XDP_ROLE", "rs")
	t.Setenv("GVS_XDP_NAME", name)
	t.Setenv("GVS_XDP_MODE", mode)
	t.Setenv("GVS_XDP_LISTEN", e2eVIP+":"+port)
	n.Start(os.Args[0], "-test.run=^TestXDPHelper$", "-test.v")
	waitListening(t, n, e2eVIP+":"+port)
}

// TestXDPHelper is not a test: it is the director or a real server of
// TestXDPDirectRoutingAndTunnel, run by it in a namespace (GVS_XDP_ROLE).
func TestXDPHelper(t *testing.T) {
	role := helperRole(t, "GVS_XDP_ROLE", "TestXDPDirectRoutingAndTunnel")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	switch role {
	case "rs":
		mode := realserver.Mode(os.Getenv("GVS_XDP_MODE"))
		opts := realserver.Options{Interface: "eth0", Generic: true, GUEPorts: []uint16{e2eGUEPort}}
		srv, err := realserver.Setup(netip.MustParseAddr(e2eVIP), mode, opts)
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Teardown()
		name := os.Getenv("GVS_XDP_NAME")
		ln, err := net.Listen("tcp", os.Getenv("GVS_XDP_LISTEN"))
		if err != nil {
			t.Fatal(err)
		}
		hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, name) })}
		go hs.Serve(ln)
		<-ctx.Done()
		hs.Close()
		t.Logf("%s: %d packets decapsulated", name, srv.Decapsulated())
	case "director":
		log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		opts := xdp.Options{Interfaces: []string{"eth0"}, Mode: cmp.Or(os.Getenv("GVS_XDP_XDPMODE"), "generic"), TunnelSource4: netip.MustParsePrefix("198.18.1.1/32")}
		serveXDPDirector(t, ctx, log, opts, os.Getenv("GVS_XDP_SOCK"))
	}
}
