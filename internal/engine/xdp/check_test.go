package xdp

import (
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/sched"
)

func TestCheckDest(t *testing.T) {
	svc := func(sched string, proto ipvs.Protocol) *ipvs.Service {
		return &ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: proto, Addr: vip.Addr(), Port: 80}, Scheduler: sched}
	}
	fnat := func(laddrs ...netip.Addr) *ipvs.Service {
		s := svc("rr", ipvs.TCP)
		s.LocalAddrs = laddrs
		return s
	}
	rs := netip.MustParseAddr("198.18.0.11")
	tests := []struct {
		name string
		svc  *ipvs.Service
		dest ipvs.Dest
		want string // part of the error; empty: accepted
	}{
		{name: "DR", svc: svc("wlc", ipvs.TCP), dest: ipvs.Dest{Addr: rs, Method: ipvs.Route}},
		{name: "IPIP", svc: svc("rr", ipvs.UDP), dest: ipvs.Dest{Addr: rs, Method: ipvs.Tunnel}},
		{name: "GUE", svc: svc("mh", ipvs.TCP), dest: ipvs.Dest{Addr: rs, Method: ipvs.Tunnel, TunType: ipvs.TunGUE, TunPort: 6080}},
		{name: "GUE without port", svc: svc("rr", ipvs.TCP), dest: ipvs.Dest{Addr: rs, Method: ipvs.Tunnel, TunType: ipvs.TunGUE}, want: "--tun-port"},
		{name: "GRE", svc: svc("rr", ipvs.TCP), dest: ipvs.Dest{Addr: rs, Method: ipvs.Tunnel, TunType: ipvs.TunGRE}},
		{name: "GRE with checksum", svc: svc("rr", ipvs.UDP), dest: ipvs.Dest{Addr: rs, Method: ipvs.Tunnel, TunType: ipvs.TunGRE, TunFlags: tunFlagCsum}},
		{name: "GRE with remote checksum offload", svc: svc("rr", ipvs.TCP), dest: ipvs.Dest{Addr: rs, Method: ipvs.Tunnel, TunType: ipvs.TunGRE, TunFlags: 2}, want: "not --tun-remcsum"},
		{name: "NAT", svc: svc("rr", ipvs.TCP), dest: ipvs.Dest{Addr: rs, Port: 8080, Method: ipvs.Masq}},
		{name: "NAT across families", svc: svc("rr", ipvs.TCP), dest: ipvs.Dest{Addr: netip.MustParseAddr("2001:db8::11"), Method: ipvs.Masq}, want: "cannot change the address family"},
		{name: "FullNAT", svc: fnat(netip.MustParseAddr("198.18.0.50")), dest: ipvs.Dest{Addr: rs, Method: ipvs.FullNAT}},
		{name: "FullNAT without local addresses", svc: svc("rr", ipvs.TCP), dest: ipvs.Dest{Addr: rs, Method: ipvs.FullNAT}, want: "FullNAT needs local addresses of the real server's family: give the service some with --laddr"},
		{name: "FullNAT with only IPv6 local addresses", svc: fnat(netip.MustParseAddr("2001:db8::50")), dest: ipvs.Dest{Addr: rs, Method: ipvs.FullNAT}, want: "FullNAT needs local addresses"},
		{name: "lblc", svc: svc("lblc", ipvs.TCP), dest: ipvs.Dest{Addr: rs}},
		{name: "lblcr", svc: svc("lblcr", ipvs.UDP), dest: ipvs.Dest{Addr: rs}},
		{name: "twos", svc: svc("twos", ipvs.TCP), dest: ipvs.Dest{Addr: rs}, want: "gvsd --engine proxy"},
		{name: "SCTP", svc: svc("rr", ipvs.SCTP), dest: ipvs.Dest{Addr: rs}, want: "SCTP services are not served by the xdp engine (it keeps no SCTP association states); use gvsd --engine ipvs"},
		{name: "DR across families", svc: svc("rr", ipvs.TCP), dest: ipvs.Dest{Addr: netip.MustParseAddr("2001:db8::11")}, want: "address family"},
		{name: "fwmark", svc: &ipvs.Service{ServiceKey: ipvs.ServiceKey{Addr: netip.IPv4Unspecified(), FWMark: 1}, Scheduler: "rr"}, dest: ipvs.Dest{Addr: rs}},
		{name: "fwmark NAT", svc: &ipvs.Service{ServiceKey: ipvs.ServiceKey{Addr: netip.IPv4Unspecified(), FWMark: 1}, Scheduler: "wlc"}, dest: ipvs.Dest{Addr: rs, Method: ipvs.Masq}},
	}
	var e Engine
	for _, tc := range tests {
		err := e.CheckDest(tc.svc, &tc.dest)
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one saying %q", tc.name, err, tc.want)
		}
	}
}

func TestTables(t *testing.T) {
	// rr and wrr: the list, which BPF walks; weights of any size.
	big := []tableDest{{index: 7, weight: 2147483647}, {index: 9, weight: 1}, {index: 3, weight: 65535}}
	for _, name := range []string{"rr", "wrr"} {
		list, err := buildTable(name, big, nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := []uint32{7, 9, 3}; !slices.Equal(list, want) {
			t.Errorf("%s list %v, want the servers in order %v", name, list, want)
		}
	}
	for b := range uint32(256) {
		a := bucketAddr(b).As4()
		v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
		if h := (v * 0x61C88647) >> 24; h != b {
			t.Fatalf("bucketAddr(%d) hashes to %d", b, h)
		}
	}
}

// TestTablesChooseAsGo checks the sh, dh and mh tables copied from
// internal/sched against the Go scheduler's own choices: a client (or, for
// dh, a destination) that hashes to a slot is sent to the slot's server.
func TestTablesChooseAsGo(t *testing.T) {
	tds := []tableDest{
		{index: 4, addr: netip.MustParseAddrPort("198.18.1.1:80"), weight: 3, lastWeight: 3},
		{index: 5, addr: netip.MustParseAddrPort("198.18.1.2:80"), weight: 0, lastWeight: 2},
		{index: 6, addr: netip.MustParseAddrPort("198.18.1.3:8080"), weight: 1, lastWeight: 1},
	}
	for _, name := range []string{"sh", "dh", "mh"} {
		tab, err := buildTable(name, tds, nil)
		if err != nil {
			t.Fatal(err)
		}
		weight := func(d tableDest) int32 { return max(d.weight, 1) }
		if name == "mh" {
			weight = func(d tableDest) int32 { return d.lastWeight }
		}
		s, _ := sched.New(name, 0)
		list, back := goDests(tds, weight)
		s.Update(list)
		check := func(slot uint32, c sched.Conn) {
			want := back[s.Schedule(c)]
			if tab[slot] != want {
				t.Fatalf("%s: slot %d holds %d, the Go scheduler chooses %d", name, slot, tab[slot], want)
			}
		}
		if name == "mh" {
			for v := uint32(0); v < 50000; v += 7 {
				a := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
				check(mhSlot(v), sched.Conn{Client: netip.AddrPortFrom(a, 0)})
			}
			continue
		}
		for b := range uint32(shTabSize) {
			c := sched.Conn{Client: netip.AddrPortFrom(bucketAddr(b), 0)}
			if name == "dh" {
				c = sched.Conn{Virtual: netip.AddrPortFrom(bucketAddr(b), 0)}
			}
			check(b, c)
		}
	}
}

// goldenInverse is the inverse of the kernel's GOLDEN_RATIO_32 modulo
// 2^32: hash_32(x*goldenInverse) gives the top bits of x back.
var goldenInverse = func() uint32 {
	const g = 0x61C88647
	x := uint32(g)
	for range 5 {
		x *= 2 - g*x
	}
	return x
}()

// bucketAddr is an IPv4 address whose hash_32 to 8 bits is b.
func bucketAddr(b uint32) netip.Addr {
	v := (b << 24) * goldenInverse
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func TestMaxConns(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name string
		opt  uint32
		want uint32
	}{
		{name: "default", opt: 0, want: 262144},
		{name: "larger", opt: 1 << 19, want: 1 << 19},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := load(nil, Options{MaxConns: tc.opt})
			if err != nil {
				t.Fatal(err)
			}
			defer e.objs.Close()
			if got := e.objs.Conns.MaxEntries(); got != tc.want {
				t.Errorf("IPv6 connection table of %d entries, want %d", got, tc.want)
			}
			if got := e.objs.Conns4.MaxEntries(); got != tc.want {
				t.Errorf("IPv4 connection table of %d entries, want %d", got, tc.want)
			}
		})
	}
}
