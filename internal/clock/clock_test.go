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
