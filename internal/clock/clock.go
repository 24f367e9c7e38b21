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
	// AfterFunc is like time.AfterFunc.
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a timer AfterFunc made; *time.Timer is one.
type Timer interface {
	// Stop and Reset are as time.Timer's: both report whether the timer
	// was pending.
	Stop() bool
	Reset(d time.Duration) bool
}

// System is the system clock.
var System Clock = system{}

type system struct{}

func (system) Now() time.Time { return time.Now() }

func (system) After(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTimer(d)
	return t.C, func() { t.Stop() }
}

func (system) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// Fake is a Clock for tests: its time moves only by Advance, which fires
// the timers that fall due.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	changed chan struct{} // closed (and replaced) when timers change
}

// fakeTimer is an After timer (c) or an AfterFunc one (f).
type fakeTimer struct {
	fake *Fake
	at   time.Time
	c    chan time.Time
	f    func()
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
	t := &fakeTimer{fake: f, at: f.now.Add(d), c: make(chan time.Time, 1)}
	if d <= 0 {
		t.c <- f.now
		return t.c, func() {}
	}
	f.timers = append(f.timers, t)
	f.notify()
	return t.c, func() { t.Stop() }
}

// AfterFunc returns a timer that calls f when Advance reaches now+d.
func (f *Fake) AfterFunc(d time.Duration, fn func()) Timer {
	t := &fakeTimer{fake: f, f: fn}
	t.Reset(d)
	return t
}

// Stop takes the timer off the clock.
func (t *fakeTimer) Stop() bool {
	f := t.fake
	f.mu.Lock()
	defer f.mu.Unlock()
	i := slices.Index(f.timers, t)
	if i >= 0 {
		f.timers = slices.Delete(f.timers, i, i+1)
		f.notify()
	}
	return i >= 0
}

// Reset sets the timer to fire d after the fake time.
func (t *fakeTimer) Reset(d time.Duration) bool {
	f := t.fake
	f.mu.Lock()
	defer f.mu.Unlock()
	pending := slices.Contains(f.timers, t)
	t.at = f.now.Add(d)
	if !pending {
		f.timers = append(f.timers, t)
	}
	f.notify()
	return pending
}

// Advance moves the time on by d, timer by timer: every timer due by
// then fires in deadline order, the time standing at its deadline. It
// calls an AfterFunc timer's function itself (which may set timers that
// fall due in the same Advance) and returns once the functions returned.
func (f *Fake) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	end := f.now.Add(d)
	for {
		i := -1
		for k, t := range f.timers {
			if !t.at.After(end) && (i < 0 || t.at.Before(f.timers[i].at)) {
				i = k
			}
		}
		if i < 0 {
			break
		}
		t := f.timers[i]
		f.timers = slices.Delete(f.timers, i, i+1)
		f.notify()
		if t.at.After(f.now) {
			f.now = t.at
		}
		if t.f == nil {
			t.c <- t.at
			continue
		}
		f.mu.Unlock()
		t.f()
		f.mu.Lock()
	}
	f.now = end
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
