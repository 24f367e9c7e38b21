package ipvssync

import (
	"bytes"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// TestTemplate: persistence templates go on the wire as the kernel's
// ip_vs_sched_persist makes them (IP_VS_CONN_F_TEMPLATE, client port 0,
// no ports for port-zero and FTP services, protocol 0 and the mark for
// firewall-mark services) and come back as an engine installs them.
func TestTemplate(t *testing.T) {
	tmpl := func(proto ipvs.Protocol, virtual, dest string, m ipvs.Method) engine.SyncConn {
		c := engine.SyncConn{Proto: proto, Client: ap("198.18.0.0:0"), Dest: ap(dest), Method: m,
			Template: true, State: "NONE", Timeout: 300 * time.Second}
		if virtual != "" {
			c.Virtual = ap(virtual)
		}
		return c
	}
	fwm := tmpl(0, "", "198.18.2.10:80", ipvs.Tunnel)
	fwm.FWMark = 7
	fwm6 := fwm
	fwm6.Client, fwm6.Dest = ap("[2001:db8::]:0"), ap("[2001:db8:2::10]:80")
	busy := tmpl(ipvs.TCP, "198.18.1.100:80", "198.18.2.10:80", ipvs.Route)
	busy.Client, busy.Idle = ap("198.18.0.0:0"), 5*time.Second
	tests := []struct {
		name string
		in   engine.SyncConn
		wire Conn
		hex  string // the message Pack makes with syncid 7, if given
		back engine.SyncConn
	}{
		{
			name: "TCP service",
			in:   tmpl(ipvs.TCP, "198.18.1.100:80", "198.18.2.10:80", ipvs.Route),
			wire: Conn{Proto: 6, Flags: FlagTemplate | FlagRoute, Client: ap("198.18.0.0:0"), Virtual: ap("198.18.1.100:80"),
				Dest: ap("198.18.2.10:80"), Timeout: 300},
			hex: "00 07 002c 01 01 0000" +
				"00 06 0024 00001003 0000 0000 0050 0050 00000000 0000012c" + // template|DR, state NONE, cport 0, timeout 300
				"c6120000 c6120164 c612020a",
			back: tmpl(ipvs.TCP, "198.18.1.100:80", "198.18.2.10:80", ipvs.Route),
		},
		{
			name: "idle time is not sent",
			in:   busy,
			wire: Conn{Proto: 6, Flags: FlagTemplate | FlagRoute, Client: ap("198.18.0.0:0"), Virtual: ap("198.18.1.100:80"),
				Dest: ap("198.18.2.10:80"), Timeout: 300},
			back: tmpl(ipvs.TCP, "198.18.1.100:80", "198.18.2.10:80", ipvs.Route),
		},
		{
			name: "UDP NAT service",
			in:   tmpl(ipvs.UDP, "198.18.1.100:53", "198.18.2.10:5353", ipvs.Masq),
			wire: Conn{Proto: 17, Flags: FlagTemplate | FlagMasq, Client: ap("198.18.0.0:0"), Virtual: ap("198.18.1.100:53"),
				Dest: ap("198.18.2.10:5353"), Timeout: 300},
			back: tmpl(ipvs.UDP, "198.18.1.100:53", "198.18.2.10:5353", ipvs.Masq),
		},
		{
			name: "port-zero service has no ports",
			in:   tmpl(ipvs.TCP, "198.18.1.100:0", "198.18.2.10:80", ipvs.Route),
			wire: Conn{Proto: 6, Flags: FlagTemplate | FlagRoute, Client: ap("198.18.0.0:0"), Virtual: ap("198.18.1.100:0"),
				Dest: ap("198.18.2.10:0"), Timeout: 300},
			back: tmpl(ipvs.TCP, "198.18.1.100:0", "198.18.2.10:0", ipvs.Route),
		},
		{
			name: "FTP service has no ports",
			in:   tmpl(ipvs.TCP, "198.18.1.100:21", "198.18.2.10:21", ipvs.Route),
			wire: Conn{Proto: 6, Flags: FlagTemplate | FlagRoute, Client: ap("198.18.0.0:0"), Virtual: ap("198.18.1.100:0"),
				Dest: ap("198.18.2.10:0"), Timeout: 300},
			back: tmpl(ipvs.TCP, "198.18.1.100:0", "198.18.2.10:0", ipvs.Route),
		},
		{
			name: "firewall-mark service",
			in:   fwm,
			wire: Conn{Proto: 0, Flags: FlagTemplate | FlagTunnel, Client: ap("198.18.0.0:0"), Virtual: ap("0.0.0.7:0"),
				Dest: ap("198.18.2.10:0"), FWMark: 7, Timeout: 300},
			hex: "00 07 002c 01 01 0000" +
				"00 00 0024 00001002 0000 0000 0000 0000 00000007 0000012c" + // IPPROTO_IP, template|TUN, no ports, fwmark 7
				"c6120000 00000007 c612020a",
			back: func() engine.SyncConn { c := fwm; c.Dest = ap("198.18.2.10:0"); return c }(),
		},
		{
			name: "IPv6 firewall-mark service",
			in:   fwm6,
			wire: Conn{Proto: 0, Flags: FlagTemplate | FlagTunnel, Client: ap("[2001:db8::]:0"), Virtual: ap("[0:7::]:0"),
				Dest: ap("[2001:db8:2::10]:0"), FWMark: 7, Timeout: 300},
			back: func() engine.SyncConn { c := fwm6; c.Dest = ap("[2001:db8:2::10]:0"); return c }(),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, ok := FromEngine(tt.in)
			if !ok || w != tt.wire {
				t.Fatalf("FromEngine = %+v, %v; want\n%+v", w, ok, tt.wire)
			}
			msgs := Pack(7, 1472, []Conn{w})
			if len(msgs) != 1 {
				t.Fatalf("Pack made %d messages, want 1", len(msgs))
			}
			if tt.hex != "" && !bytes.Equal(msgs[0], unhex(t, tt.hex)) {
				t.Fatalf("Pack:\n got %x\nwant %x", msgs[0], unhex(t, tt.hex))
			}
			m, skipped, err := Unmarshal(msgs[0])
			if err != nil || skipped != 0 || len(m.Conns) != 1 {
				t.Fatalf("Unmarshal: %+v, %d skipped, %v", m, skipped, err)
			}
			if m.Conns[0].Flags != tt.wire.Flags|FlagSync {
				t.Errorf("received flags %#x, want %#x", m.Conns[0].Flags, tt.wire.Flags|FlagSync)
			}
			got, ok := ToEngine(m.Conns[0])
			if !ok || got != tt.back {
				t.Fatalf("ToEngine = %+v, %v; want\n%+v", got, ok, tt.back)
			}
		})
	}
}

func TestTemplateRefused(t *testing.T) {
	good := Conn{Proto: 6, Flags: FlagTemplate | FlagRoute | FlagSync, Client: ap("198.18.0.0:0"), Virtual: ap("198.18.1.100:80"),
		Dest: ap("198.18.2.10:80"), Timeout: 300}
	tests := []struct {
		name string
		mod  func(c *Conn)
		ok   bool
	}{
		{name: "good", mod: func(*Conn) {}, ok: true},
		{name: "a template's state is not checked", mod: func(c *Conn) { c.State = 99 }, ok: true},
		{name: "local forwarding", mod: func(c *Conn) { c.Flags = FlagTemplate | FlagLocal }},
		{name: "protocol 0 without a mark", mod: func(c *Conn) { c.Proto = 0 }},
		{name: "ICMP", mod: func(c *Conn) { c.Proto = 1 }},
		{name: "mixed families", mod: func(c *Conn) { c.Dest = ap("[2001:db8:2::10]:80") }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.mod(&c)
			got, ok := ToEngine(c)
			if ok != tt.ok {
				t.Fatalf("ToEngine(%+v) ok = %v, want %v", c, ok, tt.ok)
			}
			if ok && (!got.Template || got.State != "NONE" || got.Client.Port() != 0) {
				t.Fatalf("ToEngine = %+v, want a template in state NONE", got)
			}
		})
	}
	if _, ok := FromEngine(engine.SyncConn{Proto: ipvs.TCP, Client: ap("198.18.0.0:0"), Virtual: ap("198.18.1.100:80"),
		Dest: ap("198.18.2.10:80"), Method: ipvs.FullNAT, Template: true, State: "NONE"}); ok {
		t.Error("FromEngine carried a FullNAT template; the format has no FullNAT")
	}
}

// TestTrackerTemplates: a template is sent when new or moved, and again
// while it is in use after the refresh period; a connection of the same
// client is tracked apart from it.
func TestTrackerTemplates(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tmpl := func(dest string, idle time.Duration) engine.SyncConn {
		return engine.SyncConn{Proto: ipvs.TCP, Client: ap("198.18.0.0:0"), Virtual: ap("198.18.1.100:80"), Dest: ap(dest),
			Method: ipvs.Route, Template: true, State: "NONE", Idle: idle}
	}
	conn := engine.SyncConn{Proto: ipvs.TCP, Client: ap("198.18.0.0:0"), Virtual: ap("198.18.1.100:80"), Dest: ap("198.18.2.10:80"),
		Method: ipvs.Route, State: "ESTABLISHED"}
	tr := newTracker(30 * time.Second)
	steps := []struct {
		name  string
		at    time.Duration
		conns []engine.SyncConn
		want  int
	}{
		{name: "new template and connection", conns: []engine.SyncConn{tmpl("198.18.2.10:80", 0), conn}, want: 2},
		{name: "unchanged", at: time.Second, conns: []engine.SyncConn{tmpl("198.18.2.10:80", 0), conn}},
		{name: "used again after the period", at: 31 * time.Second, conns: []engine.SyncConn{tmpl("198.18.2.10:80", 2*time.Second)}, want: 1},
		{name: "unused", at: 62 * time.Second, conns: []engine.SyncConn{tmpl("198.18.2.10:80", 33*time.Second)}},
		{name: "moved to another server", at: 63 * time.Second, conns: []engine.SyncConn{tmpl("198.18.2.11:80", 0)}, want: 1},
	}
	for _, s := range steps {
		if got := tr.changes(t0.Add(s.at), s.conns); len(got) != s.want {
			t.Fatalf("%s: sent %d (%+v), want %d", s.name, len(got), got, s.want)
		}
	}
}
