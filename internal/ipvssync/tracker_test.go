package ipvssync

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

func TestTracker(t *testing.T) {
	t0 := time.Unix(1000, 0)
	conn := func(port uint16, state string, idle time.Duration) engine.SyncConn {
		return engine.SyncConn{Proto: ipvs.TCP, Client: netip.AddrPortFrom(netip.MustParseAddr("198.18.0.2"), port),
			Virtual: ap("198.18.1.100:80"), Dest: ap("198.18.2.10:80"), Method: ipvs.Route, State: state, Idle: idle}
	}
	tr := newTracker(30 * time.Second)
	steps := []struct {
		name  string
		at    time.Duration
		conns []engine.SyncConn
		want  []uint16 // client ports sent
	}{
		{name: "new established is sent, half-open is not", at: 0,
			conns: []engine.SyncConn{conn(1, "ESTABLISHED", 0), conn(2, "SYN_RECV", 0)}, want: []uint16{1}},
		{name: "unchanged is not sent again", at: time.Second,
			conns: []engine.SyncConn{conn(1, "ESTABLISHED", 0), conn(2, "SYN_RECV", 0)}},
		{name: "established after SYN_RECV is sent", at: 2 * time.Second,
			conns: []engine.SyncConn{conn(1, "ESTABLISHED", 0), conn(2, "ESTABLISHED", 0)}, want: []uint16{2}},
		{name: "busy one is refreshed after the period, idle one not", at: 31 * time.Second,
			conns: []engine.SyncConn{conn(1, "ESTABLISHED", time.Second), conn(2, "ESTABLISHED", 30*time.Second)}, want: []uint16{1}},
		{name: "state change is sent at once", at: 32 * time.Second,
			conns: []engine.SyncConn{conn(1, "FIN_WAIT", 0), conn(2, "ESTABLISHED", 31*time.Second)}, want: []uint16{1}},
		{name: "gone ones are forgotten, so a new one with their tuple is sent", at: 33 * time.Second,
			conns: nil},
		{name: "back again", at: 34 * time.Second,
			conns: []engine.SyncConn{conn(2, "ESTABLISHED", 0)}, want: []uint16{2}},
	}
	for _, s := range steps {
		got := tr.changes(t0.Add(s.at), s.conns)
		var ports []uint16
		for _, c := range got {
			ports = append(ports, c.Client.Port())
		}
		if len(ports) != len(s.want) || len(ports) > 0 && ports[0] != s.want[0] {
			t.Fatalf("%s: sent %v, want %v", s.name, ports, s.want)
		}
	}
}
