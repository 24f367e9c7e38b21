package toa

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/gvs-lb/gvs/internal/kernelfeat"
)

// tcpHeader is a TCP header with the given options (padded by the caller).
func tcpHeader(opts ...byte) []byte {
	h := make([]byte, 20, 20+len(opts))
	binary.BigEndian.PutUint16(h[0:], 1024)
	binary.BigEndian.PutUint16(h[2:], 80)
	h[12] = byte(5+len(opts)/4) << 4
	h[13] = 0x02
	return append(h, opts...)
}

var (
	client4 = netip.MustParseAddrPort("198.18.2.7:40000")
	client6 = netip.MustParseAddrPort("[2001:db8:3::7]:40000")
)

func TestParse(t *testing.T) {
	mss := []byte{2, 4, 5, 0xb4}
	tests := []struct {
		name string
		tcp  []byte
		want netip.AddrPort // invalid: none
	}{
		{name: "IPv4 first", tcp: tcpHeader(append(Option(client4), mss...)...), want: client4},
		{name: "IPv4 after MSS and NOPs", tcp: tcpHeader(append(append(mss, 1, 1, 1, 1), Option(client4)...)...), want: client4},
		{name: "IPv6", tcp: tcpHeader(Option(client6)...), want: client6},
		{name: "no options", tcp: tcpHeader()},
		{name: "other options only", tcp: tcpHeader(mss...)},
		{name: "after the end of options", tcp: tcpHeader(append([]byte{0, 0, 0, 0}, Option(client4)...)...)},
		{name: "kind 254 of another length", tcp: tcpHeader(254, 4, 0, 1)},
		{name: "kind 254 of length 2", tcp: tcpHeader(254, 2, 1, 1)},
		{name: "option longer than the header", tcp: tcpHeader(254, 12, 0, 1, 1, 2, 3, 4)},
		{name: "zero option length", tcp: tcpHeader(3, 0, 1, 1)},
		{name: "data offset beyond the bytes", tcp: tcpHeader(Option(client4)...)[:24]},
		{name: "short", tcp: []byte{1, 2, 3}},
	}
	for _, tc := range tests {
		got, ok := Parse(tc.tcp)
		if ok != tc.want.IsValid() || got != tc.want {
			t.Errorf("%s: Parse = %v, %v; want %v", tc.name, got, ok, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(tcpHeader(Option(client4)...))
	f.Add(tcpHeader(Option(client6)...))
	f.Add(tcpHeader(1, 1, 254, 8, 0, 0, 0, 0, 0, 0, 0, 0))
	f.Add([]byte{})
	f.Add(tcpHeader(1, 1, 254, 2)) // found by fuzzing: a length too short for the port
	f.Fuzz(func(t *testing.T, b []byte) {
		c, ok := Parse(b)
		if !ok {
			return
		}
		// What Parse finds, Option writes back and Parse finds again.
		again, ok := Parse(tcpHeader(Option(c)...))
		if !ok || again != c {
			t.Fatalf("round trip of %v gave %v, %v", c, again, ok)
		}
	})
}

func requireRoot(t *testing.T) {
	t.Helper()
	kernelfeat.RequireRoot(t, "loads a BPF program")
	kernelfeat.Require(t, kernelfeat.XDPTestRun)
}

// frame is an Ethernet frame from src to dst with the TCP header tcp.
func frame(src, dst netip.AddrPort, tcp []byte) []byte {
	binary.BigEndian.PutUint16(tcp[0:], src.Port())
	binary.BigEndian.PutUint16(tcp[2:], dst.Port())
	b := make([]byte, 12, 100)
	if src.Addr().Is4() {
		b = append(b, 0x08, 0x00, 0x45, 0, 0, byte(20+len(tcp)), 0, 0, 0x40, 0, 64, 6, 0, 0)
		s, d := src.Addr().As4(), dst.Addr().As4()
		b = append(append(b, s[:]...), d[:]...)
	} else {
		b = append(b, 0x86, 0xdd, 0x60, 0, 0, 0, 0, byte(len(tcp)), 6, 64)
		s, d := src.Addr().As16(), dst.Addr().As16()
		b = append(append(b, s[:]...), d[:]...)
	}
	return append(b, tcp...)
}

func TestReaderProgram(t *testing.T) {
	requireRoot(t)
	r, err := NewReader(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	laddr := netip.MustParseAddrPort("198.18.0.50:31000")
	rs := netip.MustParseAddrPort("198.18.0.11:8080")
	laddr6 := netip.MustParseAddrPort("[2001:db8::50]:31000")
	rs6 := netip.MustParseAddrPort("[2001:db8::11]:8080")
	tests := []struct {
		name        string
		src, dst    netip.AddrPort
		tcp         []byte
		tags        []uint16 // VLAN tags' TPIDs, outermost first
		want        netip.AddrPort
		wantRecords bool
	}{
		{name: "IPv4 SYN", src: laddr, dst: rs, tcp: tcpHeader(append(Option(client4), 2, 4, 5, 0xb4)...), want: client4},
		{name: "IPv6 SYN", src: laddr6, dst: rs6, tcp: tcpHeader(Option(client6)...), want: client6},
		{name: "IPv4 client in an IPv6 connection", src: netip.AddrPortFrom(laddr6.Addr(), 31001), dst: rs6, tcp: tcpHeader(Option(client4)...), want: client4},
		{name: "after NOPs", src: netip.AddrPortFrom(laddr.Addr(), 31002), dst: rs, tcp: tcpHeader(append([]byte{1, 1, 1, 1}, Option(client4)...)...), want: client4},
		{name: "last in full options", src: netip.AddrPortFrom(laddr.Addr(), 31004), dst: rs, tcp: tcpHeader(append(bytes.Repeat([]byte{1}, 32), Option(client4)...)...), want: client4},
		{name: "without TOA", src: netip.AddrPortFrom(laddr.Addr(), 31003), dst: rs, tcp: tcpHeader(2, 4, 5, 0xb4)},
		{name: "IPv4 behind 802.1Q", src: netip.AddrPortFrom(laddr.Addr(), 31005), dst: rs, tcp: tcpHeader(Option(client4)...),
			tags: []uint16{0x8100}, want: client4},
		{name: "IPv6 behind 802.1ad and 802.1Q", src: netip.AddrPortFrom(laddr6.Addr(), 31006), dst: rs6, tcp: tcpHeader(Option(client6)...),
			tags: []uint16{0x88a8, 0x8100}, want: client6},
		{name: "behind three tags (not read)", src: netip.AddrPortFrom(laddr.Addr(), 31007), dst: rs, tcp: tcpHeader(Option(client4)...),
			tags: []uint16{0x88a8, 0x8100, 0x8100}},
	}
	for _, tc := range tests {
		in := frame(tc.src, tc.dst, tc.tcp)
		for i := len(tc.tags) - 1; i >= 0; i-- {
			in = slices.Concat(in[:12], []byte{byte(tc.tags[i] >> 8), byte(tc.tags[i]), 0, byte(10 + i)}, in[12:])
		}
		opts := &ebpf.RunOptions{Data: in, DataOut: make([]byte, len(in)+64)}
		v, err := r.objs.ToaRead.Run(opts)
		if err != nil {
			t.Fatal(err)
		}
		if v != 2 || !bytes.Equal(opts.DataOut, in) {
			t.Errorf("%s: verdict %d, want the packet passed unchanged", tc.name, v)
		}
		got, ok := r.Lookup(tc.src, tc.dst)
		if ok != tc.want.IsValid() || got != tc.want {
			t.Errorf("%s: Lookup = %v, %v; want %v", tc.name, got, ok, tc.want)
		}
	}
	if r.Seen() != 7 {
		t.Errorf("Seen = %d, want 7", r.Seen())
	}
}
