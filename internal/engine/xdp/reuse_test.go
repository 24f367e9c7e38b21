package xdp

import (
	"net/netip"
	"testing"

	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// TestSYNReuse: a SYN that finds the entry of a connection that is over
// (the client reused its source port) is scheduled anew, as ip_vs_in does
// with conn_reuse_mode=1 (TIME_WAIT, CLOSE) and expire_nodest_conn=1 (the
// entry's server left its service or has weight 0); a SYN on any other
// entry goes to the entry's server.
func TestSYNReuse(t *testing.T) {
	labNS(t, 11, 12)
	rs := func(n byte, w int32) ipvs.Dest {
		return ipvs.Dest{Addr: rsIP(n), Port: 80, Method: ipvs.Route, Weight: w}
	}
	e := newTestEngine(t, snapOf(oneService(vip, ipvs.TCP, "rr", rs(11, 1), rs(12, 1))))
	spec := pktSpec{src: client, dst: vip, proto: ipvs.TCP}
	send := func(t *testing.T, flags byte) string {
		t.Helper()
		spec.flags = flags
		return serverOf(redirected(t, e, spec))
	}
	// entry checks that the client's one entry is in state, to server n,
	// and that the servers' counters hold it alone.
	entry := func(t *testing.T, state string, n byte) {
		t.Helper()
		conns := e.Conns()
		if len(conns) != 1 || conns[0].State != state || conns[0].Dest != netip.AddrPortFrom(rsIP(n), 80) {
			t.Fatalf("connections %+v, want one %s to %s", conns, state, rsIP(n))
		}
		total := uint32(0)
		for _, d := range e.Status()[0].Dests {
			total += d.ActiveConns + d.InactConns
			if d.Addr != rsIP(n) && d.ActiveConns+d.InactConns != 0 {
				t.Errorf("%s still counts %d/%d connections", d.Addr, d.ActiveConns, d.InactConns)
			}
		}
		if total != 1 {
			t.Errorf("the servers count %d connections, want 1", total)
		}
	}

	first := send(t, tcpSYN)
	if first != rsIP(11).String() {
		t.Fatalf("first SYN to %s, want %s (rr)", first, rsIP(11))
	}
	t.Run("a retransmitted SYN stays", func(t *testing.T) {
		if got := send(t, tcpSYN); got != first {
			t.Errorf("retransmitted SYN to %s, want %s", got, first)
		}
		entry(t, "SYN_RECV", 11)
	})
	t.Run("a SYN on FIN_WAIT stays (conn_reuse_mode 1)", func(t *testing.T) {
		send(t, tcpACK)
		send(t, tcpFIN|tcpACK)
		entry(t, "FIN_WAIT", 11)
		if got := send(t, tcpSYN); got != first {
			t.Errorf("SYN on FIN_WAIT to %s, want %s", got, first)
		}
	})
	t.Run("a SYN on CLOSE is scheduled anew", func(t *testing.T) {
		send(t, tcpACK)
		send(t, tcpRST)
		entry(t, "CLOSE", 11)
		if got := send(t, tcpSYN); got != rsIP(12).String() {
			t.Errorf("SYN on CLOSE to %s, want %s (rr's next)", got, rsIP(12))
		}
		entry(t, "SYN_RECV", 12)
	})
	t.Run("a SYN to a removed server is scheduled anew", func(t *testing.T) {
		send(t, tcpACK)
		entry(t, "ESTABLISHED", 12)
		if err := engine.ApplySnapshot(e, snapOf(oneService(vip, ipvs.TCP, "rr", rs(11, 1)))); err != nil {
			t.Fatal(err)
		}
		if got := send(t, tcpACK); got != rsIP(12).String() {
			t.Errorf("data of the established connection went to %s, want %s", got, rsIP(12))
		}
		if got := send(t, tcpSYN); got != rsIP(11).String() {
			t.Errorf("SYN on a removed server's entry went to %s, want %s", got, rsIP(11))
		}
		entry(t, "SYN_RECV", 11)
	})
	t.Run("a SYN to a server of weight 0 is scheduled anew", func(t *testing.T) {
		if err := engine.ApplySnapshot(e, snapOf(oneService(vip, ipvs.TCP, "rr", rs(11, 0), rs(12, 1)))); err != nil {
			t.Fatal(err)
		}
		send(t, tcpACK)
		if got := send(t, tcpSYN); got != rsIP(12).String() {
			t.Errorf("SYN on a quiesced server's entry went to %s, want %s", got, rsIP(12))
		}
		entry(t, "SYN_RECV", 12)
	})
}

// TestSYNReusePersistent: a persistent service's connection in CLOSE is
// not rescheduled (its template keeps the client on its server, as the
// kernel's controlled connections are not), but one whose server left is.
func TestSYNReusePersistent(t *testing.T) {
	labNS(t, 11, 12)
	svc := oneService(vip, ipvs.TCP, "rr",
		ipvs.Dest{Addr: rsIP(11), Port: 80, Method: ipvs.Route, Weight: 1},
		ipvs.Dest{Addr: rsIP(12), Port: 80, Method: ipvs.Route, Weight: 1})
	svc.Flags |= ipvs.FlagPersistent
	svc.Timeout = 300
	e := newTestEngine(t, snapOf(svc))
	spec := pktSpec{src: client, dst: vip, proto: ipvs.TCP}
	send := func(flags byte) string {
		spec.flags = flags
		v, out := runOut(t, e, build(spec))
		if v != xdpRedirect {
			t.Fatalf("flags %#x: verdict %d", flags, v)
		}
		return serverOf(out)
	}
	first := send(tcpSYN)
	send(tcpRST)
	if got := send(tcpSYN); got != first {
		t.Errorf("SYN on CLOSE went to %s, want %s (persistent)", got, first)
	}
	other := rsIP(11)
	if first == other.String() {
		other = rsIP(12)
	}
	svc.Dests = []ipvs.Dest{{Addr: other, Port: 80, Method: ipvs.Route, Weight: 1}}
	if err := engine.ApplySnapshot(e, snapOf(svc)); err != nil {
		t.Fatal(err)
	}
	if got := send(tcpSYN); got != other.String() {
		t.Errorf("SYN on a removed server's entry went to %s, want %s", got, other)
	}
}

// TestSYNReuseNAT: rescheduling a NAT connection removes its reply entry
// too: the old server's replies are no longer un-NATed.
func TestSYNReuseNAT(t *testing.T) {
	natLab(t)
	rs4, rs5 := netip.AddrPortFrom(rsIP(11), 8080), netip.AddrPortFrom(rsIP(12), 8080)
	e := newTestEngine(t, snapOf(oneService(vip, ipvs.TCP, "rr",
		ipvs.Dest{Addr: rs4.Addr(), Port: rs4.Port(), Method: ipvs.Masq, Weight: 1},
		ipvs.Dest{Addr: rs5.Addr(), Port: rs5.Port(), Method: ipvs.Masq, Weight: 1})))
	in := func(flags byte) {
		if v, _ := runOn(t, e, build(pktSpec{src: client, dst: vip, proto: ipvs.TCP, flags: flags})); v != xdpTX {
			t.Fatalf("flags %#x: verdict %d (drops %v)", flags, v, e.Drops())
		}
	}
	in(tcpSYN)
	if v, _ := runOn(t, e, build(pktSpec{src: rs4, dst: client, proto: ipvs.TCP, flags: tcpSYN | tcpACK})); v != xdpTX {
		t.Fatalf("reply: verdict %d", v)
	}
	in(tcpACK)
	in(tcpRST)
	in(tcpSYN)
	conns := e.Conns()
	if len(conns) != 1 || conns[0].Dest != rs5 || conns[0].State != "SYN_RECV" {
		t.Fatalf("connections %+v, want one SYN_RECV to %s", conns, rs5)
	}
	if v, _ := runOn(t, e, build(pktSpec{src: rs4, dst: client, proto: ipvs.TCP, flags: tcpACK})); v != xdpPass {
		t.Errorf("a reply from the old server: verdict %d, want pass (its entry is gone)", v)
	}
	if v, _ := runOn(t, e, build(pktSpec{src: rs5, dst: client, proto: ipvs.TCP, flags: tcpSYN | tcpACK})); v != xdpTX {
		t.Errorf("a reply from the new server: verdict %d, want TX", v)
	}
}
