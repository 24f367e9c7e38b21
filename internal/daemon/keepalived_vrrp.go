package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"

	"github.com/gvs-lb/gvs/internal/notify"
	"github.com/gvs-lb/gvs/internal/plan"
	"github.com/gvs-lb/gvs/internal/vrrp"
)

// vrrpUnit runs one unit of the plan: a lone vrrp_instance, or a
// vrrp_sync_group with its instances. The reconciler owns it.
type vrrpUnit struct {
	plan  *plan.VRRPUnit
	insts []*vrrp.Instance
	grp   *vrrp.Group

	cancel context.CancelFunc
	done   chan struct{}

	// The states the reconciler was told of, and whether it stopped
	// the unit (its late changes are then ignored).
	last      map[*vrrp.Instance]vrrp.State
	lastGroup vrrp.State
	stopped   bool
}

// newVRRPUnit makes the instances (and group) of a unit of the plan.
// Nothing runs yet.
func newVRRPUnit(pu *plan.VRRPUnit, links vrrp.Links, fifo vrrp.LineWriter, log *slog.Logger) (*vrrpUnit, error) {
	u := &vrrpUnit{plan: pu, last: map[*vrrp.Instance]vrrp.State{}, done: make(chan struct{})}
	for i, ic := range pu.Instances {
		inst, err := vrrp.NewInstance(ic, vrrp.Options{Logger: log, Scripts: pu.Scripts, Files: pu.Files,
			Processes: pu.Processes, Links: links, FIFO: fifo})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pu.Blocks[i].Pos, err)
		}
		u.insts = append(u.insts, inst)
	}
	if pu.Group != nil {
		grp, err := vrrp.NewGroup(*pu.Group, u.insts, log)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pu.GroupBlock.Pos, err)
		}
		u.grp = grp
	}
	return u, nil
}

// planVRRP makes the units of p that differ from those running (old, by
// name); the others are kept. Nothing runs yet. links and fifo (the
// notify FIFOs) are shared by the new instances.
func planVRRP(p *plan.Plan, old map[string]*vrrpUnit, links vrrp.Links, fifo vrrp.LineWriter, log *slog.Logger) (map[string]*vrrpUnit, error) {
	units := map[string]*vrrpUnit{}
	for i := range p.VRRP {
		pu := &p.VRRP[i]
		if o := old[pu.Name]; o != nil && o.plan.Equal(pu) {
			units[pu.Name] = o
			continue
		}
		u, err := newVRRPUnit(pu, links, fifo, log)
		if err != nil {
			return nil, err
		}
		units[pu.Name] = u
	}
	return units, nil
}

// applyVRRP stops the units that changed or went away (their VIPs are
// released), then starts the new and changed ones; the others keep running.
func (k *keepalived) applyVRRP(next map[string]*vrrpUnit) {
	old := k.vrrp
	var stop, start []*vrrpUnit
	for name, o := range old {
		if next[name] != o {
			stop = append(stop, o)
		}
	}
	for name, n := range next {
		if old[name] != n {
			start = append(start, n)
		}
	}
	k.vrrp = next
	k.stopVRRPUnits(stop)
	for _, u := range start {
		k.startVRRPUnit(u)
	}
	if len(stop)+len(start) > 0 {
		k.log.Info("vrrp applied", "started", len(start), "stopped", len(stop), "kept", len(next)-len(start))
	}
}

func (k *keepalived) startVRRPUnit(u *vrrpUnit) {
	ctx, cancel := context.WithCancel(k.ctx)
	u.cancel = cancel
	for _, name := range u.plan.InitFail {
		for _, inst := range u.insts {
			inst.SetScriptResult(name, false)
		}
	}
	for _, inst := range u.insts {
		// The instance waits for the reconciler to take its change,
		// unless the unit is stopping: the reconciler may be waiting
		// for it then, and ignores its changes.
		inst.OnStateChange(func(inst *vrrp.Instance, st vrrp.State) {
			select {
			case k.vrrpEvents <- vrrpEvent{u: u, inst: inst, state: st}:
			case <-ctx.Done():
			}
		})
	}
	var wg sync.WaitGroup
	for _, s := range u.plan.Scripts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vrrp.RunScript(ctx, k.log, s, func(ok bool) {
				for _, inst := range u.insts {
					inst.SetScriptResult(s.Name, ok)
				}
			})
		}()
	}
	for _, p := range u.plan.Processes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vrrp.RunProcess(ctx, k.log, k.procs, p, vrrp.DefaultProcessPoll, func(ok bool) {
				for _, inst := range u.insts {
					inst.SetProcessResult(p.Name, ok)
				}
			})
		}()
	}
	for _, inst := range u.insts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := inst.Run(ctx); err != nil {
				k.log.Error("vrrp instance stopped", "vrrp_instance", inst.Name(), "error", err)
			}
		}()
	}
	go func() {
		wg.Wait()
		if u.grp != nil {
			u.grp.Close()
		}
		close(u.done)
	}()
}

// stopVRRPUnits stops the units together and waits until each sent its
// priority 0 advert and removed its VIPs.
func (k *keepalived) stopVRRPUnits(units []*vrrpUnit) {
	for _, u := range units {
		u.stopped = true
		u.cancel()
	}
	for _, u := range units {
		<-u.done
		for inst, st := range u.last {
			if st == vrrp.StateMaster {
				k.vipsGone(inst)
			}
			delete(u.last, inst)
		}
	}
}

// vipAddrs are the addresses an instance sets as MASTER.
func vipAddrs(inst *vrrp.Instance) []netip.Addr {
	c := inst.Config()
	var out []netip.Addr
	for _, v := range append(slices.Clip(c.VIPs), c.ExcludedVIPs...) {
		out = append(out, v.Prefix.Addr())
	}
	return out
}

func (k *keepalived) vipsCame(inst *vrrp.Instance) {
	for _, a := range vipAddrs(inst) {
		k.vips[a]++
		if k.vips[a] == 1 {
			k.addressChanged(a, true)
		}
	}
}

func (k *keepalived) vipsGone(inst *vrrp.Instance) {
	for _, a := range vipAddrs(inst) {
		k.vips[a]--
		if k.vips[a] <= 0 {
			delete(k.vips, a)
			k.addressChanged(a, false)
		}
	}
}

// vrrpEvent is a state change of one instance of a unit.
type vrrpEvent struct {
	u     *vrrpUnit
	inst  *vrrp.Instance
	state vrrp.State
}

// vrrpChanged takes an instance's state change, in the reconciler:
// MASTER and leaving MASTER move the ha_suspend checkers, and smtp_alert
// mails each transition.
func (k *keepalived) vrrpChanged(ev vrrpEvent) {
	u, inst, st := ev.u, ev.inst, ev.state
	if u.stopped {
		return // stopVRRPUnits accounted for it
	}
	ml := k.mail
	group := u.plan.GroupBlock
	// A group that mails replaces its instances' mails.
	groupAlert := group != nil && ml != nil && ml.vrrp(group.SMTPAlert, vrrp.StateMaster)
	old, seen := u.last[inst]
	if seen && old == st || !seen && st == vrrp.StateInit {
		return
	}
	u.last[inst] = st
	if st == vrrp.StateMaster {
		k.vipsCame(inst)
	} else if old == vrrp.StateMaster {
		k.vipsGone(inst)
	}
	if i := slices.Index(u.insts, inst); i >= 0 && ml != nil && !groupAlert && ml.vrrp(u.plan.Blocks[i].SMTPAlert, st) {
		ml.m.Go(k.ctx, notify.VRRPAlert(inst.Name(), st.String()))
	}
	if u.grp != nil {
		if gs := u.grp.State(); gs != u.lastGroup && gs != vrrp.StateInit {
			u.lastGroup = gs
			if groupAlert && ml.vrrp(group.SMTPAlert, gs) {
				ml.m.Go(k.ctx, notify.Alert{Subject: fmt.Sprintf("Entering %s state", gs),
					Body: fmt.Sprintf("=> VRRP Group %s is now %s <=", group.Name, gs)})
			}
		}
	}
}

// vrrpStatus is the "vrrp" view, instances sorted by name.
func (k *keepalived) vrrpStatus() []vrrp.Status {
	out := []vrrp.Status{}
	for _, inst := range k.shown.Load().insts {
		out = append(out, inst.Status())
	}
	slices.SortFunc(out, func(a, b vrrp.Status) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return out
}
