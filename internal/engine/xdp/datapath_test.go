package xdp

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

const (
	xdpDrop     = 1
	xdpPass     = 2
	xdpTX       = 3
	xdpRedirect = 4
)

var (
	vip    = netip.MustParseAddrPort("198.18.1.10:80")
	vip6   = netip.MustParseAddrPort("[2001:db8:2::10]:80")
	client = netip.MustParseAddrPort("198.18.2.7:40000")
	cli6   = netip.MustParseAddrPort("[2001:db8:3::7]:40000")
)

func oneService(key netip.AddrPort, proto ipvs.Protocol, sched string, dests ...ipvs.Dest) ipvs.ServiceConfig {
	return ipvs.ServiceConfig{
		Service: ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: proto, Addr: key.Addr(), Port: key.Port()}, Scheduler: sched},
		Dests:   dests,
	}
}

func snapOf(svcs ...ipvs.ServiceConfig) *ipvs.Snapshot {
	return &ipvs.Snapshot{Services: svcs, Timeouts: ipvs.DefaultTimeouts}
}

// TestForward checks the exact packet out for DR and the tunnels.
func TestForward(t *testing.T) {
	labNS(t, 11)
	// 198.19.1.0/24 is behind a path of MTU 600, below what IPv6 needs.
	gw, _ := netlink.LinkByName("gvs0")
	_, narrow, _ := net.ParseCIDR("198.19.1.0/24")
	if err := netlink.RouteAdd(&netlink.Route{LinkIndex: gw.Attrs().Index, Dst: narrow, Gw: routerIP.AsSlice(), MTU: 600}); err != nil {
		t.Fatal(err)
	}
	gue := ipvs.Dest{Addr: netip.MustParseAddr("198.19.0.21"), Port: 80, Method: ipvs.Tunnel, Weight: 1, TunType: ipvs.TunGUE, TunPort: 6080}
	tun4, tun6 := netip.AddrPortFrom(vip.Addr(), 81), netip.AddrPortFrom(vip6.Addr(), 81)
	tun4in6 := netip.AddrPortFrom(vip.Addr(), 83)
	tun6in4 := netip.AddrPortFrom(vip6.Addr(), 82)
	tun6narrow := netip.AddrPortFrom(vip6.Addr(), 83)
	gre4, greCsum4 := netip.AddrPortFrom(vip.Addr(), 84), netip.AddrPortFrom(vip.Addr(), 85)
	greCsum6in6 := netip.AddrPortFrom(vip6.Addr(), 85)
	gueCsum4, gueCsum6in6 := netip.AddrPortFrom(vip.Addr(), 86), netip.AddrPortFrom(vip6.Addr(), 86)
	gueCsum := func(addr string) ipvs.Dest {
		d := gue
		d.Addr, d.TunFlags = netip.MustParseAddr(addr), tunFlagCsum
		return d
	}
	greDest := func(addr string, csum bool) ipvs.Dest {
		d := ipvs.Dest{Addr: netip.MustParseAddr(addr), Port: 80, Method: ipvs.Tunnel, Weight: 1, TunType: ipvs.TunGRE}
		if csum {
			d.TunFlags = tunFlagCsum
		}
		return d
	}
	e := newTestEngine(t, snapOf(
		oneService(vip, ipvs.TCP, "rr", ipvs.Dest{Addr: rsIP(11), Port: 80, Method: ipvs.Route, Weight: 1}),
		oneService(vip6, ipvs.TCP, "rr", ipvs.Dest{Addr: v6(11), Port: 80, Method: ipvs.Route, Weight: 1}),
		oneService(tun4, ipvs.TCP, "rr", ipvs.Dest{Addr: netip.MustParseAddr("198.19.0.21"), Port: 81, Method: ipvs.Tunnel, Weight: 1}),
		oneService(netip.AddrPortFrom(vip.Addr(), 82), ipvs.UDP, "rr", gue),
		oneService(tun6, ipvs.TCP, "rr", ipvs.Dest{Addr: netip.MustParseAddr("2001:db8:1::21"), Port: 81, Method: ipvs.Tunnel, Weight: 1}),
		oneService(tun4in6, ipvs.TCP, "rr", ipvs.Dest{Addr: netip.MustParseAddr("2001:db8:1::21"), Port: 83, Method: ipvs.Tunnel, Weight: 1}),
		oneService(tun6in4, ipvs.TCP, "rr", ipvs.Dest{Addr: netip.MustParseAddr("198.19.0.21"), Port: 82, Method: ipvs.Tunnel, Weight: 1}),
		oneService(tun6narrow, ipvs.UDP, "rr", ipvs.Dest{Addr: netip.MustParseAddr("198.19.1.21"), Port: 83, Method: ipvs.Tunnel, Weight: 1}),
		oneService(gre4, ipvs.TCP, "rr", greDest("198.19.0.21", false)),
		oneService(greCsum4, ipvs.UDP, "rr", greDest("198.19.0.21", true)),
		oneService(greCsum6in6, ipvs.TCP, "rr", greDest("2001:db8:1::21", true)),
		oneService(gueCsum4, ipvs.UDP, "rr", gueCsum("198.19.0.21")),
		oneService(gueCsum6in6, ipvs.TCP, "rr", gueCsum("2001:db8:1::21")),
	))

	tests := []struct {
		name    string
		in      pktSpec
		verdict uint32
		check   func(t *testing.T, in, out []byte)
	}{
		{
			name:    "DR IPv4 rewrites the MACs only",
			in:      pktSpec{src: client, dst: vip, proto: ipvs.TCP, flags: tcpSYN, payload: 10},
			verdict: xdpRedirect,
			check: func(t *testing.T, in, out []byte) {
				want := append(append(append([]byte{}, rsMAC(11)...), dirMAC...), in[12:]...)
				if !bytes.Equal(out, want) {
					t.Errorf("out\n%x\nwant\n%x", out, want)
				}
			},
		},
		{
			name:    "DR IPv6 with a VLAN tag keeps the tag",
			in:      pktSpec{vlans: []uint16{7}, src: cli6, dst: vip6, proto: ipvs.TCP, flags: tcpSYN},
			verdict: xdpRedirect,
			check: func(t *testing.T, in, out []byte) {
				want := append(append(append([]byte{}, rsMAC(11)...), dirMAC...), in[12:]...)
				if !bytes.Equal(out, want) {
					t.Errorf("out\n%x\nwant\n%x", out, want)
				}
			},
		},
		{
			name:    "IPIP",
			in:      pktSpec{src: client, dst: netip.AddrPortFrom(vip.Addr(), 81), proto: ipvs.TCP, flags: tcpSYN, payload: 5, tos: 0x10},
			verdict: xdpRedirect,
			check: func(t *testing.T, in, out []byte) {
				checkEth(t, out, routerMAC, dirMAC, 0x0800)
				ip := out[14:34]
				checkIPv4(t, ip, 4, dirIP, netip.MustParseAddr("198.19.0.21"), len(in)-14+20)
				if ip[1] != 0x10 {
					t.Errorf("outer TOS %#x, want the inner 0x10", ip[1])
				}
				if !bytes.Equal(out[34:], in[14:]) {
					t.Errorf("inner packet changed")
				}
			},
		},
		{
			name:    "GUE",
			in:      pktSpec{src: client, dst: netip.AddrPortFrom(vip.Addr(), 82), proto: ipvs.UDP, payload: 33},
			verdict: xdpRedirect,
			check: func(t *testing.T, in, out []byte) {
				checkEth(t, out, routerMAC, dirMAC, 0x0800)
				checkIPv4(t, out[14:34], 17, dirIP, gue.Addr, len(in)-14+32)
				udp := out[34:42]
				if sp := binary.BigEndian.Uint16(udp[0:]); sp < 0xc000 {
					t.Errorf("GUE source port %d, want in 49152-65535", sp)
				}
				if dp := binary.BigEndian.Uint16(udp[2:]); dp != 6080 {
					t.Errorf("GUE port %d, want 6080", dp)
				}
				if n := binary.BigEndian.Uint16(udp[4:]); int(n) != len(in)-14+12 {
					t.Errorf("UDP length %d, want %d", n, len(in)-14+12)
				}
				if gh := out[42:46]; !bytes.Equal(gh, []byte{0, 4, 0, 0}) {
					t.Errorf("GUE header %x, want 00040000", gh)
				}
				if !bytes.Equal(out[46:], in[14:]) {
					t.Errorf("inner packet changed")
				}
			},
		},
		{
			name:    "GRE without checksum",
			in:      pktSpec{src: client, dst: gre4, proto: ipvs.TCP, flags: tcpSYN, payload: 7},
			verdict: xdpRedirect,
			check:   checkGRE(4, false),
		},
		{
			// An odd length: the checksum pads the last byte.
			name:    "GRE with checksum",
			in:      pktSpec{src: client, dst: greCsum4, proto: ipvs.UDP, payload: 1001},
			verdict: xdpRedirect,
			check:   checkGRE(4, true),
		},
		{
			name:    "GRE with checksum, IPv6 in IPv6",
			in:      pktSpec{src: cli6, dst: greCsum6in6, proto: ipvs.TCP, flags: tcpSYN, payload: 600},
			verdict: xdpRedirect,
			check:   checkGRE(6, true),
		},
		{
			name:    "GRE with checksum, inner UDP without one",
			in:      pktSpec{src: client, dst: greCsum4, proto: ipvs.UDP, payload: 99, noUDPSum: true},
			verdict: xdpRedirect,
			check:   checkGRE(4, true),
		},
		{
			name:    "GUE with checksum",
			in:      pktSpec{src: client, dst: gueCsum4, proto: ipvs.UDP, payload: 1001},
			verdict: xdpRedirect,
			check:   checkGUECsum(4),
		},
		{
			name:    "GUE with checksum, inner UDP without one",
			in:      pktSpec{src: client, dst: gueCsum4, proto: ipvs.UDP, payload: 33, noUDPSum: true},
			verdict: xdpRedirect,
			check:   checkGUECsum(4),
		},
		{
			name:    "GUE with checksum, IPv6 in IPv6",
			in:      pktSpec{src: cli6, dst: gueCsum6in6, proto: ipvs.TCP, flags: tcpSYN, payload: 601},
			verdict: xdpRedirect,
			check:   checkGUECsum(6),
		},
		{
			name:    "GRE with checksum at the MTU is tunnelled",
			in:      pktSpec{src: client, dst: greCsum4, proto: ipvs.UDP, payload: 1500 - 20 - 8 - 28},
			verdict: xdpRedirect,
			check:   checkGRE(4, true),
		},
		{
			name:    "GRE with checksum too big gets fragmentation needed for its 28 bytes",
			in:      pktSpec{src: client, dst: greCsum4, proto: ipvs.UDP, payload: 1500 - 20 - 8 - 28 + 1},
			verdict: xdpTX,
			check:   checkFragNeeded(1500 - 28),
		},
		{
			name:    "IPv6 in IPv6",
			in:      pktSpec{src: cli6, dst: netip.AddrPortFrom(vip6.Addr(), 81), proto: ipvs.TCP, flags: tcpSYN},
			verdict: xdpRedirect,
			check: func(t *testing.T, in, out []byte) {
				checkEth(t, out, routerMAC, dirMAC, 0x86dd)
				ip := out[14:54]
				if ip[0]>>4 != 6 || ip[6] != 41 || ip[7] != 64 {
					t.Errorf("outer IPv6 header %x", ip)
				}
				if n := binary.BigEndian.Uint16(ip[4:]); int(n) != len(in)-14 {
					t.Errorf("payload length %d, want %d", n, len(in)-14)
				}
				if s := netip.AddrFrom16([16]byte(ip[8:24])); s != dirIP6 {
					t.Errorf("outer source %s, want %s", s, dirIP6)
				}
				if d := netip.AddrFrom16([16]byte(ip[24:40])); d != netip.MustParseAddr("2001:db8:1::21") {
					t.Errorf("outer destination %s", d)
				}
				if !bytes.Equal(out[54:], in[14:]) {
					t.Errorf("inner packet changed")
				}
			},
		},
		{
			// Sent whether DF is set or not: XDP cannot fragment.
			name:    "IPIP too big without DF gets ICMP fragmentation needed",
			in:      pktSpec{src: client, dst: tun4, proto: ipvs.TCP, flags: tcpSYN, payload: 1500 - 40},
			verdict: xdpTX,
			check:   checkFragNeeded(1480),
		},
		{
			name:    "IPIP at the MTU is tunnelled",
			in:      pktSpec{src: client, dst: tun4, proto: ipvs.TCP, flags: tcpSYN, payload: 1500 - 20 - 40},
			verdict: xdpRedirect,
			check:   checkTunnelled(4),
		},
		{
			name:    "IPv4 in IPv6 too big gets ICMP fragmentation needed",
			in:      pktSpec{src: client, dst: tun4in6, proto: ipvs.TCP, flags: tcpSYN, payload: 1500 - 40, fragOff: 0x4000},
			verdict: xdpTX,
			check:   checkFragNeeded(1460),
		},
		{
			name:    "IPv4 in IPv6 at the MTU is tunnelled",
			in:      pktSpec{src: client, dst: tun4in6, proto: ipvs.TCP, flags: tcpSYN, payload: 1500 - 40 - 40, fragOff: 0x4000},
			verdict: xdpRedirect,
			check:   checkTunnelled(6),
		},
		{
			name:    "IPv6 in IPv6 too big gets ICMPv6 packet too big",
			in:      pktSpec{src: cli6, dst: tun6, proto: ipvs.TCP, flags: tcpSYN, payload: 1500 - 60},
			verdict: xdpTX,
			check:   checkPacketTooBig(1460, 1232),
		},
		{
			name:    "IPv6 in IPv6 at the MTU is tunnelled",
			in:      pktSpec{src: cli6, dst: tun6, proto: ipvs.TCP, flags: tcpSYN, payload: 1500 - 40 - 60},
			verdict: xdpRedirect,
			check:   checkTunnelled(6),
		},
		{
			name:    "IPv6 in IPv4 too big gets ICMPv6 packet too big",
			in:      pktSpec{src: cli6, dst: tun6in4, proto: ipvs.TCP, flags: tcpSYN, payload: 1500 - 20 - 60 + 1},
			verdict: xdpTX,
			check:   checkPacketTooBig(1480, 1232),
		},
		{
			name:    "IPv6 in IPv4 at the MTU is tunnelled",
			in:      pktSpec{src: cli6, dst: tun6in4, proto: ipvs.TCP, flags: tcpSYN, payload: 1500 - 20 - 60},
			verdict: xdpRedirect,
			check:   checkTunnelled(4),
		},
		{
			// 600 - 20 is below the IPv6 minimum: the message says 1280
			// and quotes the whole packet, its odd last byte included,
			// as icmpv6_send does.
			name:    "IPv6 in IPv4 over a narrow path gets packet too big 1280",
			in:      pktSpec{src: cli6, dst: tun6narrow, proto: ipvs.UDP, payload: 600 - 20 - 48 + 1},
			verdict: xdpTX,
			check:   checkPacketTooBig(1280, 600-20+1),
		},
	}
	// Tunnels take their next hop from bpf_fib_lookup where forwarding
	// is on, else from what Go resolved: both must give the same packet.
	for _, fwd := range []string{"0", "1"} {
		for _, f := range []string{"/proc/sys/net/ipv4/conf/all/forwarding", "/proc/sys/net/ipv6/conf/all/forwarding"} {
			if err := os.WriteFile(f, []byte(fwd), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range tests {
			t.Run("forwarding="+fwd+"/"+tc.name, func(t *testing.T) {
				in := build(tc.in)
				v, out := runOut(t, e, in)
				if v != tc.verdict {
					t.Fatalf("verdict %d, want %d (drops %v)", v, tc.verdict, e.Drops())
				}
				tc.check(t, in, out)
			})
		}
	}
}

func checkEth(t *testing.T, out []byte, dst, src []byte, et uint16) {
	t.Helper()
	if len(out) < 14 {
		t.Fatalf("frame of %d bytes", len(out))
	}
	if !bytes.Equal(out[0:6], dst) || !bytes.Equal(out[6:12], src) || binary.BigEndian.Uint16(out[12:]) != et {
		t.Errorf("Ethernet header %x, want dst %x src %x type %#x", out[:14], dst, src, et)
	}
}

func checkIPv4(t *testing.T, ip []byte, proto byte, src, dst netip.Addr, total int) {
	t.Helper()
	if ip[0] != 0x45 {
		t.Errorf("version/ihl %#x", ip[0])
	}
	if checksum(ip[:20], 0) != 0 {
		t.Errorf("bad IPv4 header checksum %x", ip[:20])
	}
	if ip[9] != proto {
		t.Errorf("protocol %d, want %d", ip[9], proto)
	}
	if n := binary.BigEndian.Uint16(ip[2:]); int(n) != total {
		t.Errorf("total length %d, want %d", n, total)
	}
	if s := netip.AddrFrom4([4]byte(ip[12:16])); s != src {
		t.Errorf("source %s, want %s", s, src)
	}
	if d := netip.AddrFrom4([4]byte(ip[16:20])); d != dst {
		t.Errorf("destination %s, want %s", d, dst)
	}
}

// checkTunnel checks the frame out of a tunnel to a real server, in
// front of in's IP packet: the Ethernet header, the outer IP header
// (version ver, protocol proto, its length) and the length of the whole,
// with tunLen bytes of tunnel header. It returns the tunnel's header and
// what follows it.
func checkTunnel(t *testing.T, in, out []byte, ver int, proto byte, tunLen int) []byte {
	t.Helper()
	inner := in[14:]
	et, hl := uint16(0x0800), 20
	if ver == 6 {
		et, hl = 0x86dd, 40
	}
	checkEth(t, out, routerMAC, dirMAC, et)
	if len(out) != 14+hl+tunLen+len(inner) {
		t.Fatalf("frame of %d bytes, want %d", len(out), 14+hl+tunLen+len(inner))
	}
	ip := out[14 : 14+hl]
	if ver == 4 {
		checkIPv4(t, ip, proto, dirIP, netip.AddrFrom4([4]byte(ip[16:20])), hl+tunLen+len(inner))
	} else if ip[6] != proto || int(binary.BigEndian.Uint16(ip[4:])) != tunLen+len(inner) {
		t.Errorf("outer IPv6 header %x: want next header %d, payload %d", ip, proto, tunLen+len(inner))
	}
	if !bytes.Equal(out[14+hl+tunLen:], inner) {
		t.Errorf("inner packet changed")
	}
	return out[14+hl:]
}

// checkGUECsum checks a GUE packet with --tun-csum: its outer UDP
// checksum verifies over the whole inner packet.
func checkGUECsum(ver int) func(t *testing.T, in, out []byte) {
	return func(t *testing.T, in, out []byte) {
		t.Helper()
		udp := checkTunnel(t, in, out, ver, 17, 12)
		if binary.BigEndian.Uint16(udp[6:]) == 0 {
			t.Fatalf("outer UDP checksum is zero; --tun-csum wants one")
		}
		if err := tunnelSumErr(out); err != nil {
			t.Error(err)
		}
		if gh := udp[8:12]; gh[0] != 0 || gh[2] != 0 || gh[3] != 0 {
			t.Errorf("GUE header %x, want variant 0 without options", gh)
		}
	}
}

// checkGRE checks a GRE packet as the kernel's IPVS builds it: outer IP
// version ver, protocol 47, flags 0 or C (then the checksum over the GRE
// header and the inner packet), the inner packet's Ethernet type, the
// inner packet unchanged.
func checkGRE(ver int, csum bool) func(t *testing.T, in, out []byte) {
	return func(t *testing.T, in, out []byte) {
		t.Helper()
		gl := 4
		if csum {
			gl = 8
		}
		gre := checkTunnel(t, in, out, ver, 47, gl)
		innerType := binary.BigEndian.Uint16(in[12:])
		wantFlags := uint16(0)
		if csum {
			wantFlags = 0x8000
		}
		if f, p := binary.BigEndian.Uint16(gre[0:]), binary.BigEndian.Uint16(gre[2:]); f != wantFlags || p != innerType {
			t.Errorf("GRE flags %#04x protocol %#04x, want %#04x %#04x", f, p, wantFlags, innerType)
		}
		if csum {
			if err := tunnelSumErr(out); err != nil {
				t.Error(err)
			}
			if binary.BigEndian.Uint16(gre[6:]) != 0 {
				t.Errorf("GRE reserved field %x, want 0", gre[6:8])
			}
		}
	}
}

// checkTunnelled checks that the packet left in a tunnel of the outer
// IP version ver with the inner packet as it came.
func checkTunnelled(ver int) func(t *testing.T, in, out []byte) {
	return func(t *testing.T, in, out []byte) {
		t.Helper()
		et, hl := uint16(0x0800), 20
		if ver == 6 {
			et, hl = 0x86dd, 40
		}
		checkEth(t, out, routerMAC, dirMAC, et)
		if len(out) != len(in)+hl {
			t.Fatalf("tunnelled frame of %d bytes, want %d", len(out), len(in)+hl)
		}
		if !bytes.Equal(out[14+hl:], in[14:]) {
			t.Errorf("inner packet changed")
		}
	}
}

// checkFragNeeded checks an ICMP "fragmentation needed" to the client
// from the VIP, with mtu, quoting the IPv4 header and 8 bytes.
func checkFragNeeded(mtu uint16) func(t *testing.T, in, out []byte) {
	return func(t *testing.T, in, out []byte) {
		t.Helper()
		checkEth(t, out, clientMAC, dirMAC, 0x0800)
		if len(out) != 14+20+8+20+8 {
			t.Fatalf("ICMP packet of %d bytes, want %d", len(out), 14+20+8+20+8)
		}
		checkIPv4(t, out[14:34], 1, vip.Addr(), client.Addr(), 20+8+28)
		ic := out[34:]
		if ic[0] != 3 || ic[1] != 4 {
			t.Errorf("ICMP type/code %d/%d, want 3/4", ic[0], ic[1])
		}
		if got := binary.BigEndian.Uint16(ic[6:]); got != mtu {
			t.Errorf("next-hop MTU %d, want %d", got, mtu)
		}
		if checksum(ic, 0) != 0 {
			t.Errorf("bad ICMP checksum")
		}
		if !bytes.Equal(ic[8:], in[14:14+28]) {
			t.Errorf("ICMP does not quote the original header and 8 bytes")
		}
	}
}

// checkPacketTooBig checks an ICMPv6 Packet Too Big (RFC 4443 3.2) to
// the packet's source from the VIP it was sent to, with mtu, quoting the
// first quote bytes of the IPv6 packet: the exact frame, built here.
func checkPacketTooBig(mtu uint32, quote int) func(t *testing.T, in, out []byte) {
	return func(t *testing.T, in, out []byte) {
		t.Helper()
		inIP := in[14:]
		src, dst := [16]byte(inIP[24:40]), [16]byte(inIP[8:24])
		msg := []byte{2, 0, 0, 0}
		msg = binary.BigEndian.AppendUint32(msg, mtu)
		msg = append(msg, inIP[:quote]...)
		binary.BigEndian.PutUint16(msg[2:], checksum(msg, pseudo6(src, dst, 58, len(msg))))
		want := append([]byte{}, clientMAC...)
		want = append(want, dirMAC...)
		want = append(want, 0x86, 0xdd, 0x60, 0, 0, 0)
		want = binary.BigEndian.AppendUint16(want, uint16(len(msg)))
		want = append(want, 58, 64)
		want = append(want, src[:]...)
		want = append(want, dst[:]...)
		want = append(want, msg...)

		checkEth(t, out, clientMAC, dirMAC, 0x86dd)
		if len(out) != len(want) {
			t.Fatalf("ICMPv6 frame of %d bytes, want %d", len(out), len(want))
		}
		if len(out)-14 > 1280 {
			t.Errorf("ICMPv6 packet of %d bytes, more than the IPv6 minimum MTU", len(out)-14)
		}
		ip := out[14:54]
		if s := netip.AddrFrom16([16]byte(ip[8:24])); s != netip.AddrFrom16(src) {
			t.Errorf("source %s, want the VIP %s", s, netip.AddrFrom16(src))
		}
		if d := netip.AddrFrom16([16]byte(ip[24:40])); d != netip.AddrFrom16(dst) {
			t.Errorf("destination %s, want the client %s", d, netip.AddrFrom16(dst))
		}
		ic := out[54:]
		if ic[0] != 2 || ic[1] != 0 {
			t.Errorf("ICMPv6 type/code %d/%d, want 2/0", ic[0], ic[1])
		}
		if got := binary.BigEndian.Uint32(ic[4:]); got != mtu {
			t.Errorf("MTU %d, want %d", got, mtu)
		}
		if checksum(ic, pseudo6([16]byte(ip[8:24]), [16]byte(ip[24:40]), 58, len(ic))) != 0 {
			t.Errorf("bad ICMPv6 checksum %#04x (want %#04x)", binary.BigEndian.Uint16(ic[2:]), binary.BigEndian.Uint16(msg[2:]))
		}
		if !bytes.Equal(out, want) {
			t.Errorf("out\n%x\nwant\n%x", out, want)
		}
	}
}
