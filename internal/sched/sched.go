// Package sched implements IPVS's connection schedulers (rr, wrr, lc, wlc,
// lblc, lblcr, dh, sh, sed, nq, fo, ovf, mh, twos) with the kernel's
// semantics (net/netfilter/ipvs/ip_vs_*.c). It is the reference the engines
// use and the BPF schedulers are tested against.
package sched

import (
	"fmt"
	"net/netip"
	"sync/atomic"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// Dest is a real server as the schedulers see it: its address, weight,
// thresholds and live connection counters. Engines keep one Dest per real
// server and update its counters through Bind, Unbind and SetActive.
type Dest struct {
	Addr netip.AddrPort

	uthreshold atomic.Uint32
	lthreshold atomic.Uint32
	weight     atomic.Int32
	active     atomic.Int32
	inactive   atomic.Int32
	persist    atomic.Int32
	overloaded atomic.Bool
	removed    atomic.Bool
	failed     atomic.Bool
	onChange   atomic.Pointer[func()]
}

// NewDest returns a Dest for a configured real server.
func NewDest(d ipvs.Dest) *Dest {
	x := &Dest{Addr: d.AddrPort()}
	x.weight.Store(d.Weight)
	x.SetThresholds(d.UThreshold, d.LThreshold)
	return x
}

// Weight is the real server's weight; 0 quiesces it.
func (d *Dest) Weight() int32 { return d.weight.Load() }

// SetWeight changes the weight (ipvsadm -e -w).
func (d *Dest) SetWeight(w int32) { d.weight.Store(w) }

// ActiveConns and InactConns are the kernel's activeconns and inactconns.
func (d *Dest) ActiveConns() int32 { return d.active.Load() }

// InactConns is the number of connections not in ESTABLISHED state.
func (d *Dest) InactConns() int32 { return d.inactive.Load() }

// PersistConns is the number of persistence templates pointing here.
func (d *Dest) PersistConns() int32 { return d.persist.Load() }

// Overloaded reports IP_VS_DEST_F_OVERLOAD.
func (d *Dest) Overloaded() bool { return d.overloaded.Load() }

// Removed reports that the server was deleted from its service; it keeps
// serving its established connections but is never scheduled.
func (d *Dest) Removed() bool { return d.removed.Load() }

// MarkRemoved takes the server out of its service.
func (d *Dest) MarkRemoved() {
	if !d.removed.Swap(true) {
		d.changed()
	}
}

// OnChange makes fn be called after the server's overload, failed or
// removed mark changes: the moments a server can start or stop taking new
// connections besides a weight change. fn runs on the goroutine that
// made the change (a connection's, in Bind and Unbind), so it must be
// quick and must not wait for locks the data path holds.
func (d *Dest) OnChange(fn func()) { d.onChange.Store(&fn) }

func (d *Dest) changed() {
	if fn := d.onChange.Load(); fn != nil {
		(*fn)()
	}
}

// setOverloaded sets the overload mark, telling OnChange's function when
// it changes. The mark is read first: a server over its threshold binds
// every connection without a write to the shared cache line.
func (d *Dest) setOverloaded(v bool) {
	if d.overloaded.Load() != v && d.overloaded.CompareAndSwap(!v, v) {
		d.changed()
	}
}

// Eligible reports what every scheduler but lblc requires of a server for
// a new connection: available, not over its upper threshold, and weight
// above 0. When no server of a service is eligible, no new connection can
// be scheduled (lblc may still send one to the server it chose last for
// the address, as the kernel's does, overloaded or not).
func (d *Dest) Eligible() bool { return eligible(d) }

// Scheduler picks a real server for a new connection.
type Scheduler interface {
	// Name is the scheduler's ipvsadm name.
	Name() string
	// Update gives the scheduler the service's real servers in the kernel's
	// list order (the most recently added first). It is called whenever
	// the list, a weight or a threshold changes.
	Update(dests []*Dest)
	// Schedule returns the real server for a new connection, or nil when
	// none is available (the kernel's "no destination available").
	Schedule(c Conn) *Dest
}

// Tabled is a scheduler that chooses by looking the connection's hash up
// in a table of slots: sh, dh (256 buckets) and mh (the 4093-slot Maglev
// ring). Table returns the table the last Update built, slot by slot, nil
// for an empty slot; the xdp engine copies it into its maps.
type Tabled interface {
	Table() []*Dest
}

// Walker is a scheduler whose next choice depends on where the last one
// was made: rr and wrr. The xdp engine walks the same list in BPF and
// keeps the cursor in a map; on a table change it sets the Go
// scheduler's cursor to the one BPF left, gives it the new list with
// Update, and writes back the Cursor that Update made (the kernel's
// del_dest and dest_changed hooks).
type Walker interface {
	Scheduler
	Cursor() Cursor
	SetCursor(Cursor)
}

// Cursor is where a Walker stands. SetCursor takes Last and CW; MW and
// DI are what the last Update derived from the weights.
type Cursor struct {
	Last int   // the position, in Update's list, of the server chosen last; -1 is the list head
	CW   int32 // wrr's current weight (0 for rr)
	MW   int32 // wrr's first cw of a lap: the highest weight less the gcd, plus 1 (0 for rr)
	DI   int32 // wrr's step: the gcd of the positive weights (0 for rr)
}

// Conn is what a scheduler may look at: the client and the virtual
// address of the new connection.
type Conn struct {
	Client  netip.AddrPort
	Virtual netip.AddrPort
}

// New returns the named scheduler. flags are the service's flags (the
// ipvs.SchedFlag bits matter to sh and mh).
func New(name string, flags uint32) (Scheduler, error) {
	mk, ok := registry[name]
	if !ok {
		return nil, fmt.Errorf("scheduler %q: %w", name, ipvs.ErrNoScheduler)
	}
	return mk(flags), nil
}

var registry = map[string]func(flags uint32) Scheduler{}

func register(name string, mk func(flags uint32) Scheduler) { registry[name] = mk }

// Failed reports that the engine could not reach the server lately; it is
// skipped for new connections until it is reachable again.
func (d *Dest) Failed() bool { return d.failed.Load() }

// SetFailed marks the server unreachable (true) or reachable again.
func (d *Dest) SetFailed(f bool) {
	if d.failed.Swap(f) != f {
		d.changed()
	}
}

// Available reports whether the server may take new connections at all:
// not removed from its service and not failed. Every scheduler skips
// servers that are not available, besides its own weight and overload
// rules.
func (d *Dest) Available() bool { return !d.removed.Load() && !d.failed.Load() }

// ConnKind is how a connection counts against its real server.
type ConnKind uint8

// Connection kinds, as the kernel's counters.
const (
	Active   ConnKind = iota // activeconns: an ESTABLISHED TCP connection
	Inactive                 // inactconns: any other state, and UDP
	Template                 // persistconns: a persistence template
)

func (d *Dest) counter(k ConnKind) *atomic.Int32 {
	switch k {
	case Active:
		return &d.active
	case Inactive:
		return &d.inactive
	}
	return &d.persist
}

// TotalConns is the kernel's ip_vs_dest_totalconns: active plus inactive.
func (d *Dest) TotalConns() int32 { return d.active.Load() + d.inactive.Load() }

// Bind counts a new connection of kind k against the server and marks it
// overloaded when it reaches its upper threshold (ip_vs_bind_dest).
func (d *Dest) Bind(k ConnKind) {
	d.counter(k).Add(1)
	if u := d.uthreshold.Load(); u != 0 && uint32(d.TotalConns()) >= u {
		d.setOverloaded(true)
	}
}

// Unbind uncounts a connection of kind k and clears the overload mark once
// the server falls below its lower threshold, or below 3/4 of the upper one
// when no lower threshold is set (ip_vs_unbind_dest).
func (d *Dest) Unbind(k ConnKind) {
	d.counter(k).Add(-1)
	total := uint32(max(d.TotalConns(), 0))
	upper, lower := d.Thresholds()
	switch {
	case lower != 0:
		if total < lower {
			d.setOverloaded(false)
		}
	case upper != 0:
		if total*4 < upper*3 {
			d.setOverloaded(false)
		}
	default:
		d.setOverloaded(false)
	}
}

// Move moves a connection from one kind to another, as a TCP state change
// between ESTABLISHED and the other states does.
func (d *Dest) Move(from, to ConnKind) {
	if from == to {
		return
	}
	d.counter(to).Add(1)
	d.counter(from).Add(-1)
}

// SetThresholds changes the thresholds (ipvsadm -e -x -y). As in the
// kernel's __ip_vs_update_dest, raising or removing the upper threshold
// clears the overload mark; lowering it marks nothing until the next Bind.
func (d *Dest) SetThresholds(upper, lower uint32) {
	if upper == 0 || upper > d.uthreshold.Load() {
		d.setOverloaded(false)
	}
	d.uthreshold.Store(upper)
	d.lthreshold.Store(lower)
}

// Thresholds returns the upper (-x) and lower (-y) connection thresholds;
// 0 means none.
func (d *Dest) Thresholds() (upper, lower uint32) {
	return d.uthreshold.Load(), d.lthreshold.Load()
}
