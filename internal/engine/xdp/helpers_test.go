package xdp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"runtime"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/kernelfeat"
	"github.com/gvs-lb/gvs/internal/netns/netnstest"
)

// requireRoot skips (or fails in CI) when the test cannot load BPF
// programs and make network namespaces.
func requireRoot(t testing.TB) {
	t.Helper()
	kernelfeat.RequireRoot(t, "loads BPF programs and makes a network namespace")
}

// Test network inside the namespace labNS makes: the director's link
// gvs0 on 198.18.0.0/24 and 2001:db8::/64, real servers with permanent
// neighbour entries, and a routed network 198.19.0.0/24 behind a router.
var (
	dirMAC    = net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}
	routerMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xfe}
	clientMAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 0xcc}
	routerIP  = netip.MustParseAddr("198.18.0.254")
	routerIP6 = netip.MustParseAddr("2001:db8::fe")
	dirIP     = netip.MustParseAddr("198.18.0.1")
	dirIP6    = netip.MustParseAddr("2001:db8::1")
)

// rsMAC is the MAC of the on-link real server with last byte n.
func rsMAC(n byte) net.HardwareAddr { return net.HardwareAddr{0x02, 0, 0, 0, 1, n} }

func rsIP(n byte) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, 0, n}) }

// enterNS moves a subtest's goroutine (locked to its thread) into ns until
// the subtest ends: t.Run starts a new goroutine, which may run on any
// thread.
func enterNS(t *testing.T, ns netns.NsHandle) {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		t.Fatal(err)
	}
	if err := netns.Set(ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		netns.Set(orig)
		orig.Close()
		runtime.UnlockOSThread()
	})
}

// labNS moves the test's goroutine (locked to its thread) into a fresh
// network namespace with the lab network, for the rest of the test, and
// returns it for subtests (see enterNS).
func labNS(t testing.TB, rs ...byte) netns.NsHandle {
	t.Helper()
	requireRoot(t)
	ns := netnstest.EnterNew(t)
	veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "gvs0", HardwareAddr: dirMAC}, PeerName: "gvs1"}
	if err := netlink.LinkAdd(veth); err != nil {
		t.Fatalf("veth: %v", err)
	}
	l, _ := netlink.LinkByName("gvs0")
	peer, _ := netlink.LinkByName("gvs1")
	for _, a := range []string{"198.18.0.1/24", "2001:db8::1/64"} {
		addr, _ := netlink.ParseAddr(a)
		addr.Flags = unix.IFA_F_NODAD
		if err := netlink.AddrAdd(l, addr); err != nil {
			t.Fatal(err)
		}
	}
	netlink.LinkSetUp(l)
	netlink.LinkSetUp(peer)
	neigh := func(ip netip.Addr, mac net.HardwareAddr) {
		fam := netlink.FAMILY_V4
		if ip.Is6() {
			fam = netlink.FAMILY_V6
		}
		err := netlink.NeighSet(&netlink.Neigh{LinkIndex: l.Attrs().Index, Family: fam, State: netlink.NUD_PERMANENT, IP: ip.AsSlice(), HardwareAddr: mac})
		if err != nil {
			t.Fatalf("neighbour %s: %v", ip, err)
		}
	}
	neigh(routerIP, routerMAC)
	neigh(routerIP6, routerMAC)
	for _, n := range rs {
		neigh(rsIP(n), rsMAC(n))
		neigh(v6(n), rsMAC(n))
	}
	_, dst, _ := net.ParseCIDR("198.19.0.0/24")
	if err := netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: dst, Gw: routerIP.AsSlice()}); err != nil {
		t.Fatal(err)
	}
	_, dst6, _ := net.ParseCIDR("2001:db8:1::/64")
	if err := netlink.RouteAdd(&netlink.Route{LinkIndex: l.Attrs().Index, Dst: dst6, Gw: routerIP6.AsSlice()}); err != nil {
		t.Fatal(err)
	}
	return ns
}

// v6 is the IPv6 on-link real server n.
func v6(n byte) netip.Addr {
	b := netip.MustParseAddr("2001:db8::").As16()
	b[15] = n
	return netip.AddrFrom16(b)
}

// newTestEngine loads the program (not attached) with the tunnel sources
// 198.18.0.1/32 and 2001:db8::1/128 and applies snap.
func newTestEngine(t testing.TB, snap *ipvs.Snapshot) *Engine {
	t.Helper()
	e, err := load(nil, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.objs.Close() })
	c, err := tunnelConfig(netip.PrefixFrom(dirIP, 32), netip.PrefixFrom(dirIP6, 128))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.objs.Cfg.Update(uint32(0), c, ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	if snap != nil {
		if err := engine.ApplySnapshot(e, snap); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// runOut is run returning the packet out cut to its length.
func runOut(t *testing.T, e *Engine, pkt []byte) (uint32, []byte) {
	t.Helper()
	kernelfeat.Require(t, kernelfeat.XDPTestRun)
	opts := &ebpf.RunOptions{Data: pkt, DataOut: make([]byte, len(pkt)+256)}
	ret, err := e.objs.XdpLb.Run(opts)
	if err != nil {
		t.Fatalf("test run: %v", err)
	}
	return ret, opts.DataOut
}

// redirected runs p through e, which must redirect it, and returns the
// frame that leaves.
func redirected(t *testing.T, e *Engine, p pktSpec) []byte {
	t.Helper()
	v, out := runOut(t, e, build(p))
	if v != xdpRedirect {
		t.Fatalf("%s flags %#x: verdict %d, want redirect (drops %v)", p.dst, p.flags, v, e.Drops())
	}
	return out
}

// Packet building.

type pktSpec struct {
	vlans    []uint16
	src, dst netip.AddrPort
	proto    ipvs.Protocol
	flags    byte // TCP flags
	payload  int
	ipOpts   []byte // IPv4 options (padded to 4 bytes by the caller)
	fragOff  uint16 // IPv4 frag_off field (host order)
	tos      byte
	tcpOpts  []byte // TCP options (a multiple of 4 bytes)
	noUDPSum bool   // IPv4 UDP without a checksum (0)
}

const (
	tcpFIN = 0x01
	tcpSYN = 0x02
	tcpRST = 0x04
	tcpACK = 0x10
)

func build(p pktSpec) []byte {
	var l4 []byte
	switch p.proto {
	case ipvs.TCP:
		l4 = make([]byte, 20+len(p.tcpOpts)+p.payload)
		binary.BigEndian.PutUint16(l4[0:], p.src.Port())
		binary.BigEndian.PutUint16(l4[2:], p.dst.Port())
		binary.BigEndian.PutUint32(l4[4:], 1000)
		l4[12] = byte(5+len(p.tcpOpts)/4) << 4
		copy(l4[20:], p.tcpOpts)
		l4[13] = p.flags
		binary.BigEndian.PutUint16(l4[14:], 65535)
	case ipvs.UDP:
		l4 = make([]byte, 8+p.payload)
		binary.BigEndian.PutUint16(l4[0:], p.src.Port())
		binary.BigEndian.PutUint16(l4[2:], p.dst.Port())
		binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
	default:
		l4 = make([]byte, 8+p.payload)
	}
	for i := len(l4) - p.payload; i < len(l4); i++ {
		l4[i] = byte(i)
	}
	var l3 []byte
	if p.src.Addr().Is4() {
		ihl := 20 + len(p.ipOpts)
		l3 = make([]byte, ihl, ihl+len(l4))
		l3[0] = 0x40 | byte(ihl/4)
		l3[1] = p.tos
		binary.BigEndian.PutUint16(l3[2:], uint16(ihl+len(l4)))
		binary.BigEndian.PutUint16(l3[6:], p.fragOff)
		l3[8] = 64
		l3[9] = byte(p.proto)
		s, d := p.src.Addr().As4(), p.dst.Addr().As4()
		copy(l3[12:], s[:])
		copy(l3[16:], d[:])
		copy(l3[20:], p.ipOpts)
		binary.BigEndian.PutUint16(l3[10:], checksum(l3, 0))
		if !p.noUDPSum {
			l4csum(l4, p.proto, pseudo4(s, d, byte(p.proto), len(l4)))
		}
	} else {
		l3 = make([]byte, 40, 40+len(l4))
		l3[0] = 0x60 | p.tos>>4
		l3[1] = p.tos << 4
		binary.BigEndian.PutUint16(l3[4:], uint16(len(l4)))
		l3[6] = byte(p.proto)
		l3[7] = 64
		s, d := p.src.Addr().As16(), p.dst.Addr().As16()
		copy(l3[8:], s[:])
		copy(l3[24:], d[:])
		l4csum(l4, p.proto, pseudo6(s, d, byte(p.proto), len(l4)))
	}
	l3 = append(l3, l4...)
	eth := make([]byte, 0, 14+4*len(p.vlans)+len(l3))
	eth = append(eth, dirMAC...)
	eth = append(eth, clientMAC...)
	for _, v := range p.vlans {
		eth = binary.BigEndian.AppendUint16(eth, 0x8100)
		eth = binary.BigEndian.AppendUint16(eth, v)
	}
	et := uint16(0x0800)
	if p.src.Addr().Is6() {
		et = 0x86dd
	}
	eth = binary.BigEndian.AppendUint16(eth, et)
	return append(eth, l3...)
}

func l4csum(l4 []byte, proto ipvs.Protocol, sum uint32) {
	switch proto {
	case ipvs.TCP:
		binary.BigEndian.PutUint16(l4[16:], checksum(l4, sum))
	case ipvs.UDP:
		binary.BigEndian.PutUint16(l4[6:], checksum(l4, sum))
	}
}

func pseudo4(s, d [4]byte, proto byte, n int) uint32 {
	var sum uint32
	for i := 0; i < 4; i += 2 {
		sum += uint32(s[i])<<8 | uint32(s[i+1])
		sum += uint32(d[i])<<8 | uint32(d[i+1])
	}
	return sum + uint32(proto) + uint32(n)
}

func pseudo6(s, d [16]byte, proto byte, n int) uint32 {
	var sum uint32
	for i := 0; i < 16; i += 2 {
		sum += uint32(s[i])<<8 | uint32(s[i+1])
		sum += uint32(d[i])<<8 | uint32(d[i+1])
	}
	return sum + uint32(proto) + uint32(n)
}

// checksum is the Internet checksum (RFC 1071) of b, starting from sum.
func checksum(b []byte, sum uint32) uint16 {
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
