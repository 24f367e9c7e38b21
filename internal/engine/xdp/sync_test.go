package xdp

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// TestSyncDR: connections listed by a master engine and installed in a
// backup engine forward there to the same real servers, where the
// backup's own program would pass a non-SYN packet it does not know.
func TestSyncDR(t *testing.T) {
	labNS(t, 11, 12)
	dr := func(n byte) ipvs.Dest { return ipvs.Dest{Addr: rsIP(n), Port: 80, Method: ipvs.Route, Weight: 1} }
	snap := snapOf(oneService(vip, ipvs.TCP, "rr", dr(11), dr(12)))
	master := newTestEngine(t, snap)
	backup := newTestEngine(t, snap)

	c1 := client
	c2 := netip.AddrPortFrom(client.Addr(), client.Port()+1)
	for _, c := range []netip.AddrPort{c1, c2} {
		if v, _ := runOut(t, master, build(pktSpec{src: c, dst: vip, proto: ipvs.TCP, flags: tcpSYN})); v != xdpRedirect {
			t.Fatalf("master SYN verdict %d", v)
		}
		runOut(t, master, build(pktSpec{src: c, dst: vip, proto: ipvs.TCP, flags: tcpACK}))
	}
	listed := master.SyncConns()
	if len(listed) != 2 {
		t.Fatalf("master lists %d connections, want 2: %+v", len(listed), listed)
	}
	want := map[netip.AddrPort]netip.AddrPort{}
	for _, c := range listed {
		if c.State != "ESTABLISHED" || c.Method != ipvs.Route || c.Timeout != 900*time.Second || c.Idle > time.Minute {
			t.Errorf("listed %+v, want ESTABLISHED Route, timeout 900s, idle just now", c)
		}
		want[c.Client] = c.Dest
	}
	if want[c1] == want[c2] {
		t.Fatalf("rr put both connections on %s", want[c1])
	}

	ack := func(c netip.AddrPort) (uint32, []byte) {
		return runOut(t, backup, build(pktSpec{src: c, dst: vip, proto: ipvs.TCP, flags: tcpACK, payload: 4}))
	}
	if v, _ := ack(c1); v != xdpPass {
		t.Fatalf("control: the backup's verdict for an unknown ACK is %d, want XDP_PASS (%d)", v, xdpPass)
	}

	in, skipped := backup.InstallSynced(append(listed, engine.SyncConn{Proto: ipvs.TCP, Client: c1,
		Virtual: netip.MustParseAddrPort("198.18.1.99:80"), Dest: want[c1], Method: ipvs.Route, State: "ESTABLISHED"}))
	if in != 2 || skipped != 1 {
		t.Fatalf("InstallSynced = %d installed, %d skipped; want 2 and 1 (no such service)", in, skipped)
	}
	for _, c := range []netip.AddrPort{c1, c2} {
		v, out := ack(c)
		n := want[c].Addr().As4()[3]
		if v != xdpRedirect || !bytes.Equal(out[:6], rsMAC(n)) {
			t.Errorf("backup forwards %s's ACK with verdict %d to %x, want %d to %x (%s)", c, v, out[:6], xdpRedirect, rsMAC(n), want[c])
		}
	}
	got := map[netip.AddrPort]string{}
	for _, c := range backup.Conns() {
		got[c.Client] = c.Dest.String() + " " + c.State
	}
	for c, d := range want {
		if got[c] != d.String()+" ESTABLISHED" {
			t.Errorf("backup -Lnc lists %s as %q, want %q", c, got[c], d.String()+" ESTABLISHED")
		}
	}
}

func TestSyncNATInstallsReply(t *testing.T) {
	labNS(t, 11)
	snap := snapOf(oneService(vip, ipvs.TCP, "rr", ipvs.Dest{Addr: rsIP(11), Port: 8080, Method: ipvs.Masq, Weight: 1}))
	backup := newTestEngine(t, snap)
	in, skipped := backup.InstallSynced([]engine.SyncConn{{Proto: ipvs.TCP, Client: client, Virtual: vip,
		Dest: netip.AddrPortFrom(rsIP(11), 8080), Method: ipvs.Masq, State: "ESTABLISHED", Timeout: 900 * time.Second}})
	if in != 1 || skipped != 0 {
		t.Fatalf("InstallSynced = %d, %d; want 1, 0", in, skipped)
	}
	if n := backup.ConnEntries(); n != 2 {
		t.Fatalf("%d connection entries, want 2 (the client's and the reply's)", n)
	}
	if v, _ := runOut(t, backup, build(pktSpec{src: client, dst: vip, proto: ipvs.TCP, flags: tcpACK, payload: 4})); v == xdpPass || v == xdpDrop {
		t.Fatalf("the client's ACK got verdict %d, want it forwarded", v)
	}
}

func TestSyncedLastSeen(t *testing.T) {
	tests := []struct {
		name            string
		received, local time.Duration
		wantIdle        time.Duration // right after installing
	}{
		{name: "same timeout", received: 900 * time.Second, local: 900 * time.Second},
		{name: "none received", received: 0, local: 900 * time.Second},
		{name: "shorter on the master", received: 300 * time.Second, local: 900 * time.Second, wantIdle: 600 * time.Second},
		{name: "longer on the master", received: 1800 * time.Second, local: 900 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := ^uint32(0) - 100 // the 32-bit clock wraps in what follows
			var v lbConnVal
			v.LastSeen = seenAgo(now, syncedAge(tt.received, tt.local))
			got := idle(now, v.LastSeen)
			if d := got - tt.wantIdle; d < -10*time.Millisecond || d > 10*time.Millisecond {
				t.Fatalf("idle %v, want %v", got, tt.wantIdle)
			}
			// It expires when the master's copy would.
			left := tt.received
			if left == 0 {
				left = tt.local
			}
			later := now + uint32((left+50*time.Millisecond)>>connClockShift)
			if idle := idle(later, v.LastSeen); idle <= tt.local {
				t.Fatalf("%v after installing, idle %v: not expired at the local timeout %v", left, idle, tt.local)
			}
		})
	}
}
