package xdp

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"testing"

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
	gue := ipvs.Dest{Addr: netip.MustParseAddr("198.19.0.21"), Port: 80, Method: ipvs.Tunnel, Weight: 1, TunType: ipvs.TunGUE, TunPort: 6080}
	e := newTestEngine(t, snapOf(
		oneService(vip, ipvs.TCP, "rr", ipvs.Dest{Addr: rsIP(11), Port: 80, Method: ipvs.Route, Weight: 1}),
		oneService(vip6, ipvs.TCP, "rr", ipvs.Dest{Addr: v6(11), Port: 80, Method: ipvs.Route, Weight: 1}),
		oneService(netip.AddrPortFrom(vip.Addr(), 81), ipvs.TCP, "rr", ipvs.Dest{Addr: netip.MustParseAddr("198.19.0.21"), Port: 81, Method: ipvs.Tunnel, Weight: 1}),
		oneService(netip.AddrPortFrom(vip.Addr(), 82), ipvs.UDP, "rr", gue),
		oneService(netip.AddrPortFrom(vip6.Addr(), 81), ipvs.TCP, "rr", ipvs.Dest{Addr: netip.MustParseAddr("2001:db8:1::21"), Port: 81, Method: ipvs.Tunnel, Weight: 1}),
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
			name:    "IPIP too big gets ICMP fragmentation needed",
			in:      pktSpec{src: client, dst: netip.AddrPortFrom(vip.Addr(), 81), proto: ipvs.TCP, flags: tcpSYN, payload: 1500 - 40},
			verdict: xdpTX,
			check: func(t *testing.T, in, out []byte) {
				checkEth(t, out, clientMAC, dirMAC, 0x0800)
				if len(out) != 14+20+8+20+8 {
					t.Fatalf("ICMP packet of %d bytes, want %d", len(out), 14+20+8+20+8)
				}
				checkIPv4(t, out[14:34], 1, vip.Addr(), client.Addr(), 20+8+28)
				ic := out[34:]
				if ic[0] != 3 || ic[1] != 4 {
					t.Errorf("ICMP type/code %d/%d, want 3/4", ic[0], ic[1])
				}
				if mtu := binary.BigEndian.Uint16(ic[6:]); mtu != 1480 {
					t.Errorf("next-hop MTU %d, want 1480", mtu)
				}
				if checksum(ic, 0) != 0 {
					t.Errorf("bad ICMP checksum")
				}
				if !bytes.Equal(ic[8:], in[14:14+28]) {
					t.Errorf("ICMP does not quote the original header and 8 bytes")
				}
			},
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
