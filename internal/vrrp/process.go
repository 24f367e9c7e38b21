package vrrp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gvs-lb/gvs/internal/clock"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ParamMatch says how a vrrp_track_process's parameters are compared with
// a process's arguments.
type ParamMatch string

// Parameter matching, as keepalived's param_match.
const (
	// ParamExact: the arguments are the parameters, no more, no fewer.
	ParamExact ParamMatch = "exact"
	// ParamPartial: the arguments start with the parameters, whole words.
	ParamPartial ParamMatch = "partial"
	// ParamInitial: the arguments start with the parameters, the last
	// of which may be the start of a word.
	ParamInitial ParamMatch = "initial"
)

// commLen is the longest comm the kernel keeps (TASK_COMM_LEN - 1).
const commLen = 15

// DefaultProcessPoll is how often RunProcess scans /proc when the
// kernel's process events (the netlink proc connector, which keepalived
// follows too) do not reach gvsd.
const DefaultProcessPoll = time.Second

// TrackProcess is a vrrp_track_process block: how many running processes
// match, against a quorum.
type TrackProcess struct {
	Name string
	// Process is the name compared with a process's comm (what ps and
	// pgrep show; only its first 15 bytes count), or with FullCommand
	// the first word of its command line (argv[0], often a path).
	Process string
	// Params, with FullCommand, are compared with the arguments after
	// the first as ParamMatch says; with no Params and no ParamMatch any
	// arguments match.
	Params      []string
	ParamMatch  ParamMatch
	FullCommand bool
	// Quorum is the fewest matching processes that pass (default 1), and
	// QuorumMax the most (negative: no maximum).
	Quorum    int
	QuorumMax int
	// Weight as a vrrp_script's: 0 means that losing the quorum puts the
	// instance in FAULT.
	Weight int
	// TerminateDelay is how long the quorum must stay lost before the
	// tracker fails, ForkDelay how long it must stay regained before it
	// passes again (keepalived's delay sets both).
	TerminateDelay time.Duration
	ForkDelay      time.Duration
}

// Matches reports whether a process with that comm and command line
// (argv) is one the tracker counts.
func (p *TrackProcess) Matches(comm string, argv []string) bool {
	full := p.FullCommand || p.Params != nil || p.ParamMatch != ""
	if !full {
		name := p.Process
		if len(name) > commLen {
			name = name[:commLen]
		}
		return comm == name
	}
	if len(argv) == 0 || argv[0] != p.Process {
		return false
	}
	args, want := argv[1:], p.Params
	switch p.ParamMatch {
	case "":
		return want == nil || slices.Equal(args, want)
	case ParamExact:
		return slices.Equal(args, want)
	case ParamPartial:
		return len(args) >= len(want) && slices.Equal(args[:len(want)], want)
	case ParamInitial:
		if len(want) == 0 {
			return true
		}
		n := len(want) - 1
		return len(args) > n && slices.Equal(args[:n], want[:n]) && strings.HasPrefix(args[n], want[n])
	}
	return false
}

// Count is how many processes under procRoot (normally /proc) match.
// Zombies, whose command line is gone, do not count.
func (p *TrackProcess) Count(procRoot string) (int, error) {
	pids, err := p.matching(procRoot)
	return len(pids), err
}

// matching are the processes under procRoot that match.
func (p *TrackProcess) matching(procRoot string) (map[int]bool, error) {
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("vrrp_track_process %s: %w", p.Name, err)
	}
	out := map[int]bool{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if p.matchesPid(procRoot, pid) {
			out[pid] = true
		}
	}
	return out, nil
}

// matchesPid reports whether the process pid under procRoot is running
// and matches.
func (p *TrackProcess) matchesPid(procRoot string, pid int) bool {
	dir := filepath.Join(procRoot, strconv.Itoa(pid))
	cmdline, err := os.ReadFile(filepath.Join(dir, "cmdline"))
	if err != nil || len(cmdline) == 0 {
		return false // gone, a zombie or a kernel thread
	}
	comm, err := os.ReadFile(filepath.Join(dir, "comm"))
	if err != nil {
		return false
	}
	argv := strings.Split(string(bytes.TrimSuffix(cmdline, []byte{0})), "\x00")
	return p.Matches(strings.TrimSuffix(string(comm), "\n"), argv)
}

// Equal reports whether p and o track the same processes alike.
func (p *TrackProcess) Equal(o *TrackProcess) bool {
	a, b := *p, *o
	if !slices.Equal(a.Params, b.Params) {
		return false
	}
	a.Params, b.Params = nil, nil
	return a.Name == b.Name && a.Process == b.Process && a.ParamMatch == b.ParamMatch && a.FullCommand == b.FullCommand &&
		a.Quorum == b.Quorum && a.QuorumMax == b.QuorumMax && a.Weight == b.Weight &&
		a.TerminateDelay == b.TerminateDelay && a.ForkDelay == b.ForkDelay
}

// RunProcess follows the processes matching p until ctx ends and calls
// report with whether their number is within its quorum: the first
// result at once, then each change once it has lasted TerminateDelay
// (quorum lost) or ForkDelay (regained). It counts once from /proc, then
// follows the kernel's process events (forks, execs, comm changes and
// exits, by the netlink proc connector) from events, shared with the
// other trackers (nil: a subscription of its own), looking at only the
// process each one names. Where those events do not reach gvsd (without
// CAP_NET_ADMIN, or in a PID or network namespace other than the
// host's) it scans /proc every poll (DefaultProcessPoll when 0).
func RunProcess(ctx context.Context, log *slog.Logger, events *ProcEvents, p TrackProcess, poll time.Duration, report func(ok bool)) {
	if events == nil {
		events = NewProcEvents()
	}
	runProcess(ctx, log, events, p, poll, clock.System, report)
}

// processTracker is RunProcess's state.
type processTracker struct {
	p        TrackProcess
	procRoot string
	log      *slog.Logger
	report   func(ok bool)

	pids          map[int]bool // the matching processes
	known, result bool
	pending       bool      // the quorum differs from result
	since         time.Time // since when
}

// runProcess is RunProcess with the clock that times TerminateDelay and
// ForkDelay (the /proc poll, only how often to look, keeps the system's
// ticker).
func runProcess(ctx context.Context, log *slog.Logger, events *ProcEvents, p TrackProcess, poll time.Duration, clk clock.Clock, report func(ok bool)) {
	if log == nil {
		log = slog.Default()
	}
	if poll <= 0 {
		poll = DefaultProcessPoll
	}
	t := &processTracker{p: p, procRoot: "/proc", log: log, report: report}
	// The first result at once; then listen, and count again so that
	// nothing between the two counts is missed.
	t.scan()
	t.decide(clk.Now())
	l, err := events.listen()
	if err != nil {
		log.Info(fmt.Sprintf("vrrp_track_process %s: process events unavailable (%v); scanning /proc every %s", p.Name, err, poll))
	}
	defer func() {
		if l != nil {
			events.leave(l)
		}
	}()
	t.scan()
	var tick <-chan time.Time
	pollNow := func() {
		tk := time.NewTicker(poll)
		context.AfterFunc(ctx, tk.Stop)
		tick = tk.C
	}
	if l == nil {
		pollNow()
	}
	// due fires when a pending change is due, at dueAt; it is made
	// again only when that time moves
	var due <-chan time.Time
	var dueAt time.Time
	stopDue := func() {}
	defer func() { stopDue() }()
	for {
		now := clk.Now()
		var at time.Time
		if wait := t.decide(now); wait > 0 {
			at = now.Add(wait)
		}
		if !at.Equal(dueAt) {
			stopDue()
			due, dueAt, stopDue = nil, at, func() {}
			if !at.IsZero() {
				due, stopDue = clk.After(at.Sub(now))
			}
		}
		var evc <-chan netlink.ProcEvent
		var lost <-chan struct{}
		var ended <-chan error
		if l != nil {
			evc, lost, ended = l.ch, l.lost, l.ended
		}
		select {
		case <-ctx.Done():
			return
		case <-tick:
			t.scan()
		case <-due:
			due, dueAt, stopDue = nil, time.Time{}, func() {}
		case e := <-evc:
			t.event(e)
		case <-lost: // events were dropped: count afresh
			t.scan()
		case err := <-ended:
			log.Warn(fmt.Sprintf("vrrp_track_process %s: process events lost (%v); scanning /proc every %s", p.Name, err, poll))
			l = nil
			pollNow()
			t.scan()
		}
	}
}

// scan counts the matching processes afresh.
func (t *processTracker) scan() {
	pids, err := t.p.matching(t.procRoot)
	if err != nil {
		t.log.Warn("vrrp_track_process scan failed", "error", err)
		pids = map[int]bool{}
	}
	t.pids = pids
}

// event looks again at the process a kernel event names.
func (t *processTracker) event(e netlink.ProcEvent) {
	switch m := e.Msg.(type) {
	case *netlink.ForkProcEvent:
		if m.ChildPid == m.ChildTgid { // a process, not a thread
			t.recheck(int(m.ChildTgid))
		}
	case *netlink.ExecProcEvent:
		t.recheck(int(m.ProcessTgid))
	case *netlink.CommProcEvent:
		if m.ProcessPid == m.ProcessTgid { // /proc/PID/comm is the main thread's
			t.recheck(int(m.ProcessTgid))
		}
	case *netlink.ExitProcEvent:
		if m.ProcessPid == m.ProcessTgid {
			delete(t.pids, int(m.ProcessTgid))
		}
	}
}

func (t *processTracker) recheck(pid int) {
	if t.p.matchesPid(t.procRoot, pid) {
		t.pids[pid] = true
	} else {
		delete(t.pids, pid)
	}
}

// decide reports a result that is due at now: the first at once, a
// change once it lasted its delay. It returns how long until a pending
// change is due, 0 when none is.
func (t *processTracker) decide(now time.Time) time.Duration {
	n := len(t.pids)
	ok := n >= t.p.Quorum && (t.p.QuorumMax < 0 || n <= t.p.QuorumMax)
	switch {
	case !t.known:
		t.known, t.result = true, ok
	case ok == t.result:
		t.pending = false
		return 0
	default:
		if !t.pending {
			t.pending, t.since = true, now
		}
		delay := t.p.TerminateDelay
		if ok {
			delay = t.p.ForkDelay
		}
		if wait := delay - now.Sub(t.since); wait > 0 {
			return wait
		}
		t.pending, t.result = false, ok
	}
	t.log.Info("vrrp_track_process result", "process", t.p.Name, "running", n, "ok", ok)
	t.report(ok)
	return 0
}

// ProcEvents shares one subscription to the kernel's process events
// among every tracker that listens (one per gvsd): it subscribes when
// the first listens and ends the subscription when the last leaves, and
// hands each event to every listener. The subscription proves itself
// once (subscribeProcEvents); where it cannot, the failure stands for
// the ProcEvents' lifetime, since what causes it (capabilities,
// namespaces) does not change while gvsd runs, and every tracker polls.
type ProcEvents struct {
	mu          sync.Mutex
	listeners   map[*procListener]struct{} // the current stream's
	stream      *procStream                // nil: none open
	unavailable error                      // why a subscription failed
}

// procListener is one tracker's share of the events.
type procListener struct {
	ch    chan netlink.ProcEvent
	lost  chan struct{} // events were dropped (its channel, or the socket, overflowed): count afresh
	ended chan error    // the subscription ended and could not be renewed: poll
}

// procStream is the goroutine that reads a subscription.
type procStream struct {
	stop, done chan struct{}
}

// NewProcEvents returns a ProcEvents with no subscription yet.
func NewProcEvents() *ProcEvents {
	return &ProcEvents{listeners: map[*procListener]struct{}{}}
}

// listen adds a listener, subscribing if it is the first.
func (h *ProcEvents) listen() (*procListener, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stream == nil {
		if h.unavailable != nil {
			return nil, h.unavailable
		}
		sub, err := subscribeProcEvents()
		if err != nil {
			h.unavailable = err
			return nil, err
		}
		h.stream = &procStream{stop: make(chan struct{}), done: make(chan struct{})}
		go h.read(h.stream, sub)
	}
	l := newProcListener(1024)
	h.listeners[l] = struct{}{}
	return l, nil
}

// leave removes a listener; the last one ends the subscription.
func (h *ProcEvents) leave(l *procListener) {
	h.mu.Lock()
	delete(h.listeners, l)
	var st *procStream
	if len(h.listeners) == 0 && h.stream != nil {
		st, h.stream = h.stream, nil
	}
	h.mu.Unlock()
	if st != nil {
		close(st.stop)
		<-st.done
	}
}

// read hands sub's events to the listeners until st stops. A failed
// subscription (the kernel dropped events) is renewed.
func (h *ProcEvents) read(st *procStream, sub *procEvents) {
	defer close(st.done)
	for sub != nil {
		select {
		case <-st.stop:
			sub.close()
			return
		case ev, ok := <-sub.ch:
			if ok {
				h.fanOut(ev)
				continue
			}
			sub = h.renew(st, sub, errors.New("the event channel closed"))
		case err := <-sub.errs:
			sub = h.renew(st, sub, err)
		}
	}
}

func (h *ProcEvents) fanOut(ev netlink.ProcEvent) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for l := range h.listeners {
		select {
		case l.ch <- ev:
		default:
			l.dropped()
		}
	}
}

// newProcListener returns a listener that holds up to n events.
func newProcListener(n int) *procListener {
	return &procListener{ch: make(chan netlink.ProcEvent, n), lost: make(chan struct{}, 1), ended: make(chan error, 1)}
}

func (l *procListener) dropped() {
	select {
	case l.lost <- struct{}{}:
	default:
	}
}

// renew replaces the failed subscription old: the listeners count
// afresh on the new one, or (none) are told to poll. nil when there is
// no new one, or st was stopped meanwhile.
func (h *ProcEvents) renew(st *procStream, old *procEvents, why error) *procEvents {
	old.close()
	sub, err := subscribeProcEvents()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stream != st { // the last listener left meanwhile
		if sub != nil {
			sub.close()
		}
		return nil
	}
	if err != nil {
		err = fmt.Errorf("%v, then %v", why, err)
		for l := range h.listeners {
			l.ended <- err
		}
		clear(h.listeners)
		h.stream, h.unavailable = nil, err
		return nil
	}
	for l := range h.listeners {
		l.dropped()
	}
	return sub
}

// procEvents is a subscription to the kernel's process events.
type procEvents struct {
	ch   chan netlink.ProcEvent
	errs chan error
	done chan struct{}
}

// subscribeProcEvents listens to the kernel's process events, and checks
// that they reach this process with its own PIDs: it renames its own
// thread to the name it has (a comm event) and waits for that event.
// The kernel sends them only to listeners with CAP_NET_ADMIN in the
// host's network namespace, and numbers processes as the host's PID
// namespace does.
func subscribeProcEvents() (*procEvents, error) {
	e := &procEvents{ch: make(chan netlink.ProcEvent, 1024), errs: make(chan error, 1), done: make(chan struct{})}
	if err := netlink.ProcEventMonitor(e.ch, e.done, e.errs); err != nil {
		return nil, err
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := unix.Gettid()
	comm := fmt.Sprintf("/proc/self/task/%d/comm", tid)
	name, err := os.ReadFile(comm)
	if err == nil {
		err = os.WriteFile(comm, bytes.TrimSuffix(name, []byte("\n")), 0)
	}
	if err != nil {
		e.close()
		return nil, fmt.Errorf("testing the subscription: %w", err)
	}
	timeout := time.NewTimer(2 * time.Second)
	defer timeout.Stop()
	for {
		select {
		case ev, ok := <-e.ch:
			if !ok {
				e.close()
				return nil, errors.New("the subscription ended")
			}
			if m, ok := ev.Msg.(*netlink.CommProcEvent); ok && int(m.ProcessPid) == tid && int(m.ProcessTgid) == os.Getpid() {
				return e, nil
			}
		case err := <-e.errs:
			e.close()
			return nil, err
		case <-timeout.C:
			e.close()
			return nil, errors.New("no event reached gvsd (not the host's PID or network namespace?)")
		}
	}
}

// close ends the subscription and waits until its goroutine returned.
func (e *procEvents) close() {
	close(e.done)
	for {
		select {
		case _, ok := <-e.ch:
			if !ok {
				return
			}
		case <-e.errs:
		}
	}
}
