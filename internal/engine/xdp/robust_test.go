package xdp

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/kernelfeat"
)

// TestVerdicts gives the program what it must leave alone or refuse.
func TestVerdicts(t *testing.T) {
	labNS(t, 11)
	e := newTestEngine(t, snapOf(
		oneService(vip, ipvs.TCP, "rr", ipvs.Dest{Addr: rsIP(11), Port: 80, Method: ipvs.Route, Weight: 1}),
		oneService(netip.AddrPortFrom(vip.Addr(), 53), ipvs.UDP, "rr", ipvs.Dest{Addr: rsIP(11), Port: 53, Method: ipvs.Route, Weight: 0}),
	))
	opts := []byte{0x01, 0x01, 0x01, 0x00} // NOP NOP NOP EOL
	tests := []struct {
		name    string
		spec    pktSpec
		mutate  func([]byte) []byte
		verdict uint32
	}{
		{name: "SYN to the service", spec: pktSpec{src: client, dst: vip, proto: ipvs.TCP, flags: tcpSYN}, verdict: xdpRedirect},
		{name: "SYN with IP options", spec: pktSpec{src: netip.MustParseAddrPort("198.18.2.8:1"), dst: vip, proto: ipvs.TCP, flags: tcpSYN, ipOpts: opts}, verdict: xdpRedirect},
		{name: "SYN behind two VLAN tags", spec: pktSpec{vlans: []uint16{1, 2}, src: netip.MustParseAddrPort("198.18.2.9:1"), dst: vip, proto: ipvs.TCP, flags: tcpSYN}, verdict: xdpRedirect},
		{name: "three VLAN tags are not parsed", spec: pktSpec{vlans: []uint16{1, 2, 3}, src: netip.MustParseAddrPort("198.18.2.10:1"), dst: vip, proto: ipvs.TCP, flags: tcpSYN}, verdict: xdpPass},
		{name: "ACK of no connection", spec: pktSpec{src: netip.MustParseAddrPort("198.18.2.11:1"), dst: vip, proto: ipvs.TCP, flags: tcpACK}, verdict: xdpPass},
		{name: "SYN+ACK of no connection", spec: pktSpec{src: netip.MustParseAddrPort("198.18.2.11:2"), dst: vip, proto: ipvs.TCP, flags: tcpSYN | tcpACK}, verdict: xdpPass},
		{name: "RST of no connection", spec: pktSpec{src: netip.MustParseAddrPort("198.18.2.11:3"), dst: vip, proto: ipvs.TCP, flags: tcpRST}, verdict: xdpPass},
		{name: "no service on the port", spec: pktSpec{src: client, dst: netip.AddrPortFrom(vip.Addr(), 443), proto: ipvs.TCP, flags: tcpSYN}, verdict: xdpPass},
		{name: "no service for IPv6", spec: pktSpec{src: cli6, dst: vip6, proto: ipvs.TCP, flags: tcpSYN}, verdict: xdpPass},
		{name: "UDP with only a quiesced server is refused (port unreachable)", spec: pktSpec{src: client, dst: netip.AddrPortFrom(vip.Addr(), 53), proto: ipvs.UDP}, verdict: xdpTX},
		{name: "unknown protocol", spec: pktSpec{src: client, dst: vip, proto: 47}, verdict: xdpPass},
		{name: "first fragment", spec: pktSpec{src: netip.MustParseAddrPort("198.18.2.12:1"), dst: vip, proto: ipvs.TCP, flags: tcpSYN, fragOff: 0x2000}, verdict: xdpPass},
		{name: "later fragment", spec: pktSpec{src: netip.MustParseAddrPort("198.18.2.12:2"), dst: vip, proto: ipvs.TCP, flags: tcpSYN, fragOff: 0x0010}, verdict: xdpPass},
		{name: "ARP", spec: pktSpec{src: client, dst: vip, proto: ipvs.TCP, flags: tcpSYN}, mutate: func(b []byte) []byte { b[12], b[13] = 0x08, 0x06; return b }, verdict: xdpPass},
		{name: "IPv4 header length below 5", spec: pktSpec{src: client, dst: vip, proto: ipvs.TCP, flags: tcpSYN}, mutate: func(b []byte) []byte { b[14] = 0x44; return b }, verdict: xdpPass},
		{name: "IPv4 total length beyond the frame", spec: pktSpec{src: client, dst: vip, proto: ipvs.TCP, flags: tcpSYN}, mutate: func(b []byte) []byte { binary.BigEndian.PutUint16(b[16:], 1400); return b }, verdict: xdpPass},
		{name: "IPv6 payload length beyond the frame", spec: pktSpec{src: cli6, dst: vip6, proto: ipvs.TCP, flags: tcpSYN}, mutate: func(b []byte) []byte { binary.BigEndian.PutUint16(b[18:], 1400); return b }, verdict: xdpPass},
		{name: "IPv6 extension header", spec: pktSpec{src: cli6, dst: vip6, proto: ipvs.TCP, flags: tcpSYN}, mutate: func(b []byte) []byte { b[20] = 0; return b }, verdict: xdpPass},
		{name: "IPv4 version 6 in an IPv4 frame", spec: pktSpec{src: client, dst: vip, proto: ipvs.TCP, flags: tcpSYN}, mutate: func(b []byte) []byte { b[14] = 0x65; return b }, verdict: xdpPass},
	}
	for _, tc := range tests {
		in := build(tc.spec)
		if tc.mutate != nil {
			in = tc.mutate(in)
		}
		v, _ := runOut(t, e, in)
		if v != tc.verdict {
			t.Errorf("%s: verdict %d, want %d", tc.name, v, tc.verdict)
		}
	}
}

// TestTruncated cuts valid packets at every length: each prefix gets a
// defined verdict (the kernel refuses frames shorter than Ethernet's
// header), and no prefix is forwarded.
func TestTruncated(t *testing.T) {
	labNS(t, 11)
	e := newTestEngine(t, snapOf(
		oneService(vip, ipvs.TCP, "rr", ipvs.Dest{Addr: rsIP(11), Port: 80, Method: ipvs.Route, Weight: 1}),
		oneService(vip6, ipvs.UDP, "rr", ipvs.Dest{Addr: v6(11), Port: 80, Method: ipvs.Route, Weight: 1}),
	))
	specs := []pktSpec{
		{src: client, dst: vip, proto: ipvs.TCP, flags: tcpSYN, ipOpts: []byte{1, 1, 1, 0}},
		{vlans: []uint16{5, 6}, src: client, dst: vip, proto: ipvs.TCP, flags: tcpSYN},
		{src: cli6, dst: vip6, proto: ipvs.UDP},
	}
	kernelfeat.Require(t, kernelfeat.XDPTestRun)
	for _, spec := range specs {
		full := build(spec)
		for n := 0; n < len(full); n++ {
			opts := &ebpf.RunOptions{Data: slices.Clone(full[:n]), DataOut: make([]byte, n+256)}
			v, err := e.objs.XdpLb.Run(opts)
			if n < 14 {
				if err == nil && v != xdpPass {
					t.Errorf("%d bytes: verdict %d", n, v)
				}
				continue
			}
			if err != nil {
				t.Fatalf("%d bytes: %v", n, err)
			}
			if v != xdpPass {
				t.Errorf("%d of %d bytes: verdict %d, want %d (pass)", n, len(full), v, xdpPass)
			}
		}
	}
}

// TestConnState follows one TCP connection through the kernel's
// input-only states and checks what Conns and Status report.
func TestConnState(t *testing.T) {
	labNS(t, 11, 12)
	e := newTestEngine(t, snapOf(oneService(vip, ipvs.TCP, "rr",
		ipvs.Dest{Addr: rsIP(11), Port: 80, Method: ipvs.Route, Weight: 1},
		ipvs.Dest{Addr: rsIP(12), Port: 80, Method: ipvs.Route, Weight: 1},
	)))
	spec := pktSpec{src: client, dst: vip, proto: ipvs.TCP, payload: 100}
	steps := []struct {
		flags         byte
		state         string
		active, inact uint32
	}{
		{tcpSYN, "SYN_RECV", 0, 1},
		{tcpACK, "ESTABLISHED", 1, 0},
		{tcpACK, "ESTABLISHED", 1, 0},
		{tcpFIN | tcpACK, "FIN_WAIT", 0, 1},
		{tcpRST, "CLOSE", 0, 1},
	}
	for i, st := range steps {
		spec.flags = st.flags
		if v, _ := runOut(t, e, build(spec)); v != xdpRedirect {
			t.Fatalf("step %d: verdict %d", i, v)
		}
		conns := e.Conns()
		if len(conns) != 1 {
			t.Fatalf("step %d: %d connections, want 1", i, len(conns))
		}
		c := conns[0]
		if c.State != st.state || c.Client != client || c.Virtual != vip || c.Dest != netip.AddrPortFrom(rsIP(11), 80) {
			t.Errorf("step %d: connection %+v, want %s %s -> %s", i, c, st.state, client, rsIP(11))
		}
		s := e.Status()[0]
		if d := s.Dests[0]; d.ActiveConns != st.active || d.InactConns != st.inact {
			t.Errorf("step %d: ActiveConn %d InActConn %d, want %d %d", i, d.ActiveConns, d.InactConns, st.active, st.inact)
		}
	}
	s := e.Status()[0]
	pkt := uint64(20 + 20 + 100)
	want := ipvs.Stats{Conns: 1, InPkts: 5, InBytes: 5 * pkt}
	if s.Stats != want || s.Dests[0].Stats != want {
		t.Errorf("stats %+v / %+v, want %+v (no out direction with DR)", s.Stats, s.Dests[0].Stats, want)
	}
	e.Zero(nil)
	if s := e.Status()[0]; s.Stats != (ipvs.Stats{}) {
		t.Errorf("after Zero: %+v", s.Stats)
	}
	// Expiry: with a CLOSE timeout of 10 s nothing goes yet; pretend the
	// connection was last seen long ago.
	e.expire()
	if n := len(e.Conns()); n != 1 {
		t.Fatalf("%d connections after an early expiry pass", n)
	}
	var old []lbConnVal
	var keys []lbConnKey
	e.walkConns(func(k *lbConnKey, v *lbConnVal) {
		keys, old = append(keys, *k), append(old, *v)
	})
	for i := range keys {
		old[i].LastSeen -= uint32(11 * time.Second >> connClockShift)
		if err := e.putConn(&keys[i], &old[i], ebpf.UpdateExist); err != nil {
			t.Fatal(err)
		}
	}
	e.expire()
	if n := len(e.Conns()); n != 0 {
		t.Errorf("%d connections after expiry, want 0", n)
	}
	if d := e.Status()[0].Dests[0]; d.ActiveConns+d.InactConns != 0 {
		t.Errorf("counters after expiry: %d %d", d.ActiveConns, d.InactConns)
	}
}

// TestPersistence sends one client's connections to one server while its
// template lives, and lists the template as ipvsadm does; with the /0 mask
// (-M 0.0.0.0) every client shares one template.
func TestPersistence(t *testing.T) {
	ns := labNS(t, 11, 12, 13)
	tests := []struct {
		name    string
		netmask int
		client  func(i int) netip.Addr
		tmpl    string
	}{
		{"mask /24", 24, func(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, 5, byte(1 + i%2)}) }, "198.18.5.0:0"},
		{"mask /0", 0, func(i int) netip.Addr { return netip.AddrFrom4([4]byte{198, 18, byte(5 + i%3), byte(1 + i)}) }, "0.0.0.0:0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enterNS(t, ns)
			svc := oneService(vip, ipvs.TCP, "rr",
				ipvs.Dest{Addr: rsIP(11), Port: 80, Method: ipvs.Route, Weight: 1},
				ipvs.Dest{Addr: rsIP(12), Port: 80, Method: ipvs.Route, Weight: 1},
				ipvs.Dest{Addr: rsIP(13), Port: 80, Method: ipvs.Route, Weight: 1},
			)
			svc.Flags |= ipvs.FlagPersistent
			svc.Timeout = 300
			svc.Netmask = tt.netmask
			e := newTestEngine(t, snapOf(svc))
			var first string
			for i := range 6 {
				c := netip.AddrPortFrom(tt.client(i), uint16(2000+i))
				v, out := runOut(t, e, build(pktSpec{src: c, dst: vip, proto: ipvs.TCP, flags: tcpSYN}))
				if v != xdpRedirect {
					t.Fatalf("verdict %d", v)
				}
				if i == 0 {
					first = macName(out[:6])
				} else if got := macName(out[:6]); got != first {
					t.Errorf("connection %d from %s went to %s, want %s (one template)", i, c, got, first)
				}
			}
			var tmpl []ipvs.Conn
			for _, c := range e.Conns() {
				if c.State == "NONE" {
					tmpl = append(tmpl, c)
				}
			}
			want := ipvs.Conn{Proto: ipvs.TCP, Client: netip.MustParseAddrPort(tt.tmpl), Virtual: vip, Dest: netip.MustParseAddrPort(first + ":80"), State: "NONE"}
			if len(tmpl) != 1 || tmpl[0].Expires <= 0 {
				t.Fatalf("templates %+v", tmpl)
			}
			tmpl[0].Expires = 0
			if tmpl[0] != want {
				t.Errorf("template %+v, want %+v", tmpl[0], want)
			}
		})
	}
}
