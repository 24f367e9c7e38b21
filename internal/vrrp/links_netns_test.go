package vrrp

import (
	"context"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/netns/netnstest"
)

// linkWait bounds how long a link change may take to reach an instance
// (the kernel itself delays carrier changes by up to a second, linkwatch);
// an instance re-reads its links on no timer, so only the netlink event
// can have carried it.
const linkWait = 3 * time.Second

// watchLinks starts a LinkWatcher in ns that stops when the test ends.
func watchLinks(t *testing.T, ns *netnstest.NS) *LinkWatcher {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	w, err := WatchLinks(ctx, ns.Name, slog.New(slog.NewTextHandler(&testWriter{t: t}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// wakes reports whether c was woken within linkWait.
func wakes(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	case <-time.After(linkWait):
		return false
	}
}

// TestNetnsLinkWatcher: the watcher knows every link at once and follows
// admin state, carrier, renames, deletion and bridge membership as the
// kernel reports them.
func TestNetnsLinkWatcher(t *testing.T) {
	netnstest.Require(t)
	a, b := netnstest.New(t, "a"), netnstest.New(t, "b")
	netnstest.Veth(t, a, "trk", b, "trk")
	w := watchLinks(t, a)
	if !w.Up("trk") || !w.Up("lo") || w.Up("nosuch") {
		t.Fatalf("at start: trk %v lo %v nosuch %v, want up, up, down", w.Up("trk"), w.Up("lo"), w.Up("nosuch"))
	}
	woken := make(chan struct{}, 1)
	defer w.Notify(woken)()

	steps := []struct {
		name  string
		do    func()
		link  string
		up    bool
		other string // a name that must read down
	}{
		{"admin down", func() { a.Run("ip", "link", "set", "trk", "down") }, "trk", false, ""},
		{"admin up", func() { a.Run("ip", "link", "set", "trk", "up") }, "trk", true, ""},
		{"peer down: no carrier", func() { b.Run("ip", "link", "set", "trk", "down") }, "trk", false, ""},
		{"peer up: carrier", func() { b.Run("ip", "link", "set", "trk", "up") }, "trk", true, ""},
		{"renamed", func() {
			a.Run("ip", "link", "set", "trk", "down")
			a.Run("ip", "link", "set", "trk", "name", "uplink")
			a.Run("ip", "link", "set", "uplink", "up")
		}, "uplink", true, "trk"},
		{"made a bridge port", func() {
			a.Run("ip", "link", "add", "br0", "type", "bridge")
			a.Run("ip", "link", "set", "br0", "up")
			a.Run("ip", "link", "set", "uplink", "master", "br0")
		}, "br0", true, ""},
		{"left the bridge: still there", func() { a.Run("ip", "link", "set", "uplink", "nomaster") }, "uplink", true, ""},
		{"deleted", func() { a.Run("ip", "link", "del", "uplink") }, "uplink", false, "trk"},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.do()
			deadline := time.Now().Add(linkWait)
			for w.Up(s.link) != s.up {
				if time.Now().After(deadline) || !wakes(woken) {
					t.Fatalf("%s up = %v, want %v within %v", s.link, w.Up(s.link), s.up, linkWait)
				}
			}
			if s.other != "" && w.Up(s.other) {
				t.Fatalf("%s still reads up", s.other)
			}
		})
	}
}

// TestNetnsTrackInterfaceEvents: two instances sharing one LinkWatcher
// react to their links within a bounded wait while the track poll is an
// hour: a track_interface with a weight lowers the priority, one without
// (and the instance's own interface) puts the instance in FAULT, and
// each recovers when the link comes back.
func TestNetnsTrackInterfaceEvents(t *testing.T) {
	netnstest.Require(t, "sysctl")
	p := newPair(t)
	netnstest.Veth(t, p.a, "trk", p.b, "trk")
	links := watchLinks(t, p.a)

	start := func(name string, vrid uint8, vip string, track TrackInterface) *Instance {
		cfg := finished(InstanceConfig{Name: name, Interface: "eth0", VRID: vrid, Priority: 200, Version: 3,
			AdvertInt: 100 * time.Millisecond, VIPs: []VIP{{Prefix: netip.MustParsePrefix(vip)}},
			TrackInterfaces: []TrackInterface{track}})
		inst, _ := runInstance(t, cfg, Options{Netns: p.a.Name, Links: links,
			Logger: slog.New(slog.NewTextHandler(&testWriter{t: t}, nil)).With("ns", p.a.Name)})
		return inst
	}
	weighted := start("VI_W", 61, "198.18.1.61/24", TrackInterface{Name: "trk", Weight: -50})
	strict := start("VI_S", 62, "198.18.1.62/24", TrackInterface{Name: "trk"})
	waitState(t, weighted, StateMaster)
	waitState(t, strict, StateMaster)

	expect := func(t *testing.T, inst *Instance, state State, prio uint8) {
		t.Helper()
		took := waitUntil(t, linkWait, inst.Name()+" in "+state.String(), func() bool {
			s := inst.Status()
			return s.State == state && s.EffectivePriority == prio
		})
		t.Logf("%s %s priority %d after %v", inst.Name(), state, prio, took.Round(time.Millisecond))
		if hasAddr(p.a, inst.Config().VIPs[0].Prefix.Addr().String()) != (state == StateMaster) {
			t.Fatalf("%s in %s: VIP present %v", inst.Name(), state, !(state == StateMaster))
		}
	}
	t.Run("tracked link down", func(t *testing.T) {
		p.a.Run("ip", "link", "set", "trk", "down")
		expect(t, weighted, StateMaster, 150)
		expect(t, strict, StateFault, 200)
	})
	t.Run("tracked link up", func(t *testing.T) {
		p.a.Run("ip", "link", "set", "trk", "up")
		expect(t, weighted, StateMaster, 200)
		expect(t, strict, StateMaster, 200)
	})
	t.Run("own interface loses its carrier", func(t *testing.T) {
		p.b.Run("ip", "link", "set", "eth0", "down")
		expect(t, weighted, StateFault, 200)
		expect(t, strict, StateFault, 200)
	})
	t.Run("own interface back", func(t *testing.T) {
		p.b.Run("ip", "link", "set", "eth0", "up")
		// out of FAULT an instance is BACKUP until the master down
		// interval passes with no advert
		for _, inst := range []*Instance{weighted, strict} {
			waitUntil(t, linkWait, inst.Name()+" out of FAULT", func() bool { return inst.Status().State != StateFault })
			waitState(t, inst, StateMaster)
		}
	})
}
