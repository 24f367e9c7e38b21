package vrrp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/gvs-lb/gvs/internal/clock"
)

func TestTrackProcessMatches(t *testing.T) {
	tests := []struct {
		name string
		p    TrackProcess
		comm string
		argv []string
		want bool
	}{
		{name: "comm", p: TrackProcess{Process: "haproxy"}, comm: "haproxy", argv: []string{"/usr/sbin/haproxy", "-f", "x"}, want: true},
		{name: "comm differs", p: TrackProcess{Process: "haproxy"}, comm: "nginx", argv: []string{"haproxy"}},
		{name: "comm is 15 bytes", p: TrackProcess{Process: "averyveryverylongname"}, comm: "averyveryverylo", argv: []string{"x"}, want: true},
		{name: "full_command needs argv[0]", p: TrackProcess{Process: "/usr/sbin/haproxy", FullCommand: true}, comm: "haproxy", argv: []string{"/usr/sbin/haproxy", "-f", "x"}, want: true},
		{name: "full_command, other path", p: TrackProcess{Process: "/usr/sbin/haproxy", FullCommand: true}, comm: "haproxy", argv: []string{"/usr/local/sbin/haproxy"}},
		{name: "params exact", p: TrackProcess{Process: "sleep", Params: []string{"1000"}}, argv: []string{"sleep", "1000"}, want: true},
		{name: "params exact, one more", p: TrackProcess{Process: "sleep", Params: []string{"1000"}}, argv: []string{"sleep", "1000", "x"}},
		{name: "param_match alone: no arguments", p: TrackProcess{Process: "sleep", ParamMatch: ParamExact}, argv: []string{"sleep", "1"}},
		{name: "param_match alone, none given", p: TrackProcess{Process: "sleep", ParamMatch: ParamExact}, argv: []string{"sleep"}, want: true},
		{name: "partial: first words", p: TrackProcess{Process: "app", Params: []string{"-c", "a.conf"}, ParamMatch: ParamPartial}, argv: []string{"app", "-c", "a.conf", "-v"}, want: true},
		{name: "partial: whole words only", p: TrackProcess{Process: "app", Params: []string{"-c", "a"}, ParamMatch: ParamPartial}, argv: []string{"app", "-c", "a.conf"}},
		{name: "initial: last word a prefix", p: TrackProcess{Process: "app", Params: []string{"-c", "a"}, ParamMatch: ParamInitial}, argv: []string{"app", "-c", "a.conf", "-v"}, want: true},
		{name: "initial: earlier words whole", p: TrackProcess{Process: "app", Params: []string{"-", "a"}, ParamMatch: ParamInitial}, argv: []string{"app", "-c", "a.conf"}},
		{name: "no argv (kernel thread)", p: TrackProcess{Process: "/bin/x", FullCommand: true}, comm: "x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.p.Matches(tt.comm, tt.argv); got != tt.want {
				t.Errorf("Matches(%q, %q) = %v, want %v", tt.comm, tt.argv, got, tt.want)
			}
		})
	}
}

// procRunner starts processes of a distinctive name: a symlink to sleep
// in a temporary directory, so comm is the link's name and argv[0] its
// path; each runner of the test process has a name of its own. Every
// process is killed by pid when the test ends.
type procRunner struct {
	t    *testing.T
	path string
	name string
}

func newProcRunner(t *testing.T) *procRunner {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no sleep binary: %v", err)
		}
		t.Skipf("no sleep binary: %v", err)
	}
	name := fmt.Sprintf("gvst%d%c", os.Getpid()%100000000, 'a'+runners.Add(1)%26) // under 15 bytes, unique on the host
	path := filepath.Join(t.TempDir(), name)
	if err := os.Symlink(sleep, path); err != nil {
		t.Fatal(err)
	}
	return &procRunner{t: t, path: path, name: name}
}

var runners atomic.Int32

func (r *procRunner) start(args ...string) *exec.Cmd {
	r.t.Helper()
	if len(args) == 0 {
		args = []string{"1000"}
	}
	cmd := exec.Command(r.path, args...)
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	r.t.Cleanup(func() { cmd.Process.Kill(); <-done })
	// the process shows in /proc under the link's name once exec is done
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", cmd.Process.Pid)); string(comm) == r.name+"\n" {
			return cmd
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.t.Fatalf("process %d never showed as %s", cmd.Process.Pid, r.name)
	return nil
}

// kill ends cmd and waits until it left /proc (its parent, this test,
// reaps it).
func (r *procRunner) kill(cmd *exec.Cmd) {
	r.t.Helper()
	cmd.Process.Kill()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cmd.Process.Pid)); err != nil || len(b) == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	r.t.Fatalf("process %d did not die", cmd.Process.Pid)
}

func TestTrackProcessCount(t *testing.T) {
	r := newProcRunner(t)
	r.start()
	r.start("999")
	tests := []struct {
		name string
		p    TrackProcess
		want int
	}{
		{name: "by comm", p: TrackProcess{Process: r.name}, want: 2},
		{name: "by path", p: TrackProcess{Process: r.path, FullCommand: true}, want: 2},
		{name: "by path and parameter", p: TrackProcess{Process: r.path, Params: []string{"999"}}, want: 1},
		{name: "initial parameter", p: TrackProcess{Process: r.path, Params: []string{"10"}, ParamMatch: ParamInitial}, want: 1},
		{name: "another name", p: TrackProcess{Process: r.name + "x"}, want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := tt.p.Count("/proc")
			if err != nil || n != tt.want {
				t.Errorf("Count = %d, %v; want %d", n, err, tt.want)
			}
		})
	}
}

// results collects RunProcess's reports.
type results struct{ last, n atomic.Int32 }

func (r *results) report(ok bool) {
	v := int32(0)
	if ok {
		v = 1
	}
	r.last.Store(v)
	r.n.Add(1)
}

// pollingEvents is a ProcEvents whose subscription failed, as where the
// kernel's events do not reach gvsd: its trackers scan /proc.
func pollingEvents() *ProcEvents {
	e := NewProcEvents()
	e.unavailable = errors.New("no process events (test)")
	return e
}

// TestRunProcessQuorum: the quorum and quorum_max, followed by scanning
// /proc (the fallback where the kernel's process events do not arrive).
func TestRunProcessQuorum(t *testing.T) {
	r := newProcRunner(t)
	a := r.start()
	var res results
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		RunProcess(ctx, slog.New(slog.DiscardHandler), pollingEvents(), TrackProcess{Name: "p", Process: r.name, Quorum: 2, QuorumMax: 3}, 20*time.Millisecond, res.report)
	}()
	t.Cleanup(func() { cancel(); <-done })
	want := func(what string, ok bool) {
		t.Helper()
		waitUntil(t, 5*time.Second, what, func() bool { return res.n.Load() > 0 && (res.last.Load() == 1) == ok })
	}
	want("one process, quorum 2: fails", false)
	b := r.start()
	want("two: passes", true)
	c, d := r.start(), r.start()
	want("four, quorum_max 3: fails", false)
	r.kill(d)
	want("three: passes", true)
	r.kill(a)
	r.kill(b)
	r.kill(c)
	want("none: fails", false)
}

// TestRunProcessDelays follows real processes with the tracker's delays
// on a fake clock: the quorum lost is reported exactly terminate_delay
// later on that clock, regained exactly fork_delay later, and a loss that
// ends within terminate_delay is never reported.
func TestRunProcessDelays(t *testing.T) {
	r := newProcRunner(t)
	a := r.start()
	clk := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	type report struct {
		ok bool
		at time.Time // on clk
	}
	reports := make(chan report, 16)
	p := TrackProcess{Name: "p", Process: r.name, Quorum: 1, QuorumMax: -1,
		TerminateDelay: 600 * time.Millisecond, ForkDelay: 300 * time.Millisecond}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		runProcess(ctx, slog.New(slog.DiscardHandler), NewProcEvents(), p, 20*time.Millisecond, clk,
			func(ok bool) { reports <- report{ok, clk.Now()} })
	}()
	t.Cleanup(func() { cancel(); <-done })
	// sleeping waits (a bounded real wait for the tracker to see a
	// process come or go) until the tracker sleeps until delay after
	// from; a report before that fails the test.
	sleeping := func(what string, from time.Time, delay time.Duration) {
		t.Helper()
		at := from.Add(delay)
		limit := time.After(5 * time.Second)
		for {
			pending, changed := clk.Pending()
			if slices.Contains(pending, at) {
				return
			}
			select {
			case rep := <-reports:
				t.Fatalf("%s: reported %v at +%v, want it only after %v", what, rep.ok, rep.at.Sub(from), delay)
			case <-changed:
			case <-limit:
				t.Fatalf("%s: the tracker never waited until %v (timers pending: %v)", what, at, pending)
			}
		}
	}
	// next advances clk to the tracker's timer and returns the report
	// that it brings.
	next := func(what string) report {
		t.Helper()
		pending, _ := clk.Pending()
		if len(pending) == 0 {
			t.Fatalf("%s: no timer to fire", what)
		}
		clk.Advance(pending[0].Sub(clk.Now()))
		select {
		case rep := <-reports:
			return rep
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: no report when the timer fired", what)
			return report{}
		}
	}
	select {
	case rep := <-reports:
		if !rep.ok {
			t.Fatal("first result: failure with the process running")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no first result")
	}

	lost := clk.Now()
	r.kill(a)
	sleeping("the only process killed", lost, p.TerminateDelay)
	if rep := next("terminate_delay"); rep.ok || rep.at.Sub(lost) != p.TerminateDelay {
		t.Errorf("process gone: reported %v at +%v, want false at terminate_delay +%v", rep.ok, rep.at.Sub(lost), p.TerminateDelay)
	}

	back := clk.Now()
	b := r.start()
	sleeping("a process started", back, p.ForkDelay)
	if rep := next("fork_delay"); !rep.ok || rep.at.Sub(back) != p.ForkDelay {
		t.Errorf("process back: reported %v at +%v, want true at fork_delay +%v", rep.ok, rep.at.Sub(back), p.ForkDelay)
	}

	// A process that dies and comes back within terminate_delay changes
	// nothing: the tracker stops waiting, and forgets the loss.
	lost = clk.Now()
	r.kill(b)
	sleeping("the process killed again", lost, p.TerminateDelay)
	clk.Advance(p.TerminateDelay / 2)
	c := r.start()
	waitUntil(t, 5*time.Second, "the tracker to stop waiting when a process came back", func() bool {
		pending, _ := clk.Pending()
		return len(pending) == 0
	})
	clk.Advance(time.Hour)
	lost = clk.Now()
	r.kill(c)
	sleeping("the process killed an hour later", lost, p.TerminateDelay)
	select {
	case rep := <-reports:
		t.Errorf("reported %v at +%v though every loss was shorter than terminate_delay", rep.ok, rep.at.Sub(lost))
	default:
	}
}

// TestInstanceTracksProcess: an instance goes FAULT when the process it
// tracks with weight 0 dies, and back to MASTER when it runs again; a
// weighted one lowers the priority instead.
func TestInstanceTracksProcess(t *testing.T) {
	r := newProcRunner(t)
	cmd := r.start()
	tests := []struct {
		name     string
		weight   int
		down     State
		downPrio uint8
	}{
		{name: "weight 0: FAULT", weight: 0, down: StateFault, downPrio: 200},
		{name: "weight -30: lower priority", weight: -30, down: StateMaster, downPrio: 170},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := memConfig("VI_1", 1, 200, "198.18.0.1")
			cfg.TrackProcesses = []TrackRef{{Name: "app"}}
			proc := TrackProcess{Name: "app", Process: r.name, Quorum: 1, QuorumMax: -1, Weight: tt.weight}
			var h hub
			inst, _ := runMem(t, cfg, Options{Conn: h.conn("198.18.0.1"), Host: newMemHost(),
				Processes: map[string]TrackProcess{"app": proc}})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() {
				defer close(done)
				RunProcess(ctx, slog.New(slog.DiscardHandler), nil, proc, 20*time.Millisecond, func(ok bool) { inst.SetProcessResult("app", ok) })
			}()
			t.Cleanup(func() { cancel(); <-done })
			want := func(st State, prio uint8) {
				t.Helper()
				waitUntil(t, 5*time.Second, fmt.Sprintf("%s at priority %d", st, prio), func() bool {
					s := inst.Status()
					return s.State == st && s.EffectivePriority == prio
				})
			}
			want(StateMaster, 200)
			r.kill(cmd)
			want(tt.down, tt.downPrio)
			cmd = r.start()
			want(StateMaster, 200)
		})
	}
}

// TestRunProcessFollowsEvents: with the kernel's process events, a
// tracker sees processes start and stop with no /proc scan to wait for
// (its poll is an hour).
func TestRunProcessFollowsEvents(t *testing.T) {
	ev, err := subscribeProcEvents()
	if err != nil {
		// not something the project can install: the kernel sends them
		// only to root in the host's PID and network namespaces
		t.Skipf("process events unavailable here: %v", err)
	}
	ev.close()
	r := newProcRunner(t)
	var res results
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		RunProcess(ctx, slog.New(slog.DiscardHandler), nil, TrackProcess{Name: "p", Process: r.name, Quorum: 1, QuorumMax: 1}, time.Hour, res.report)
	}()
	t.Cleanup(func() { cancel(); <-done })
	want := func(what string, ok bool, reports int32) {
		t.Helper()
		// the wait bounds a hang; an hour-long poll cannot be what ends it
		waitUntil(t, 10*time.Second, what, func() bool { return res.n.Load() == reports && (res.last.Load() == 1) == ok })
	}
	want("none running: fails", false, 1)
	a := r.start()
	want("one started: passes", true, 2)
	b := r.start()
	want("two, quorum_max 1: fails", false, 3)
	r.kill(b)
	want("one again: passes", true, 4)
	r.kill(a)
	want("none: fails", false, 5)
}

// TestRunProcessSharesEvents: trackers given one ProcEvents share one
// netlink socket to the kernel's process events (counted in
// /proc/self/fd), each still sees its own process start and die with no
// /proc scan (their poll is an hour), and the socket is closed once the
// last tracker stops.
func TestRunProcessSharesEvents(t *testing.T) {
	ev, err := subscribeProcEvents()
	if err != nil {
		// not something the project can install: the kernel sends them
		// only to root in the host's PID and network namespaces
		t.Skipf("process events unavailable here: %v", err)
	}
	ev.close()
	if n := connectorSockets(t); n != 0 {
		t.Fatalf("%d proc connector sockets open before the trackers start", n)
	}
	const trackers = 3
	events := NewProcEvents()
	runners := make([]*procRunner, trackers)
	res := make([]results, trackers)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range runners {
		runners[i] = newProcRunner(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			RunProcess(ctx, slog.New(slog.DiscardHandler), events, TrackProcess{Name: runners[i].name, Process: runners[i].name, Quorum: 1, QuorumMax: 1},
				time.Hour, res[i].report)
		}()
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			cancel()
			wg.Wait()
		}
	}
	t.Cleanup(stop)
	// want waits for tracker i's reports; the wait bounds a hang, an
	// hour-long poll cannot be what ends it
	want := func(i int, what string, ok bool, reports int32) {
		t.Helper()
		waitUntil(t, 10*time.Second, fmt.Sprintf("tracker %d: %s", i, what), func() bool {
			return res[i].n.Load() == reports && (res[i].last.Load() == 1) == ok
		})
	}
	for i := range runners {
		want(i, "none running: fails", false, 1)
	}
	if n := connectorSockets(t); n != 1 {
		t.Errorf("%d trackers hold %d proc connector sockets, want 1", trackers, n)
	}
	for i, r := range runners {
		p := r.start()
		want(i, "its process started: passes", true, 2)
		r.kill(p)
		want(i, "its process died: fails", false, 3)
	}
	for i := range runners {
		if n := res[i].n.Load(); n != 3 {
			t.Errorf("tracker %d reported %d times, want 3 (the other trackers' processes are not its own)", i, n)
		}
	}
	stop()
	if n := connectorSockets(t); n != 0 {
		t.Errorf("%d proc connector sockets open after the trackers stopped, want 0", n)
	}
}

// connectorSockets counts this process's open NETLINK_CONNECTOR sockets:
// the inodes /proc/self/net/netlink lists for protocol 11 that are among
// its descriptors.
func connectorSockets(t *testing.T) int {
	t.Helper()
	b, err := os.ReadFile("/proc/self/net/netlink")
	if err != nil {
		t.Fatal(err)
	}
	inodes := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) >= 10 && f[1] == strconv.Itoa(unix.NETLINK_CONNECTOR) {
			inodes[f[len(f)-1]] = true
		}
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fd := range fds {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && strings.HasPrefix(target, "socket:[") && inodes[strings.TrimSuffix(strings.TrimPrefix(target, "socket:["), "]")] {
			n++
		}
	}
	return n
}

// TestProcEventsSlowListener: a listener whose events pile up is told
// it lost some (its tracker counts afresh) and holds up no other one.
func TestProcEventsSlowListener(t *testing.T) {
	h := NewProcEvents()
	slow, fast := newProcListener(1), newProcListener(3)
	h.listeners[slow], h.listeners[fast] = struct{}{}, struct{}{}
	for range 3 {
		h.fanOut(netlink.ProcEvent{Msg: &netlink.ExitProcEvent{ProcessPid: 1, ProcessTgid: 1}})
	}
	if len(slow.ch) != 1 || len(slow.lost) != 1 {
		t.Errorf("slow listener: %d events queued, lost %v; want 1 and lost", len(slow.ch), len(slow.lost) == 1)
	}
	if len(fast.ch) != 3 || len(fast.lost) != 0 {
		t.Errorf("other listener: %d events queued, lost %v; want all 3 and none lost", len(fast.ch), len(fast.lost) == 1)
	}
}
