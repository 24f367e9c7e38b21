package check

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/clock"
)

// fakeClock is the shared fake clock with the steps a checker's tests
// take: a checker waiting on it sleeps until the test fires its timer,
// and the time jumps to the timer's deadline. Probes still run for real
// (a refused TCP connection takes no time on this clock).
type fakeClock struct {
	*clock.Fake
	timers atomic.Int32 // how many the checker asked for
}

func newFakeClock() *fakeClock {
	return &fakeClock{Fake: clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))}
}

// After is the fake clock's, counted.
func (c *fakeClock) After(d time.Duration) (<-chan time.Time, func()) {
	c.timers.Add(1)
	return c.Fake.After(d)
}

// AfterFunc is the fake clock's, counted.
func (c *fakeClock) AfterFunc(d time.Duration, f func()) clock.Timer {
	c.timers.Add(1)
	return c.Fake.AfterFunc(d, f)
}

// asked is how many timers the checker asked for.
func (c *fakeClock) asked() int { return int(c.timers.Load()) }

// wait blocks until the checker sleeps on a timer and returns its
// deadline.
func (c *fakeClock) wait(t *testing.T) time.Time {
	t.Helper()
	for {
		pending, changed := c.Pending()
		if len(pending) > 0 {
			return pending[0]
		}
		select {
		case <-changed:
		case <-time.After(10 * time.Second): // a hang, not a timing bound
			t.Fatal("the checker never went to sleep")
		}
	}
}

// fire moves the time to the pending timer's deadline and wakes the
// checker; it returns the new time.
func (c *fakeClock) fire(t *testing.T) time.Time {
	t.Helper()
	at := c.wait(t)
	c.Advance(at.Sub(c.Now()))
	return at
}

// clockedChecker runs a checker of spec against rs on a fake clock until
// the test ends; its reports arrive on the channel, each with the fake
// time it was made at.
func clockedChecker(t *testing.T, s Spec, rs netip.AddrPort) (*Checker, *fakeClock, chan timedReport, context.CancelFunc) {
	t.Helper()
	clk := newFakeClock()
	c, err := newChecker(s, rs, nil, clk)
	if err != nil {
		t.Fatal(err)
	}
	ch, stop := runOn(t, c, clk)
	return c, clk, ch, stop
}

// runOn runs c (again) until the returned function or the test ends it.
func runOn(t *testing.T, c *Checker, clk *fakeClock) (chan timedReport, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan timedReport, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx, func(r Report) { ch <- timedReport{r, clk.Now()} })
	}()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return ch, stop
}

type timedReport struct {
	Report
	at time.Time
}

// attemptOn returns the report of the checker's next attempt: one it
// made without sleeping (due at once), or the one it makes when its timer
// fires.
func attemptOn(t *testing.T, clk *fakeClock, ch chan timedReport) timedReport {
	t.Helper()
	clk.wait(t) // an attempt is over when the checker sleeps
	select {
	case r := <-ch:
		return r
	default:
	}
	clk.fire(t)
	clk.wait(t)
	select {
	case r := <-ch:
		return r
	default:
		t.Fatal("the checker woke up and made no attempt")
		return timedReport{}
	}
}

// TestDetectionTime checks keepalived's retry timing on a clock the test
// drives: a server that stops is DOWN after retry+1 failed attempts
// separated by delay_before_retry, at most delay_loop + retry x
// delay_before_retry after it stopped (plus connect_timeout per attempt
// when the probes hang), and UP again at the first check after it
// returns.
func TestDetectionTime(t *testing.T) {
	const (
		delayLoop = 6 * time.Second
		dbr       = time.Second
		retry     = 2
	)
	srv := newTCPServer(t)
	s := spec(TCP)
	s.DelayLoop, s.DelayBeforeRetry, s.Retry, s.Warmup = delayLoop, dbr, retry, 0
	c, clk, ch, _ := clockedChecker(t, s, srv.addr)
	start := clk.Now()

	// warmup 0: the first check at once, a verdict reported as a change.
	if r := attemptOn(t, clk, ch); !r.Verdict || !r.Up || !r.Changed || r.at != start {
		t.Fatalf("first attempt %+v at +%v, want an UP verdict, changed, at once", r.Report, r.at.Sub(start))
	}
	srv.stop()
	want := []struct {
		at      time.Duration
		verdict bool
		up      bool
	}{
		{delayLoop, false, true},            // a failure: retry 1
		{delayLoop + dbr, false, true},      // retry 2
		{delayLoop + 2*dbr, true, false},    // retries exhausted: DOWN
		{2*delayLoop + 2*dbr, false, false}, // checked again a delay_loop later; TCP_CHECK retries while DOWN too
	}
	for i, w := range want {
		r := attemptOn(t, clk, ch)
		if r.Err == nil || r.at.Sub(start) != w.at || r.Verdict != w.verdict || r.Up != w.up {
			t.Fatalf("attempt %d: at +%v verdict=%v up=%v err=%v, want at +%v verdict=%v up=%v and an error",
				i+2, r.at.Sub(start), r.Verdict, r.Up, r.Err, w.at, w.verdict, w.up)
		}
		if i == 2 && !r.Changed {
			t.Error("the DOWN verdict is not reported as a change")
		}
	}
	if st := c.Status(); st.State != "DOWN" || st.Failures != 4 || st.LastError == "" || !st.LastCheck.Equal(start.Add(2*delayLoop+2*dbr)) {
		t.Errorf("status %+v, want DOWN after 4 failures with the last error, last checked at +%v", st, 2*delayLoop+2*dbr)
	}

	// The last retry while down: a verdict, then the next check a
	// delay_loop later.
	attemptOn(t, clk, ch)
	if r := attemptOn(t, clk, ch); !r.Verdict || r.Up || r.Changed || r.at.Sub(start) != 2*delayLoop+4*dbr {
		t.Errorf("attempt 7: %+v at +%v, want a DOWN verdict, unchanged, at +%v", r.Report, r.at.Sub(start), 2*delayLoop+4*dbr)
	}
	srv.restart()
	r := attemptOn(t, clk, ch)
	if !r.Verdict || !r.Up || !r.Changed || r.at.Sub(start) != 3*delayLoop+4*dbr {
		t.Errorf("first attempt after the server returned: %+v at +%v, want an UP verdict, changed, at +%v",
			r.Report, r.at.Sub(start), 3*delayLoop+4*dbr)
	}
}

// TestWarmup checks the first check comes after a random part of the
// warmup, never later.
func TestWarmup(t *testing.T) {
	srv := newTCPServer(t)
	s := spec(TCP)
	s.Warmup, s.DelayLoop = 5*time.Second, 10*time.Second
	for range 20 {
		c, err := newChecker(s, srv.addr, nil, newFakeClock())
		if err != nil {
			t.Fatal(err)
		}
		clk := c.clock.(*fakeClock)
		start := clk.Now()
		runOn(t, c, clk)
		if first := clk.wait(t).Sub(start); first < 0 || first > s.Warmup {
			t.Fatalf("first check at +%v, want within the %v warmup", first, s.Warmup)
		}
	}
}

// TestRunAgainKeepsTheSchedule: a checker handed to another Run (a
// reload that kept it) goes on with its retries and its timers, as if it
// had not stopped.
func TestRunAgainKeepsTheSchedule(t *testing.T) {
	srv := newTCPServer(t)
	s := spec(TCP)
	s.DelayLoop, s.DelayBeforeRetry, s.Retry, s.Warmup = 6*time.Second, time.Second, 2, 0
	c, clk, ch, stop := clockedChecker(t, s, srv.addr)
	start := clk.Now()
	attemptOn(t, clk, ch) // UP
	srv.stop()
	if r := attemptOn(t, clk, ch); r.Verdict { // retry 1 of 2
		t.Fatalf("first failure %+v, want a retry", r.Report)
	}
	stop()
	ch, _ = runOn(t, c, clk)
	if due := clk.wait(t).Sub(start); due != 7*time.Second {
		t.Errorf("after Run again the next attempt is at +%v, want +7s (delay_before_retry after the failure)", due)
	}
	if r := attemptOn(t, clk, ch); r.Verdict {
		t.Fatalf("second failure %+v, want the second retry", r.Report)
	}
	if r := attemptOn(t, clk, ch); !r.Verdict || r.Up || r.at.Sub(start) != 8*time.Second {
		t.Errorf("third failure %+v at +%v, want DOWN at +8s", r.Report, r.at.Sub(start))
	}
}

// TestSuspendedCheckerDoesNotProbe checks SetEnabled(false) stops probes
// and SetEnabled(true) resumes them at once.
func TestSuspendedCheckerDoesNotProbe(t *testing.T) {
	srv := newTCPServer(t)
	s := spec(TCP)
	s.DelayLoop = 5 * time.Second
	clk := newFakeClock()
	c, err := newChecker(s, srv.addr, nil, clk)
	if err != nil {
		t.Fatal(err)
	}
	c.SetEnabled(false)
	ch, _ := runOn(t, c, clk)
	for range 3 {
		clk.fire(t)
		clk.wait(t)
	}
	select {
	case r := <-ch:
		t.Fatalf("suspended checker probed: %+v", r)
	default:
	}
	if st := c.Status(); st.Enabled || st.Checks != 0 {
		t.Errorf("status %+v, want disabled with no checks", st)
	}
	at := clk.Now()
	c.SetEnabled(true)
	r := <-ch
	if !r.Verdict || !r.Up || r.at != at {
		t.Errorf("after SetEnabled(true): %+v at +%v, want an UP verdict at once", r.Report, r.at.Sub(at))
	}
}
