package xdp

import (
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/sched"
)

// rr and wrr in BPF (schedule_wrr in bpf/xdp_lb.c) walk the service's
// list from a cursor as ip_vs_wrr_schedule does, and move the cursor by
// compare-and-swap. The cursor is one uint64 in the cursors map (CUR_* in
// bpf/xdp_lb.h): the generation of the table half it walks, the position
// of the server chosen last plus one, and wrr's current weight cw. rr is
// the same walk with every weight counted as 1 (mw = di = cw = 1).
//
// A table change is a new list in the idle half and a new cursor that
// points at it, made by the Go scheduler from the cursor BPF left (the
// kernel's hooks: rr keeps its place, a deleted server hands it to the one
// before it; wrr restarts at the list head and keeps cw when it fits).
// Go swaps the cursor in with swap_cursor (BPF_PROG_RUN), a
// compare-and-swap: a connection scheduled meanwhile moves the cursor,
// the swap fails and Go computes again from there, so no choice is lost
// and none is made on a half-written list.

const (
	curGenBits = 16
	curGenMask = 1<<curGenBits - 1
)

func curMake(gen uint32, pos int, cw int32) uint64 {
	return uint64(gen&curGenMask)<<48 | uint64(uint16(pos+1))<<32 | uint64(uint32(cw))
}

func curGen(c uint64) uint32 { return uint32(c >> 48) }
func curPos(c uint64) int    { return int(uint16(c>>32)) - 1 }
func curCW(c uint64) int32   { return int32(uint32(c)) }

// walkCursor is where the Go scheduler name stands after Update with the
// servers next (map indexes, the kernel's order, with their weights),
// having stood at cur on the list prev; prev nil is a fresh scheduler.
func walkCursor(name string, prev []uint32, cur sched.Cursor, next []uint32, weights []int32) (sched.Cursor, error) {
	s, err := sched.New(name, 0)
	if err != nil {
		return sched.Cursor{}, err
	}
	w, ok := s.(sched.Walker)
	if !ok {
		return sched.Cursor{}, fmt.Errorf("scheduler %s has no cursor", name)
	}
	byIndex := map[uint32]*sched.Dest{}
	dest := func(idx uint32) *sched.Dest {
		d := byIndex[idx]
		if d == nil {
			d = sched.NewDest(ipvs.Dest{})
			byIndex[idx] = d
		}
		return d
	}
	if prev != nil {
		l := make([]*sched.Dest, len(prev))
		for i, idx := range prev {
			l[i] = dest(idx)
		}
		w.Update(l)
		w.SetCursor(cur)
	}
	l := make([]*sched.Dest, len(next))
	for i, idx := range next {
		l[i] = dest(idx)
		l[i].SetWeight(weights[i])
	}
	w.Update(l)
	return w.Cursor(), nil
}

// writeWalk writes an rr/wrr service's list (map indexes, the kernel's
// order) as the table of generation gen, the one no walk reads (putTable),
// and swaps in the cursor that walks it.
func (e *Engine) writeWalk(s *svcState, gen uint32, list []uint32) error {
	weights := make([]int32, len(list))
	for i, idx := range list {
		weights[i] = e.dests[idx].cfg.Weight
	}
	mw, di := int32(1), int32(1) // rr
	var c sched.Cursor
	for try := 0; ; try++ {
		var old uint64
		if err := e.objs.Cursors.Lookup(s.index, &old); err != nil {
			return fmt.Errorf("xdp engine: reading the cursor: %w", err)
		}
		var prev []uint32
		if s.walk == s.cfg.Scheduler && curGen(old) == s.gen&curGenMask {
			prev = s.table
		}
		var err error
		c, err = walkCursor(s.cfg.Scheduler, prev, sched.Cursor{Last: curPos(old), CW: curCW(old)}, list, weights)
		if err != nil {
			return err
		}
		cw := int32(1)
		if s.cfg.Scheduler == "wrr" {
			mw, di, cw = c.MW, c.DI, c.CW
		}
		if try == 0 {
			// The half the cursor does not point at: no walk reads it.
			tab := append([]uint32{uint32(len(list)), uint32(mw), uint32(di)}, list...)
			if err := e.putTable(s.index*2+gen, tab); err != nil {
				return fmt.Errorf("xdp engine: writing the scheduler table of %s: %w", s.cfg.ServiceKey, err)
			}
		}
		swapped, err := e.swapCursor(s.index, old, curMake(gen, c.Last, cw))
		if err != nil {
			return err
		}
		if swapped {
			break
		}
		if try == 100 {
			return fmt.Errorf("xdp engine: the %s cursor of %s kept moving; try again", s.cfg.Scheduler, s.cfg.ServiceKey)
		}
	}
	s.walk = s.cfg.Scheduler
	return nil
}

// swapCursor sets a service's cursor to new if it is still old.
func (e *Engine) swapCursor(svc uint32, old, new uint64) (bool, error) {
	ret, err := e.objs.SwapCursor.Run(&ebpf.RunOptions{Context: lbCursorSwap{Svc: svc, Old: old, New: new}})
	if err != nil {
		return false, fmt.Errorf("xdp engine: moving the cursor: %w", err)
	}
	return ret == 0, nil
}
