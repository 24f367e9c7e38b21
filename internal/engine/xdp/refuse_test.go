package xdp

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// TestRefusal sends new connections that no real server can take (every
// server at weight 0, over its upper threshold, or in an sh slot at
// weight 0 without fallback) and wants what the kernel's ip_vs_leave
// sends: an ICMP (IPv4) or ICMPv6 port unreachable from the virtual
// address to the client, for TCP and UDP, quoting the packet (576 bytes
// in all for ICMP, 1280 for ICMPv6), out of the interface it came in on.
func TestRefusal(t *testing.T) {
	labNS(t, 11)
	quiesced := ipvs.Dest{Addr: rsIP(11), Port: 80, Method: ipvs.Route, Weight: 0}
	full := ipvs.Dest{Addr: rsIP(11), Port: 80, Method: ipvs.Route, Weight: 1, UThreshold: 1}
	at := func(a netip.AddrPort, port uint16) netip.AddrPort { return netip.AddrPortFrom(a.Addr(), port) }
	e := newTestEngine(t, snapOf(
		oneService(vip, ipvs.TCP, "wrr", quiesced),
		oneService(vip, ipvs.UDP, "rr", quiesced),
		oneService(vip6, ipvs.TCP, "rr", ipvs.Dest{Addr: v6(11), Port: 80, Method: ipvs.Route}),
		oneService(vip6, ipvs.UDP, "wlc", ipvs.Dest{Addr: v6(11), Port: 80, Method: ipvs.Route}),
		oneService(at(vip, 81), ipvs.TCP, "rr", full),
		oneService(at(vip, 82), ipvs.TCP, "sh", quiesced),
	))
	// The one connection the server at :81 takes before its threshold.
	if v, _ := runOut(t, e, build(pktSpec{src: client, dst: at(vip, 81), proto: ipvs.TCP, flags: tcpSYN})); v != xdpRedirect {
		t.Fatalf("first connection to :81: verdict %d, want it forwarded", v)
	}
	c6 := netip.MustParseAddrPort("[2001:db8:3::20]:41000")
	tests := []struct {
		name string
		spec pktSpec
	}{
		{"TCP, every server at weight 0", pktSpec{src: client, dst: vip, proto: ipvs.TCP, flags: tcpSYN, tcpOpts: []byte{2, 4, 5, 0xb4}}},
		{"UDP, every server at weight 0", pktSpec{src: client, dst: vip, proto: ipvs.UDP, payload: 30}},
		{"UDP, an odd length", pktSpec{src: client, dst: vip, proto: ipvs.UDP, payload: 5}},
		{"UDP, a datagram longer than the quote", pktSpec{src: client, dst: vip, proto: ipvs.UDP, payload: 1400}},
		{"TCP over IPv6", pktSpec{src: c6, dst: vip6, proto: ipvs.TCP, flags: tcpSYN}},
		{"UDP over IPv6, an odd length", pktSpec{src: c6, dst: vip6, proto: ipvs.UDP, payload: 5}},
		{"UDP over IPv6, longer than the quote", pktSpec{src: c6, dst: vip6, proto: ipvs.UDP, payload: 1400}},
		{"TCP, the server over its upper threshold", pktSpec{src: at(client, 2), dst: at(vip, 81), proto: ipvs.TCP, flags: tcpSYN}},
		{"TCP, the sh slot's server at weight 0", pktSpec{src: client, dst: at(vip, 82), proto: ipvs.TCP, flags: tcpSYN}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := build(tc.spec)
			before := e.Drops()["refused"]
			v, out := runOut(t, e, in)
			if v != xdpTX {
				t.Fatalf("verdict %d, want XDP_TX", v)
			}
			want := portUnreachable(in, out)
			if !bytes.Equal(out[:len(want)], want) {
				t.Fatalf("refusal\n got %x\nwant %x", out[:len(want)], want)
			}
			if got := e.Drops()["refused"]; got != before+1 {
				t.Errorf("refused count %d, want %d", got, before+1)
			}
		})
	}
}

// portUnreachable is the frame the program answers the frame in with
// when no real server is available, built here field by field: Ethernet
// back to the sender, then an IPv4 ICMP type 3 code 3 (TOS 0xc0, TTL 64,
// no DF, the IP ID the program chose in got) or an ICMPv6 type 1 code 4
// (hop limit 64), from the address the packet was sent to, quoting it up
// to 576 or 1280 bytes in all.
func portUnreachable(in, got []byte) []byte {
	ip := in[14:]
	out := append([]byte{}, in[6:12]...)
	out = append(out, in[0:6]...)
	if ip[0]>>4 == 4 {
		quote := ip[:min(len(ip), 576-28)]
		msg := append([]byte{3, 3, 0, 0, 0, 0, 0, 0}, quote...)
		binary.BigEndian.PutUint16(msg[2:], checksum(msg, 0))
		h := []byte{0x45, 0xc0, 0, 0, got[18], got[19], 0, 0, 64, 1, 0, 0}
		binary.BigEndian.PutUint16(h[2:], uint16(20+len(msg)))
		h = append(h, ip[16:20]...)
		h = append(h, ip[12:16]...)
		binary.BigEndian.PutUint16(h[10:], checksum(h, 0))
		out = append(out, 0x08, 0x00)
		out = append(out, h...)
		return append(out, msg...)
	}
	src, dst := [16]byte(ip[24:40]), [16]byte(ip[8:24])
	quote := ip[:min(len(ip), 1280-48)]
	msg := append([]byte{1, 4, 0, 0, 0, 0, 0, 0}, quote...)
	binary.BigEndian.PutUint16(msg[2:], checksum(msg, pseudo6(src, dst, 58, len(msg))))
	out = append(out, 0x86, 0xdd, 0x60, 0, 0, 0)
	out = binary.BigEndian.AppendUint16(out, uint16(len(msg)))
	out = append(out, 58, 64)
	out = append(out, src[:]...)
	out = append(out, dst[:]...)
	return append(out, msg...)
}

// TestRefusalRateLimit sends a flood of new connections to a service
// without a real server: as the kernel limits its ICMP errors (1000 a
// second, bursts of 50), the program refuses at most a burst at once and
// drops the rest.
func TestRefusalRateLimit(t *testing.T) {
	labNS(t, 11)
	e := newTestEngine(t, snapOf(oneService(vip, ipvs.TCP, "rr", ipvs.Dest{Addr: rsIP(11), Port: 80, Method: ipvs.Route})))
	const n = 300
	pkt := build(pktSpec{src: client, dst: vip, proto: ipvs.TCP, flags: tcpSYN})
	// A few tokens come back while the runs go on, one a millisecond.
	for range n {
		if _, err := e.objs.XdpLb.Run(&ebpf.RunOptions{Data: pkt, DataOut: make([]byte, len(pkt)+100)}); err != nil {
			t.Fatal(err)
		}
	}
	d := e.Drops()
	if d["refused"]+d["no-dest"] != n || d["refused"] < 50 || d["refused"] >= n/2 {
		t.Errorf("%d refused and %d dropped of %d, want a burst of 50 (and what came back since) refused, the rest dropped", d["refused"], d["no-dest"], n)
	}
}
