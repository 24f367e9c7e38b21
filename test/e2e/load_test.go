package e2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// request is one request a load generator made: when it started and
// ended, the answer (a real server's name) or the error.
type request struct {
	start, end time.Time
	body       string
	err        error
}

// load sends requests from several workers until it is stopped, or has
// sent max requests, or has run for limit: every load loop in these tests
// is bounded in count and time.
type load struct {
	t0     time.Time
	stop   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	reqs   []request
	events []event
}

type event struct {
	at   time.Time
	what string
}

// startLoad runs workers goroutines, each calling do(worker) in a loop
// with pause between calls.
func startLoad(workers int, pause time.Duration, max int, limit time.Duration, do func(worker int) (string, error)) *load {
	l := &load{t0: time.Now(), stop: make(chan struct{})}
	deadline := l.t0.Add(limit)
	sent := make(chan struct{}, max)
	for w := range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for time.Now().Before(deadline) {
				select {
				case <-l.stop:
					return
				case sent <- struct{}{}:
				default:
					return // max reached
				}
				r := request{start: time.Now()}
				r.body, r.err = do(w)
				r.end = time.Now()
				l.mu.Lock()
				l.reqs = append(l.reqs, r)
				l.mu.Unlock()
				select {
				case <-l.stop:
					return
				case <-time.After(pause):
				}
			}
		}()
	}
	return l
}

// mark records an event (a kill, a reload) and returns its time.
func (l *load) mark(what string) time.Time {
	now := time.Now()
	l.mu.Lock()
	l.events = append(l.events, event{now, what})
	l.mu.Unlock()
	return now
}

// finish stops the workers, waits for them and returns every request.
func (l *load) finish() []request {
	close(l.stop)
	l.wg.Wait()
	return l.reqs
}

// report logs the figures: requests sent and failed, when the events
// happened and when the failures did (times from the start of the load).
func (l *load) report(t *testing.T, reqs []request) {
	t.Helper()
	at := func(x time.Time) string { return x.Sub(l.t0).Round(time.Millisecond).String() }
	var b strings.Builder
	failed := 0
	var first, last request
	errs := map[string]int{}
	for _, r := range reqs {
		if r.err == nil {
			continue
		}
		if failed == 0 || r.start.Before(first.start) {
			first = r
		}
		if failed == 0 || r.start.After(last.start) {
			last = r
		}
		failed++
		errs[shortErr(r.err)]++
	}
	end := l.t0
	for _, r := range reqs {
		if r.end.After(end) {
			end = r.end
		}
	}
	fmt.Fprintf(&b, "%d requests in %s, %d failed", len(reqs), at(end), failed)
	if failed > 0 {
		fmt.Fprintf(&b, " (started from %s to %s: %v)", at(first.start), at(last.start), errs)
	}
	for _, e := range l.events {
		fmt.Fprintf(&b, "; %s at %s", e.what, at(e.at))
	}
	t.Log(b.String())
}

// shortErr is an error's last part ("connection refused"), to count
// failures by kind.
func shortErr(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return s
}

// answers counts the answers by real server among requests started in
// [from, to).
func answers(reqs []request, from, to time.Time) map[string]int {
	m := map[string]int{}
	for _, r := range reqs {
		if r.err == nil && !r.start.Before(from) && r.start.Before(to) {
			m[r.body]++
		}
	}
	return m
}
