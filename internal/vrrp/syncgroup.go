package vrrp

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/gvs-lb/gvs/internal/notify"
)

// Group runs a vrrp_sync_group: when one member becomes MASTER the others
// follow, when one goes BACKUP the others do too, and one member in FAULT
// holds all of them in FAULT.
type Group struct {
	cfg     SyncGroup
	members []*Instance
	log     *slog.Logger
	notify  *notifier

	mu      sync.Mutex
	state   State
	faulted map[*Instance]bool
}

// NewGroup ties the instances of cfg together. Call it before their Run;
// call Close after they stopped to wait for the group's notify scripts.
func NewGroup(cfg SyncGroup, members []*Instance, log *slog.Logger) (*Group, error) {
	if log == nil {
		log = slog.Default()
	}
	if len(members) == 0 {
		return nil, fmt.Errorf("vrrp_sync_group %s: no instances", cfg.Name)
	}
	g := &Group{cfg: cfg, members: members, log: log.With("vrrp_sync_group", cfg.Name),
		faulted: map[*Instance]bool{}}
	g.notify = newNotifier(g.log)
	for _, m := range members {
		m.mu.Lock()
		if m.onState != nil {
			m.mu.Unlock()
			return nil, fmt.Errorf("vrrp_sync_group %s: instance %s is already in a group", cfg.Name, m.Name())
		}
		m.onState = g.changed
		m.mu.Unlock()
	}
	return g, nil
}

// State is the group's state: the last state a member moved the group to.
func (g *Group) State() State {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.state
}

// Close waits for queued group notify scripts.
func (g *Group) Close() { g.notify.close() }

func (g *Group) changed(from *Instance, s State) {
	ownFault := s == StateFault && !from.groupFaultOnly()
	g.mu.Lock()
	wasFaulted := g.faulted[from]
	g.faulted[from] = ownFault
	anyFault := false
	for _, f := range g.faulted {
		anyFault = anyFault || f
	}
	old := g.state
	if s != StateFault || ownFault {
		g.state = s
	}
	newState := g.state
	g.mu.Unlock()

	for _, m := range g.members {
		if m == from {
			continue
		}
		switch {
		case ownFault:
			m.setGroupFault(true)
		case wasFaulted && !anyFault:
			m.setGroupFault(false)
		case s == StateMaster:
			m.injectEvent(EvGoMaster)
		case s == StateBackup:
			m.injectEvent(EvGoBackup)
		}
	}
	if newState != old {
		g.notify.run(g.cfg.Notify.entering(newState))
		g.notify.run(g.cfg.Notify.Any, "GROUP", g.cfg.Name, newState.String())
		if w := g.members[0].opt.FIFO; w != nil {
			w.WriteLine(notify.GroupLine(g.cfg.Name, newState.String()))
		}
	}
}
