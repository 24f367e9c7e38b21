package xdp

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// Partial checksums: what a local, veth or tap sender hands the director
// (CHECKSUM_PARTIAL), with only the pseudo-header seed in the TCP or UDP
// checksum field.

// l4Sum is the offset of the TCP or UDP checksum in an untagged frame.
func l4Sum(b []byte) int {
	if ipProto(b) == 6 {
		return l4At(b) + 16
	}
	return l4At(b) + 6
}

// seedOf is the folded pseudo-header sum of an untagged frame as it is:
// what the kernel puts into the field of a CHECKSUM_PARTIAL packet.
func seedOf(b []byte) uint16 {
	return ^checksum(nil, pseudoOf(b))
}

// pseudoOf is the unfolded pseudo-header sum of an untagged frame, its L4
// length as it is.
func pseudoOf(b []byte) uint32 {
	n := len(b) - l4At(b)
	if binary.BigEndian.Uint16(b[12:]) == 0x0800 {
		return pseudo4([4]byte(b[26:30]), [4]byte(b[30:34]), ipProto(b), n)
	}
	return pseudo6([16]byte(b[22:38]), [16]byte(b[38:54]), ipProto(b), n)
}

// partial is b as a partial-checksum sender hands it over.
func partial(b []byte) []byte {
	b = bytes.Clone(b)
	binary.BigEndian.PutUint16(b[l4Sum(b):], seedOf(b))
	return b
}

// resum gives b a correct complete L4 checksum again after its payload
// was changed.
func resum(b []byte) {
	at := l4Sum(b)
	binary.BigEndian.PutUint16(b[at:], 0)
	c := checksum(b[l4At(b):], pseudoOf(b))
	if c == 0 && l4Sum(b) == l4At(b)+6 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(b[at:], c)
}

// csumStep is one packet of a partial-checksum flow and the frame that
// must leave (with a complete checksum).
type csumStep struct {
	name    string
	in      pktSpec
	reply   bool // to FullNAT's local address: in.dst is set from the request
	want    func(local netip.AddrPort) pktSpec
	wantMAC net.HardwareAddr
}

// csumFlows are TCP handshakes and data (and a UDP exchange) through NAT
// and FullNAT, IPv4 and IPv6, TOA included.
func csumFlows(rs4, rs6 netip.AddrPort) map[string][]csumStep {
	flows := map[string][]csumStep{}
	mss := []byte{2, 4, 5, 0xb4}
	for _, f := range []struct {
		name     string
		cli, vip netip.AddrPort
		rs       netip.AddrPort
	}{
		{"IPv4", netip.MustParseAddrPort("198.18.2.20:41000"), vip, rs4},
		{"IPv6", netip.MustParseAddrPort("[2001:db8:3::20]:41000"), vip6, rs6},
	} {
		cli, v, rs := f.cli, f.vip, f.rs
		same := func(p pktSpec) func(netip.AddrPort) pktSpec { return func(netip.AddrPort) pktSpec { return p } }
		flows["NAT/"+f.name] = []csumStep{
			{name: "SYN", in: pktSpec{src: cli, dst: v, proto: ipvs.TCP, flags: tcpSYN, tcpOpts: mss},
				want: same(pktSpec{src: cli, dst: rs, proto: ipvs.TCP, flags: tcpSYN, tcpOpts: mss}), wantMAC: rsMAC(11)},
			{name: "SYN+ACK", in: pktSpec{src: rs, dst: cli, proto: ipvs.TCP, flags: tcpSYN | tcpACK, tcpOpts: mss},
				want: same(pktSpec{src: v, dst: cli, proto: ipvs.TCP, flags: tcpSYN | tcpACK, tcpOpts: mss}), wantMAC: routerMAC},
			{name: "data", in: pktSpec{src: cli, dst: v, proto: ipvs.TCP, flags: tcpACK, payload: 1001},
				want: same(pktSpec{src: cli, dst: rs, proto: ipvs.TCP, flags: tcpACK, payload: 1001}), wantMAC: rsMAC(11)},
			{name: "reply data", in: pktSpec{src: rs, dst: cli, proto: ipvs.TCP, flags: tcpACK, payload: 1400},
				want: same(pktSpec{src: v, dst: cli, proto: ipvs.TCP, flags: tcpACK, payload: 1400}), wantMAC: routerMAC},
		}
		ucli := netip.AddrPortFrom(cli.Addr(), 41001)
		uvip := netip.AddrPortFrom(v.Addr(), 53)
		urs := netip.AddrPortFrom(rs.Addr(), 5353)
		flows["FullNAT/"+f.name] = []csumStep{
			{name: "SYN gets TOA", in: pktSpec{src: cli, dst: v, proto: ipvs.TCP, flags: tcpSYN, tcpOpts: mss},
				want: func(l netip.AddrPort) pktSpec {
					return pktSpec{src: l, dst: rs, proto: ipvs.TCP, flags: tcpSYN, tcpOpts: append(toaOpt(cli), mss...)}
				}, wantMAC: rsMAC(11)},
			{name: "SYN+ACK", reply: true, in: pktSpec{src: rs, proto: ipvs.TCP, flags: tcpSYN | tcpACK},
				want: same(pktSpec{src: v, dst: cli, proto: ipvs.TCP, flags: tcpSYN | tcpACK}), wantMAC: routerMAC},
			{name: "first ACK gets TOA", in: pktSpec{src: cli, dst: v, proto: ipvs.TCP, flags: tcpACK},
				want: func(l netip.AddrPort) pktSpec {
					return pktSpec{src: l, dst: rs, proto: ipvs.TCP, flags: tcpACK, tcpOpts: toaOpt(cli)}
				}, wantMAC: rsMAC(11)},
			{name: "data", in: pktSpec{src: cli, dst: v, proto: ipvs.TCP, flags: tcpACK, payload: 333},
				want: func(l netip.AddrPort) pktSpec {
					return pktSpec{src: l, dst: rs, proto: ipvs.TCP, flags: tcpACK, payload: 333}
				}, wantMAC: rsMAC(11)},
			{name: "reply data", reply: true, in: pktSpec{src: rs, proto: ipvs.TCP, flags: tcpACK, payload: 777},
				want: same(pktSpec{src: v, dst: cli, proto: ipvs.TCP, flags: tcpACK, payload: 777}), wantMAC: routerMAC},
		}
		flows["FullNAT UDP/"+f.name] = []csumStep{
			{name: "request", in: pktSpec{src: ucli, dst: uvip, proto: ipvs.UDP, payload: 21},
				want: func(l netip.AddrPort) pktSpec { return pktSpec{src: l, dst: urs, proto: ipvs.UDP, payload: 21} }, wantMAC: rsMAC(11)},
			{name: "reply", reply: true, in: pktSpec{src: urs, proto: ipvs.UDP, payload: 9},
				want: same(pktSpec{src: uvip, dst: ucli, proto: ipvs.UDP, payload: 9}), wantMAC: routerMAC},
		}
	}
	return flows
}

func csumEngine(t *testing.T) (*Engine, netip.AddrPort, netip.AddrPort) {
	natLab(t)
	rs4 := netip.AddrPortFrom(rsIP(11), 8080)
	rs6 := netip.AddrPortFrom(v6(11), 8080)
	e := newTestEngine(t, snapOf(
		natService(vip, ipvs.TCP, ipvs.Masq, rs4),
		natService(vip6, ipvs.TCP, ipvs.Masq, rs6),
		natService(netip.AddrPortFrom(vip.Addr(), 81), ipvs.TCP, ipvs.FullNAT, netip.AddrPortFrom(rsIP(11), 8080), laddr4),
		natService(netip.AddrPortFrom(vip6.Addr(), 81), ipvs.TCP, ipvs.FullNAT, netip.AddrPortFrom(v6(11), 8080), laddr6),
		natService(netip.AddrPortFrom(vip.Addr(), 53), ipvs.UDP, ipvs.FullNAT, netip.AddrPortFrom(rsIP(11), 5353), laddr4),
		natService(netip.AddrPortFrom(vip6.Addr(), 53), ipvs.UDP, ipvs.FullNAT, netip.AddrPortFrom(v6(11), 5353), laddr6),
	))
	return e, rs4, rs6
}

// runFlow sends each step's packet through e, as prep makes it, and
// returns what left. FullNAT's services are on port 81.
func runFlow(t *testing.T, e *Engine, name string, steps []csumStep, prep func([]byte) []byte, check func(t *testing.T, out, want []byte)) {
	var local netip.AddrPort
	fullnat := bytes.HasPrefix([]byte(name), []byte("FullNAT/"))
	for _, st := range steps {
		t.Run(name+"/"+st.name, func(t *testing.T) {
			in := st.in
			if fullnat && in.proto == ipvs.TCP && !st.reply {
				in.dst = netip.AddrPortFrom(in.dst.Addr(), 81)
			}
			if st.reply {
				if !local.IsValid() {
					t.Fatal("no local port from the request")
				}
				in.dst = local
			}
			v, out := runOn(t, e, prep(build(in)))
			if v != xdpTX {
				t.Fatalf("verdict %d, want XDP_TX (drops %v)", v, e.Drops())
			}
			if !st.reply && !local.IsValid() && name != "NAT/IPv4" && name != "NAT/IPv6" {
				local = netip.AddrPortFrom(netip.AddrFrom16(addr16(out, true)).Unmap(), srcPort(out))
			}
			w := st.want(local)
			if fullnat && w.proto == ipvs.TCP && st.reply {
				w.src = netip.AddrPortFrom(w.src.Addr(), 81)
			}
			check(t, out, frame(w, st.wantMAC))
		})
	}
}

// addr16 is the source (or destination) address of an untagged frame.
func addr16(b []byte, src bool) [16]byte {
	if binary.BigEndian.Uint16(b[12:]) == 0x0800 {
		o := 14 + 12
		if !src {
			o += 4
		}
		return netip.AddrFrom4([4]byte(b[o : o+4])).As16()
	}
	o := 14 + 8
	if !src {
		o += 16
	}
	return [16]byte(b[o : o+16])
}

// TestPartialChecksumNative: in native mode (and in a test run) a packet
// leaves as a bare frame, so a seed must leave as a complete checksum.
func TestPartialChecksumNative(t *testing.T) {
	e, rs4, rs6 := csumEngine(t)
	for name, steps := range csumFlows(rs4, rs6) {
		runFlow(t, e, name, steps, partial, func(t *testing.T, out, want []byte) {
			if !bytes.Equal(out, want) {
				t.Errorf("out\n%x\nwant\n%x", out, want)
			}
			validSums(t, out)
		})
	}
}

// TestPartialChecksumGeneric: in generic mode the skb stays
// CHECKSUM_PARTIAL to the device that fills the checksum in, so the field
// must stay the seed of the rewritten packet; FullNAT's TOA goes in at the
// tail side, the TCP header where it was (the skb's checksum offset does
// not follow the headers).
func TestPartialChecksumGeneric(t *testing.T) {
	e, rs4, rs6 := csumEngine(t)
	if err := e.objs.GenericIfs.Update(uint32(labIndex), uint32(1), ebpf.UpdateAny); err != nil {
		t.Fatal(err)
	}
	for name, steps := range csumFlows(rs4, rs6) {
		runFlow(t, e, name, steps, partial, func(t *testing.T, out, want []byte) {
			if !bytes.Equal(out, partial(want)) {
				t.Errorf("out\n%x\nwant (the seed of the new header)\n%x", out, partial(want))
			}
		})
	}
	t.Run("complete checksums are updated", func(t *testing.T) {
		c := netip.MustParseAddrPort("198.18.2.21:42000")
		v, out := runOn(t, e, build(pktSpec{src: c, dst: vip, proto: ipvs.TCP, flags: tcpSYN}))
		if v != xdpTX {
			t.Fatalf("verdict %d", v)
		}
		want := frame(pktSpec{src: c, dst: rs4, proto: ipvs.TCP, flags: tcpSYN}, rsMAC(11))
		if !bytes.Equal(out, want) {
			t.Errorf("out\n%x\nwant\n%x", out, want)
		}
	})
}

// seedLike is a complete data segment from c to vip whose valid checksum
// equals its seed (the 1-in-65536 coincidence): two payload bytes are
// chosen to make it so.
func seedLike(t *testing.T, in pktSpec) []byte {
	b := build(in)
	end := len(b)
	for w := 0; w < 0x10000; w++ {
		binary.BigEndian.PutUint16(b[end-2:], uint16(w))
		resum(b)
		if binary.BigEndian.Uint16(b[l4Sum(b):]) == seedOf(b) {
			return b
		}
	}
	t.Fatal("no payload makes the checksum equal the seed")
	return nil
}

// TestChecksumEqualToSeed: a complete checksum that happens to equal the
// seed is a valid checksum; it leaves updated, in either mode.
func TestChecksumEqualToSeed(t *testing.T) {
	e, rs4, rs6 := csumEngine(t)
	for _, generic := range []bool{false, true} {
		if generic {
			if err := e.objs.GenericIfs.Update(uint32(labIndex), uint32(1), ebpf.UpdateAny); err != nil {
				t.Fatal(err)
			}
		}
		for i, c := range []struct{ cli, vip, rs netip.AddrPort }{
			{netip.MustParseAddrPort("198.18.2.22:43000"), vip, rs4},
			{netip.MustParseAddrPort("[2001:db8:3::22]:43000"), vip6, rs6},
		} {
			cli := netip.AddrPortFrom(c.cli.Addr(), c.cli.Port()+uint16(i))
			if generic {
				cli = netip.AddrPortFrom(cli.Addr(), cli.Port()+10)
			}
			if v, _ := runOn(t, e, build(pktSpec{src: cli, dst: c.vip, proto: ipvs.TCP, flags: tcpSYN})); v != xdpTX {
				t.Fatalf("SYN: verdict %d", v)
			}
			in := seedLike(t, pktSpec{src: cli, dst: c.vip, proto: ipvs.TCP, flags: tcpACK, payload: 64})
			v, out := runOn(t, e, in)
			if v != xdpTX {
				t.Fatalf("verdict %d", v)
			}
			want := frame(pktSpec{src: cli, dst: c.rs, proto: ipvs.TCP, flags: tcpACK, payload: 64}, rsMAC(11))
			copy(want[len(want)-2:], in[len(in)-2:])
			resum(want)
			if !bytes.Equal(out, want) {
				t.Errorf("generic %v, %s: out\n%x\nwant\n%x", generic, cli, out, want)
			}
			validSums(t, out)
		}
	}
}

// TestPartialChecksumDRAndTUN: DR and TUN forward the packet as it came,
// so in native mode a seed must leave completed (inside the tunnel for
// TUN), and in generic mode it stays the seed the device fills in.
func TestPartialChecksumDRAndTUN(t *testing.T) {
	natLab(t)
	tunRS4, tunRS6 := netip.MustParseAddr("198.19.0.21"), netip.MustParseAddr("2001:db8:1::21")
	gue := ipvs.Dest{Addr: tunRS4, Port: 82, Method: ipvs.Tunnel, Weight: 1, TunType: ipvs.TunGUE, TunPort: 6080}
	at := func(v netip.AddrPort, port uint16) netip.AddrPort { return netip.AddrPortFrom(v.Addr(), port) }
	e := newTestEngine(t, snapOf(
		oneService(vip, ipvs.TCP, "rr", ipvs.Dest{Addr: rsIP(11), Port: 80, Method: ipvs.Route, Weight: 1}),
		oneService(at(vip6, 53), ipvs.UDP, "rr", ipvs.Dest{Addr: v6(11), Port: 53, Method: ipvs.Route, Weight: 1}),
		oneService(at(vip, 81), ipvs.TCP, "rr", ipvs.Dest{Addr: tunRS4, Port: 81, Method: ipvs.Tunnel, Weight: 1}),
		oneService(at(vip, 82), ipvs.UDP, "rr", gue),
		oneService(at(vip6, 81), ipvs.TCP, "rr", ipvs.Dest{Addr: tunRS6, Port: 81, Method: ipvs.Tunnel, Weight: 1}),
		oneService(at(vip, 83), ipvs.TCP, "rr", withCsum(gue)),
		oneService(at(vip6, 83), ipvs.UDP, "rr", withCsum(ipvs.Dest{Addr: tunRS6, Port: 83, Method: ipvs.Tunnel, Weight: 1, TunType: ipvs.TunGRE})),
	))
	mss := []byte{2, 4, 5, 0xb4}
	tests := []struct {
		name  string
		in    pktSpec
		encap int  // bytes the tunnel puts in front of the inner IP header
		outer bool // the tunnel has a checksum over the inner packet: GUE's UDP or GRE's
	}{
		{name: "DR IPv4 TCP SYN", in: pktSpec{src: client, dst: vip, proto: ipvs.TCP, flags: tcpSYN, tcpOpts: mss}},
		{name: "DR IPv4 TCP data", in: pktSpec{src: client, dst: vip, proto: ipvs.TCP, flags: tcpACK, payload: 1001}},
		{name: "DR IPv6 UDP", in: pktSpec{src: cli6, dst: at(vip6, 53), proto: ipvs.UDP, payload: 77}},
		{name: "IPIP TCP SYN", in: pktSpec{src: client, dst: at(vip, 81), proto: ipvs.TCP, flags: tcpSYN, tcpOpts: mss}, encap: 20},
		{name: "IPIP TCP data", in: pktSpec{src: client, dst: at(vip, 81), proto: ipvs.TCP, flags: tcpACK, payload: 1400}, encap: 20},
		{name: "GUE UDP", in: pktSpec{src: client, dst: at(vip, 82), proto: ipvs.UDP, payload: 33}, encap: 32},
		{name: "IPv6 in IPv6 TCP SYN", in: pktSpec{src: cli6, dst: at(vip6, 81), proto: ipvs.TCP, flags: tcpSYN}, encap: 40},
		{name: "IPv6 in IPv6 TCP data", in: pktSpec{src: cli6, dst: at(vip6, 81), proto: ipvs.TCP, flags: tcpACK, payload: 500}, encap: 40},
		{name: "GUE with checksum TCP SYN", in: pktSpec{src: client, dst: at(vip, 83), proto: ipvs.TCP, flags: tcpSYN, payload: 301}, encap: 32, outer: true},
		{name: "GRE with checksum IPv6 UDP", in: pktSpec{src: cli6, dst: at(vip6, 83), proto: ipvs.UDP, payload: 77}, encap: 48, outer: true},
	}
	for _, generic := range []bool{false, true} {
		mode := "native"
		if generic {
			mode = "generic"
			if err := e.objs.GenericIfs.Update(uint32(labIndex), uint32(1), ebpf.UpdateAny); err != nil {
				t.Fatal(err)
			}
		}
		for _, tc := range tests {
			t.Run(mode+"/"+tc.name, func(t *testing.T) {
				in := partial(build(tc.in))
				v, out := runOn(t, e, in)
				if v != xdpTX && v != xdpRedirect {
					t.Fatalf("verdict %d, want XDP_TX or XDP_REDIRECT (drops %v)", v, e.Drops())
				}
				inner := out[14+tc.encap:]
				if len(inner) < len(in)-14 {
					t.Fatalf("frame of %d bytes, want %d", len(out), len(in)+tc.encap)
				}
				inner = inner[:len(in)-14]
				want := build(tc.in)[14:] // the complete checksum
				if generic {
					want = in[14:] // the seed, unchanged
				}
				if !bytes.Equal(inner, want) {
					t.Errorf("IP packet out\n%x\nwant\n%x", inner, want)
				}
				if tc.outer {
					// The tunnel's checksum is right for the packet on
					// the wire: the inner one complete, once the device
					// has filled in the seed in generic mode.
					wire := append(slices.Clone(out[:14+tc.encap]), build(tc.in)[14:]...)
					if err := tunnelSumErr(wire); err != nil {
						t.Error(err)
					}
				}
			})
		}
	}
}

// withCsum is d with --tun-csum.
func withCsum(d ipvs.Dest) ipvs.Dest {
	d.TunFlags = tunFlagCsum
	return d
}

// tunnelSumErr verifies the checksum a GUE (outer UDP) or GRE frame
// carries over its inner packet.
func tunnelSumErr(frame []byte) error {
	proto := ipProto(frame)
	var sum uint32
	if proto == 17 {
		sum = pseudoOf(frame)
	}
	if c := checksum(frame[l4At(frame):], sum); c != 0 {
		return fmt.Errorf("the tunnel's checksum (IP protocol %d) does not verify over the inner packet: sum %#04x", proto, c)
	}
	return nil
}
