package check

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"regexp"
	"sync"
	"time"

	"github.com/gvs-lb/gvs/internal/clock"
	"github.com/gvs-lb/gvs/internal/trackfile"
)

// Report is one attempt's outcome, handed to whoever runs the checker.
type Report struct {
	Checker *Checker
	Up      bool // the checker's state after the attempt
	Verdict bool // the attempt decided the state (false while retrying)
	Changed bool // the state changed, or this is the first verdict
	Weight  int  // MISC_CHECK misc_dynamic weight, -1 when none
	// Delta is a FILE_CHECK's change to the real server's weight (0 while
	// the checker fails); HasDelta marks a FILE_CHECK report.
	Delta    int64
	HasDelta bool
	Err      error // why the attempt failed, nil on success
}

// Checker runs one Spec against one real server.
type Checker struct {
	spec   Spec
	rs     netip.AddrPort
	target netip.AddrPort
	log    *slog.Logger

	clock clock.Clock // schedules the attempts

	mu      sync.Mutex
	m       machine
	enabled bool
	// due is when the next attempt is scheduled, zero before Run: a
	// checker handed to another Run (a reload that kept it) keeps its
	// schedule.
	due     time.Time
	st      counters
	wake    chan struct{}    // nudged when enabled changes
	regexes []*regexp.Regexp // the compiled regex of each url, nil when none
	// fileValue is a FILE_CHECK's last number read in range.
	fileValue int64
	// fileWait: a FILE_CHECK had its turn in this Run (it read its file,
	// or was suspended) and waits for the next change of the file, or to
	// be resumed; it has no delay_loop.
	fileWait bool
}

type counters struct {
	checks, failures uint64
	lastErr          string
	lastCheck        time.Time
	lastChange       time.Time
	weight           int
	delta            int64 // FILE_CHECK's last weight change
}

// NewChecker prepares spec for the real server at rs. log may be nil.
func NewChecker(spec Spec, rs netip.AddrPort, log *slog.Logger) (*Checker, error) {
	return newChecker(spec, rs, log, nil)
}

func newChecker(spec Spec, rs netip.AddrPort, log *slog.Logger, clk clock.Clock) (*Checker, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	if clk == nil {
		clk = clock.System
	}
	c := &Checker{
		clock:   clk,
		spec:    spec,
		rs:      rs,
		target:  spec.target(rs),
		m:       newMachine(&spec),
		enabled: true,
		wake:    make(chan struct{}, 1),
		st:      counters{weight: -1},
	}
	c.log = log.With("checker", string(spec.Type), "target", c.target.String())
	for _, u := range spec.URLs {
		var re *regexp.Regexp
		if u.Regex != "" {
			re = regexp.MustCompile(u.Regex) // Validate compiled it
		}
		c.regexes = append(c.regexes, re)
	}
	if spec.Type == FILE {
		return c, nil
	}
	if spec.Type != MISC && spec.Type != PING && c.target.Port() == 0 {
		return nil, fmt.Errorf("%s for %s: no port to check (set connect_port)", spec.Type, rs)
	}
	if !c.target.Addr().IsValid() && spec.Type != MISC {
		return nil, fmt.Errorf("%s: no address to check (set connect_ip)", spec.Type)
	}
	return c, nil
}

// Spec returns the checker's spec.
func (c *Checker) Spec() Spec { return c.spec }

// RealServer is the real server the checker watches.
func (c *Checker) RealServer() netip.AddrPort { return c.rs }

// Target is the address probed.
func (c *Checker) Target() netip.AddrPort { return c.target }

// Up reports the checker's current state.
func (c *Checker) Up() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m.up
}

// sameAs reports whether c is the checker spec makes for the real server
// at rs: the same probe with the same timers. Alpha only decides the
// state before the first check, so it does not count.
func (c *Checker) sameAs(spec Spec, rs netip.AddrPort) bool {
	a := c.spec
	a.Alpha = spec.Alpha
	return c.rs == rs && a.Equal(&spec)
}

// SetEnabled suspends (false) or resumes (true) the probes, as keepalived's
// ha_suspend does; a suspended checker keeps its state, and a resumed one
// checks at once.
func (c *Checker) SetEnabled(on bool) {
	c.mu.Lock()
	changed := c.enabled != on
	c.enabled = on
	c.mu.Unlock()
	if !changed {
		return
	}
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Run checks until ctx ends: a first check after a random part of the
// warmup, then one every delay_loop, with retries as the machine says.
// A FILE_CHECK, as keepalived's, has no delay_loop: it reads its file
// at once, then each time inotify says the file changed (the track
// file's Watcher reads it on a timer only where inotify cannot watch).
// report is called after every attempt, from Run's goroutine.
//
// Run may be called again after an earlier Run returned (a manager that
// takes the checker over): the state, the counters and the schedule go
// on where they were, so the next attempt comes when it was due. A
// FILE_CHECK reads its file again then, for the changes no one watched.
func (c *Checker) Run(ctx context.Context, report func(Report)) {
	c.mu.Lock()
	if c.due.IsZero() {
		var first time.Duration
		if c.spec.Warmup > 0 {
			first = rand.N(c.spec.Warmup + 1)
		}
		c.due = c.clock.Now().Add(first)
	}
	c.fileWait = false
	c.mu.Unlock()
	var fileChanged <-chan struct{}
	if c.spec.Type == FILE {
		fileChanged = trackfile.Watch(ctx, []string{c.spec.TrackFile}, c.log).C()
	}
	for {
		if !c.sleepUntilDue(ctx, fileChanged) {
			return
		}
		c.mu.Lock()
		enabled := c.enabled
		c.mu.Unlock()
		next := c.spec.DelayLoop
		if enabled {
			r := c.Attempt(ctx)
			if ctx.Err() != nil {
				return // the attempt was cut short and not counted: still due
			}
			if report != nil {
				report(r)
			}
			if !r.Verdict {
				next = c.spec.DelayBeforeRetry
			}
		}
		c.mu.Lock()
		c.due = c.clock.Now().Add(next)
		c.fileWait = c.spec.Type == FILE
		c.mu.Unlock()
	}
}

// sleepUntilDue waits until the next attempt is due, or less when the
// checker is re-enabled or its track file changed; false when ctx ended.
// A FILE_CHECK that read its file waits for a change alone.
func (c *Checker) sleepUntilDue(ctx context.Context, fileChanged <-chan struct{}) bool {
	c.mu.Lock()
	d := c.due.Sub(c.clock.Now())
	waitFile := c.fileWait
	c.mu.Unlock()
	var fire <-chan time.Time
	if !waitFile {
		if d <= 0 {
			return ctx.Err() == nil
		}
		var stop func()
		fire, stop = c.clock.After(d)
		defer stop()
	}
	for {
		select {
		case <-ctx.Done():
			return false
		case <-fire:
			return true
		case <-c.wake:
			c.mu.Lock()
			on := c.enabled
			c.mu.Unlock()
			if on {
				return true
			}
		case <-fileChanged:
			c.mu.Lock()
			on := c.enabled
			c.mu.Unlock()
			if on {
				return true
			}
		}
	}
}

// Attempt probes once and advances the state machine. An attempt cut
// short by ctx ending says nothing about the server: it is not counted and
// the state stays as it was.
func (c *Checker) Attempt(ctx context.Context) Report {
	weight, delta, err := c.probe(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if ctx.Err() != nil {
		return Report{Checker: c, Up: c.m.up, Weight: -1, Err: ctx.Err()}
	}
	s := c.m.step(err == nil)
	now := c.clock.Now()
	c.st.checks++
	c.st.lastCheck = now
	if err != nil {
		c.st.failures++
		c.st.lastErr = err.Error()
	} else {
		c.st.lastErr = ""
		if weight >= 0 {
			c.st.weight = weight
		}
	}
	if s.changed {
		c.st.lastChange = now
		state := "DOWN"
		if c.m.up {
			state = "UP"
		}
		if err != nil {
			c.log.Info("check failed", "state", state, "retries", c.spec.Retry, "error", err)
		} else {
			c.log.Info("check succeeded", "state", state)
		}
	} else if err != nil && c.spec.LogAllFailures {
		c.log.Info("check failed", "error", err)
	}
	r := Report{Checker: c, Up: c.m.up, Verdict: s.verdict, Changed: s.changed, Weight: weight, Err: err}
	if c.spec.Type == FILE {
		r.Delta, r.HasDelta = delta, true
		c.st.delta = delta
	}
	return r
}

// Probe runs the check once, without touching the state: nil when the
// server passes. weight is the misc_dynamic weight, -1 when none.
func (c *Checker) Probe(ctx context.Context) (weight int, err error) {
	weight, _, err = c.probe(ctx)
	return weight, err
}

func (c *Checker) probe(ctx context.Context) (weight int, delta int64, err error) {
	if c.spec.Type == FILE {
		delta, err = c.probeFile()
		return -1, delta, err
	}
	timeout := c.spec.ConnectTimeout
	if c.spec.Type == MISC {
		timeout = c.spec.MiscTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	weight = -1
	switch c.spec.Type {
	case TCP:
		err = c.probeTCP(ctx)
	case HTTP, SSL:
		err = c.probeHTTP(ctx)
	case MISC:
		weight, err = c.probeMisc(ctx)
	case DNS:
		err = c.probeDNS(ctx)
	case SMTP:
		err = c.probeSMTP(ctx)
	case UDP:
		err = c.probeUDP(ctx)
	case PING:
		err = c.probePing(ctx)
	default:
		err = fmt.Errorf("unknown checker %q", c.spec.Type)
	}
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) && !errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%w (timeout after %s)", err, timeout)
	}
	return weight, 0, err
}

// Status is a checker's state for display, keepalived's data dump
// equivalent.
type Status struct {
	Service    string         `json:"service,omitempty"`
	RealServer netip.AddrPort `json:"real_server"`
	Type       Type           `json:"type"`
	Target     netip.AddrPort `json:"target"`
	State      string         `json:"state"` // "UP" or "DOWN"
	Enabled    bool           `json:"enabled"`
	HasRun     bool           `json:"has_run"`
	Alpha      bool           `json:"alpha,omitempty"`
	Retry      int            `json:"retry"`
	RetryIt    int            `json:"retry_it"` // failed attempts of the current failure
	DelayLoop  string         `json:"delay_loop"`
	Checks     uint64         `json:"checks"`
	Failures   uint64         `json:"failures"`
	LastError  string         `json:"last_error,omitempty"`
	LastCheck  time.Time      `json:"last_check,omitzero"`
	LastChange time.Time      `json:"last_change,omitzero"`
	Weight     int            `json:"dynamic_weight,omitempty"` // last misc_dynamic weight, -1 when none
	Delta      int64          `json:"weight_delta,omitempty"`   // FILE_CHECK's weight change
}

// Status returns the checker's state for display.
func (c *Checker) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	state := "DOWN"
	if c.m.up {
		state = "UP"
	}
	return Status{
		RealServer: c.rs,
		Type:       c.spec.Type,
		Target:     c.target,
		State:      state,
		Enabled:    c.enabled,
		HasRun:     c.m.hasRun,
		Alpha:      c.spec.Alpha,
		Retry:      c.spec.Retry,
		RetryIt:    c.m.retryIt,
		DelayLoop:  c.spec.DelayLoop.String(),
		Checks:     c.st.checks,
		Failures:   c.st.failures,
		LastError:  c.st.lastErr,
		LastCheck:  c.st.lastCheck,
		LastChange: c.st.lastChange,
		Weight:     c.st.weight,
		Delta:      c.st.delta,
	}
}
