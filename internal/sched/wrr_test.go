package sched

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// kernelWRR is ip_vs_wrr_schedule step by step, as the kernel runs it:
// one pass over the list per value of cw. It shares weightedRR's state
// and Update, and is the reference Schedule must agree with.
func kernelWRR(s *weightedRR) *Dest {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mw == 0 {
		return nil
	}
	n := len(s.dests)
	pos, last, stop := s.cl, s.cl, -2
	lastPass, restarted := false, false
	for {
		for i := pos + 1; i < n; i++ {
			d := s.dests[i]
			if d.Available() && !d.Overloaded() && d.Weight() >= s.cw {
				s.cl = i
				return d
			}
			if i == stop {
				s.cl = i
				return nil
			}
		}
		pos = -1
		s.cw -= s.di
		if s.cw <= 0 {
			s.cw = s.mw
			if lastPass || last == -1 {
				s.cl = -1
				return nil
			}
			restarted = true
		}
		lastPass = s.cw <= s.di
		if lastPass && restarted && last != -1 {
			stop = last
		}
	}
}

// TestWRRAgreesWithTheKernelWalk drives the scheduler and the kernel's
// walk through the same random lists, weights (with common divisors),
// failures and overloads, and wants the same server for every
// connection.
func TestWRRAgreesWithTheKernelWalk(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 300 {
		n := 1 + rng.IntN(5)
		dests := make([]*Dest, n)
		for i := range dests {
			dests[i] = NewDest(ipvs.Dest{Addr: netip.AddrFrom4([4]byte{198, 19, 0, byte(11 + i)}), Port: 80})
		}
		ours, ref := &weightedRR{cl: -1}, &weightedRR{cl: -1}
		for step := range 40 {
			// Change one server, as ipvsadm -e or a checker would.
			d := dests[rng.IntN(n)]
			unit := int32(1 + rng.IntN(3))
			switch rng.IntN(4) {
			case 0:
				d.SetWeight(unit * int32(rng.IntN(6)))
			case 1:
				d.SetWeight(unit * int32(50+rng.IntN(50))) // heavy: many empty passes
			case 2:
				d.overloaded.Store(!d.Overloaded())
			case 3:
				d.SetFailed(!d.Failed())
			}
			ours.Update(dests)
			ref.Update(dests)
			for c := range 1 + rng.IntN(8) {
				got, want := ours.Schedule(Conn{}), kernelWRR(ref)
				if got != want || ours.cw != ref.cw || ours.cl != ref.cl {
					t.Fatalf("round %d, step %d, connection %d: chose %s (cw %d, cursor %d), the kernel %s (cw %d, cursor %d)",
						round, step, c, name(got), ours.cw, ours.cl, name(want), ref.cw, ref.cl)
				}
			}
		}
	}
}

func name(d *Dest) string {
	if d == nil {
		return "none"
	}
	return d.Addr.String()
}

// TestWRRHeavyServerOut: a server of the highest weight that cannot take
// connections (overloaded, failed) beside a live one of weight 1. The
// kernel's walk makes 2^31 empty passes per connection; every connection
// must still go to the live server, at once.
func TestWRRHeavyServerOut(t *testing.T) {
	for _, out := range []string{"overloaded", "failed"} {
		t.Run(out, func(t *testing.T) {
			v := newService(t, "wrr", 0)
			v.addAll("11/1 12/" + fmt.Sprint(math.MaxInt32))
			heavy := v.get("12")
			if out == "overloaded" {
				heavy.overloaded.Store(true) // as an upper threshold reached does
			} else {
				heavy.SetFailed(true)
			}
			v.s.Update(v.dests)
			done := make(chan string)
			go func() {
				got := ""
				for range 1000 {
					got = v.conn("198.18.0.1:1000", "198.18.200.1:80")
					if got != "11" {
						break
					}
				}
				done <- got
			}()
			select {
			case got := <-done:
				if got != "11" {
					t.Errorf("a connection went to %s, want 11 (the only live server)", got)
				}
			case <-time.After(time.Minute):
				// The kernel's walk takes about 2 s per connection.
				t.Fatal("1000 connections not scheduled within a minute: the scheduler walks cw down one gcd at a time")
			}
		})
	}
}

// TestCursorCarriesTheWalk moves rr's and wrr's cursor to a fresh
// scheduler over the same servers, as the xdp engine does on a table
// change, and wants both to go on with the same choices.
func TestCursorCarriesTheWalk(t *testing.T) {
	for _, name := range []string{"rr", "wrr"} {
		a, b := newService(t, name, 0), newService(t, name, 0)
		a.addAll("11/4 12/3 13/2 14/0 15/70000")
		b.dests = a.dests
		b.s.Update(b.dests)
		a.get("15").SetThresholds(1, 0)
		a.seq(7)
		b.s.(Walker).SetCursor(a.s.(Walker).Cursor())
		if got, want := b.seq(20), a.seq(20); got != want {
			t.Errorf("%s: a fresh scheduler given the cursor chose %s, the original %s", name, got, want)
		}
	}
}
