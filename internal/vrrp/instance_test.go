package vrrp

import (
	"context"
	"errors"
	"fmt"
	"github.com/gvs-lb/gvs/internal/script"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// hub is an in-memory LAN: what one conn writes, every other conn reads.
type hub struct {
	mu    sync.Mutex
	conns []*memConn
}

type memConn struct {
	hub    *hub
	src    netip.Addr
	in     chan Received
	closed chan struct{}
	once   sync.Once
}

func (h *hub) conn(src string) *memConn {
	c := &memConn{hub: h, src: netip.MustParseAddr(src), in: make(chan Received, 64), closed: make(chan struct{})}
	h.mu.Lock()
	h.conns = append(h.conns, c)
	h.mu.Unlock()
	return c
}

func (c *memConn) WriteAdvert(b []byte, dst netip.Addr) error {
	c.hub.mu.Lock()
	defer c.hub.mu.Unlock()
	for _, o := range c.hub.conns {
		if o == c {
			continue
		}
		select {
		case o.in <- Received{Src: c.src, Dst: dst, TTL: TTL, Payload: slices.Clone(b)}:
		default:
		}
	}
	return nil
}

// WritePacket4 delivers a whole IPv4 packet (auth_type AH) as a raw
// socket would: header kept, payload after it.
func (c *memConn) WritePacket4(pkt []byte) error {
	c.hub.mu.Lock()
	defer c.hub.mu.Unlock()
	dst, _ := netip.AddrFromSlice(pkt[16:20])
	for _, o := range c.hub.conns {
		if o == c {
			continue
		}
		p := slices.Clone(pkt)
		select {
		case o.in <- Received{Src: c.src, Dst: dst, TTL: int(p[8]), IPHeader: p[:20], Payload: p[20:]}:
		default:
		}
	}
	return nil
}

func (c *memConn) ReadAdvert() (Received, error) {
	select {
	case r := <-c.in:
		return r, nil
	case <-c.closed:
		return Received{}, errors.New("closed")
	}
}

func (c *memConn) Close() error { c.once.Do(func() { close(c.closed) }); return nil }

// memHost records VIPs and link states instead of touching the kernel;
// it is the instance's Links too.
type memHost struct {
	mu    sync.Mutex
	vips  map[netip.Prefix]bool
	down  map[string]bool
	garps int
	subs  map[*chan<- struct{}]bool
}

func newMemHost() *memHost {
	return &memHost{vips: map[netip.Prefix]bool{}, down: map[string]bool{}, subs: map[*chan<- struct{}]bool{}}
}

func (h *memHost) AddVIPs(v []VIP) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, x := range v {
		h.vips[x.Prefix] = true
	}
	return nil
}

func (h *memHost) DelVIPs(v []VIP) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, x := range v {
		delete(h.vips, x.Prefix)
	}
	return nil
}

func (h *memHost) Gratuitous([]VIP) error { h.mu.Lock(); h.garps++; h.mu.Unlock(); return nil }

func (h *memHost) Up(name string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.down[name]
}

func (h *memHost) Notify(c chan<- struct{}) func() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs[&c] = true
	return func() { h.mu.Lock(); delete(h.subs, &c); h.mu.Unlock() }
}

// setDown sets a link down or up and tells the instances, as a netlink
// update would.
func (h *memHost) setDown(name string, down bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.down[name] = down
	for c := range h.subs {
		select {
		case *c <- struct{}{}:
		default:
		}
	}
}
func (h *memHost) hasVIPs() bool { h.mu.Lock(); defer h.mu.Unlock(); return len(h.vips) > 0 }
func (h *memHost) Close() error  { return nil }

func memConfig(name string, vrid, prio uint8, src string) InstanceConfig {
	return finished(InstanceConfig{Name: name, Interface: "lo", VRID: vrid, Priority: prio, Version: 3,
		AdvertInt: 50 * time.Millisecond, MCastSrcIP: netip.MustParseAddr(src),
		VIPs: []VIP{{Prefix: netip.MustParsePrefix("198.18.9.1/32")}}})
}

// finished sets what a test leaves zero as keepalived's defaults would
// (internal/plan sets them for gvsd): state BACKUP, gratuitous ARPs 5
// then 5 more after 5 s.
func finished(c InstanceConfig) InstanceConfig {
	if c.State == StateInit {
		c.State = StateBackup
	}
	if c.GARPMasterDelay == 0 {
		c.GARPMasterDelay = 5 * time.Second
	}
	if c.GARPMasterRepeat == 0 {
		c.GARPMasterRepeat = 5
	}
	if c.GARPMasterRefreshRepeat == 0 {
		c.GARPMasterRefreshRepeat = 1
	}
	if c.UseVMAC && c.VMACName == "" {
		c.VMACName = fmt.Sprintf("vrrp.%d", c.VRID)
	}
	return c
}

// runMem runs an instance of cfg on opt's in-memory host (its links too,
// unless opt has others), without logs; see runInstance.
func runMem(t *testing.T, cfg InstanceConfig, opt Options) (*Instance, func()) {
	t.Helper()
	opt.Logger = slog.New(slog.DiscardHandler)
	if h, ok := opt.Host.(*memHost); ok && opt.Links == nil {
		opt.Links = h
	}
	return runInstance(t, cfg, opt)
}

// runInstance runs a new instance of cfg with opt until stop, which the
// test's end calls too.
func runInstance(t *testing.T, cfg InstanceConfig, opt Options) (inst *Instance, stop func()) {
	t.Helper()
	inst, err := NewInstance(cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := inst.Run(ctx); err != nil {
			t.Errorf("%s: Run: %v", cfg.Name, err)
		}
	}()
	stop = func() {
		cancel()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Errorf("%s did not stop", cfg.Name)
		}
	}
	t.Cleanup(stop)
	return inst, stop
}

func waitState(t *testing.T, i *Instance, want State) {
	t.Helper()
	waitUntil(t, 3*time.Second, i.Name()+" in "+want.String(), func() bool { return i.Status().State == want })
}

func readLines(t *testing.T, path string) []string {
	b, _ := os.ReadFile(path)
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func TestInstanceTrackingAndNotify(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "notify.log")
	masterLog := filepath.Join(dir, "master.log")
	trackFile := filepath.Join(dir, "track")
	cfg := memConfig("VI_1", 1, 200, "198.18.0.1")
	cfg.Notify.Any = script.Cmd{Line: "echo >>" + log}
	cfg.Notify.Master = script.Cmd{Line: "echo master >>" + masterLog}
	cfg.TrackScripts = []TrackRef{{Name: "chk"}}
	cfg.TrackInterfaces = []TrackInterface{{Name: "uplink", Weight: -50}}
	cfg.TrackFiles = []TrackRef{{Name: "tf"}}
	host := newMemHost()
	var h hub
	fifo := &lineRecorder{}
	inst, stop := runMem(t, cfg, Options{
		Conn: h.conn("198.18.0.1"), Host: host,
		Scripts: map[string]TrackScript{"chk": {Name: "chk", Script: script.Cmd{Line: "true"}}},
		Files:   map[string]TrackFile{"tf": {Name: "tf", File: trackFile, Weight: -10}},
		FIFO:    fifo,
	})
	waitState(t, inst, StateMaster)
	if !host.hasVIPs() {
		t.Fatal("MASTER without its VIPs")
	}

	tests := []struct {
		name  string
		do    func()
		state State
		prio  uint8
	}{
		{"tracked link down lowers the priority", func() { host.setDown("uplink", true) }, StateMaster, 150},
		{"track file value times weight", func() { os.WriteFile(trackFile, []byte("3\n"), 0o644) }, StateMaster, 120},
		{"link back up", func() { host.setDown("uplink", false) }, StateMaster, 170},
		{"script with weight 0 fails: FAULT", func() { inst.SetScriptResult("chk", false) }, StateFault, 170},
		{"script recovers", func() { inst.SetScriptResult("chk", true) }, StateMaster, 170},
		{"own interface down: FAULT", func() { host.setDown("lo", true) }, StateFault, 170},
		{"own interface up", func() { host.setDown("lo", false) }, StateMaster, 170},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.do()
			waitUntil(t, 3*time.Second, "state "+tt.state.String(), func() bool {
				s := inst.Status()
				return s.State == tt.state && s.EffectivePriority == tt.prio
			})
			if host.hasVIPs() != (tt.state == StateMaster) {
				t.Fatalf("VIPs present: %v in %v", host.hasVIPs(), tt.state)
			}
		})
	}
	stop()
	s := inst.Status()
	if s.State != StateStop || s.BecomeMaster != 3 || s.PriorityZeroSent < 3 {
		t.Fatalf("status after stop: %+v", s)
	}
	want := []string{
		"INSTANCE VI_1 BACKUP 200", "INSTANCE VI_1 MASTER 200", "INSTANCE VI_1 FAULT 170",
		"INSTANCE VI_1 BACKUP 170", "INSTANCE VI_1 MASTER 170", "INSTANCE VI_1 FAULT 170",
		"INSTANCE VI_1 BACKUP 170", "INSTANCE VI_1 MASTER 170", "INSTANCE VI_1 STOP 170",
	}
	if got := readLines(t, log); !slices.Equal(got, want) {
		t.Fatalf("notify calls:\n%q\nwant\n%q", got, want)
	}
	// The notify FIFO gets the same changes, in keepalived's words.
	var wantFIFO []string
	for _, w := range want {
		f := strings.Fields(w)
		wantFIFO = append(wantFIFO, fmt.Sprintf("%s %q %s %s\n", f[0], f[1], f[2], f[3]))
	}
	if got := fifo.get(""); !slices.Equal(got, wantFIFO) {
		t.Fatalf("notify FIFO lines:\n%q\nwant\n%q", got, wantFIFO)
	}
	if got := readLines(t, masterLog); len(got) != 3 {
		t.Fatalf("notify_master ran %d times, want 3", len(got))
	}
}

// TestDontTrackPrimary: with dont_track_primary the instance's own
// interface going down is no fault, while a tracked interface still is.
func TestDontTrackPrimary(t *testing.T) {
	cfg := memConfig("VI_1", 1, 200, "198.18.0.1")
	cfg.DontTrackPrimary = true
	cfg.TrackInterfaces = []TrackInterface{{Name: "uplink"}}
	host := newMemHost()
	var h hub
	inst, _ := runMem(t, cfg, Options{Conn: h.conn("198.18.0.1"), Host: host})
	waitState(t, inst, StateMaster)
	for _, step := range []struct {
		name  string
		do    func()
		state State
	}{
		{"own interface down", func() { host.setDown("lo", true) }, StateMaster},
		{"tracked link down: FAULT", func() { host.setDown("uplink", true) }, StateFault},
		// Back to MASTER with its own interface still down: only the
		// tracked link counted.
		{"tracked link up", func() { host.setDown("uplink", false) }, StateMaster},
	} {
		step.do()
		waitUntil(t, 3*time.Second, step.name+": state "+step.state.String(), func() bool { return inst.Status().State == step.state })
	}
}

func TestInstanceDropsCounted(t *testing.T) {
	var h hub
	inst, _ := runMem(t, memConfig("VI_1", 1, 100, "198.18.0.1"), Options{Conn: h.conn("198.18.0.1"), Host: newMemHost()})
	peer := h.conn("198.18.0.2")
	bad := []Advert{
		{Version: 2, Type: TypeAdv, VRID: 1, Priority: 100, Interval: 1, Addrs: addrs("198.18.9.1")},
		{Version: 3, Type: TypeAdv, VRID: 1, Priority: 100, Interval: 5},
		{Version: 3, Type: TypeAdv, VRID: 1, Priority: 100, Interval: 5, Addrs: addrs("198.18.9.2")},
	}
	for _, a := range bad {
		b, err := a.Marshal(peer.src, Group4)
		if err != nil {
			t.Fatal(err)
		}
		peer.WriteAdvert(b, Group4)
	}
	peer.WriteAdvert([]byte{0x31, 1}, Group4)
	want := map[string]uint64{"bad_version": 1, "addr_count_mismatch": 1, "addr_list_mismatch": 1, "too_short": 1}
	waitUntil(t, 2*time.Second, "drops counted", func() bool {
		d := inst.Status().Drops
		for k, v := range want {
			if d[k] != v {
				return false
			}
		}
		return true
	})
}

// TestSyncGroup runs in a synctest bubble, whose fake clock moves only
// when every goroutine waits: B (50 ms adverts) becomes MASTER long
// before A (1 s adverts) would on its own, and the group pulls A along at
// that same instant. B failing puts A in FAULT.
func TestSyncGroup(t *testing.T) {
	synctest.Test(t, testSyncGroup)
}

func testSyncGroup(t *testing.T) {
	var lanA, lanB hub
	cfgA := memConfig("VI_A", 1, 100, "198.18.0.1")
	cfgA.AdvertInt = time.Second
	hostA, hostB := newMemHost(), newMemHost()
	fifo := &lineRecorder{}
	a, err := NewInstance(cfgA, Options{Conn: lanA.conn("198.18.0.1"), Host: hostA, Links: hostA,
		Logger: slog.New(slog.DiscardHandler), FIFO: fifo})
	if err != nil {
		t.Fatal(err)
	}
	cfgB := memConfig("VI_B", 2, 100, "198.18.1.1")
	cfgB.TrackScripts = []TrackRef{{Name: "chk"}}
	b, err := NewInstance(cfgB, Options{Conn: lanB.conn("198.18.1.1"), Host: hostB, Links: hostB,
		Scripts: map[string]TrackScript{"chk": {Name: "chk"}},
		Logger:  slog.New(slog.DiscardHandler), FIFO: fifo})
	if err != nil {
		t.Fatal(err)
	}
	// when each instance last became MASTER, on the bubble's clock
	var mu sync.Mutex
	masterAt := map[*Instance]time.Time{}
	for _, i := range []*Instance{a, b} {
		i.OnStateChange(func(i *Instance, s State) {
			if s == StateMaster {
				mu.Lock()
				masterAt[i] = time.Now()
				mu.Unlock()
			}
		})
	}
	notify := filepath.Join(t.TempDir(), "group.log")
	g, err := NewGroup(SyncGroup{Name: "G", Instances: []string{"VI_A", "VI_B"}, Notify: Notify{Any: script.Cmd{Line: "echo >>" + notify}}},
		[]*Instance{a, b}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, i := range []*Instance{a, b} {
		wg.Add(1)
		go func() { defer wg.Done(); i.Run(ctx) }()
	}
	// stop ends the instances, then waits for the group's notify scripts
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); wg.Wait(); g.Close() }) }
	t.Cleanup(stop)
	// want waits until every goroutine of the bubble is idle and checks
	// the states
	want := func(what string, sa, sb State) {
		t.Helper()
		synctest.Wait()
		if a.Status().State != sa || b.Status().State != sb {
			t.Fatalf("%s: A %v, B %v; want A %v, B %v", what, a.Status().State, b.Status().State, sa, sb)
		}
	}
	start := time.Now()
	// B's master down timer runs out after 3 x 50 ms plus its skew, A's
	// own only after 3 s plus its skew
	bDown := 3*cfgB.AdvertInt + 156*cfgB.AdvertInt/256
	time.Sleep(bDown - time.Nanosecond)
	want("just before B's master down timer", StateBackup, StateBackup)
	time.Sleep(time.Nanosecond)
	want("B's master down timer ran out", StateMaster, StateMaster)
	mu.Lock()
	atA, atB := masterAt[a].Sub(start), masterAt[b].Sub(start)
	mu.Unlock()
	if atA != bDown || atB != bDown {
		t.Fatalf("A became MASTER after %v and B after %v, want both after B's Master_Down_Interval %v", atA, atB, bDown)
	}
	if g.State() != StateMaster {
		t.Fatalf("group state %v", g.State())
	}
	b.SetScriptResult("chk", false)
	want("B's script failed", StateFault, StateFault)
	b.SetScriptResult("chk", true)
	want("B's script recovered", StateBackup, StateBackup)
	time.Sleep(bDown)
	want("B's master down timer ran out again", StateMaster, StateMaster)
	stop()
	got := readLines(t, notify)
	wantNotify := []string{"GROUP G BACKUP", "GROUP G MASTER", "GROUP G FAULT", "GROUP G BACKUP", "GROUP G MASTER", "GROUP G STOP"}
	if !slices.Equal(got, wantNotify) {
		t.Fatalf("group notify calls %q, want %q", got, wantNotify)
	}
	var wantFIFO []string
	for _, w := range wantNotify {
		f := strings.Fields(w)
		wantFIFO = append(wantFIFO, fmt.Sprintf("%s %q %s 0\n", f[0], f[1], f[2]))
	}
	if got := fifo.get("GROUP "); !slices.Equal(got, wantFIFO) {
		t.Fatalf("group notify FIFO lines %q, want %q", got, wantFIFO)
	}
}

// lineRecorder is a notify FIFO that keeps its lines.
type lineRecorder struct {
	mu    sync.Mutex
	lines []string
}

func (r *lineRecorder) WriteLine(line string) {
	r.mu.Lock()
	r.lines = append(r.lines, line)
	r.mu.Unlock()
}

// get returns the lines that start with prefix.
func (r *lineRecorder) get(prefix string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, l := range r.lines {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return out
}

// TestRunScriptRiseFall runs a real script in a synctest bubble: its
// runs are due on the bubble's fake clock (which stands still while one
// runs), so a change is reported exactly Rise or Fall intervals after the
// script's outcome changed.
func TestRunScriptRiseFall(t *testing.T) {
	synctest.Test(t, testRunScriptRiseFall)
}

func testRunScriptRiseFall(t *testing.T) {
	flag := filepath.Join(t.TempDir(), "ok")
	s := TrackScript{Name: "chk", Script: script.Cmd{Line: "test -e " + flag}, Interval: 20 * time.Millisecond,
		Timeout: 20 * time.Millisecond, Rise: 3, Fall: 2}
	results := make(chan bool, 16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		RunScript(ctx, slog.New(slog.DiscardHandler), s, func(ok bool) { results <- ok })
	}()
	defer func() { cancel(); <-done }()
	next := func() (bool, time.Time) {
		select {
		case r := <-results:
			return r, time.Now()
		case <-time.After(time.Minute): // on the fake clock: no real wait
			t.Fatal("no result")
		}
		return false, time.Time{}
	}
	// The script's outcome changes right after a run: the next run, one
	// interval later, is the first of the new outcome.
	r, last := next()
	if r {
		t.Fatal("first result: ok, want failure")
	}
	os.WriteFile(flag, nil, 0o644)
	r, at := next()
	if want := time.Duration(s.Rise) * s.Interval; !r || at.Sub(last) != want {
		t.Fatalf("rise: %v after %v, want true after %d runs (%v)", r, at.Sub(last), s.Rise, want)
	}
	last = at
	os.Remove(flag)
	r, at = next()
	if want := time.Duration(s.Fall) * s.Interval; r || at.Sub(last) != want {
		t.Fatalf("fall: %v after %v, want false after %d runs (%v)", r, at.Sub(last), s.Fall, want)
	}
}

func TestConfigErrors(t *testing.T) {
	good := memConfig("VI_1", 1, 100, "198.18.0.1")
	tests := []struct {
		name string
		mod  func(c *InstanceConfig)
		want string
	}{
		{"no interface", func(c *InstanceConfig) { c.Interface = "" }, "no interface"},
		{"vrid 0", func(c *InstanceConfig) { c.VRID = 0 }, "virtual_router_id"},
		{"v2 sub-second", func(c *InstanceConfig) { c.Version = 2; c.AdvertInt = 500 * time.Millisecond }, "whole seconds"},
		{"v3 with auth", func(c *InstanceConfig) { c.AuthType = AuthPass }, "not allowed with VRRP version 3"},
		{"mixed families", func(c *InstanceConfig) {
			c.VIPs = append(c.VIPs, VIP{Prefix: netip.MustParsePrefix("2001:db8::1/128")})
		}, "one family"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			c.VIPs = slices.Clone(good.VIPs)
			tt.mod(&c)
			_, err := NewInstance(c, Options{})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want it to say %q", err, tt.want)
			}
		})
	}
	c := good
	c.VIPs = []VIP{{Prefix: netip.MustParsePrefix("2001:db8::1/64")}}
	c.Version = 2
	if _, err := NewInstance(c, Options{}); err == nil || !strings.Contains(err.Error(), "IPv4 only") {
		t.Fatalf("IPv6 instance with version 2: err = %v, want it to say IPv4 only", err)
	}
}

// TestOnStateChange: every function given to OnStateChange sees every
// state change, in order, once the notify script has been started.
func TestOnStateChange(t *testing.T) {
	cfg := memConfig("VI_1", 1, 200, "198.18.0.1")
	host := newMemHost()
	var h hub
	inst, err := NewInstance(cfg, Options{Conn: h.conn("198.18.0.1"), Host: host, Links: host,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got [2][]string
	for k := range got {
		inst.OnStateChange(func(i *Instance, s State) {
			mu.Lock()
			got[k] = append(got[k], i.Name()+" "+s.String())
			mu.Unlock()
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); inst.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	waitState(t, inst, StateMaster)
	host.setDown("lo", true)
	waitState(t, inst, StateFault)
	host.setDown("lo", false)
	waitState(t, inst, StateMaster)
	cancel()
	<-done
	want := []string{"VI_1 BACKUP", "VI_1 MASTER", "VI_1 FAULT", "VI_1 BACKUP", "VI_1 MASTER", "VI_1 STOP"}
	mu.Lock()
	defer mu.Unlock()
	for k := range got {
		if !slices.Equal(got[k], want) {
			t.Errorf("watcher %d saw %q, want %q", k+1, got[k], want)
		}
	}
}
