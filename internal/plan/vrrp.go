package plan

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/gvs-lb/gvs/internal/config"
	"github.com/gvs-lb/gvs/internal/vrrp"
)

// VRRPUnit is what runs and restarts as one: a lone vrrp_instance, or a
// vrrp_sync_group with its instances (a group binds its members before
// they run), with the trackers they use.
type VRRPUnit struct {
	// Name is the instance's name, or "group NAME".
	Name string
	// Instances are finished: every keepalived default set, validated.
	Instances []vrrp.InstanceConfig
	Group     *vrrp.SyncGroup
	Scripts   map[string]vrrp.TrackScript
	Files     map[string]vrrp.TrackFile
	Processes map[string]vrrp.TrackProcess
	// InitFail are the vrrp_scripts that start failed (init_fail).
	InitFail []string
	// Blocks are the vrrp_instance blocks (as Instances) and GroupBlock
	// the vrrp_sync_group, for messages and smtp_alert.
	Blocks     []*config.VRRPInstance `json:"-"`
	GroupBlock *config.SyncGroup      `json:"-"`
}

// Equal reports whether u and o run the same: a unit restarts on reload
// when it differs.
func (u *VRRPUnit) Equal(o *VRRPUnit) bool {
	if (u.Group == nil) != (o.Group == nil) || u.Group != nil && !u.Group.Equal(o.Group) {
		return false
	}
	return u.Name == o.Name &&
		slices.EqualFunc(u.Instances, o.Instances, func(a, b vrrp.InstanceConfig) bool { return a.Equal(&b) }) &&
		mapsEqual(u.Scripts, o.Scripts, func(a, b vrrp.TrackScript) bool { return a.Equal(&b) }) &&
		mapsEqual(u.Files, o.Files, func(a, b vrrp.TrackFile) bool { return a == b }) &&
		mapsEqual(u.Processes, o.Processes, func(a, b vrrp.TrackProcess) bool { return a.Equal(&b) }) &&
		slices.Equal(u.InitFail, o.InitFail)
}

func mapsEqual[V any](a, b map[string]V, eq func(a, b V) bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || !eq(v, w) {
			return false
		}
	}
	return true
}

// vrrp compiles the vrrp_instance, vrrp_sync_group and tracker blocks.
func (c *compiler) vrrp() []VRRPUnit {
	cfg := c.cfg
	inGroup := map[string]*config.SyncGroup{}
	for i := range cfg.SyncGroups {
		g := &cfg.SyncGroups[i]
		for _, name := range g.Group {
			inGroup[name] = g
		}
	}
	index := map[string]int{}
	var units []VRRPUnit
	for i := range cfg.Instances {
		in := &cfg.Instances[i]
		name := in.Name
		if g := inGroup[in.Name]; g != nil {
			name = "group " + g.Name
		}
		n, ok := index[name]
		if !ok {
			n = len(units)
			index[name] = n
			units = append(units, VRRPUnit{Name: name, GroupBlock: inGroup[in.Name],
				Scripts: map[string]vrrp.TrackScript{}, Files: map[string]vrrp.TrackFile{},
				Processes: map[string]vrrp.TrackProcess{}})
		}
		u := &units[n]
		u.Blocks = append(u.Blocks, in)
		if ic, ok := c.instance(in, u); ok {
			u.Instances = append(u.Instances, ic)
		}
	}
	for i := range units {
		u := &units[i]
		if g := u.GroupBlock; g != nil {
			u.Group = &vrrp.SyncGroup{Name: g.Name, Instances: g.Group, Notify: notifyCmds(g.Notify)}
		}
	}
	slices.SortFunc(units, func(a, b VRRPUnit) int { return strings.Compare(a.Name, b.Name) })
	return units
}

// notifyCmds is an instance's or a sync group's notify scripts as vrrp
// runs them.
func notifyCmds(n config.Notify) vrrp.Notify {
	return vrrp.Notify{Master: scriptCmd(n.Master), Backup: scriptCmd(n.Backup), Fault: scriptCmd(n.Fault),
		Stop: scriptCmd(n.Stop), Any: scriptCmd(n.Any)}
}

// instance compiles a vrrp_instance (with the tracking of its sync group)
// and the trackers it uses into u.
func (c *compiler) instance(in *config.VRRPInstance, u *VRRPUnit) (vrrp.InstanceConfig, bool) {
	g := &c.cfg.Global
	group := u.GroupBlock
	fail := func(format string, args ...any) (vrrp.InstanceConfig, bool) {
		c.errorf(in.Pos, "vrrp_instance %s: "+format, append([]any{in.Name}, args...)...)
		return vrrp.InstanceConfig{}, false
	}
	st, err := vrrp.ParseState(in.State)
	if err != nil {
		return fail("%v", err)
	}
	ic := vrrp.InstanceConfig{
		Name: in.Name, State: st, Interface: cmp.Or(in.Interface, g.DefaultInterface), VRID: uint8(in.VirtualRouterID),
		Priority: uint8(in.Priority), AdvertInt: in.AdvertInt, Version: uint8(in.Version),
		NoPreempt: in.NoPreempt, PreemptDelay: in.PreemptDelay, DontTrackPrimary: in.DontTrackPrimary,
		UnicastSrcIP: in.UnicastSrcIP, MCastSrcIP: in.McastSrcIP, CheckUnicastSrc: g.VRRPCheckUnicastSrc,
		UseVMAC: in.UseVMAC, VMACName: in.VMACName, VMACXmitBase: in.VMACXmitBase,
		Notify:                  notifyCmds(in.Notify),
		GARPMasterDelay:         in.GarpMasterDelay,
		GARPMasterRepeat:        in.GarpMasterRepeat,
		GARPMasterRefresh:       in.GarpMasterRefresh,
		GARPMasterRefreshRepeat: in.GarpMasterRefreshRepeat,
		GARPInterval:            g.VRRPGarpInterval,
	}
	if in.IPv6() {
		ic.GARPInterval = g.VRRPGnaInterval
	}
	if ic.UseVMAC && ic.VMACName == "" {
		ic.VMACName = fmt.Sprintf("vrrp.%d", ic.VRID)
	}
	if ic.Version == 3 {
		ic.AdvertInt = ic.AdvertInt.Round(vrrp.V3AdvertUnit)
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
	for _, r := range in.VirtualRoutes {
		vr, err := vrrp.ParseRoute(r.Words)
		if err != nil {
			return fail("virtual_routes: %v", err)
		}
		ic.Routes = append(ic.Routes, vr)
	}
	if g.VRRPMcastGroup4.IsValid() && g.VRRPMcastGroup4 != vrrp.Group4 || g.VRRPMcastGroup6.IsValid() && g.VRRPMcastGroup6 != vrrp.Group6 {
		c.warnf(in.Pos, "vrrp_instance %s: a multicast group other than 224.0.0.18 / ff02::12 is not supported by gvsd and is ignored", in.Name)
	}

	ifaces, scripts, files, procs := in.TrackInterfaces, in.TrackScripts, in.TrackFiles, in.TrackProcesses
	if group != nil {
		ifaces = append(slices.Clip(ifaces), group.TrackInterfaces...)
		scripts = append(slices.Clip(scripts), group.TrackScripts...)
		files = append(slices.Clip(files), group.TrackFiles...)
		procs = append(slices.Clip(procs), group.TrackProcesses...)
	}
	for _, t := range ifaces {
		ic.TrackInterfaces = append(ic.TrackInterfaces, vrrp.TrackInterface{Name: t.Name, Weight: t.Weight})
	}
	for _, t := range scripts {
		s, ok := c.cfg.Script(t.Name)
		if !ok {
			return fail("track_script %s: no vrrp_script of that name", t.Name)
		}
		if s.Script.Disabled != "" {
			continue // keepalived stops tracking a script it refused
		}
		ic.TrackScripts = append(ic.TrackScripts, signedRef(t))
		u.Scripts[s.Name] = trackScript(s)
		if s.InitFail && !slices.Contains(u.InitFail, s.Name) {
			u.InitFail = append(u.InitFail, s.Name)
		}
	}
	for _, t := range files {
		f, ok := c.cfg.TrackFileBlock(t.Name)
		if !ok {
			return fail("track_file %s: no track_file block of that name", t.Name)
		}
		u.Files[f.Name] = vrrp.TrackFile{Name: f.Name, File: f.File, Weight: f.Weight, Reverse: f.Reverse}
		ref := vrrp.TrackRef{Name: t.Name}
		if t.WeightSet {
			w := t.Weight
			ref.Weight, ref.Reverse = &w, t.Reverse
		}
		ic.TrackFiles = append(ic.TrackFiles, ref)
	}
	for _, t := range procs {
		p, ok := c.cfg.TrackProcessBlock(t.Name)
		if !ok {
			return fail("track_process %s: no vrrp_track_process of that name", t.Name)
		}
		u.Processes[p.Name] = trackProcess(p)
		ic.TrackProcesses = append(ic.TrackProcesses, signedRef(t))
	}
	if err := ic.Validate(); err != nil {
		each := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			each = j.Unwrap()
		}
		for _, e := range each {
			c.errorf(in.Pos, "%v", e)
		}
		return vrrp.InstanceConfig{}, false
	}
	return ic, true
}

// trackScript compiles a vrrp_script block: reverse folds into the
// weight's sign.
func trackScript(s *config.VRRPScript) vrrp.TrackScript {
	w := s.Weight
	if s.Reverse {
		w = -w
	}
	return vrrp.TrackScript{Name: s.Name, Script: scriptCmd(s.Script), Interval: s.Interval, Timeout: s.Timeout,
		Weight: w, Rise: s.Rise, Fall: s.Fall}
}

// trackProcess compiles a vrrp_track_process block: reverse folds into
// the weight's sign, as for vrrp_script.
func trackProcess(p *config.TrackProcess) vrrp.TrackProcess {
	w := p.Weight
	if p.Reverse {
		w = -w
	}
	return vrrp.TrackProcess{Name: p.Name, Process: p.Process, Params: p.Params,
		ParamMatch: vrrp.ParamMatch(p.ParamMatch), FullCommand: p.FullCommand,
		Quorum: max(p.Quorum, 0), QuorumMax: p.QuorumMax, Weight: w,
		TerminateDelay: p.TerminateDelay, ForkDelay: p.ForkDelay}
}

// signedRef is a track_script or track_process reference: its own weight,
// when it gives one, overrides the tracked block's, with reverse folded
// into the sign.
func signedRef(t config.Track) vrrp.TrackRef {
	ref := vrrp.TrackRef{Name: t.Name}
	if t.WeightSet {
		w := t.Weight
		if t.Reverse {
			w = -w
		}
		ref.Weight = &w
	}
	return ref
}
