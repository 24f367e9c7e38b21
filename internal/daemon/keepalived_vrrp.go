package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"slices"
	"sync"

	"github.com/gvs-lb/gvs/internal/config"
	"github.com/gvs-lb/gvs/internal/notify"
	"github.com/gvs-lb/gvs/internal/vrrp"
)

// vrrpUnit is what restarts as one on reload: a lone vrrp_instance, or a
// vrrp_sync_group with its instances (a group binds its members before
// they run).
type vrrpUnit struct {
	name  string
	sig   vrrpSig // compared on reload
	cfgs  []*config.VRRPInstance
	group *config.SyncGroup
	insts []*vrrp.Instance
	grp   *vrrp.Group

	cancel context.CancelFunc
	done   chan struct{}

	mu        sync.Mutex // guards last and lastGroup (the watcher and stop)
	last      map[*vrrp.Instance]vrrp.State
	lastGroup vrrp.State
}

// vrrpSig is everything a unit runs with; a unit restarts when it differs.
type vrrpSig struct {
	Instances []vrrp.InstanceConfig
	Group     *vrrp.SyncGroup
	Scripts   map[string]vrrp.TrackScript
	Files     map[string]vrrp.TrackFile
	Processes map[string]vrrp.TrackProcess
	InitFail  []string
}

// planVRRP maps the vrrp_instance, vrrp_sync_group and vrrp_script blocks
// to VRRP units, ready to run. Nothing runs yet.
func planVRRP(cfg *config.Config, log *slog.Logger) (map[string]*vrrpUnit, error) {
	units := map[string]*vrrpUnit{}
	inGroup := map[string]*config.SyncGroup{}
	for i := range cfg.SyncGroups {
		g := &cfg.SyncGroups[i]
		for _, name := range g.Group {
			inGroup[name] = g
		}
	}
	for i := range cfg.Instances {
		in := &cfg.Instances[i]
		name := in.Name
		if g := inGroup[in.Name]; g != nil {
			name = "group " + g.Name
		}
		u := units[name]
		if u == nil {
			u = &vrrpUnit{name: name, group: inGroup[in.Name], last: map[*vrrp.Instance]vrrp.State{},
				done: make(chan struct{})}
			units[name] = u
		}
		u.cfgs = append(u.cfgs, in)
	}
	for _, u := range units {
		if err := u.build(cfg, log); err != nil {
			return nil, err
		}
	}
	return units, nil
}

// build makes the unit's instances (and group) from its blocks.
func (u *vrrpUnit) build(cfg *config.Config, log *slog.Logger) error {
	u.sig.Scripts = map[string]vrrp.TrackScript{}
	u.sig.Files = map[string]vrrp.TrackFile{}
	u.sig.Processes = map[string]vrrp.TrackProcess{}
	for _, in := range u.cfgs {
		ic, err := instanceConfig(in, &cfg.Global, u.group, log)
		if err != nil {
			return err
		}
		files := in.TrackFiles
		if u.group != nil {
			files = append(slices.Clip(files), u.group.TrackFiles...)
		}
		if ic.TrackFiles, err = vrrpTrackFiles(files, cfg, u.sig.Files); err != nil {
			return fmt.Errorf("%s: vrrp_instance %s: %w", in.Pos, in.Name, err)
		}
		procs := in.TrackProcesses
		if u.group != nil {
			procs = append(slices.Clip(procs), u.group.TrackProcesses...)
		}
		if ic.TrackProcesses, err = vrrpTrackProcesses(procs, cfg, u.sig.Processes); err != nil {
			return fmt.Errorf("%s: vrrp_instance %s: %w", in.Pos, in.Name, err)
		}
		tracked := ic.TrackScripts[:0]
		for _, t := range ic.TrackScripts {
			s, ok := cfg.Script(t.Name)
			if !ok {
				return fmt.Errorf("%s: vrrp_instance %s: track_script %s: no vrrp_script of that name", in.Pos, in.Name, t.Name)
			}
			if s.Script.Disabled != "" {
				continue // keepalived stops tracking a script it refused
			}
			tracked = append(tracked, t)
			u.sig.Scripts[s.Name] = trackScript(s, log)
			if s.InitFail && !slices.Contains(u.sig.InitFail, s.Name) {
				u.sig.InitFail = append(u.sig.InitFail, s.Name)
			}
		}
		ic.TrackScripts = tracked
		u.sig.Instances = append(u.sig.Instances, ic)
	}
	for i, in := range u.cfgs {
		inst, err := vrrp.NewInstance(u.sig.Instances[i], vrrp.Options{Logger: log, Scripts: u.sig.Scripts, Files: u.sig.Files,
			Processes: u.sig.Processes})
		if err != nil {
			return fmt.Errorf("%s: %w", in.Pos, err)
		}
		u.insts = append(u.insts, inst)
	}
	if g := u.group; g != nil {
		sg := vrrp.SyncGroup{Name: g.Name, Instances: g.Group, NotifyMaster: scriptCmd(g.Notify.Master),
			NotifyBackup: scriptCmd(g.Notify.Backup), NotifyFault: scriptCmd(g.Notify.Fault),
			NotifyStop: scriptCmd(g.Notify.Stop), Notify: scriptCmd(g.Notify.Any)}
		u.sig.Group = &sg
		grp, err := vrrp.NewGroup(sg, u.insts, log)
		if err != nil {
			return fmt.Errorf("%s: %w", g.Pos, err)
		}
		u.grp = grp
	}
	return nil
}

// instanceConfig maps a vrrp_instance (and the tracking of its sync group)
// to the vrrp package's configuration.
func instanceConfig(in *config.VRRPInstance, g *config.Global, group *config.SyncGroup, log *slog.Logger) (vrrp.InstanceConfig, error) {
	ignored := func(what string) {
		log.Warn(fmt.Sprintf("%s: vrrp_instance %s: %s is not supported by gvsd and is ignored", in.Pos, in.Name, what))
	}
	st, err := vrrp.ParseState(in.State)
	if err != nil {
		return vrrp.InstanceConfig{}, fmt.Errorf("%s: vrrp_instance %s: %w", in.Pos, in.Name, err)
	}
	ic := vrrp.InstanceConfig{
		Name: in.Name, State: st, Interface: in.Interface, VRID: uint8(in.VirtualRouterID),
		Priority: uint8(in.Priority), AdvertInt: in.AdvertInt, Version: uint8(in.Version),
		NoPreempt: in.NoPreempt, PreemptDelay: in.PreemptDelay,
		UnicastSrcIP: in.UnicastSrcIP, MCastSrcIP: in.McastSrcIP, CheckUnicastSrc: g.VRRPCheckUnicastSrc,
		UseVMAC: in.UseVMAC, VMACName: in.VMACName, VMACXmitBase: in.VMACXmitBase,
		NotifyMaster: scriptCmd(in.Notify.Master), NotifyBackup: scriptCmd(in.Notify.Backup),
		NotifyFault: scriptCmd(in.Notify.Fault), NotifyStop: scriptCmd(in.Notify.Stop),
		Notify:                  scriptCmd(in.Notify.Any),
		GARPMasterDelay:         in.GarpMasterDelay,
		GARPMasterRepeat:        in.GarpMasterRepeat,
		GARPMasterRefresh:       in.GarpMasterRefresh,
		GARPMasterRefreshRepeat: in.GarpMasterRefreshRepeat,
		GARPInterval:            g.VRRPGarpInterval,
	}
	if in.IPv6() {
		ic.GARPInterval = g.VRRPGnaInterval
	}
	if a := in.Auth; a != nil {
		switch a.Type {
		case "PASS":
			ic.AuthType = vrrp.AuthPass
		case "AH":
			ic.AuthType = vrrp.AuthAH
		}
		ic.AuthPass = a.Pass
	}
	for _, v := range in.VirtualIPs {
		ic.VIPs = append(ic.VIPs, vrrp.VIP{Prefix: v.Prefix, Dev: v.Dev, Label: v.Label})
	}
	for _, v := range in.ExcludedVIPs {
		ic.ExcludedVIPs = append(ic.ExcludedVIPs, vrrp.VIP{Prefix: v.Prefix, Dev: v.Dev, Label: v.Label})
	}
	for _, p := range in.UnicastPeers {
		ic.UnicastPeers = append(ic.UnicastPeers, p.Addr)
	}
	ifaces, scripts := in.TrackInterfaces, in.TrackScripts
	if group != nil {
		ifaces = append(slices.Clip(ifaces), group.TrackInterfaces...)
		scripts = append(slices.Clip(scripts), group.TrackScripts...)
	}
	for _, t := range ifaces {
		ic.TrackInterfaces = append(ic.TrackInterfaces, vrrp.TrackInterface{Name: t.Name, Weight: t.Weight})
	}
	for _, t := range scripts {
		ic.TrackScripts = append(ic.TrackScripts, signedRef(t))
	}
	for _, r := range in.VirtualRoutes {
		vr, err := vrrp.ParseRoute(r.Words)
		if err != nil {
			return vrrp.InstanceConfig{}, fmt.Errorf("%s: vrrp_instance %s: virtual_routes: %w", in.Pos, in.Name, err)
		}
		ic.Routes = append(ic.Routes, vr)
	}
	if g.VRRPMcastGroup4.IsValid() && g.VRRPMcastGroup4 != vrrp.Group4 || g.VRRPMcastGroup6.IsValid() && g.VRRPMcastGroup6 != vrrp.Group6 {
		ignored("a multicast group other than 224.0.0.18 / ff02::12")
	}
	return ic, nil
}

// trackScript maps a vrrp_script block.
func trackScript(s *config.VRRPScript, log *slog.Logger) vrrp.TrackScript {
	w := s.Weight
	if s.Reverse {
		w = -w
	}
	return vrrp.TrackScript{Name: s.Name, Script: scriptCmd(s.Script), Interval: s.Interval, Timeout: s.Timeout,
		Weight: w, Rise: s.Rise, Fall: s.Fall}
}

// applyVRRP stops the units that changed or went away (their VIPs are
// released), then starts the new and changed ones; the others keep running.
func (k *keepalived) applyVRRP(plan map[string]*vrrpUnit) {
	k.mu.Lock()
	old := k.vrrp
	k.mu.Unlock()
	next := map[string]*vrrpUnit{}
	var stop, start []*vrrpUnit
	for name, o := range old {
		if n := plan[name]; n != nil && reflect.DeepEqual(n.sig, o.sig) {
			next[name] = o
			continue
		}
		stop = append(stop, o)
	}
	for name, n := range plan {
		if next[name] == nil {
			next[name] = n
			start = append(start, n)
		}
	}
	k.mu.Lock()
	k.vrrp = next
	k.mu.Unlock()
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
	for _, name := range u.sig.InitFail {
		for _, inst := range u.insts {
			inst.SetScriptResult(name, false)
		}
	}
	for _, inst := range u.insts {
		inst.OnStateChange(func(inst *vrrp.Instance, st vrrp.State) {
			select {
			case k.vrrpEvents <- vrrpEvent{u: u, inst: inst, state: st}:
			case <-k.ctx.Done():
			}
		})
	}
	var wg sync.WaitGroup
	for _, s := range u.sig.Scripts {
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
	for _, p := range u.sig.Processes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			vrrp.RunProcess(ctx, k.log, p, vrrp.DefaultProcessPoll, func(ok bool) {
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
		u.cancel()
	}
	for _, u := range units {
		<-u.done
		u.mu.Lock()
		for inst, st := range u.last {
			if st == vrrp.StateMaster {
				k.vipsGone(inst)
			}
			delete(u.last, inst)
		}
		u.mu.Unlock()
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
		k.mu.Lock()
		k.vips[a]++
		first := k.vips[a] == 1
		k.mu.Unlock()
		if first {
			k.addressChanged(a, true)
		}
	}
}

func (k *keepalived) vipsGone(inst *vrrp.Instance) {
	for _, a := range vipAddrs(inst) {
		k.mu.Lock()
		k.vips[a]--
		last := k.vips[a] <= 0
		if last {
			delete(k.vips, a)
		}
		k.mu.Unlock()
		if last {
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

// watchVRRP follows the instances' state changes as they happen: MASTER
// and leaving MASTER move the ha_suspend checkers, and smtp_alert mails
// each transition.
func (k *keepalived) watchVRRP(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-k.vrrpEvents:
			k.mu.Lock()
			ml := k.mail
			k.mu.Unlock()
			k.vrrpChanged(ev, ml)
			select {
			case k.vrrpChanges <- struct{}{}:
			default: // a wake-up is pending already
			}
		}
	}
}

func (k *keepalived) vrrpChanged(ev vrrpEvent, ml *mailer) {
	u, inst, st := ev.u, ev.inst, ev.state
	u.mu.Lock()
	defer u.mu.Unlock()
	select {
	case <-u.done:
		return // stopped: stopVRRPUnits accounts for it
	default:
	}
	groupAlert := u.group != nil && ml != nil && ml.vrrp(u.group.SMTPAlert)
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
	if i := slices.Index(u.insts, inst); i >= 0 && ml != nil && !groupAlert && ml.vrrp(u.cfgs[i].SMTPAlert) {
		ml.m.Go(k.ctx, notify.VRRPAlert(inst.Name(), st.String()))
	}
	if u.grp != nil {
		if gs := u.grp.State(); gs != u.lastGroup && gs != vrrp.StateInit {
			u.lastGroup = gs
			if groupAlert {
				ml.m.Go(k.ctx, notify.Alert{Subject: fmt.Sprintf("Entering %s state", gs),
					Body: fmt.Sprintf("=> VRRP Group %s is now %s <=", u.group.Name, gs)})
			}
		}
	}
}

// vrrpStatus is the "vrrp" view, instances sorted by name.
func (k *keepalived) vrrpStatus() []vrrp.Status {
	k.mu.Lock()
	var insts []*vrrp.Instance
	for _, u := range k.vrrp {
		insts = append(insts, u.insts...)
	}
	k.mu.Unlock()
	out := []vrrp.Status{}
	for _, inst := range insts {
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
