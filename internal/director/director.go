// Package director ties the IPVS table to the running engine. Commands are
// applied as batches: the table takes (or refuses, with ipvsadm's wording)
// each command in turn, recording what changed, and the engine is handed
// only those changes, once per batch (see package engine). A batch the
// engine refuses is undone in the table, which the engine left as it was,
// so the table always says what is served; the batch's commands are then
// tried one at a time to find the one the engine refuses. The cost of a
// batch grows with the batch, not with the table.
package director

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/gvs-lb/gvs/internal/api/wire"
	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// IPVS version and connection table size that ipvsadm's title shows.
const (
	Version     = "1.2.1"
	ConnTabSize = 4096
)

// Director owns the table and the engine. It implements api.Backend.
type Director struct {
	mu     sync.Mutex // serialises changes: table then engine
	table  *ipvs.Table
	engine engine.Engine
	log    *slog.Logger
}

// New returns a director serving an empty table with eng.
func New(eng engine.Engine, log *slog.Logger) *Director {
	return &Director{table: ipvs.NewTable(eng.CheckDest), engine: eng, log: log}
}

// Exec applies commands in order and stops at the first one refused, by
// the table or by the engine; the commands before it are applied, the
// refused one changes nothing. The error is a *wire.CommandError.
func (d *Director) Exec(cmds []ipvs.Command) error {
	for i, err := range d.run(cmds, true) {
		if err != nil {
			return &wire.CommandError{Index: i, Msg: err.Error()}
		}
	}
	return nil
}

// ExecEach applies every command it can, in order, as ipvsadm -R does
// line by line: a refused command changes nothing and the ones after it
// still run. It returns one error per command, nil where applied.
func (d *Director) ExecEach(cmds []ipvs.Command) []error {
	return d.run(cmds, false)
}

// run applies cmds as one batch; with stop, it ends at the first refused
// command. It returns one error per command (nil for the ones applied or,
// after a stop, not tried).
func (d *Director) run(cmds []ipvs.Command, stop bool) []error {
	d.mu.Lock()
	defer d.mu.Unlock()
	errs := make([]error, len(cmds))
	tx := d.table.Begin()
	n := len(cmds)
	for i, c := range cmds {
		if errs[i] = tx.Exec(c); errs[i] != nil && stop {
			n = i + 1
			break
		}
	}
	if err := d.engine.Apply(tx.Changes()); err == nil {
		d.zero(cmds[:n], errs)
		return errs
	} else if n == 1 {
		tx.Rollback()
		errs[0] = err
		return errs
	}
	// The engine refused the batch: find the command it refuses.
	tx.Rollback()
	clear(errs)
	for i, c := range cmds[:n] {
		errs[i] = d.execOne(c)
		if errs[i] != nil && stop {
			break
		}
	}
	return errs
}

// execOne applies one command as a batch of its own.
func (d *Director) execOne(c ipvs.Command) error {
	tx := d.table.Begin()
	if err := tx.Exec(c); err != nil {
		return err
	}
	if err := d.engine.Apply(tx.Changes()); err != nil {
		tx.Rollback()
		return err
	}
	d.zero([]ipvs.Command{c}, []error{nil})
	return nil
}

// zero clears the engine's counters for the zero commands applied.
func (d *Director) zero(cmds []ipvs.Command, errs []error) {
	for i, c := range cmds {
		if c.Op != ipvs.OpZero || errs[i] != nil {
			continue
		}
		var key *ipvs.ServiceKey
		if c.Service != nil {
			key = &c.Service.ServiceKey
		}
		d.engine.Zero(key)
	}
}

// Replace makes the table hold exactly snap (a reloaded configuration), as
// one batch of the differences: services and real servers that stay keep
// their place, counters and connections; only changed services are
// touched. On error nothing changed; the error starts with the service
// (and real server) it is about.
func (d *Director) Replace(snap *ipvs.Snapshot) error {
	return d.ReplaceFrom(func(*ipvs.Snapshot) *ipvs.Snapshot { return snap }, nil)
}

// ReplaceFrom is Replace with the table build makes of the current one,
// in the same batch: no other change comes between what build reads and
// the replacement (a health checker's change to a service the new table
// keeps as it is stays). committed, when not nil, runs once the engine
// took the change, before any other batch: what must change together
// with the table does (the reconciler retires the checkers of the
// services it replaced, whose late Update functions then change nothing).
func (d *Director) ReplaceFrom(build func(cur *ipvs.Snapshot) *ipvs.Snapshot, committed func()) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	cur := d.table.Snapshot()
	tx := d.table.Begin()
	for _, c := range ipvs.Diff(cur, build(cur)) {
		if err := tx.Exec(c); err != nil {
			tx.Rollback()
			return about(c, err)
		}
	}
	if err := d.commit(tx); err != nil {
		return err
	}
	if committed != nil {
		committed()
	}
	return nil
}

// about prefixes err with the service and real server c is about.
func about(c ipvs.Command, err error) error {
	switch {
	case c.Service == nil:
		return err
	case c.Dest != nil:
		return fmt.Errorf("%s -> %s: %w", c.Service.ServiceKey, c.Dest.AddrPort(), err)
	}
	return fmt.Errorf("%s: %w", c.Service.ServiceKey, err)
}

// Update runs fn, a health checker's change (adding, removing or
// re-weighting a real server), in a table transaction and hands the
// engine what it changed. fn's and the table's errors are returned as
// they are (ipvs.ErrDestExists ...); on error nothing changed.
func (d *Director) Update(fn func(tx *ipvs.Tx) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	tx := d.table.Begin()
	if err := fn(tx); err != nil {
		tx.Rollback()
		return err
	}
	return d.commit(tx)
}

// commit hands the engine tx's changes, undoing tx when it refuses them.
func (d *Director) commit(tx *ipvs.Tx) error {
	err := d.engine.Apply(tx.Changes())
	if err != nil {
		tx.Rollback()
	}
	return err
}

// Engine is the name of the engine the director drives.
func (d *Director) Engine() string { return d.engine.Name() }

// Snapshot copies the table.
func (d *Director) Snapshot() *ipvs.Snapshot { return d.table.Snapshot() }

// Services lists the services with the engine's counters.
func (d *Director) Services() []ipvs.ServiceStatus { return d.engine.Status() }

// Service is the one service key names with the engine's counters, false
// when there is none. Only that service's counters are read.
func (d *Director) Service(key ipvs.ServiceKey) (ipvs.ServiceStatus, bool) {
	return d.engine.StatusOf(key)
}

// Conns lists the engine's connection table.
func (d *Director) Conns() []ipvs.Conn { return d.engine.Conns() }

// Timeouts returns the table's connection timeouts.
func (d *Director) Timeouts() ipvs.Timeouts { return d.table.Timeouts() }

// Info describes the daemon.
func (d *Director) Info() wire.Info {
	return wire.Info{Version: Version, ConnTabSize: ConnTabSize, Engine: d.engine.Name()}
}
