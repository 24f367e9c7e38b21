package daemon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/gvs-lb/gvs/internal/check"
	"github.com/gvs-lb/gvs/internal/config"
	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/plan"
)

// lvsUnit is one IPVS service of the plan with the checker manager that
// keeps its pool. The reconciler owns it; the manager's goroutines read
// only active and alerts.
type lvsUnit struct {
	key ipvs.ServiceKey
	svc *plan.Service
	run check.VirtualServer // as its manager started
	mgr *check.Manager
	// adopt are the checkers of the unit this one replaces, taken over
	// when unchanged (check.Options.Adopt).
	adopt []*check.Checker
	// active is set and cleared inside the director's batch that
	// installs or replaces the unit's service: a replaced manager's late
	// changes are dropped there.
	active atomic.Bool
	// alerts is what the manager's events are mailed by, published by
	// the reconciler (a reload that keeps the unit changes it).
	alerts atomic.Pointer[lvsAlerts]
	cancel context.CancelFunc
	done   chan struct{}
}

// lvsAlerts are the smtp_alert settings a unit's events are mailed by.
type lvsAlerts struct {
	mail *mailer
	vs   *config.VirtualServer
}

// lvsWant is a service the plan asks for, before it runs.
type lvsWant struct {
	svc *plan.Service
	run check.VirtualServer // as the manager starts: the plan's with kept health
	// state carries the health of kept real servers (by address:port)
	// into a restarted unit.
	state map[netip.AddrPort]bool
	// adopt are the checkers of the unit this one replaces.
	adopt []*check.Checker
}

func (w *lvsWant) key() ipvs.ServiceKey { return w.svc.Key() }

// applyLVS installs the plan's services and runs their checkers. Units
// whose pool and checkers did not change keep running (a changed
// scheduler or persistence is edited in place); the others restart,
// carrying the health of the real servers they keep. On error nothing
// changed.
func (k *keepalived) applyLVS(p *plan.Plan, mail *mailer) error {
	wants := make([]*lvsWant, len(p.Services))
	for i := range p.Services {
		wants[i] = &lvsWant{svc: &p.Services[i], run: p.Services[i].Check}
	}
	old := k.lvs

	// The health of every real server the old units watch, read before
	// the swap: a change in between is corrected by the next check.
	keep := map[string]bool{}
	for _, w := range wants {
		o := old[w.key().String()]
		if o == nil {
			continue
		}
		if o.svc.Check.Equal(&w.svc.Check) {
			keep[w.key().String()] = true
			continue
		}
		w.state = map[netip.AddrPort]bool{}
		if o.mgr != nil {
			w.adopt = o.mgr.Checkers()
		}
		w.run.RealServers = slices.Clone(w.svc.Check.RealServers)
		// A real server is up when its checkers are: the new manager
		// adopts them and decides the same.
		alive := map[netip.AddrPort]bool{}
		for _, c := range w.adopt {
			up, seen := alive[c.RealServer()]
			alive[c.RealServer()] = c.Up() && (up || !seen)
		}
		for i, rs := range w.svc.Check.RealServers {
			ap := rs.Dest.AddrPort()
			if o := findRS(o.svc.Check.RealServers, ap); o != nil && sameChecks(o.Checks, rs.Checks) && len(rs.Checks) > 0 {
				up, ok := alive[statusAddr(ap, w.key())]
				if !ok {
					continue
				}
				w.state[ap] = up
				run := &w.run.RealServers[i]
				run.Checks = slices.Clone(rs.Checks)
				for j := range run.Checks {
					run.Checks[j].Alpha = !up
				}
			}
		}
	}

	next := map[string]*lvsUnit{}
	var started []*lvsUnit
	for _, w := range wants {
		ks := w.key().String()
		if keep[ks] {
			next[ks] = old[ks]
			continue
		}
		u := &lvsUnit{key: w.key(), svc: w.svc, run: w.run, adopt: w.adopt, done: make(chan struct{})}
		next[ks] = u
		started = append(started, u)
	}
	var stopped []*lvsUnit
	for ks, u := range old {
		if next[ks] != u {
			stopped = append(stopped, u)
		}
	}
	// The new table is made from the current one in the same batch, so
	// a kept unit's pool, which its checkers keep changing, stays as it
	// is; the replaced units stop changing the table in that batch too.
	build := func(cur *ipvs.Snapshot) *ipvs.Snapshot {
		snap := &ipvs.Snapshot{Timeouts: mergeTimeouts(p.Timeouts, cur.Timeouts)}
		curIndex := make(map[ipvs.ServiceKey]int, len(cur.Services))
		for i := range cur.Services {
			curIndex[cur.Services[i].ServiceKey] = i
		}
		for _, w := range wants {
			if keep[w.key().String()] {
				sc := ipvs.ServiceConfig{Service: w.svc.Service}
				if i, ok := curIndex[w.key()]; ok {
					sc.Dests = cur.Services[i].Dests
				}
				snap.Services = append(snap.Services, sc)
				continue
			}
			sc := ipvs.ServiceConfig{Service: w.svc.Service, Dests: w.svc.Dests(w.state)}
			// keepalived adds real servers in configuration order and IPVS
			// puts each new one at the head of its list.
			slices.Reverse(sc.Dests)
			snap.Services = append(snap.Services, sc)
		}
		// Services not from the old configuration (added with gvsadm) stay.
		for _, sc := range cur.Services {
			if _, ours := old[sc.ServiceKey.String()]; !ours && next[sc.ServiceKey.String()] == nil {
				snap.Services = append(snap.Services, sc)
			}
		}
		return snap
	}
	committed := func() {
		for _, u := range stopped {
			u.active.Store(false)
		}
		for _, u := range started {
			u.active.Store(true)
		}
	}
	if err := k.dir.ReplaceFrom(build, committed); err != nil {
		return explainReplace(err, wants)
	}

	for _, u := range stopped {
		u.cancel()
		<-u.done
	}
	present := localAddrs()
	for a := range k.vips {
		present[a] = true
	}
	for _, w := range wants {
		if u := next[w.key().String()]; keep[w.key().String()] {
			u.svc = w.svc
		}
	}
	for _, u := range next {
		u.alerts.Store(&lvsAlerts{mail: mail, vs: u.svc.Block})
	}
	k.lvs = next
	for _, u := range started {
		if err := k.startLVSUnit(u, present); err != nil {
			k.log.Error("checkers not started", "service", u.key.String(), "error", err)
		}
	}
	if len(started)+len(stopped) > 0 {
		k.log.Info("virtual servers applied", "started", len(started), "stopped", len(stopped), "kept", len(keep))
	}
	return nil
}

// startLVSUnit starts the checker manager of u.
func (k *keepalived) startLVSUnit(u *lvsUnit, present map[netip.Addr]bool) error {
	// A verdict goes straight to the director, which serialises it with
	// every other change of the table; the reconciler is not in its way.
	apply := check.ApplierFunc(func(c ipvs.Command) error {
		// Update keeps the table's own errors (ipvs.ErrDestExists ...)
		// which the manager tells apart.
		return k.dir.Update(func(tx *ipvs.Tx) error {
			if !u.active.Load() {
				return nil // replaced by a reload: the new unit owns the pool
			}
			return tx.Exec(c)
		})
	})
	mgr, err := check.NewManager([]check.VirtualServer{u.run}, apply, check.Options{
		Log: k.log.With("virtual_server", u.svc.Block.Pos.String()),
		OnEvent: func(ev check.Event) {
			k.writeLVSEvent(u, ev)
			k.mailLVSEvent(u, ev)
		},
		Adopt: u.adopt,
	})
	u.adopt = nil
	if err != nil {
		close(u.done)
		u.cancel = func() {}
		return fmt.Errorf("%s: %w", u.svc.Block.Pos, err)
	}
	u.mgr = mgr
	if u.svc.Check.HASuspend && present[u.key.Addr] {
		mgr.AddressChanged(u.key.Addr, true)
	}
	ctx, cancel := context.WithCancel(k.ctx)
	u.cancel = cancel
	go func() {
		defer close(u.done)
		mgr.Run(ctx)
	}()
	return nil
}

// findRS finds the real server at ap.
func findRS(rss []check.RealServer, ap netip.AddrPort) *check.RealServer {
	for i := range rss {
		if rss[i].Dest.AddrPort() == ap {
			return &rss[i]
		}
	}
	return nil
}

// sameChecks reports whether two real servers' checkers are the same.
func sameChecks(a, b []check.Spec) bool {
	return slices.EqualFunc(a, b, func(x, y check.Spec) bool { return x.Equal(&y) })
}

// statusAddr is how the manager's status names the real server at ap.
func statusAddr(ap netip.AddrPort, key ipvs.ServiceKey) netip.AddrPort {
	if ap.Port() == 0 && !key.IsFWMark() {
		return netip.AddrPortFrom(ap.Addr(), key.Port)
	}
	return ap
}

// mergeTimeouts takes lvs_timeouts where set, else the current values,
// else the kernel's defaults.
func mergeTimeouts(want, cur ipvs.Timeouts) ipvs.Timeouts {
	pick := func(w, c, d uint32) uint32 {
		switch {
		case w != 0:
			return w
		case c != 0:
			return c
		}
		return d
	}
	def := ipvs.DefaultTimeouts
	return ipvs.Timeouts{TCP: pick(want.TCP, cur.TCP, def.TCP), TCPFin: pick(want.TCPFin, cur.TCPFin, def.TCPFin),
		UDP: pick(want.UDP, cur.UDP, def.UDP)}
}

// explainReplace prefixes an error of the table or the engine with the
// virtual server's file:line when it names one of its services.
func explainReplace(err error, wants []*lvsWant) error {
	msg := err.Error()
	for _, w := range wants {
		if ks := w.key().String(); strings.HasPrefix(msg, ks+" ") || strings.HasPrefix(msg, ks+":") {
			return fmt.Errorf("%s: virtual server %s: %w", w.svc.Block.Pos, w.svc.Block.Key(), err)
		}
	}
	return fmt.Errorf("installing the virtual servers: %w", err)
}

// localAddrs are the addresses on this host's interfaces.
func localAddrs() map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return out
	}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out[p.Addr().Unmap()] = true
		}
	}
	return out
}

// addressChanged tells every ha_suspend checker that addr came or went.
func (k *keepalived) addressChanged(addr netip.Addr, present bool) {
	for _, u := range k.lvs {
		if u.mgr != nil && u.svc.Check.HASuspend && u.key.Addr == addr {
			u.mgr.AddressChanged(addr, present)
		}
	}
}

// checkerStatus is the "checkers" view.
func (k *keepalived) checkerStatus() []check.Status {
	out := []check.Status{}
	for _, u := range k.shown.Load().lvs {
		out = append(out, u.mgr.Status()...)
	}
	return out
}

// virtualServerStatus is the "virtual-servers" view.
func (k *keepalived) virtualServerStatus() []check.VirtualStatus {
	out := []check.VirtualStatus{}
	for _, u := range k.shown.Load().lvs {
		out = append(out, u.mgr.VirtualServers()...)
	}
	return out
}

// units lists the running LVS units with a checker manager, in
// configuration order.
func (k *keepalived) units() []*lvsUnit {
	var out []*lvsUnit
	for _, u := range k.lvs {
		if u.mgr != nil {
			out = append(out, u)
		}
	}
	slices.SortStableFunc(out, func(a, b *lvsUnit) int {
		pa, pb := a.svc.Block.Pos, b.svc.Block.Pos
		if c := strings.Compare(pa.File, pb.File); c != 0 {
			return c
		}
		if pa.Line != pb.Line {
			return pa.Line - pb.Line
		}
		return a.key.Addr.Compare(b.key.Addr)
	})
	return out
}
