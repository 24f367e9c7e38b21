package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"testing"

	"github.com/gvs-lb/gvs/internal/engine/xdp"
	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/netns/netnstest"
	"github.com/gvs-lb/gvs/internal/realserver"
)

// The IPv6 xdp topology, all inside namespaces this test makes (DAD is
// off everywhere, so every address is usable at once):
//
//	client 2001:db8::100 ─┐
//	director 2001:db8::1 ─┼─ br0 (2001:db8::/64) ── router 2001:db8::254
//	rs1 2001:db8::11 ─────┤                          │ 2001:db8:2::254
//	rs2 2001:db8::12 ─────┘                          br1 ─┬─ rs3 2001:db8:2::11
//	director eth1 2001:db8:1::1 ── router eth1 ::254      └─ rs4 2001:db8:2::12
//	director eth2 2001:db8:3::1 ── br2 ─┬─ rs5 2001:db8:3::11  (default route:
//	                                    └─ rs6 2001:db8:3::12   the director)
//
// The VIP 2001:db8::200 is on the director's eth0 (the client finds it by
// NDP) and, as a /128, on the lo of rs1-rs4. TCP :80 is DR to rs1 and
// rs2; TCP :8080 is TUN to rs3 (IPv6-in-IPv6) and rs4 (GUE over IPv6),
// reached via the router, with the real servers' decap program; TCP :81
// is NAT to rs5 and rs6 on :8080. Every real server answers with its name
// and the client address it sees.
const (
	v6VIP     = "2001:db8::200"
	v6Client  = "2001:db8::100"
	v6GUEPort = 6080
)

func TestXDPIPv6(t *testing.T) {
	netnstest.Require(t, "sysctl")
	hub := netnstest.New(t, "hub")
	client := netnstest.New(t, "cli")
	dir := netnstest.New(t, "dir")
	router := netnstest.New(t, "rtr")
	var rs []*netnstest.NS
	for i := range 6 {
		rs = append(rs, netnstest.New(t, fmt.Sprintf("rs%d", i+1)))
	}

	netnstest.Bridge(t, hub, "br0", "eth0", client, dir, router, rs[0], rs[1])
	netnstest.Bridge(t, hub, "br1", "eth0", rs[2], rs[3])
	netnstest.Bridge(t, hub, "br2", "eth2", dir, rs[4], rs[5])
	netnstest.Veth(t, dir, "eth1", router, "eth1")
	router.Run("ip", "link", "set", "eth0", "name", "eth2")
	netnstest.Veth(t, router, "eth0", hub, "br1-r")
	hub.Run("ip", "link", "set", "br1-r", "master", "br1")
	// Without an MLD querier, snooping could hide a solicited-node group
	// whose report was sent before its port joined the bridge.
	for _, br := range []string{"br0", "br1", "br2"} {
		hub.Run("ip", "link", "set", br, "type", "bridge", "mcast_snooping", "0")
	}

	client.Addr("eth0", v6Client+"/64")
	dir.Addr("eth0", "2001:db8::1/64")
	dir.Addr("eth0", v6VIP+"/128")
	dir.Addr("eth1", "2001:db8:1::1/64")
	dir.Addr("eth2", "2001:db8:3::1/64")
	dir.Run("ip", "-6", "route", "add", "2001:db8:2::/64", "via", "2001:db8:1::254")
	// NAT replies are forwarded: the director is rs5's and rs6's router.
	dir.Run("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	router.Addr("eth2", "2001:db8::254/64")
	router.Addr("eth1", "2001:db8:1::254/64")
	router.Addr("eth0", "2001:db8:2::254/64")
	router.Run("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	for i, n := range rs {
		switch i {
		case 0, 1:
			n.Addr("eth0", fmt.Sprintf("2001:db8::%d/64", 11+i))
		case 2, 3:
			n.Addr("eth0", fmt.Sprintf("2001:db8:2::%d/64", 9+i))
			n.Run("ip", "-6", "route", "add", "default", "via", "2001:db8:2::254")
		default:
			n.Addr("eth2", fmt.Sprintf("2001:db8:3::%d/64", 7+i))
			n.Run("ip", "-6", "route", "add", "default", "via", "2001:db8:3::1")
		}
	}

	for i, n := range rs {
		mode, listen := "", "[::]:8080"
		switch i {
		case 0, 1:
			mode, listen = "dr", net.JoinHostPort(v6VIP, "80")
		case 2, 3:
			mode, listen = "tun", net.JoinHostPort(v6VIP, "8080")
		}
		t.Setenv("GVS_XDP6_ROLE", "rs")
		t.Setenv("GVS_XDP6_NAME", fmt.Sprintf("RS%d", i+1))
		t.Setenv("GVS_XDP6_MODE", mode)
		t.Setenv("GVS_XDP6_LISTEN", listen)
		n.Start(os.Args[0], "-test.run=^TestXDPIPv6Helper$", "-test.v")
	}
	for i, n := range rs {
		addr := net.JoinHostPort(v6VIP, "8080")
		switch i {
		case 0, 1:
			addr = net.JoinHostPort(v6VIP, "80")
		case 4, 5:
			addr = "[::1]:8080"
		}
		waitListening(t, n, addr)
	}
	director, ctl := startXDPDirector(t, dir, "GVS_XDP6", "TestXDPIPv6Helper")

	vip := netip.MustParseAddr(v6VIP)
	svc := func(port uint16, dests ...ipvs.Dest) ipvs.ServiceConfig {
		return ipvs.ServiceConfig{Service: ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: ipvs.TCP, Addr: vip, Port: port}, Scheduler: "rr"}, Dests: dests}
	}
	dest := func(addr string, port uint16, m ipvs.Method) ipvs.Dest {
		return ipvs.Dest{Addr: netip.MustParseAddr(addr), Port: port, Method: m, Weight: 1}
	}
	gue := dest("2001:db8:2::12", 8080, ipvs.Tunnel)
	gue.TunType, gue.TunPort = ipvs.TunGUE, v6GUEPort
	ctl.call(t, "POST", "/apply", &ipvs.Snapshot{Timeouts: ipvs.DefaultTimeouts, Services: []ipvs.ServiceConfig{
		svc(80, dest("2001:db8::11", 80, ipvs.Route), dest("2001:db8::12", 80, ipvs.Route)),
		svc(8080, dest("2001:db8:2::11", 8080, ipvs.Tunnel), gue),
		svc(81, dest("2001:db8:3::11", 8080, ipvs.Masq), dest("2001:db8:3::12", 8080, ipvs.Masq)),
	}}, nil)

	// check fetches n answers from the VIP's port and wants them to
	// alternate between a and b, each seeing the client's own address.
	check := func(t *testing.T, port string, n int, a, b string) {
		t.Helper()
		seq := fetchFrom(t, client.Name, net.JoinHostPort(v6VIP, port), n, director)
		alternate(t, seq, a, b)
		for _, s := range seq {
			name, seen, _ := strings.Cut(s, " ")
			if !strings.HasPrefix(seen, "["+v6Client+"]:") {
				t.Fatalf("%s saw the client as %q, want [%s]:port", name, seen, v6Client)
			}
		}
	}
	for _, tt := range []struct {
		name, port string
		a, b       string
	}{
		{"DR answers alternate", "80", "RS1", "RS2"},
		{"TUN answers alternate over IPv6-in-IPv6 and GUE", "8080", "RS3", "RS4"},
		{"NAT answers alternate and real servers see the client", "81", "RS5", "RS6"},
	} {
		t.Run(tt.name, func(t *testing.T) { check(t, tt.port, 6, tt.a, tt.b) })
	}

	t.Run("DR and TUN replies bypass the director, NAT replies are counted out", func(t *testing.T) {
		var st []ipvs.ServiceStatus
		ctl.call(t, "GET", "/status", nil, &st)
		if len(st) != 3 {
			t.Fatalf("status of %d services, want 3", len(st))
		}
		for _, s := range st {
			if s.Stats.Conns != 6 || s.Stats.InPkts < 6*3 {
				t.Errorf("%s: stats %+v, want 6 connections, at least 18 packets in", s.ServiceKey, s.Stats)
			}
			nat := s.Port == 81
			if !nat && (s.Stats.OutPkts != 0 || s.Stats.OutBytes != 0) {
				t.Errorf("%s: stats %+v, want no packets out (replies go straight to the client)", s.ServiceKey, s.Stats)
			}
			if nat && (s.Stats.OutPkts < 6*2 || s.Stats.OutBytes == 0) {
				t.Errorf("%s: stats %+v, want the replies counted out", s.ServiceKey, s.Stats)
			}
			for _, d := range s.Dests {
				if d.Stats.Conns != 3 {
					t.Errorf("%s -> %s: stats %+v, want 3 connections", s.ServiceKey, d.AddrPort(), d.Stats)
				}
			}
		}
	})
}

// TestXDPIPv6Helper is not a test: it is the director or a real server of
// TestXDPIPv6, run by it in a namespace (GVS_XDP6_ROLE).
func TestXDPIPv6Helper(t *testing.T) {
	role := helperRole(t, "GVS_XDP6_ROLE", "TestXDPIPv6")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	switch role {
	case "rs":
		name := os.Getenv("GVS_XDP6_NAME")
		if mode := realserver.Mode(os.Getenv("GVS_XDP6_MODE")); mode != "" {
			opts := realserver.Options{Interface: "eth0", Generic: true, GUEPorts: []uint16{v6GUEPort}}
			srv, err := realserver.Setup(netip.MustParseAddr(v6VIP), mode, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				log.Info("decapsulated", "packets", srv.Decapsulated())
				srv.Teardown()
			}()
		}
		ln, err := net.Listen("tcp", os.Getenv("GVS_XDP6_LISTEN"))
		if err != nil {
			t.Fatal(err)
		}
		hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, name, r.RemoteAddr) })}
		go hs.Serve(ln)
		<-ctx.Done()
		hs.Close()
	case "director":
		serveXDPDirector(t, ctx, log, xdp.Options{
			Interfaces:    []string{"eth0", "eth2"},
			Mode:          "generic",
			TunnelSource6: netip.MustParsePrefix("2001:db8:1::1/128"),
		}, os.Getenv("GVS_XDP6_SOCK"))
	}
}
