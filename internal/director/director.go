// Package director ties the IPVS table to the running engine: every change
// to the table is handed to the engine, and a change the engine refuses is
// rolled back so the table always says what is served.
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
// the table or by the engine; a refused command changes nothing.
func (d *Director) Exec(cmds []ipvs.Command) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, c := range cmds {
		if err := d.exec(c); err != nil {
			return &wire.CommandError{Index: i, Msg: err.Error()}
		}
	}
	return nil
}

func (d *Director) exec(c ipvs.Command) error {
	before := d.table.Snapshot()
	if err := d.table.Exec(c); err != nil {
		return err
	}
	if c.Op == ipvs.OpZero {
		var key *ipvs.ServiceKey
		if c.Service != nil {
			key = &c.Service.ServiceKey
		}
		d.engine.Zero(key)
		return nil
	}
	return d.applyOrRollback(before)
}

// Replace makes the table hold exactly snap (a reloaded configuration); the
// engine keeps the connections of services and servers that stay.
func (d *Director) Replace(snap *ipvs.Snapshot) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	before := d.table.Snapshot()
	if err := d.table.Replace(snap); err != nil {
		return err
	}
	return d.applyOrRollback(before)
}

// Update edits the table through fn (health checkers adding, removing or
// re-weighting servers) and hands the result to the engine.
func (d *Director) Update(fn func(t *ipvs.Table) error) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	before := d.table.Snapshot()
	if err := fn(d.table); err != nil {
		d.table.Replace(before)
		return err
	}
	return d.applyOrRollback(before)
}

func (d *Director) applyOrRollback(before *ipvs.Snapshot) error {
	err := d.engine.Apply(d.table.Snapshot())
	if err == nil {
		return nil
	}
	if rerr := d.table.Replace(before); rerr != nil {
		return fmt.Errorf("%w (and restoring the previous table failed: %v)", err, rerr)
	}
	if rerr := d.engine.Apply(before); rerr != nil {
		d.log.Error("engine refused the previous table too", "error", rerr)
	}
	return err
}

// Engine is the name of the engine the director drives.
func (d *Director) Engine() string { return d.engine.Name() }

// Snapshot copies the table.
func (d *Director) Snapshot() *ipvs.Snapshot { return d.table.Snapshot() }

// Services lists the services with the engine's counters.
func (d *Director) Services() []ipvs.ServiceStatus { return d.engine.Status() }

// Conns lists the engine's connection table.
func (d *Director) Conns() []ipvs.Conn { return d.engine.Conns() }

// Timeouts returns the table's connection timeouts.
func (d *Director) Timeouts() ipvs.Timeouts { return d.table.Timeouts() }

// Info describes the daemon.
func (d *Director) Info() wire.Info {
	return wire.Info{Version: Version, ConnTabSize: ConnTabSize, Engine: d.engine.Name()}
}
