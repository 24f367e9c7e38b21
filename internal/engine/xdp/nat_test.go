package xdp

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/kernelfeat"
)

// NAT test addresses: the client is routed via the router, real servers
// are on the director's link, FullNAT's local addresses are the
// director's own.
var (
	laddr4 = netip.MustParseAddr("198.18.0.50")
	laddr6 = netip.MustParseAddr("2001:db8::50")
)

// The lab natLab made last: its namespace and gvs0's ifindex.
var (
	labHandle netns.NsHandle
	labIndex  int
)

// natLab is labNS (for the rest of the test) with forwarding on (NAT needs it, as LVS-NAT does) and
// routes to the clients of the tests via the router.
func natLab(t testing.TB) {
	t.Helper()
	labHandle = labNS(t, 11, 12)
	for _, f := range []string{"/proc/sys/net/ipv4/conf/all/forwarding", "/proc/sys/net/ipv6/conf/all/forwarding"} {
		if err := os.WriteFile(f, []byte("1"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	l, err := netlink.LinkByName("gvs0")
	if err != nil {
		t.Fatal(err)
	}
	labIndex = l.Attrs().Index
	for _, r := range []struct{ dst, gw string }{{"198.18.2.0/24", "198.18.0.254"}, {"2001:db8:3::/64", "2001:db8::fe"}} {
		_, dst, _ := net.ParseCIDR(r.dst)
		if err := netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: dst, Gw: net.ParseIP(r.gw)}); err != nil {
			t.Fatal(err)
		}
	}
}

func natService(key netip.AddrPort, proto ipvs.Protocol, m ipvs.Method, rs netip.AddrPort, laddrs ...netip.Addr) ipvs.ServiceConfig {
	sc := oneService(key, proto, "rr", ipvs.Dest{Addr: rs.Addr(), Port: rs.Port(), Method: m, Weight: 1})
	sc.LocalAddrs = laddrs
	return sc
}

// toaOpt is the TOA option for a client.
func toaOpt(c netip.AddrPort) []byte {
	if c.Addr().Is4() {
		a := c.Addr().As4()
		return append([]byte{254, 8, byte(c.Port() >> 8), byte(c.Port())}, a[:]...)
	}
	a := c.Addr().As16()
	return append([]byte{254, 20, byte(c.Port() >> 8), byte(c.Port())}, a[:]...)
}

// xdpMD is struct xdp_md, the context of a test run.
type xdpMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// runOn is runOut with the packet arriving on the lab's link gvs0, where
// forwarding is on (the FIB answers only there).
func runOn(t *testing.T, e *Engine, pkt []byte) (uint32, []byte) {
	t.Helper()
	kernelfeat.Require(t, kernelfeat.XDPTestRun)
	opts := &ebpf.RunOptions{Data: pkt, DataOut: make([]byte, len(pkt)+256),
		Context: xdpMD{DataEnd: uint32(len(pkt)), IngressIfindex: uint32(labIndex)}}
	// The test run looks the interface and routes up in the calling
	// thread's namespace: a subtest's goroutine may be anywhere.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	defer orig.Close()
	if err := netns.Set(labHandle); err != nil {
		t.Fatal(err)
	}
	defer netns.Set(orig)
	ret, err := e.objs.XdpLb.Run(opts)
	if err != nil {
		t.Fatalf("test run: %v", err)
	}
	return ret, opts.DataOut
}

// frame is build with the Ethernet addresses of a forwarded frame.
func frame(p pktSpec, dst net.HardwareAddr) []byte {
	b := build(p)
	copy(b[0:6], dst)
	copy(b[6:12], dirMAC)
	return b
}

// l4At is the offset of the TCP/UDP header in an untagged frame.
func l4At(b []byte) int {
	if binary.BigEndian.Uint16(b[12:]) == 0x0800 {
		return 14 + int(b[14]&0x0f)*4
	}
	return 14 + 40
}

// ipProto is the IP protocol (the IPv6 next header) of an untagged frame.
func ipProto(b []byte) byte {
	if binary.BigEndian.Uint16(b[12:]) == 0x0800 {
		return b[14+9]
	}
	return b[14+6]
}

// srcPort is the source port of an untagged frame.
func srcPort(b []byte) uint16 { return binary.BigEndian.Uint16(b[l4At(b):]) }

// validSums checks the IPv4 header checksum and the TCP/UDP checksum of
// an untagged frame with an independent (Go) computation.
func validSums(t *testing.T, b []byte) {
	t.Helper()
	l4, proto := b[l4At(b):], ipProto(b)
	if binary.BigEndian.Uint16(b[12:]) == 0x0800 {
		if checksum(b[14:l4At(b)], 0) != 0 {
			t.Errorf("bad IPv4 header checksum")
		}
		if proto == 17 && binary.BigEndian.Uint16(l4[6:]) == 0 {
			return
		}
	}
	if checksum(l4, pseudoOf(b)) != 0 {
		t.Errorf("bad %d checksum", proto)
	}
}

func TestNAT(t *testing.T) {
	natLab(t)
	rs4 := netip.AddrPortFrom(rsIP(11), 8080)
	rs6 := netip.AddrPortFrom(v6(11), 8080)
	udp4 := netip.AddrPortFrom(vip.Addr(), 53)
	udp6 := netip.AddrPortFrom(vip6.Addr(), 53)
	e := newTestEngine(t, snapOf(
		natService(vip, ipvs.TCP, ipvs.Masq, rs4),
		natService(vip6, ipvs.TCP, ipvs.Masq, rs6),
		natService(udp4, ipvs.UDP, ipvs.Masq, netip.AddrPortFrom(rsIP(11), 5353)),
		natService(udp6, ipvs.UDP, ipvs.Masq, netip.AddrPortFrom(v6(11), 5353)),
	))

	tests := []struct {
		name      string
		in, want  pktSpec
		wantMAC   net.HardwareAddr
		noUDPSums bool
	}{
		{
			name:    "IPv4 TCP SYN to the real server's port",
			in:      pktSpec{src: client, dst: vip, proto: ipvs.TCP, flags: tcpSYN},
			want:    pktSpec{src: client, dst: rs4, proto: ipvs.TCP, flags: tcpSYN},
			wantMAC: rsMAC(11),
		},
		{
			name:    "IPv4 TCP SYN+ACK back from the VIP",
			in:      pktSpec{src: rs4, dst: client, proto: ipvs.TCP, flags: tcpSYN | tcpACK},
			want:    pktSpec{src: vip, dst: client, proto: ipvs.TCP, flags: tcpSYN | tcpACK},
			wantMAC: routerMAC,
		},
		{
			name:    "IPv4 TCP data",
			in:      pktSpec{src: client, dst: vip, proto: ipvs.TCP, flags: tcpACK, payload: 101},
			want:    pktSpec{src: client, dst: rs4, proto: ipvs.TCP, flags: tcpACK, payload: 101},
			wantMAC: rsMAC(11),
		},
		{
			name:    "IPv6 TCP SYN",
			in:      pktSpec{src: cli6, dst: vip6, proto: ipvs.TCP, flags: tcpSYN, payload: 3},
			want:    pktSpec{src: cli6, dst: rs6, proto: ipvs.TCP, flags: tcpSYN, payload: 3},
			wantMAC: rsMAC(11),
		},
		{
			name:    "IPv6 TCP reply",
			in:      pktSpec{src: rs6, dst: cli6, proto: ipvs.TCP, flags: tcpSYN | tcpACK},
			want:    pktSpec{src: vip6, dst: cli6, proto: ipvs.TCP, flags: tcpSYN | tcpACK},
			wantMAC: routerMAC,
		},
		{
			name:    "IPv4 UDP",
			in:      pktSpec{src: client, dst: udp4, proto: ipvs.UDP, payload: 30},
			want:    pktSpec{src: client, dst: netip.AddrPortFrom(rsIP(11), 5353), proto: ipvs.UDP, payload: 30},
			wantMAC: rsMAC(11),
		},
		{
			name:    "IPv4 UDP reply",
			in:      pktSpec{src: netip.AddrPortFrom(rsIP(11), 5353), dst: client, proto: ipvs.UDP, payload: 7},
			want:    pktSpec{src: udp4, dst: client, proto: ipvs.UDP, payload: 7},
			wantMAC: routerMAC,
		},
		{
			name:    "IPv4 UDP without a checksum keeps none",
			in:      pktSpec{src: netip.MustParseAddrPort("198.18.2.7:40001"), dst: udp4, proto: ipvs.UDP, payload: 4, noUDPSum: true},
			want:    pktSpec{src: netip.MustParseAddrPort("198.18.2.7:40001"), dst: netip.AddrPortFrom(rsIP(11), 5353), proto: ipvs.UDP, payload: 4, noUDPSum: true},
			wantMAC: rsMAC(11),
		},
		{
			name:    "IPv6 UDP",
			in:      pktSpec{src: cli6, dst: udp6, proto: ipvs.UDP, payload: 30},
			want:    pktSpec{src: cli6, dst: netip.AddrPortFrom(v6(11), 5353), proto: ipvs.UDP, payload: 30},
			wantMAC: rsMAC(11),
		},
		{
			name:    "IPv6 UDP reply",
			in:      pktSpec{src: netip.AddrPortFrom(v6(11), 5353), dst: cli6, proto: ipvs.UDP, payload: 1},
			want:    pktSpec{src: udp6, dst: cli6, proto: ipvs.UDP, payload: 1},
			wantMAC: routerMAC,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, out := runOn(t, e, build(tc.in))
			if v != xdpTX {
				t.Fatalf("verdict %d, want XDP_TX, one-armed lab (drops %v)", v, e.Drops())
			}
			want := frame(tc.want, tc.wantMAC)
			if !bytes.Equal(out, want) {
				t.Errorf("out\n%x\nwant\n%x", out, want)
			}
			validSums(t, out)
		})
	}

	t.Run("a reply of no connection is left to the kernel", func(t *testing.T) {
		v, _ := runOn(t, e, build(pktSpec{src: rs4, dst: netip.MustParseAddrPort("198.18.2.99:1234"), proto: ipvs.TCP, flags: tcpACK}))
		if v != xdpPass {
			t.Errorf("verdict %d, want pass", v)
		}
	})
	t.Run("replies are counted out", func(t *testing.T) {
		for _, s := range e.Status() {
			if s.Stats.Conns != 1 && s.Proto == ipvs.TCP || s.Stats.OutPkts == 0 || s.Stats.OutBytes == 0 {
				t.Errorf("%s: stats %+v, want replies counted", s.ServiceKey, s.Stats)
			}
		}
	})
	t.Run("the connection list shows each connection once", func(t *testing.T) {
		conns := e.Conns()
		if len(conns) != 5 {
			t.Fatalf("%d connections, want 5: %+v", len(conns), conns)
		}
		for _, c := range conns {
			if c.Proto == ipvs.TCP && c.Client == client && (c.State != "ESTABLISHED" || c.Dest != rs4 || c.Virtual != vip) {
				t.Errorf("connection %+v, want ESTABLISHED %s -> %s -> %s", c, client, vip, rs4)
			}
		}
	})
}

func TestFullNAT(t *testing.T) {
	natLab(t)
	rs4 := netip.AddrPortFrom(rsIP(11), 8080)
	rs6 := netip.AddrPortFrom(v6(11), 8080)
	udp4 := netip.AddrPortFrom(vip.Addr(), 53)
	udp6 := netip.AddrPortFrom(vip6.Addr(), 53)
	e := newTestEngine(t, snapOf(
		natService(vip, ipvs.TCP, ipvs.FullNAT, rs4, laddr4, laddr6),
		natService(vip6, ipvs.TCP, ipvs.FullNAT, rs6, laddr4, laddr6),
		natService(udp4, ipvs.UDP, ipvs.FullNAT, netip.AddrPortFrom(rsIP(11), 5353), laddr4),
		natService(udp6, ipvs.UDP, ipvs.FullNAT, netip.AddrPortFrom(v6(11), 5353), laddr6),
	))

	type step struct {
		name    string
		in      pktSpec
		reply   bool // from the real server to the local address
		want    func(local netip.AddrPort) pktSpec
		wantMAC net.HardwareAddr
	}
	flow := func(cli, vip, rs, laddr netip.AddrPort, proto ipvs.Protocol) []step {
		if proto == ipvs.UDP {
			return []step{
				{name: "request", in: pktSpec{src: cli, dst: vip, proto: proto, payload: 20},
					want: func(l netip.AddrPort) pktSpec { return pktSpec{src: l, dst: rs, proto: proto, payload: 20} }, wantMAC: rsMAC(11)},
				{name: "reply", reply: true, in: pktSpec{dst: laddr, src: rs, proto: proto, payload: 9},
					want: func(netip.AddrPort) pktSpec { return pktSpec{src: vip, dst: cli, proto: proto, payload: 9} }, wantMAC: routerMAC},
			}
		}
		return []step{
			{name: "SYN gets TOA", in: pktSpec{src: cli, dst: vip, proto: proto, flags: tcpSYN, tcpOpts: []byte{2, 4, 5, 0xb4}},
				want: func(l netip.AddrPort) pktSpec {
					return pktSpec{src: l, dst: rs, proto: proto, flags: tcpSYN, tcpOpts: append(toaOpt(cli), 2, 4, 5, 0xb4)}
				}, wantMAC: rsMAC(11)},
			{name: "retransmitted SYN gets TOA too", in: pktSpec{src: cli, dst: vip, proto: proto, flags: tcpSYN, tcpOpts: []byte{2, 4, 5, 0xb4}},
				want: func(l netip.AddrPort) pktSpec {
					return pktSpec{src: l, dst: rs, proto: proto, flags: tcpSYN, tcpOpts: append(toaOpt(cli), 2, 4, 5, 0xb4)}
				}, wantMAC: rsMAC(11)},
			{name: "SYN+ACK", reply: true, in: pktSpec{src: rs, proto: proto, flags: tcpSYN | tcpACK},
				want: func(netip.AddrPort) pktSpec { return pktSpec{src: vip, dst: cli, proto: proto, flags: tcpSYN | tcpACK} }, wantMAC: routerMAC},
			{name: "first ACK gets TOA", in: pktSpec{src: cli, dst: vip, proto: proto, flags: tcpACK},
				want: func(l netip.AddrPort) pktSpec {
					return pktSpec{src: l, dst: rs, proto: proto, flags: tcpACK, tcpOpts: toaOpt(cli)}
				}, wantMAC: rsMAC(11)},
			{name: "data does not", in: pktSpec{src: cli, dst: vip, proto: proto, flags: tcpACK, payload: 100},
				want: func(l netip.AddrPort) pktSpec {
					return pktSpec{src: l, dst: rs, proto: proto, flags: tcpACK, payload: 100}
				}, wantMAC: rsMAC(11)},
			{name: "reply data", reply: true, in: pktSpec{src: rs, proto: proto, flags: tcpACK, payload: 1000},
				want: func(netip.AddrPort) pktSpec {
					return pktSpec{src: vip, dst: cli, proto: proto, flags: tcpACK, payload: 1000}
				}, wantMAC: routerMAC},
		}
	}
	tests := []struct {
		name   string
		cli    netip.AddrPort
		vip    netip.AddrPort
		rs     netip.AddrPort
		laddr  netip.Addr
		proto  ipvs.Protocol
		optLen int
	}{
		{name: "IPv4 TCP", cli: client, vip: vip, rs: rs4, laddr: laddr4, proto: ipvs.TCP},
		{name: "IPv6 TCP", cli: cli6, vip: vip6, rs: rs6, laddr: laddr6, proto: ipvs.TCP},
		{name: "IPv4 UDP", cli: client, vip: udp4, rs: netip.AddrPortFrom(rsIP(11), 5353), laddr: laddr4, proto: ipvs.UDP},
		{name: "IPv6 UDP", cli: cli6, vip: udp6, rs: netip.AddrPortFrom(v6(11), 5353), laddr: laddr6, proto: ipvs.UDP},
	}
	for _, tc := range tests {
		var local netip.AddrPort
		for _, st := range flow(tc.cli, tc.vip, tc.rs, netip.AddrPortFrom(tc.laddr, 0), tc.proto) {
			t.Run(tc.name+"/"+st.name, func(t *testing.T) {
				in := st.in
				if st.reply {
					if !local.IsValid() {
						t.Fatal("no local port from the request")
					}
					in.dst = local
				}
				v, out := runOn(t, e, build(in))
				if v != xdpTX {
					t.Fatalf("verdict %d, want XDP_TX, one-armed lab (drops %v)", v, e.Drops())
				}
				if !st.reply && !local.IsValid() {
					local = netip.AddrPortFrom(tc.laddr, srcPort(out))
					if local.Port() < 1024 {
						t.Errorf("local port %d, want 1024-65535", local.Port())
					}
				}
				want := frame(st.want(local), st.wantMAC)
				if !bytes.Equal(out, want) {
					t.Errorf("out\n%x\nwant\n%x", out, want)
				}
				validSums(t, out)
			})
		}
	}

	t.Run("TOA is skipped when the options are full", func(t *testing.T) {
		full := bytes.Repeat([]byte{1}, 40)
		c := netip.MustParseAddrPort("198.18.2.7:40100")
		before := e.Drops()["toa-no-room"]
		v, out := runOn(t, e, build(pktSpec{src: c, dst: vip, proto: ipvs.TCP, flags: tcpSYN, tcpOpts: full}))
		if v != xdpTX {
			t.Fatalf("verdict %d, want XDP_TX", v)
		}
		local := netip.AddrPortFrom(laddr4, srcPort(out))
		want := frame(pktSpec{src: local, dst: rs4, proto: ipvs.TCP, flags: tcpSYN, tcpOpts: full}, rsMAC(11))
		if !bytes.Equal(out, want) {
			t.Errorf("out\n%x\nwant\n%x", out, want)
		}
		if e.Drops()["toa-no-room"] != before+1 {
			t.Errorf("toa-no-room not counted: %v", e.Drops())
		}
	})
	t.Run("many clients get distinct local ports", func(t *testing.T) {
		seen := map[uint16]bool{}
		for i := range 200 {
			c := netip.AddrPortFrom(netip.MustParseAddr("198.18.2.8"), uint16(20000+i))
			v, out := runOn(t, e, build(pktSpec{src: c, dst: vip, proto: ipvs.TCP, flags: tcpSYN}))
			if v != xdpTX {
				t.Fatalf("connection %d: verdict %d (drops %v)", i, v, e.Drops())
			}
			p := srcPort(out)
			if seen[p] {
				t.Fatalf("local port %d given twice", p)
			}
			seen[p] = true
		}
	})
}

// icmpFrame is an ICMP (ICMPv6) error from src to dst quoting quote.
func icmpFrame(src, dst netip.Addr, typ, code byte, quote []byte) []byte {
	msg := append([]byte{typ, code, 0, 0, 0, 0, 0x05, 0xdc}, quote...)
	b := append([]byte{}, dirMAC...)
	b = append(b, clientMAC...)
	if src.Is4() {
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+len(msg)))
		ip[8], ip[9] = 64, 1
		s, d := src.As4(), dst.As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		binary.BigEndian.PutUint16(ip[10:], checksum(ip, 0))
		binary.BigEndian.PutUint16(msg[2:], checksum(msg, 0))
		b = append(b, 0x08, 0x00)
		return append(append(b, ip...), msg...)
	}
	ip := make([]byte, 40)
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:], uint16(len(msg)))
	ip[6], ip[7] = 58, 64
	s, d := src.As16(), dst.As16()
	copy(ip[8:], s[:])
	copy(ip[24:], d[:])
	binary.BigEndian.PutUint16(msg[2:], checksum(msg, pseudo6(s, d, 58, len(msg))))
	b = append(b, 0x86, 0xdd)
	return append(append(b, ip...), msg...)
}

// quote is the IP packet of a frame cut to its headers and n bytes of
// TCP or UDP.
func quote(frame []byte, n int) []byte { return frame[14 : l4At(frame)+n] }

func TestICMP(t *testing.T) {
	natLab(t)
	rsUDP := netip.AddrPortFrom(rsIP(11), 5353)
	rs6UDP := netip.AddrPortFrom(v6(11), 5353)
	rsTCP := netip.AddrPortFrom(rsIP(11), 8080)
	udp4 := netip.AddrPortFrom(vip.Addr(), 53)
	udp6 := netip.AddrPortFrom(vip6.Addr(), 53)
	e := newTestEngine(t, snapOf(
		natService(udp4, ipvs.UDP, ipvs.Masq, rsUDP),
		natService(vip, ipvs.TCP, ipvs.FullNAT, rsTCP, laddr4),
		natService(udp6, ipvs.UDP, ipvs.FullNAT, rs6UDP, laddr6),
	))
	router := netip.MustParseAddr("198.18.2.1")
	// The connections the errors are about.
	connect := func(t *testing.T, p pktSpec) []byte {
		t.Helper()
		v, out := runOn(t, e, build(p))
		if v != xdpTX {
			t.Fatalf("verdict %d (drops %v)", v, e.Drops())
		}
		return append([]byte{}, out...)
	}
	natOut := connect(t, pktSpec{src: client, dst: udp4, proto: ipvs.UDP, payload: 12})
	fnatSYN := pktSpec{src: client, dst: vip, proto: ipvs.TCP, flags: tcpSYN}
	fnatOut := connect(t, fnatSYN)
	local := netip.AddrPortFrom(laddr4, srcPort(fnatOut))
	fnat6Out := connect(t, pktSpec{src: cli6, dst: udp6, proto: ipvs.UDP, payload: 5})
	local6 := netip.AddrPortFrom(laddr6, srcPort(fnat6Out))

	tests := []struct {
		name    string
		in      []byte
		want    []byte
		wantMAC net.HardwareAddr
	}{
		{
			name:    "NAT: port unreachable from the real server goes to the client from the VIP",
			in:      icmpFrame(rsIP(11), client.Addr(), 3, 3, quote(natOut, 8)),
			want:    icmpFrame(vip.Addr(), client.Addr(), 3, 3, quote(build(pktSpec{src: client, dst: udp4, proto: ipvs.UDP, payload: 12}), 8)),
			wantMAC: routerMAC,
		},
		{
			name: "NAT: fragmentation needed from the client's side goes to the real server",
			in: icmpFrame(router, udp4.Addr(), 3, 4,
				quote(build(pktSpec{src: udp4, dst: client, proto: ipvs.UDP, payload: 40}), 8)),
			want: icmpFrame(router, rsIP(11), 3, 4,
				quote(build(pktSpec{src: rsUDP, dst: client, proto: ipvs.UDP, payload: 40}), 8)),
			wantMAC: rsMAC(11),
		},
		{
			name: "FullNAT: the real server's error about a SYN with TOA, whole TCP header quoted",
			in:   icmpFrame(rsIP(11), laddr4, 3, 4, quote(fnatOut, 20)),
			want: icmpFrame(vip.Addr(), client.Addr(), 3, 4,
				quote(build(pktSpec{src: client, dst: vip, proto: ipvs.TCP, flags: tcpSYN, tcpOpts: toaOpt(client)}), 20)),
			wantMAC: routerMAC,
		},
		{
			name: "FullNAT: time exceeded from the client's side goes to the real server from the local address",
			in: icmpFrame(router, vip.Addr(), 11, 0,
				quote(build(pktSpec{src: vip, dst: client, proto: ipvs.TCP, flags: tcpSYN | tcpACK}), 8)),
			want: icmpFrame(laddr4, rsIP(11), 11, 0,
				quote(build(pktSpec{src: rsTCP, dst: local, proto: ipvs.TCP, flags: tcpSYN | tcpACK}), 8)),
			wantMAC: rsMAC(11),
		},
		{
			name:    "FullNAT IPv6: port unreachable from the real server",
			in:      icmpFrame(v6(11), laddr6, 1, 4, quote(fnat6Out, 8)),
			want:    icmpFrame(vip6.Addr(), cli6.Addr(), 1, 4, quote(build(pktSpec{src: cli6, dst: udp6, proto: ipvs.UDP, payload: 5}), 8)),
			wantMAC: routerMAC,
		},
		{
			name: "FullNAT IPv6: packet too big from the client's side",
			in: icmpFrame(netip.MustParseAddr("2001:db8:3::1"), udp6.Addr(), 2, 0,
				quote(build(pktSpec{src: udp6, dst: cli6, proto: ipvs.UDP, payload: 30}), 8)),
			want: icmpFrame(laddr6, v6(11), 2, 0,
				quote(build(pktSpec{src: rs6UDP, dst: local6, proto: ipvs.UDP, payload: 30}), 8)),
			wantMAC: rsMAC(11),
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, out := runOn(t, e, tc.in)
			if v != xdpTX {
				t.Fatalf("verdict %d, want XDP_TX (drops %v)", v, e.Drops())
			}
			want := append([]byte{}, tc.want...)
			copy(want[0:6], tc.wantMAC)
			copy(want[6:12], dirMAC)
			if !bytes.Equal(out, want) {
				t.Errorf("out\n%x\nwant\n%x", out, want)
			}
		})
	}
	t.Run("an error about no connection is left to the kernel", func(t *testing.T) {
		in := icmpFrame(rsIP(11), client.Addr(), 3, 3, quote(build(pktSpec{src: client, dst: netip.MustParseAddrPort("198.18.0.11:999"), proto: ipvs.UDP}), 8))
		if v, _ := runOn(t, e, in); v != xdpPass {
			t.Errorf("verdict %d, want pass", v)
		}
	})
	t.Run("an echo request is left to the kernel", func(t *testing.T) {
		in := icmpFrame(client.Addr(), vip.Addr(), 8, 0, quote(natOut, 8))
		if v, _ := runOn(t, e, in); v != xdpPass {
			t.Errorf("verdict %d, want pass", v)
		}
	})
}

// TestNATExpiry checks that a NAT connection's two entries expire
// together, after the state's timeout.
func TestNATExpiry(t *testing.T) {
	natLab(t)
	e := newTestEngine(t, snapOf(natService(vip, ipvs.TCP, ipvs.FullNAT, netip.AddrPortFrom(rsIP(11), 8080), laddr4)))
	e.opts.StateTimeouts = map[string]time.Duration{"SYN_RECV": 300 * time.Millisecond}
	for i := range 3 {
		c := netip.AddrPortFrom(client.Addr(), uint16(41000+i))
		if v, _ := runOn(t, e, build(pktSpec{src: c, dst: vip, proto: ipvs.TCP, flags: tcpSYN})); v != xdpTX {
			t.Fatalf("verdict %d (drops %v)", v, e.Drops())
		}
	}
	if n := e.ConnEntries(); n != 6 {
		t.Fatalf("%d entries for 3 connections, want 6", n)
	}
	e.expire()
	conns := e.Conns()
	if len(conns) != 3 || conns[0].State != "SYN_RECV" || conns[0].Expires > 300 {
		t.Fatalf("connections %+v, want 3 in SYN_RECV expiring within 300 ms", conns)
	}
	if st := e.Status(); st[0].Dests[0].InactConns != 3 {
		t.Errorf("real server counters %+v, want 3 inactive", st[0].Dests[0])
	}
	time.Sleep(400 * time.Millisecond)
	e.expire()
	if n := e.ConnEntries(); n != 0 {
		t.Errorf("%d entries left after the timeout, want 0", n)
	}
	if st := e.Status(); st[0].Dests[0].InactConns != 0 {
		t.Errorf("real server counters %+v after expiry, want 0", st[0].Dests[0])
	}
}

// TestNATReplyTakeover checks a client that reuses its address and port
// towards another VIP of the same real server (the same tuple at the real
// server, so the same reply entry): the new connection takes the reply
// entry over from a finished TCP connection or a UDP flow, as the kernel
// does, and is refused while the old TCP connection is live.
func TestNATReplyTakeover(t *testing.T) {
	natLab(t)
	rs := netip.AddrPortFrom(rsIP(11), 8080)
	vip2 := netip.MustParseAddrPort("198.18.1.11:80")
	udp1 := netip.MustParseAddrPort("198.18.1.10:53")
	udp2 := netip.MustParseAddrPort("198.18.1.11:53")
	urs := netip.AddrPortFrom(rsIP(11), 5353)
	rs6 := netip.AddrPortFrom(v6(11), 8080)
	vip6b := netip.MustParseAddrPort("[2001:db8:2::11]:80")
	e := newTestEngine(t, snapOf(
		natService(vip, ipvs.TCP, ipvs.Masq, rs),
		natService(vip2, ipvs.TCP, ipvs.Masq, rs),
		natService(udp1, ipvs.UDP, ipvs.Masq, urs),
		natService(udp2, ipvs.UDP, ipvs.Masq, urs),
		natService(vip6, ipvs.TCP, ipvs.Masq, rs6),
		natService(vip6b, ipvs.TCP, ipvs.Masq, rs6),
	))
	// send runs one packet and checks the verdict and, for a forwarded
	// one, that it left as want.
	send := func(t *testing.T, in, want pktSpec, verdict uint32) {
		t.Helper()
		v, out := runOn(t, e, build(in))
		if v != verdict {
			t.Fatalf("%v -> %v: verdict %d, want %d (drops %v)", in.src, in.dst, v, verdict, e.Drops())
		}
		if verdict != xdpTX {
			return
		}
		addrs := func(b []byte) []byte { // source and destination
			if in.src.Addr().Is4() {
				return b[14+12 : 14+20]
			}
			return b[14+8 : 14+40]
		}
		if got := addrs(out); !bytes.Equal(got, addrs(build(want))) {
			t.Errorf("%v -> %v left with addresses %v, want %v -> %v", in.src, in.dst, got, want.src, want.dst)
		}
		validSums(t, out)
	}
	tcp := func(src, dst netip.AddrPort, flags byte) pktSpec {
		return pktSpec{src: src, dst: dst, proto: ipvs.TCP, flags: flags}
	}
	fwd := func(t *testing.T, c, v netip.AddrPort, flags byte) {
		t.Helper()
		send(t, tcp(c, v, flags), tcp(c, rs, flags), xdpTX)
	}
	back := func(t *testing.T, c, v netip.AddrPort, flags byte) {
		t.Helper()
		send(t, tcp(rs, c, flags), tcp(v, c, flags), xdpTX)
	}
	clashes := func() uint64 { return e.Drops()["nat-clash"] }
	// handshake opens a connection from c to v; finished opens one and
	// closes it, leaving it in TIME_WAIT.
	handshake := func(t *testing.T, c, v netip.AddrPort) {
		t.Helper()
		fwd(t, c, v, tcpSYN)
		back(t, c, v, tcpSYN|tcpACK)
		fwd(t, c, v, tcpACK)
	}
	finished := func(t *testing.T, c, v netip.AddrPort) {
		t.Helper()
		handshake(t, c, v)
		fwd(t, c, v, tcpFIN|tcpACK)
		back(t, c, v, tcpFIN|tcpACK)
		fwd(t, c, v, tcpACK)
	}

	t.Run("TCP after TIME_WAIT: the new connection takes the replies", func(t *testing.T) {
		c := netip.AddrPortFrom(client.Addr(), 42001)
		finished(t, c, vip)
		handshake(t, c, vip2)
		states := map[netip.AddrPort]string{}
		for _, cn := range e.Conns() {
			if cn.Client == c {
				states[cn.Virtual] = cn.State
			}
		}
		if states[vip] != "TIME_WAIT" || states[vip2] != "ESTABLISHED" {
			t.Errorf("connections of %v: %v, want TIME_WAIT to %v and ESTABLISHED to %v", c, states, vip, vip2)
		}

		// The old connection expires: the reply entry, now the new
		// one's, stays.
		cw, _ := addrWords(c.Addr())
		vw, _ := addrWords(vip.Addr())
		k := key4(&lbConnKey{Saddr: cw, Daddr: vw, Sport: be16(c.Port()), Dport: be16(vip.Port()), Proto: uint8(ipvs.TCP), Family: afInet})
		var old lbConnVal
		if err := e.objs.Conns4.Lookup(&k, &old); err != nil {
			t.Fatalf("the old connection's entry: %v", err)
		}
		old.LastSeen -= uint32((timeoutTimeWait + time.Minute) >> connClockShift)
		if err := e.objs.Conns4.Update(&k, &old, ebpf.UpdateExist); err != nil {
			t.Fatal(err)
		}
		e.expire()
		for _, cn := range e.Conns() {
			if cn.Client == c && cn.Virtual == vip {
				t.Errorf("the old connection %+v outlived its timeout", cn)
			}
		}
		back(t, c, vip2, tcpACK)
	})

	t.Run("TCP while the old connection is live: refused", func(t *testing.T) {
		c := netip.AddrPortFrom(client.Addr(), 42002)
		handshake(t, c, vip)
		before := clashes()
		send(t, tcp(c, vip2, tcpSYN), pktSpec{}, xdpDrop)
		if n := clashes() - before; n != 1 {
			t.Errorf("nat-clash counted %d times, want 1", n)
		}
		back(t, c, vip, tcpACK)
		fwd(t, c, vip, tcpACK)
	})

	t.Run("a SYN reusing the finished connection's own tuple leaves the newer one's replies", func(t *testing.T) {
		c := netip.AddrPortFrom(client.Addr(), 42005)
		finished(t, c, vip)
		handshake(t, c, vip2)
		// The first connection is over and its entry goes (the
		// kernel's conn_reuse_mode), but the reply entry is the live
		// second connection's: the SYN clashes with it.
		before := clashes()
		send(t, tcp(c, vip, tcpSYN), pktSpec{}, xdpDrop)
		if n := clashes() - before; n != 1 {
			t.Errorf("nat-clash counted %d times, want 1", n)
		}
		back(t, c, vip2, tcpACK)
	})

	t.Run("IPv6 TCP after RST: the new connection takes the replies", func(t *testing.T) {
		c := netip.AddrPortFrom(cli6.Addr(), 42004)
		send(t, tcp(c, vip6, tcpSYN), tcp(c, rs6, tcpSYN), xdpTX)
		send(t, tcp(rs6, c, tcpRST|tcpACK), tcp(vip6, c, tcpRST|tcpACK), xdpTX)
		send(t, tcp(c, vip6b, tcpSYN), tcp(c, rs6, tcpSYN), xdpTX)
		send(t, tcp(rs6, c, tcpSYN|tcpACK), tcp(vip6b, c, tcpSYN|tcpACK), xdpTX)
	})

	t.Run("UDP: the newest flow takes the replies", func(t *testing.T) {
		c := netip.AddrPortFrom(client.Addr(), 42003)
		udp := func(src, dst netip.AddrPort) pktSpec { return pktSpec{src: src, dst: dst, proto: ipvs.UDP, payload: 5} }
		send(t, udp(c, udp1), udp(c, urs), xdpTX)
		send(t, udp(urs, c), udp(udp1, c), xdpTX)
		send(t, udp(c, udp2), udp(c, urs), xdpTX)
		send(t, udp(urs, c), udp(udp2, c), xdpTX)
	})
}
