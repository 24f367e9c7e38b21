package xdp

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/ipvssync"
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

// TestSyncTemplate: a persistence template listed by a master engine,
// carried in a sync message and installed in a backup engine makes the
// backup send the client's new connections (from any address in the
// persistence netmask) to the master's real server, where its rr would
// pick the other one.
func TestSyncTemplate(t *testing.T) {
	ns := labNS(t, 11, 12)
	tests := []struct {
		name    string
		port    uint16 // the service's; 0 is a port-zero service
		install bool
		want    byte // real server of the client's new connection on the backup
	}{
		{name: "with the template", port: 80, install: true, want: 11},
		{name: "without the template", port: 80, want: 12},
		{name: "port-zero service with the template", port: 0, install: true, want: 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enterNS(t, ns)
			v := netip.AddrPortFrom(vip.Addr(), tt.port)
			dr := func(n byte) ipvs.Dest { return ipvs.Dest{Addr: rsIP(n), Port: tt.port, Method: ipvs.Route, Weight: 1} }
			svc := oneService(v, ipvs.TCP, "rr", dr(11), dr(12))
			svc.Flags |= ipvs.FlagPersistent
			svc.Timeout, svc.Netmask = 300, 24
			snap := snapOf(svc)
			master, backup := newTestEngine(t, snap), newTestEngine(t, snap)
			syn := func(e *Engine, src string) byte {
				t.Helper()
				p := build(pktSpec{src: netip.MustParseAddrPort(src), dst: netip.AddrPortFrom(vip.Addr(), 80), proto: ipvs.TCP, flags: tcpSYN})
				verdict, out := runOut(t, e, p)
				for _, n := range []byte{11, 12} {
					if verdict == xdpRedirect && bytes.Equal(out[:6], rsMAC(n)) {
						return n
					}
				}
				t.Fatalf("SYN from %s: verdict %d to %x, want it sent to a real server", src, verdict, out[:6])
				return 0
			}

			if n := syn(master, "198.18.2.7:40000"); n != 11 {
				t.Fatalf("the master sent the first client to .%d, want .11 (rr's first)", n)
			}
			var tmpl []engine.SyncConn
			for _, c := range master.SyncConns() {
				if c.Template {
					tmpl = append(tmpl, c)
				}
			}
			want := engine.SyncConn{Proto: ipvs.TCP, Client: netip.MustParseAddrPort("198.18.2.0:0"), Virtual: v,
				Dest: netip.AddrPortFrom(rsIP(11), tt.port), Method: ipvs.Route, Template: true, State: "NONE", Timeout: 300 * time.Second}
			if len(tmpl) != 1 || tmpl[0].Idle > time.Minute {
				t.Fatalf("the master lists templates %+v, want one just used", tmpl)
			}
			tmpl[0].Idle = 0
			if tmpl[0] != want {
				t.Fatalf("the master lists template\n%+v, want\n%+v", tmpl[0], want)
			}
			received := overTheWire(t, tmpl)

			// Another client (outside the /24) takes rr's first server on
			// the backup, so that rr alone would pick the other next.
			if n := syn(backup, "198.18.3.9:40000"); n != 11 {
				t.Fatalf("the backup sent the other client to .%d, want .11", n)
			}
			if tt.install {
				if in, skipped := backup.InstallSynced(received); in != 1 || skipped != 0 {
					t.Fatalf("InstallSynced = %d installed, %d skipped; want 1, 0", in, skipped)
				}
			}
			if n := syn(backup, "198.18.2.8:40001"); n != tt.want {
				t.Fatalf("the backup sent the persistent client's new connection to .%d, want .%d", n, tt.want)
			}
			if !tt.install {
				return
			}
			// The other client's template is the backup's own.
			listed := map[netip.AddrPort]netip.AddrPort{}
			for _, c := range backup.Conns() {
				if c.State == "NONE" {
					listed[c.Client] = c.Dest
				}
			}
			if got := listed[want.Client]; got != want.Dest {
				t.Errorf("the backup's -Lnc lists the template of %s to %s, want %s (all: %v)", want.Client, got, want.Dest, listed)
			}
		})
	}
}

// TestSyncTemplateSkipped: templates the backup cannot place are
// skipped and counted.
func TestSyncTemplateSkipped(t *testing.T) {
	labNS(t, 11)
	dr := ipvs.Dest{Addr: rsIP(11), Port: 80, Method: ipvs.Route, Weight: 1}
	persistent := oneService(vip, ipvs.TCP, "rr", dr)
	persistent.Flags |= ipvs.FlagPersistent
	persistent.Timeout, persistent.Netmask = 300, 32
	other := oneService(netip.MustParseAddrPort("198.18.1.11:80"), ipvs.TCP, "rr", dr)
	backup := newTestEngine(t, snapOf(persistent, other))
	tmpl := engine.SyncConn{Proto: ipvs.TCP, Client: netip.MustParseAddrPort("198.18.2.7:0"), Virtual: vip,
		Dest: dr.AddrPort(), Method: ipvs.Route, Template: true, State: "NONE", Timeout: 300 * time.Second}
	tests := []struct {
		name string
		mod  func(c *engine.SyncConn)
		ok   bool
	}{
		{name: "installed", mod: func(*engine.SyncConn) {}, ok: true},
		{name: "no such service", mod: func(c *engine.SyncConn) { c.Virtual = netip.MustParseAddrPort("198.18.1.99:80") }},
		{name: "service not persistent here", mod: func(c *engine.SyncConn) { c.Virtual = netip.MustParseAddrPort("198.18.1.11:80") }},
		{name: "no such real server", mod: func(c *engine.SyncConn) { c.Dest = netip.AddrPortFrom(rsIP(12), 80) }},
		{name: "firewall-mark service it lacks", mod: func(c *engine.SyncConn) { c.Proto, c.Virtual, c.FWMark = 0, netip.AddrPort{}, 7 }},
		{name: "family differs", mod: func(c *engine.SyncConn) { c.Client = netip.MustParseAddrPort("[2001:db8:3::7]:0") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tmpl
			tt.mod(&c)
			in, skipped := backup.InstallSynced([]engine.SyncConn{c})
			if ok := in == 1 && skipped == 0; ok != tt.ok || in+skipped != 1 {
				t.Fatalf("InstallSynced = %d installed, %d skipped; want installed %v", in, skipped, tt.ok)
			}
		})
	}
}

// overTheWire carries engine entries through the sync format as a master
// and a backup daemon do.
func overTheWire(t *testing.T, conns []engine.SyncConn) []engine.SyncConn {
	t.Helper()
	var wire []ipvssync.Conn
	for _, c := range conns {
		w, ok := ipvssync.FromEngine(c)
		if !ok {
			t.Fatalf("the sync format cannot carry %+v", c)
		}
		wire = append(wire, w)
	}
	var out []engine.SyncConn
	for _, b := range ipvssync.Pack(1, 1472, wire) {
		m, skipped, err := ipvssync.Unmarshal(b)
		if err != nil || skipped != 0 {
			t.Fatalf("Unmarshal: %v (%d skipped)", err, skipped)
		}
		for _, w := range m.Conns {
			c, ok := ipvssync.ToEngine(w)
			if !ok {
				t.Fatalf("a backup cannot take %+v", w)
			}
			out = append(out, c)
		}
	}
	return out
}
