package realserver

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"

	"github.com/gvs-lb/gvs/internal/kernelfeat"
	"github.com/gvs-lb/gvs/internal/netns/netnstest"
)

func requireRoot(t *testing.T) {
	t.Helper()
	kernelfeat.RequireRoot(t, "makes a network namespace and loads a BPF program")
}

// inNewNS runs the rest of the test in a fresh network namespace with lo
// and a veth pair rs0/rs1 up.
func inNewNS(t *testing.T) {
	requireRoot(t)
	netnstest.EnterNew(t)
	if err := netlink.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "rs0"}, PeerName: "rs1"}); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"rs0", "rs1"} {
		l, _ := netlink.LinkByName(n)
		netlink.LinkSetUp(l)
	}
}

func readSysctl(t *testing.T, p string) string {
	b, err := os.ReadFile(filepath.Join("/proc/sys", p))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func TestSetupTeardown(t *testing.T) {
	inNewNS(t)
	paths := []string{"net/ipv4/conf/all/arp_ignore", "net/ipv4/conf/all/arp_announce", "net/ipv4/conf/lo/arp_ignore", "net/ipv4/conf/lo/arp_announce", "net/ipv4/conf/all/rp_filter", "net/ipv4/conf/rs0/rp_filter"}
	os.WriteFile("/proc/sys/net/ipv4/conf/all/rp_filter", []byte("2"), 0o644)
	before := map[string]string{}
	for _, p := range paths {
		before[p] = readSysctl(t, p)
	}
	vip := netip.MustParseAddr("198.18.0.200")
	state := filepath.Join(t.TempDir(), "rs.json")
	s, err := Setup(vip, TUN, Options{Interface: "rs0", GUEPorts: []uint16{6080}, Generic: true, StateFile: state})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"net/ipv4/conf/all/arp_ignore": "1", "net/ipv4/conf/all/arp_announce": "2", "net/ipv4/conf/lo/arp_ignore": "1", "net/ipv4/conf/lo/arp_announce": "2", "net/ipv4/conf/all/rp_filter": "0", "net/ipv4/conf/rs0/rp_filter": "0"}
	for p, v := range want {
		if got := readSysctl(t, p); got != v {
			t.Errorf("%s = %s, want %s", p, got, v)
		}
	}
	lo, _ := netlink.LinkByName("lo")
	if !hasAddr(lo, vip) {
		t.Errorf("VIP %s not on lo", vip)
	}
	if _, err := os.Stat(state); err != nil {
		t.Errorf("state file: %v", err)
	}
	if err := s.Teardown(); err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if got := readSysctl(t, p); got != before[p] {
			t.Errorf("after teardown %s = %s, want %s back", p, got, before[p])
		}
	}
	if hasAddr(lo, vip) {
		t.Errorf("VIP still on lo after teardown")
	}
	if _, err := os.Stat(state); err == nil {
		t.Errorf("state file left behind")
	}
}

func hasAddr(l netlink.Link, a netip.Addr) bool {
	addrs, _ := netlink.AddrList(l, netlink.FAMILY_ALL)
	for _, x := range addrs {
		if y, ok := netip.AddrFromSlice(x.IP); ok && y.Unmap() == a {
			return true
		}
	}
	return false
}

func TestDecap(t *testing.T) {
	requireRoot(t)
	var o decapObjects
	if err := loadDecapObjects(&o, nil); err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	o.GuePorts.Update(uint16(0xc017), uint8(1), ebpf.UpdateAny) // port 6080 in network order
	inner := ipv4(6, []byte("inner TCP segment..."))
	eth := []byte{2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00}
	gue := append(binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(nil, 50000), 6080), 0, byte(8+4+len(inner)), 0, 0)
	gue = append(gue, 0, 4, 0, 0)
	tests := []struct {
		name    string
		in      []byte
		out     []byte
		changed bool
	}{
		{name: "IPIP", in: cat(eth, ipv4(4, inner)), out: cat(eth, inner), changed: true},
		{name: "GUE", in: cat(eth, ipv4(17, append(gue, inner...))), out: cat(eth, inner), changed: true},
		{name: "GRE", in: cat(eth, ipv4(47, cat([]byte{0, 0, 8, 0}, inner))), out: cat(eth, inner), changed: true},
		{name: "GRE with checksum", in: cat(eth, ipv4(47, cat([]byte{0x80, 0, 8, 0, 0x12, 0x34, 0, 0}, inner))), out: cat(eth, inner), changed: true},
		{name: "GRE with a key is not IPVS's", in: cat(eth, ipv4(47, cat([]byte{0x20, 0, 8, 0, 0, 0, 0, 7}, inner)))},
		{name: "GRE carrying Ethernet is not IPVS's", in: cat(eth, ipv4(47, cat([]byte{0, 0, 0x65, 0x58}, inner)))},
		{name: "plain TCP", in: cat(eth, inner)},
		{name: "UDP to another port", in: cat(eth, ipv4(17, append([]byte{0, 1, 0, 2, 0, 8, 0, 0}, inner...)))},
		{name: "truncated IPIP", in: cat(eth, ipv4(4, nil)[:20])},
	}
	kernelfeat.Require(t, kernelfeat.XDPTestRun)
	for _, tc := range tests {
		opts := &ebpf.RunOptions{Data: tc.in, DataOut: make([]byte, len(tc.in)+64)}
		v, err := o.XdpDecap.Run(opts)
		if err != nil {
			t.Fatal(err)
		}
		if v != 2 {
			t.Errorf("%s: verdict %d, want pass", tc.name, v)
		}
		want := tc.in
		if tc.changed {
			want = tc.out
		}
		if !bytes.Equal(opts.DataOut, want) {
			t.Errorf("%s: out\n%x\nwant\n%x", tc.name, opts.DataOut, want)
		}
	}
}

func cat(a, b []byte) []byte { return append(append([]byte{}, a...), b...) }

// ipv4 is an IPv4 packet 198.18.0.1 -> 198.18.0.11 carrying payload.
func ipv4(proto byte, payload []byte) []byte {
	h := []byte{0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0, 198, 18, 0, 1, 198, 18, 0, 11}
	binary.BigEndian.PutUint16(h[2:], uint16(20+len(payload)))
	return append(h, payload...)
}

// TestIPv6VIPUsableAtOnce: a server binds to an IPv6 VIP right after
// Setup, so the address must not start tentative (waiting for a duplicate
// address detection that lo never does). No subtests: they would run on
// threads outside the namespace.
func TestIPv6VIPUsableAtOnce(t *testing.T) {
	inNewNS(t)
	vip := netip.MustParseAddr("2001:db8::200")
	for _, tt := range []struct {
		name string
		mode Mode
	}{
		{"DR", DR},
		{"TUN", TUN},
	} {
		s, err := Setup(vip, tt.mode, Options{Interface: "rs0", Generic: true})
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		ln, err := net.Listen("tcp", net.JoinHostPort(vip.String(), "0"))
		if err != nil {
			t.Errorf("%s: binding to the VIP just after Setup: %v", tt.name, err)
		} else {
			ln.Close()
		}
		if err := s.Teardown(); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
	}
}

// TestSetupFailureUndoes: a Setup that fails half way returns the error
// and leaves neither the VIP nor changed sysctls behind.
func TestSetupFailureUndoes(t *testing.T) {
	inNewNS(t)
	before := readSysctl(t, "net/ipv4/conf/all/arp_ignore")
	vip := netip.MustParseAddr("198.18.0.200")
	if _, err := Setup(vip, TUN, Options{Interface: "nosuch0"}); err == nil {
		t.Fatal("Setup with a missing interface succeeded")
	}
	lo, _ := netlink.LinkByName("lo")
	if hasAddr(lo, vip) {
		t.Error("VIP left on lo after a failed Setup")
	}
	if got := readSysctl(t, "net/ipv4/conf/all/arp_ignore"); got != before {
		t.Errorf("arp_ignore = %s after a failed Setup, want %s back", got, before)
	}
}
