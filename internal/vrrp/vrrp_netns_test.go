package vrrp

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/netns/netnstest"
)

// pair is two namespaces a and b joined by a veth pair named eth0 on both
// sides, with addresses 198.18.1.1/.2 and 2001:db8:1::1/::2.
type pair struct {
	a, b *netnstest.NS
}

func newPair(t *testing.T) pair {
	t.Helper()
	p := pair{a: netnstest.New(t, "a"), b: netnstest.New(t, "b")}
	netnstest.Veth(t, p.a, "eth0", p.b, "eth0")
	p.a.Addr("eth0", "198.18.1.1/24")
	p.b.Addr("eth0", "198.18.1.2/24")
	p.a.Addr("eth0", "2001:db8:1::1/64")
	p.b.Addr("eth0", "2001:db8:1::2/64")
	for _, n := range []*netnstest.NS{p.a, p.b} {
		waitUntil(t, 5*time.Second, "IPv6 link-local address on eth0 in "+n.Name, func() bool {
			out, _ := n.Output("ip", "-6", "-o", "addr", "show", "dev", "eth0", "scope", "link")
			return strings.Contains(out, "fe80::") && !strings.Contains(out, "tentative")
		})
	}
	return p
}

func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v", what, limit)
	return 0
}

// hasAddr reports whether addr is on n's eth0.
func hasAddr(n *netnstest.NS, addr string) bool { return hasAddrOn(n, "eth0", addr) }

// neverBoth polls the VIP on both sides until the test ends and fails it
// if the VIP is on both for two polls in a row (a handover takes one).
func neverBoth(t *testing.T, p pair, vip string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var both atomic.Int32
	go func() {
		defer close(done)
		run := 0
		for ctx.Err() == nil {
			if hasAddr(p.a, vip) && hasAddr(p.b, vip) {
				run++
				if run >= 2 {
					both.Add(1)
				}
			} else {
				run = 0
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		if n := both.Load(); n > 0 {
			t.Errorf("the VIP %s was on both namespaces at once (%d polls)", vip, n)
		}
	})
}

type testWriter struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(b), "\n"))
	}
	return len(b), nil
}

// gvs is an instance running in a namespace.
type gvs struct {
	*Instance
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

func startGVS(t *testing.T, ns *netnstest.NS, cfg InstanceConfig) *gvs {
	t.Helper()
	w := &testWriter{t: t}
	log := slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo})).With("ns", ns.Name)
	inst, err := NewInstance(cfg, Options{Netns: ns.Name, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g := &gvs{Instance: inst, cancel: cancel, done: make(chan error, 1)}
	go func() { g.done <- inst.Run(ctx) }()
	t.Cleanup(func() {
		g.stop(t)
		w.mu.Lock()
		w.done = true
		w.mu.Unlock()
	})
	return g
}

// stop ends the instance gracefully (priority 0 advert) and waits.
func (g *gvs) stop(t *testing.T) {
	g.once.Do(func() {
		g.cancel()
		select {
		case err := <-g.done:
			if err != nil {
				t.Errorf("instance %s: %v", g.Name(), err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("instance %s did not stop within 10 s", g.Name())
		}
	})
}

// abort ends the instance as a crash would.
func (g *gvs) abort(t *testing.T) {
	g.Abort()
	g.stop(t)
}

type family struct {
	name     string
	version  uint8
	interval time.Duration
	vip      string // address with prefix length
	auth     bool
}

var families = []family{
	{name: "v2 IPv4 PASS", version: 2, interval: time.Second, vip: "198.18.1.100/24", auth: true},
	{name: "v3 IPv4", version: 3, interval: 200 * time.Millisecond, vip: "198.18.1.100/24"},
	{name: "v3 IPv6", version: 3, interval: 200 * time.Millisecond, vip: "2001:db8:1::100/64"},
}

func (f family) cfg(name string, prio uint8) InstanceConfig {
	c := finished(InstanceConfig{Name: name, Interface: "eth0", VRID: 51, Priority: prio, AdvertInt: f.interval,
		Version: f.version, VIPs: []VIP{{Prefix: netip.MustParsePrefix(f.vip)}}})
	if f.auth {
		c.AuthType, c.AuthPass = AuthPass, "secretpassword"
	}
	return c
}

func (f family) addr() string { return strings.Split(f.vip, "/")[0] }

func (f family) mdi(prio uint8) time.Duration {
	m := NewMachine(MachineConfig{Version: f.version, Priority: prio, AdvertInt: f.interval})
	return m.MasterDownInterval()
}

func TestNetnsGVSPair(t *testing.T) {
	netnstest.Require(t, "sysctl")
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			p := newPair(t)
			vip := f.addr()
			neverBoth(t, p, vip)
			master := startGVS(t, p.a, f.cfg("VI_A", 150))
			backup := startGVS(t, p.b, f.cfg("VI_B", 100))

			waitUntil(t, f.mdi(150)+2*time.Second, "VIP on the master", func() bool { return hasAddr(p.a, vip) })
			waitUntil(t, 3*f.interval+time.Second, "backup hears the master", func() bool {
				return backup.Status().AdvertsReceived > 0 && backup.Status().State == StateBackup
			})
			if hasAddr(p.b, vip) {
				t.Fatal("the VIP is on the backup too")
			}
			if s := master.Status(); s.State != StateMaster || s.BecomeMaster != 1 {
				t.Fatalf("master status %+v", s)
			}
			if d := backup.Status().Drops; len(d) != 0 {
				t.Fatalf("backup dropped adverts: %v", d)
			}

			// graceful shutdown: priority 0, the backup takes over at once
			master.stop(t)
			if hasAddr(p.a, vip) {
				t.Fatal("the stopped master kept its VIP")
			}
			took := waitUntil(t, time.Second, "VIP moves to the backup after priority 0", func() bool { return hasAddr(p.b, vip) })
			t.Logf("takeover after priority 0 advert: %v", took)
			if s := backup.Status(); s.PriorityZeroReceived == 0 || s.State != StateMaster {
				t.Fatalf("backup status after takeover: %+v", s)
			}

			// restart: the higher priority preempts
			master = startGVS(t, p.a, f.cfg("VI_A", 150))
			waitUntil(t, f.mdi(150)+2*time.Second, "restarted master preempts", func() bool {
				return hasAddr(p.a, vip) && !hasAddr(p.b, vip)
			})

			// crash: no priority 0, the backup waits Master_Down_Interval
			master.abort(t)
			// the crashed instance leaves its VIP behind, as keepalived -9
			// would; take it away before the backup takes over
			p.a.Run("ip", "addr", "del", f.vip, "dev", "eth0")
			took = waitUntil(t, f.mdi(100)+time.Second, "VIP moves to the backup after a crash", func() bool { return hasAddr(p.b, vip) })
			t.Logf("takeover after crash: %v (Master_Down_Interval %v)", took, f.mdi(100))

			// nopreempt: a higher priority restart stays backup
			c := f.cfg("VI_A", 150)
			c.NoPreempt = true
			master = startGVS(t, p.a, c)
			time.Sleep(f.mdi(150) + 2*f.interval)
			if hasAddr(p.a, vip) || !hasAddr(p.b, vip) {
				t.Fatal("nopreempt instance took the VIP")
			}
			if s := master.Status(); s.State != StateBackup {
				t.Fatalf("nopreempt instance is %v, want BACKUP", s.State)
			}
		})
	}
}

// keepalivedConf writes a keepalived.conf for one VRRP instance.
func keepalivedConf(t *testing.T, f family, prio uint8, extra string) string {
	auth := ""
	if f.auth {
		auth = "    authentication {\n        auth_type PASS\n        auth_pass secretpassword\n    }\n"
	}
	interval := fmt.Sprintf("%g", f.interval.Seconds())
	conf := fmt.Sprintf(`global_defs {
    router_id gvs_test
    vrrp_garp_master_delay 1
}
vrrp_instance VI_K {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority %d
    advert_int %s
    version %d
%s%s    virtual_ipaddress {
        %s
    }
}
`, prio, interval, f.version, auth, extra, f.vip)
	path := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// keepalivedComplains fails the test if keepalived logged that it
// dropped one of our adverts.
func keepalivedComplains(t *testing.T, k *netnstest.Proc) {
	t.Helper()
	if !strings.Contains(k.Output(), "(VI_K)") {
		t.Errorf("keepalived logged nothing about VI_K:\n%s", k.Output())
	}
	for _, line := range strings.Split(k.Output(), "\n") {
		l := strings.ToLower(line)
		for _, bad := range []string{"invalid", "mismatch", "wrong", "error"} {
			if strings.Contains(l, bad) {
				t.Errorf("keepalived complains: %s", line)
			}
		}
	}
}

// startKeepalived runs the real keepalived (VRRP only) in the namespace.
func startKeepalived(t *testing.T, ns *netnstest.NS, conf string) *netnstest.Proc {
	t.Helper()
	dir := filepath.Dir(conf)
	return ns.Start("keepalived", "-n", "-l", "-D", "-G", "-P", "-f", conf,
		"-p", filepath.Join(dir, "keepalived.pid"), "-r", filepath.Join(dir, "vrrp.pid"),
		"-c", filepath.Join(dir, "checkers.pid"))
}

func TestNetnsKeepalived(t *testing.T) {
	netnstest.Require(t, "sysctl", "keepalived")
	for _, f := range families {
		t.Run(f.name+" gvs master keepalived backup", func(t *testing.T) {
			p := newPair(t)
			vip := f.addr()
			neverBoth(t, p, vip)
			g := startGVS(t, p.a, f.cfg("VI_G", 150))
			k := startKeepalived(t, p.b, keepalivedConf(t, f, 100, ""))
			waitUntil(t, f.mdi(150)+3*time.Second, "VIP on gvs", func() bool { return hasAddr(p.a, vip) })
			time.Sleep(f.mdi(100) + f.interval) // keepalived would have taken over without our adverts
			if hasAddr(p.b, vip) {
				t.Fatalf("keepalived took the VIP while gvs is master; keepalived says:\n%s", k.Output())
			}
			g.stop(t)
			took := waitUntil(t, time.Second, "VIP moves to keepalived after priority 0", func() bool { return hasAddr(p.b, vip) })
			t.Logf("keepalived took over in %v", took)
			// restart: gvs preempts keepalived
			g = startGVS(t, p.a, f.cfg("VI_G", 150))
			waitUntil(t, f.mdi(150)+3*time.Second, "gvs preempts keepalived", func() bool {
				return hasAddr(p.a, vip) && !hasAddr(p.b, vip)
			})
			if s := g.Status(); s.AdvertsReceived == 0 || len(s.Drops) != 0 {
				t.Fatalf("gvs did not decode keepalived's adverts cleanly: %+v", s)
			}
			keepalivedComplains(t, k)
		})
		t.Run(f.name+" keepalived master gvs backup", func(t *testing.T) {
			p := newPair(t)
			vip := f.addr()
			neverBoth(t, p, vip)
			k := startKeepalived(t, p.b, keepalivedConf(t, f, 150, ""))
			g := startGVS(t, p.a, f.cfg("VI_G", 100))
			waitUntil(t, f.mdi(150)+3*time.Second, "VIP on keepalived", func() bool { return hasAddr(p.b, vip) })
			waitUntil(t, 3*f.interval+time.Second, "gvs hears keepalived", func() bool { return g.Status().AdvertsReceived > 0 })
			time.Sleep(f.mdi(100) + f.interval)
			if hasAddr(p.a, vip) || g.Status().State != StateBackup {
				t.Fatalf("gvs took the VIP from keepalived: %+v", g.Status())
			}
			if s := g.Status(); len(s.Drops) != 0 {
				t.Fatalf("gvs dropped keepalived's adverts: %v", s.Drops)
			}
			keepalivedComplains(t, k)
			k.Stop() // SIGTERM: keepalived sends priority 0
			took := waitUntil(t, time.Second, "VIP moves to gvs after keepalived stops", func() bool { return hasAddr(p.a, vip) })
			t.Logf("gvs took over in %v", took)
			// keepalived comes back and preempts gvs
			k = startKeepalived(t, p.b, keepalivedConf(t, f, 150, ""))
			waitUntil(t, f.mdi(150)+3*time.Second, "keepalived preempts gvs", func() bool {
				return hasAddr(p.b, vip) && !hasAddr(p.a, vip)
			})
			// keepalived crashes: gvs waits Master_Down_Interval
			k.Kill()
			p.b.Run("ip", "addr", "del", f.vip, "dev", "eth0") // a killed keepalived leaves it
			took = waitUntil(t, f.mdi(100)+time.Second, "VIP moves to gvs after keepalived is killed", func() bool { return hasAddr(p.a, vip) })
			t.Logf("gvs took over after a crash in %v", took)
		})
	}
}
