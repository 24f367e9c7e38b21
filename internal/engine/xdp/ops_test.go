package xdp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// TestOnePacket sends four datagrams of one client 5-tuple to a service
// and checks where each goes: with -o (one-packet scheduling) each is
// scheduled on its own, leaves no connection entry and counts as one
// connection; without it they all follow the first.
func TestOnePacket(t *testing.T) {
	ns := labNS(t, 11, 12)
	udp4 := netip.AddrPortFrom(vip.Addr(), 53)
	udp6 := netip.AddrPortFrom(vip6.Addr(), 53)
	tun1, tun2 := netip.MustParseAddr("198.19.0.21"), netip.MustParseAddr("198.19.0.22")
	dr := func(a, b netip.Addr) []ipvs.Dest {
		return []ipvs.Dest{
			{Addr: a, Port: 53, Method: ipvs.Route, Weight: 1},
			{Addr: b, Port: 53, Method: ipvs.Route, Weight: 1},
		}
	}
	tun := []ipvs.Dest{
		{Addr: tun1, Port: 53, Method: ipvs.Tunnel, Weight: 1},
		{Addr: tun2, Port: 53, Method: ipvs.Tunnel, Weight: 1},
	}
	tests := []struct {
		name    string
		proto   ipvs.Protocol
		vip     netip.AddrPort
		client  netip.AddrPort
		flags   uint32
		dests   []ipvs.Dest
		want    []string // the server of each datagram, in order
		entries int      // connection entries left
		listed  int      // -Lnc lines: the entries and persistence templates
		conns   []uint64 // Conns of each server in --stats
	}{
		{
			name: "rr -o: DR", proto: ipvs.UDP, vip: udp4, client: client, flags: ipvs.FlagOnePacket,
			dests: dr(rsIP(11), rsIP(12)),
			want:  []string{"198.18.0.11", "198.18.0.12", "198.18.0.11", "198.18.0.12"},
			conns: []uint64{2, 2},
		},
		{
			name: "rr without -o: DR", proto: ipvs.UDP, vip: udp4, client: client,
			dests:   dr(rsIP(11), rsIP(12)),
			want:    []string{"198.18.0.11", "198.18.0.11", "198.18.0.11", "198.18.0.11"},
			entries: 1, listed: 1, conns: []uint64{1, 0},
		},
		{
			name: "rr -o: DR IPv6", proto: ipvs.UDP, vip: udp6, client: cli6, flags: ipvs.FlagOnePacket,
			dests: dr(v6(11), v6(12)),
			want:  []string{"2001:db8::b", "2001:db8::c", "2001:db8::b", "2001:db8::c"},
			conns: []uint64{2, 2},
		},
		{
			name: "rr -o: IPIP", proto: ipvs.UDP, vip: udp4, client: client, flags: ipvs.FlagOnePacket,
			dests: tun,
			want:  []string{"198.19.0.21", "198.19.0.22", "198.19.0.21", "198.19.0.22"},
			conns: []uint64{2, 2},
		},
		{
			name: "rr -o -p: the persistence template picks the server", proto: ipvs.UDP, vip: udp4, client: client,
			flags:  ipvs.FlagOnePacket | ipvs.FlagPersistent,
			dests:  dr(rsIP(11), rsIP(12)),
			want:   []string{"198.18.0.11", "198.18.0.11", "198.18.0.11", "198.18.0.11"},
			listed: 1, conns: []uint64{4, 0},
		},
		{
			name: "-o is ignored for TCP", proto: ipvs.TCP, vip: vip, client: client, flags: ipvs.FlagOnePacket,
			dests:   dr(rsIP(11), rsIP(12)),
			want:    []string{"198.18.0.11", "198.18.0.11", "198.18.0.11", "198.18.0.11"},
			entries: 1, listed: 1, conns: []uint64{1, 0},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enterNS(t, ns)
			svc := oneService(tc.vip, tc.proto, "rr", tc.dests...)
			svc.Flags = tc.flags
			if tc.flags&ipvs.FlagPersistent != 0 {
				svc.Timeout = 300
				svc.Netmask = 32
				if tc.vip.Addr().Is6() {
					svc.Netmask = 128
				}
			}
			e := newTestEngine(t, snapOf(svc))
			spec := pktSpec{src: tc.client, dst: tc.vip, proto: tc.proto, flags: tcpSYN, payload: 20}
			var got []string
			for i := range tc.want {
				v, out := runOut(t, e, build(spec))
				if v != xdpRedirect && v != xdpTX {
					t.Fatalf("datagram %d: verdict %d (drops %v)", i, v, e.Drops())
				}
				got = append(got, serverOf(out))
				spec.flags = tcpACK
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("servers %v, want %v", got, tc.want)
			}
			if n := e.ConnEntries(); n != tc.entries {
				t.Errorf("%d connection entries left, want %d", n, tc.entries)
			}
			if c := e.Conns(); len(c) != tc.listed {
				t.Errorf("-Lnc lists %d connections, want %d: %+v", len(c), tc.listed, c)
			}
			st := e.Status()[0]
			var total uint64
			for i, d := range st.Dests {
				total += d.Stats.Conns
				if d.Stats.Conns != tc.conns[i] {
					t.Errorf("%s: Conns %d, want %d", d.AddrPort(), d.Stats.Conns, tc.conns[i])
				}
				if tc.entries == 0 && (d.ActiveConns != 0 || d.InactConns != 0) {
					t.Errorf("%s: ActiveConn %d InActConn %d, want 0 0 (no connection is kept)", d.AddrPort(), d.ActiveConns, d.InactConns)
				}
			}
			if st.Stats.Conns != total || st.Stats.InPkts != uint64(len(tc.want)) {
				t.Errorf("service stats %+v, want Conns %d InPkts %d", st.Stats, total, len(tc.want))
			}
		})
	}
}

// serverOf names the real server a forwarded frame goes to: the outer
// destination of an IPIP packet, else the on-link server (of the
// packet's family) whose MAC it carries.
func serverOf(out []byte) string {
	if len(out) < 34 {
		return "short frame"
	}
	ipv6 := binary.BigEndian.Uint16(out[12:]) == 0x86dd
	if !ipv6 && out[23] == 4 {
		a, _ := netip.AddrFromSlice(out[30:34])
		return a.String()
	}
	for n := byte(11); n < 17; n++ {
		if slices.Equal(out[:6], rsMAC(n)) {
			if ipv6 {
				return v6(n).String()
			}
			return rsIP(n).String()
		}
	}
	return fmt.Sprintf("mac %x", out[:6])
}

// TestOnePacketRefusesNAT: -o keeps no entry to un-NAT replies with, so
// the xdp engine refuses it with NAT and FullNAT on UDP services (and
// accepts it on TCP ones, where -o has no effect).
func TestOnePacketRefusesNAT(t *testing.T) {
	udp := ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: ipvs.UDP, Addr: vip.Addr(), Port: 53}, Scheduler: "rr", Flags: ipvs.FlagOnePacket,
		LocalAddrs: []netip.Addr{netip.MustParseAddr("198.18.0.100")}}
	tcp := udp
	tcp.Proto = ipvs.TCP
	plain := udp
	plain.Flags = 0
	tests := []struct {
		name    string
		svc     ipvs.Service
		method  ipvs.Method
		wantErr string
	}{
		{name: "UDP -o with -m", svc: udp, method: ipvs.Masq, wantErr: "one-packet scheduling (-o) of a UDP service with -m is not supported on the xdp engine"},
		{name: "UDP -o with --fullnat", svc: udp, method: ipvs.FullNAT, wantErr: "with --fullnat is not supported"},
		{name: "UDP -o with -g", svc: udp, method: ipvs.Route},
		{name: "UDP -o with -i", svc: udp, method: ipvs.Tunnel},
		{name: "TCP -o with -m", svc: tcp, method: ipvs.Masq},
		{name: "UDP without -o with -m", svc: plain, method: ipvs.Masq},
	}
	e := &Engine{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := ipvs.Dest{Addr: rsIP(11), Port: 53, Method: tc.method, Weight: 1}
			err := e.CheckDest(&tc.svc, &d)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("CheckDest: %v, want no error", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("CheckDest: %v, want an error with %q", err, tc.wantErr)
			}
		})
	}
}
