package check

import (
	"context"
	"net/netip"
	"testing"
	"time"
)

type timedReport struct {
	Report
	at time.Time
}

// runChecker runs c until the test ends and returns its reports.
func runChecker(t *testing.T, c *Checker) <-chan timedReport {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan timedReport, 100)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx, func(r Report) {
			select {
			case ch <- timedReport{r, time.Now()}:
			default:
			}
		})
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ch
}

// waitVerdict returns the next report with a verdict of state up, and the
// failed attempts seen before it.
func waitVerdict(t *testing.T, ch <-chan timedReport, up bool, within time.Duration) (timedReport, []timedReport) {
	t.Helper()
	var failed []timedReport
	deadline := time.After(within)
	for {
		select {
		case r := <-ch:
			if r.Verdict && r.Up == up {
				return r, failed
			}
			if r.Err != nil {
				failed = append(failed, r)
			}
		case <-deadline:
			t.Fatalf("no verdict up=%v within %v (failed attempts so far: %d)", up, within, len(failed))
		}
	}
}

// TestDetectionTime checks keepalived's retry timing with real servers: a
// server that stops is DOWN after retry+1 failed attempts separated by
// delay_before_retry, so at most delay_loop + connect_timeout*(retry+1) +
// delay_before_retry*retry after it stopped, and UP again at the first
// success after it returns.
func TestDetectionTime(t *testing.T) {
	const (
		delayLoop = 400 * time.Millisecond
		timeout   = 200 * time.Millisecond
		dbr       = 150 * time.Millisecond
		retry     = 2
		// margin absorbs a loaded machine's scheduling delays (go test
		// runs packages in parallel on a 2-core CI runner).
		margin = 400 * time.Millisecond
	)
	tests := []struct {
		name string
		// setup starts a server and returns the spec, the real server and
		// the functions that stop and restart it.
		setup func(t *testing.T) (Spec, netip.AddrPort, func(), func())
		// attempt is how long one failed attempt lasts.
		attempt time.Duration
	}{
		{
			name: "TCP refused",
			setup: func(t *testing.T) (Spec, netip.AddrPort, func(), func()) {
				srv := newTCPServer(t)
				return spec(TCP), srv.addr, srv.stop, srv.restart
			},
		},
		{
			name:    "HTTP hanging until connect_timeout",
			attempt: timeout,
			setup: func(t *testing.T) (Spec, netip.AddrPort, func(), func()) {
				srv := newWebServer(t, false)
				s := spec(HTTP)
				s.URLs = []URL{{Path: "/"}}
				return s, srv.addr(t), func() { srv.hang.Store(true) }, func() { srv.hang.Store(false) }
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, rs, stop, restart := tt.setup(t)
			s.DelayLoop, s.ConnectTimeout, s.DelayBeforeRetry, s.Retry = delayLoop, timeout, dbr, retry
			c, err := NewChecker(s, rs, nil)
			if err != nil {
				t.Fatal(err)
			}
			ch := runChecker(t, c)
			if r, _ := waitVerdict(t, ch, true, 2*time.Second); !r.Changed {
				t.Error("first verdict not reported as a change")
			}

			stopped := time.Now()
			stop()
			down, failed := waitVerdict(t, ch, false, 5*time.Second)
			if len(failed) != retry {
				t.Errorf("%d failed attempts before the DOWN verdict, want %d retries", len(failed), retry)
			}
			// From the first failed attempt's end, the DOWN verdict takes
			// retry * (delay_before_retry + one attempt).
			if len(failed) > 0 {
				got := down.at.Sub(failed[0].at)
				want := retry * (dbr + tt.attempt)
				if got < want-20*time.Millisecond || got > want+margin {
					t.Errorf("DOWN %v after the first failure, want %v", got, want)
				}
			}
			detect := down.at.Sub(stopped)
			max := delayLoop + timeout*(retry+1) + dbr*retry + margin
			min := (retry+1)*tt.attempt + dbr*retry - 20*time.Millisecond
			if detect > max || detect < min {
				t.Errorf("DOWN %v after the server stopped, want between %v and %v", detect, min, max)
			}
			st := c.Status()
			if st.State != "DOWN" || st.LastError == "" || st.Failures != retry+1 {
				t.Errorf("status %+v, want DOWN with %d failures and the last error", st, retry+1)
			}

			back := time.Now()
			restart()
			up, _ := waitVerdict(t, ch, true, 5*time.Second)
			if !up.Changed {
				t.Error("UP verdict not reported as a change")
			}
			if d := up.at.Sub(back); d > delayLoop+timeout+margin {
				t.Errorf("UP %v after the server returned, want at most %v", d, delayLoop+timeout+margin)
			}
		})
	}
}

// TestWarmup checks the first check waits at most warmup.
func TestWarmup(t *testing.T) {
	srv := newTCPServer(t)
	s := spec(TCP)
	s.Warmup = 200 * time.Millisecond
	s.DelayLoop = 10 * time.Second
	c, err := NewChecker(s, srv.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	ch := runChecker(t, c)
	r, _ := waitVerdict(t, ch, true, 2*time.Second)
	if d := r.at.Sub(start); d > s.Warmup+100*time.Millisecond {
		t.Errorf("first check after %v, want within the %v warmup", d, s.Warmup)
	}
}

// TestSuspendedCheckerDoesNotProbe checks SetEnabled(false) stops probes
// and SetEnabled(true) resumes them at once.
func TestSuspendedCheckerDoesNotProbe(t *testing.T) {
	srv := newTCPServer(t)
	s := spec(TCP)
	s.DelayLoop = 5 * time.Second
	c, err := NewChecker(s, srv.addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.SetEnabled(false)
	ch := runChecker(t, c)
	select {
	case r := <-ch:
		t.Fatalf("suspended checker probed: %+v", r)
	case <-time.After(200 * time.Millisecond):
	}
	if st := c.Status(); st.Enabled || st.Checks != 0 {
		t.Errorf("status %+v, want disabled with no checks", st)
	}
	c.SetEnabled(true)
	waitVerdict(t, ch, true, time.Second)
}
