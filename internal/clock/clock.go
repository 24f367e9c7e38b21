// Package clock is the time that gvsd's timed loops (health checkers,
// vrrp_track_process delays) schedule by: the system's, or in tests a Fake
// that the test moves by hand, so that timing is asserted exactly and
// without waiting.
package clock

import (
	"slices"
	"sync"
	"time"
)

// Clock tells the time and makes timers.
type Clock interface {
	Now() time.Time
	// After is like time.After; stop releases the timer early.
	After(d time.Duration) (c <-chan time.Time, stop func())
}

// System is the system clock.
var System Clock = system{}

type system struct{}

func (system) Now() time.Time { return time.Now() }

func (system) After(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTimer(d)
	return t.C, func() { t.Stop() }
}

// Fake is a Clock for tests: its time moves only by Advance, which fires
// the timers that fall due.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	changed chan struct{} // closed (and replaced) when timers change
}

type fakeTimer struct {
	at time.Time
	c  chan time.Time
}

// NewFake returns a fake clock at start.
func NewFake(start time.Time) *Fake {
	return &Fake{now: start, changed: make(chan struct{})}
}

// Now is the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// After returns a timer that fires when Advance reaches now+d (at once
// when d <= 0).
func (f *Fake) After(d time.Duration) (<-chan time.Time, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{at: f.now.Add(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		t.c <- f.now
		return t.c, func() {}
	}
	f.timers = append(f.timers, t)
	f.notify()
	return t.c, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if i := slices.Index(f.timers, t); i >= 0 {
			f.timers = slices.Delete(f.timers, i, i+1)
			f.notify()
		}
	}
}

// Advance moves the time on by d and fires every timer due by then,
// earliest first, each with its own deadline.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	slices.SortStableFunc(f.timers, func(a, b *fakeTimer) int { return a.at.Compare(b.at) })
	n := 0
	for _, t := range f.timers {
		if t.at.After(f.now) {
			break
		}
		t.c <- t.at
		n++
	}
	if n > 0 {
		f.timers = slices.Delete(f.timers, 0, n)
		f.notify()
	}
}

// Pending returns the deadlines of the timers not yet fired nor stopped,
// earliest first, and a channel closed when they next change (a timer
// made, stopped or fired): a test waits on it for the code under test to
// go to sleep.
func (f *Fake) Pending() ([]time.Time, <-chan struct{}) {
	f.mu.Lock()
	defer f.mu.Unlock()
	at := make([]time.Time, len(f.timers))
	for i, t := range f.timers {
		at[i] = t.at
	}
	slices.SortFunc(at, time.Time.Compare)
	return at, f.changed
}

func (f *Fake) notify() {
	close(f.changed)
	f.changed = make(chan struct{})
}
