package xdp

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// TestState: after known traffic State shows the bounds the engine was
// started with, what is used of each, and every packet reason with its
// count. The connection entries are those the last expiry pass counted:
// none before it runs, then one per DR connection of each family, and a
// flood of more flows than the table holds leaves it at most full.
func TestState(t *testing.T) {
	labNS(t, 11, 12)
	const table = 256
	e, err := load(nil, Options{MaxConns: table, MaxServices: 8, MaxDests: 16})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.objs.Close() })
	udp6 := netip.AddrPortFrom(vip6.Addr(), 53)
	snap := snapOf(
		oneService(vip, ipvs.TCP, "rr", ipvs.Dest{Addr: rsIP(11), Port: 80, Method: ipvs.Route, Weight: 1}, ipvs.Dest{Addr: rsIP(12), Port: 80, Method: ipvs.Route, Weight: 1}),
		oneService(udp6, ipvs.UDP, "rr", ipvs.Dest{Addr: v6(11), Port: 53, Method: ipvs.Route, Weight: 1}),
	)
	if err := engine.ApplySnapshot(e, snap); err != nil {
		t.Fatal(err)
	}
	c6 := netip.MustParseAddrPort("[2001:db8:3::20]:41000")
	from := func(a netip.AddrPort, port uint16) netip.AddrPort { return netip.AddrPortFrom(a.Addr(), port) }
	send := []struct {
		spec    pktSpec
		verdict uint32
	}{
		{pktSpec{src: from(client, 1001), dst: vip, proto: ipvs.TCP, flags: tcpSYN}, xdpRedirect},
		{pktSpec{src: from(client, 1002), dst: vip, proto: ipvs.TCP, flags: tcpSYN}, xdpRedirect},
		{pktSpec{src: from(client, 1003), dst: vip, proto: ipvs.TCP, flags: tcpSYN}, xdpRedirect},
		{pktSpec{src: from(client, 1001), dst: vip, proto: ipvs.TCP, flags: tcpACK}, xdpRedirect}, // established: no reason
		{pktSpec{src: from(c6, 2001), dst: udp6, proto: ipvs.UDP, payload: 10}, xdpRedirect},
		{pktSpec{src: from(c6, 2002), dst: udp6, proto: ipvs.UDP, payload: 10}, xdpRedirect},
		{pktSpec{src: from(client, 1004), dst: from(vip, 9999), proto: ipvs.TCP, flags: tcpSYN}, xdpPass},      // no-service
		{pktSpec{src: from(client, 1005), dst: from(vip, 9999), proto: ipvs.UDP}, xdpPass},                     // no-service
		{pktSpec{src: from(client, 1006), dst: vip, proto: ipvs.TCP, flags: tcpACK}, xdpPass},                  // not-syn
		{pktSpec{src: from(client, 1007), dst: vip, proto: ipvs.TCP, flags: tcpSYN, fragOff: 0x2000}, xdpPass}, // fragment
	}
	for i, p := range send {
		if v, _ := runOut(t, e, build(p.spec)); v != p.verdict {
			t.Fatalf("packet %d (%v -> %v): verdict %d, want %d (drops %v)", i, p.spec.src, p.spec.dst, v, p.verdict, e.Drops())
		}
	}

	st := e.State()
	if st.Engine != "xdp" || st.XDP == nil {
		t.Fatalf("State() = %+v, want the xdp engine's", st)
	}
	x := st.XDP
	if x.ConnEntries4 != (engine.Bound{Used: 0, Limit: table}) {
		t.Errorf("IPv4 entries before any expiry pass: %+v, want 0 of %d", x.ConnEntries4, table)
	}
	e.expire()
	x = e.State().XDP
	for _, c := range []struct {
		name      string
		got, want engine.Bound
	}{
		{"services", x.Services, engine.Bound{Used: 2, Limit: 8}},
		{"real servers", x.RealServers, engine.Bound{Used: 3, Limit: 16}},
		{"IPv4 connection entries", x.ConnEntries4, engine.Bound{Used: 3, Limit: table}},
		{"IPv6 connection entries", x.ConnEntries6, engine.Bound{Used: 2, Limit: table}},
	} {
		if c.got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, c.got, c.want)
		}
	}
	want := map[string]uint64{"no-service": 2, "not-syn": 1, "fragment": 1}
	if len(x.Packets) != int(lbDropReasonREASON_MAX)-1 {
		t.Errorf("%d packet reasons, want every one of the program's %d", len(x.Packets), lbDropReasonREASON_MAX-1)
	}
	for i, r := range x.Packets {
		if r.Reason != packetReasons[i+1].name || r.Meaning == "" {
			t.Errorf("reason %d: %+v, want %q with its meaning", i+1, r, packetReasons[i+1].name)
		}
		if r.Packets != want[r.Reason] {
			t.Errorf("%s: %d packets, want %d", r.Reason, r.Packets, want[r.Reason])
		}
	}
	if got := e.Drops(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Drops() = %v, want %v", got, want)
	}

	// More UDP flows than the table holds: the LRU map evicts, the
	// count stays within the bound and nothing is counted as a drop.
	udp4 := netip.AddrPortFrom(vip.Addr(), 53)
	if err := engine.ApplySnapshot(e, snapOf(oneService(udp4, ipvs.UDP, "rr", ipvs.Dest{Addr: rsIP(11), Port: 53, Method: ipvs.Route, Weight: 1}))); err != nil {
		t.Fatal(err)
	}
	for i := range 2 * table {
		if v, _ := runOut(t, e, build(pktSpec{src: from(client, uint16(3000+i)), dst: udp4, proto: ipvs.UDP})); v != xdpRedirect {
			t.Fatalf("flow %d: verdict %d (drops %v)", i, v, e.Drops())
		}
	}
	e.expire()
	x = e.State().XDP
	if n := x.ConnEntries4.Used; n < table/2 || n > table {
		t.Errorf("after %d flows through a table of %d: %d entries counted, want between %d and %d", 2*table, table, n, table/2, table)
	}
	if got := e.Drops(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after the flood: Drops() = %v, want %v still", got, want)
	}
	if n := e.ConnEntries(); n != x.ConnEntries4.Used+x.ConnEntries6.Used {
		t.Errorf("State counted %d+%d entries, a walk of the tables finds %d", x.ConnEntries4.Used, x.ConnEntries6.Used, n)
	}
	t.Logf("after %d flows: %d IPv4 entries of %d", 2*table, x.ConnEntries4.Used, table)
}
