package clock

import (
	"slices"
	"testing"
	"time"
)

func TestFake(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := NewFake(start)
	a, _ := f.After(2 * time.Second)
	b, stopB := f.After(time.Second)
	c, _ := f.After(3 * time.Second)
	pending, changed := f.Pending()
	if want := []time.Time{start.Add(time.Second), start.Add(2 * time.Second), start.Add(3 * time.Second)}; !slices.Equal(pending, want) {
		t.Fatalf("pending %v, want %v", pending, want)
	}
	stopB()
	select {
	case <-changed:
	default:
		t.Fatal("stopping a timer did not signal a change")
	}
	f.Advance(2500 * time.Millisecond)
	if got := f.Now(); !got.Equal(start.Add(2500 * time.Millisecond)) {
		t.Fatalf("now %v after Advance(2.5s)", got)
	}
	select {
	case at := <-a:
		if !at.Equal(start.Add(2 * time.Second)) {
			t.Errorf("timer fired with %v, want its deadline", at)
		}
	default:
		t.Fatal("the timer due at +2s did not fire")
	}
	for name, ch := range map[string]<-chan time.Time{"stopped": b, "due at +3s": c} {
		select {
		case <-ch:
			t.Errorf("the %s timer fired", name)
		default:
		}
	}
	if pending, _ := f.Pending(); len(pending) != 1 {
		t.Errorf("pending %v after the advance, want only the +3s timer", pending)
	}
	now, _ := f.After(0)
	select {
	case <-now:
	default:
		t.Error("After(0) did not fire at once")
	}
}

func TestFakeAfterFunc(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := NewFake(start)
	var calls []time.Time
	var tm Timer
	tm = f.AfterFunc(time.Second, func() {
		calls = append(calls, f.Now())
		if len(calls) == 1 {
			tm.Reset(time.Second) // as a timer that re-arms itself
		}
	})
	f.Advance(999 * time.Millisecond)
	if len(calls) != 0 {
		t.Fatalf("called at %v, before its second", calls)
	}
	f.Advance(time.Millisecond)
	if len(calls) != 1 || !calls[0].Equal(start.Add(time.Second)) {
		t.Fatalf("calls %v, want one at +1s once Advance returned", calls)
	}
	if pending, _ := f.Pending(); len(pending) != 1 || !pending[0].Equal(start.Add(2*time.Second)) {
		t.Fatalf("pending %v, want the re-armed timer at +2s", pending)
	}
	if !tm.Stop() {
		t.Error("Stop of a pending timer reported it was not pending")
	}
	f.Advance(time.Hour)
	if len(calls) != 1 {
		t.Errorf("a stopped timer was called: %v", calls)
	}
	if tm.Stop() {
		t.Error("Stop of a stopped timer reported it was pending")
	}
}
