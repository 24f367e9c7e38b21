package daemon

import (
	"context"
	"fmt"
	"github.com/gvs-lb/gvs/internal/script"
	"log/slog"
	"net"
	"net/netip"
	"reflect"
	"slices"
	"strings"

	"github.com/gvs-lb/gvs/internal/check"
	"github.com/gvs-lb/gvs/internal/config"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// lvsUnit is one IPVS service of the configuration with the checker
// manager that keeps its pool. A virtual_server_group makes several.
type lvsUnit struct {
	key ipvs.ServiceKey
	vs  *config.VirtualServer
	cvs check.VirtualServer // as configured
	run check.VirtualServer // as its manager started
	mgr *check.Manager
	// adopt are the checkers of the unit this one replaces, taken over
	// when unchanged (check.Options.Adopt).
	adopt []*check.Checker
	// active is cleared (under keepalived.applyMu) when the unit is
	// replaced: its manager's late changes are then dropped.
	active bool
	cancel context.CancelFunc
	done   chan struct{}
}

// lvsWant is a service the configuration asks for, before it runs.
type lvsWant struct {
	key ipvs.ServiceKey
	vs  *config.VirtualServer
	cvs check.VirtualServer // as configured, to compare with the next reload
	run check.VirtualServer // as the manager starts: cvs with kept health
	// state carries the health of kept real servers (by address:port)
	// into a restarted unit.
	state map[netip.AddrPort]bool
	// adopt are the checkers of the unit this one replaces.
	adopt []*check.Checker
}

// planLVS lists the services of cfg with what their checkers need.
func planLVS(cfg *config.Config, log *slog.Logger) ([]*lvsWant, ipvs.Timeouts, error) {
	all, timeouts, err := cfg.Services()
	if err != nil {
		return nil, timeouts, err
	}
	var wants []*lvsWant
	for i := range cfg.VirtualServers {
		vs := &cfg.VirtualServers[i]
		scs, err := servicesOf(cfg, vs, nil)
		if err != nil {
			return nil, timeouts, err
		}
		for _, sc := range scs {
			cvs, err := checkVirtualServer(cfg, vs, sc.ServiceKey, log)
			if err != nil {
				return nil, timeouts, err
			}
			wants = append(wants, &lvsWant{key: sc.ServiceKey, vs: vs, cvs: cvs, run: cvs})
		}
	}
	if len(wants) != len(all) {
		return nil, timeouts, fmt.Errorf("%s: %d services expected, %d planned (a bug in gvsd)", cfg.VirtualServers[0].Pos, len(all), len(wants))
	}
	return wants, timeouts, nil
}

// servicesOf is what vs alone installs, as config.Services says, with the
// real servers in state (address:port -> alive) starting up or down as
// they are now instead of as configured.
func servicesOf(cfg *config.Config, vs *config.VirtualServer, state map[netip.AddrPort]bool) ([]ipvs.ServiceConfig, error) {
	one := *cfg
	v := *vs
	v.RealServers = slices.Clone(vs.RealServers)
	for i := range v.RealServers {
		rs := &v.RealServers[i]
		for ap, alive := range state {
			if ap.Addr() == rs.Addr && (rs.Port == 0 || rs.Port == ap.Port()) {
				rs.Alpha = !alive
			}
		}
	}
	one.VirtualServers = []config.VirtualServer{v}
	scs, _, err := one.Services()
	return scs, err
}

// destOf is the real server as the pool holds it for service key, as
// config.Services makes it.
func destOf(rs *config.RealServer, key ipvs.ServiceKey) ipvs.Dest {
	d := ipvs.Dest{
		Addr: rs.Addr, Port: rs.Port, Method: rs.Forwarding.Method.IPVS(), Weight: rs.Weight,
		UThreshold: rs.UThreshold, LThreshold: rs.LThreshold,
		TunType: rs.Forwarding.TunType, TunPort: rs.Forwarding.TunPort, TunFlags: rs.Forwarding.TunFlags,
	}
	if d.Port == 0 || (d.Method != ipvs.Masq && d.Method != ipvs.FullNAT) {
		d.Port = key.Port
	}
	return d
}

// checkVirtualServer maps a virtual_server to what the checkers need.
func checkVirtualServer(cfg *config.Config, vs *config.VirtualServer, key ipvs.ServiceKey, log *slog.Logger) (check.VirtualServer, error) {
	cvs := check.VirtualServer{
		Service: key, Quorum: vs.Quorum, Hysteresis: vs.Hysteresis,
		QuorumUp: scriptCmd(vs.QuorumUp), QuorumDown: scriptCmd(vs.QuorumDown),
		HASuspend: vs.HASuspend,
	}
	for i := range vs.RealServers {
		rs := &vs.RealServers[i]
		crs := check.RealServer{Dest: destOf(rs, key), Inhibit: rs.InhibitOnFailure,
			NotifyUp: scriptCmd(rs.NotifyUp), NotifyDown: scriptCmd(rs.NotifyDown)}
		for j := range rs.Checkers {
			if c := &rs.Checkers[j]; c.Misc != nil && c.Misc.Path != nil && c.Misc.Path.Disabled != "" {
				continue // keepalived removes a MISC_CHECK whose script it refused
			}
			if c := &rs.Checkers[j]; c.File != nil {
				s, err := fileCheckSpec(c, cfg)
				if err != nil {
					return cvs, err
				}
				crs.Checks = append(crs.Checks, s)
				continue
			}
			specs, err := checkSpecs(&rs.Checkers[j], rs, log)
			if err != nil {
				return cvs, err
			}
			crs.Checks = append(crs.Checks, specs...)
		}
		cvs.RealServers = append(cvs.RealServers, crs)
	}
	if s := vs.SorryServer; s != nil {
		cvs.SorryServer = &check.RealServer{Dest: destOf(s, key), Inhibit: s.InhibitOnFailure}
	}
	return cvs, nil
}

// scriptCmd is a script as the runtime runs it: the command line and the
// user config.Load resolved for it; a disabled script is no script.
func scriptCmd(s *config.Script) script.Cmd {
	if s == nil || s.Disabled != "" {
		return script.Cmd{}
	}
	return script.Cmd{Line: s.Cmd, RunAs: &script.Credential{UID: s.UID, GID: s.GID}}
}

// checkSpecs maps one checker block to check specs: one, or one per
// deprecated SMTP_CHECK host block.
func checkSpecs(c *config.Checker, rs *config.RealServer, log *slog.Logger) ([]check.Spec, error) {
	s := check.Defaults(check.Type(c.Type))
	s.Connect = netip.AddrPortFrom(c.ConnectIP, c.ConnectPort)
	s.BindTo, s.BindPort = c.BindTo, c.BindPort
	s.ConnectTimeout = c.ConnectTimeout
	s.Retry = c.Retry
	s.DelayBeforeRetry = c.DelayBeforeRetry
	s.DelayLoop = c.DelayLoop
	s.Warmup = c.Warmup
	s.Alpha = c.Alpha || rs.Alpha
	ignored := func(what string) {
		log.Warn(fmt.Sprintf("%s: %s is not supported by gvsd's checkers and is ignored", c.Pos, what))
	}
	if c.BindIf != "" {
		ignored("bind_if")
	}
	if c.FWMark != 0 {
		ignored("fwmark")
	}
	switch {
	case c.HTTP != nil:
		h := c.HTTP
		s.HTTPProtocol, s.VirtualHost, s.EnableSNI = h.Protocol, h.Virtualhost, h.EnableSNI
		for _, u := range h.URLs {
			cu := check.URL{Path: u.Path, Digest: u.Digest, VirtualHost: u.Virtualhost}
			for _, r := range u.StatusCodes {
				cu.Status = append(cu.Status, [2]int{r.Min, r.Max})
			}
			if u.Regex != "" {
				cu.Regex, cu.RegexNoMatch, cu.RegexMinOffset = u.GoRegex(), u.RegexNoMatch, u.RegexMinOffset
				if u.RegexMaxOffset >= 0 {
					cu.RegexEnd = u.RegexMaxOffset + 1
				}
			}
			s.URLs = append(s.URLs, cu)
		}
		if h.SNIName != "" {
			ignored("sni_name")
		}
	case c.Misc != nil:
		if c.Misc.Path != nil {
			sc := scriptCmd(c.Misc.Path)
			s.MiscPath, s.MiscRunAs = sc.Line, sc.RunAs
		}
		s.MiscTimeout, s.MiscDynamic = c.Misc.Timeout, c.Misc.Dynamic
	case c.DNS != nil:
		s.DNSType, s.DNSName = c.DNS.Type, c.DNS.Name
	case c.SMTP != nil:
		s.HeloName = c.SMTP.HeloName
	case c.UDP != nil:
		u := c.UDP
		s.Payload, s.RequireReply = u.Payload, u.RequireReply
		if len(u.Reply) > 0 {
			s.Reply = u.Reply
			if slices.ContainsFunc(u.ReplyMask, func(b byte) bool { return b != 0xff }) {
				ignored("wildcards (X) in require_reply")
			}
		}
		if u.MinReplyLength != 0 || (u.MaxReplyLength != 0 && u.MaxReplyLength != 255) {
			ignored("min_reply_length / max_reply_length")
		}
	}
	if err := s.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", c.Pos, c.Type, err)
	}
	specs := []check.Spec{s}
	if c.SMTP != nil {
		for _, h := range c.SMTP.Hosts {
			hs := s
			ip, port := h.ConnectIP, h.ConnectPort
			if !ip.IsValid() {
				ip = c.ConnectIP
			}
			if port == 0 {
				port = c.ConnectPort
			}
			hs.Connect = netip.AddrPortFrom(ip, port)
			hs.BindTo, hs.BindPort = h.BindTo, h.BindPort
			specs = append(specs, hs)
		}
		if len(c.SMTP.Hosts) > 0 {
			specs = specs[1:] // the host blocks replace the checker's own target
		}
	}
	return specs, nil
}

// applyLVS installs cfg's services and runs their checkers. Units whose
// service and checkers did not change keep running; the others restart,
// carrying the health of the real servers they keep. On error nothing
// changed.
func (k *keepalived) applyLVS(cfg *config.Config) error {
	wants, timeouts, err := planLVS(cfg, k.log)
	if err != nil {
		return err
	}
	k.mu.Lock()
	old := k.lvs
	k.mu.Unlock()

	// The health of every real server the old units watch, read before
	// the swap: a change in between is corrected by the next check.
	keep := map[string]bool{}
	for _, w := range wants {
		o := old[w.key.String()]
		if o == nil {
			continue
		}
		if reflect.DeepEqual(o.cvs, w.cvs) {
			keep[w.key.String()] = true
			continue
		}
		w.state = map[netip.AddrPort]bool{}
		if o.mgr != nil {
			w.adopt = o.mgr.Checkers()
		}
		w.run.RealServers = slices.Clone(w.cvs.RealServers)
		// A real server is up when its checkers are: the new manager
		// adopts them and decides the same.
		alive := map[netip.AddrPort]bool{}
		for _, c := range w.adopt {
			up, seen := alive[c.RealServer()]
			alive[c.RealServer()] = c.Up() && (up || !seen)
		}
		for i, rs := range w.cvs.RealServers {
			ap := rs.Dest.AddrPort()
			if o := findRS(o.cvs.RealServers, ap); o != nil && reflect.DeepEqual(o.Checks, rs.Checks) && len(rs.Checks) > 0 {
				up, ok := alive[statusAddr(ap, w.key)]
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
	k.applyMu.Lock()
	cur := k.dir.Snapshot()
	snap := &ipvs.Snapshot{Timeouts: mergeTimeouts(timeouts, cur.Timeouts)}
	for _, w := range wants {
		ks := w.key.String()
		if keep[ks] {
			sc := ipvs.ServiceConfig{}
			if i := slices.IndexFunc(cur.Services, func(s ipvs.ServiceConfig) bool { return s.ServiceKey == w.key }); i >= 0 {
				sc.Dests = cur.Services[i].Dests
			}
			fresh, err := servicesOf(cfg, w.vs, nil)
			if err != nil {
				k.applyMu.Unlock()
				return err
			}
			for _, f := range fresh {
				if f.ServiceKey == w.key {
					sc.Service = f.Service
				}
			}
			snap.Services = append(snap.Services, sc)
			next[ks] = old[ks]
			continue
		}
		scs, err := servicesOf(cfg, w.vs, w.state)
		if err != nil {
			k.applyMu.Unlock()
			return err
		}
		for _, sc := range scs {
			if sc.ServiceKey == w.key {
				// keepalived adds real servers in configuration order and
				// IPVS puts each new one at the head of its list.
				slices.Reverse(sc.Dests)
				snap.Services = append(snap.Services, sc)
			}
		}
		u := &lvsUnit{key: w.key, vs: w.vs, cvs: w.cvs, run: w.run, adopt: w.adopt, done: make(chan struct{})}
		next[ks] = u
		started = append(started, u)
	}
	// Services not from the old configuration (added with gvsadm) stay.
	for _, sc := range cur.Services {
		if _, ours := old[sc.ServiceKey.String()]; !ours && next[sc.ServiceKey.String()] == nil {
			snap.Services = append(snap.Services, sc)
		}
	}
	if err := k.dir.Replace(snap); err != nil {
		k.applyMu.Unlock()
		return explainReplace(err, wants)
	}
	var stopped []*lvsUnit
	for ks, u := range old {
		if next[ks] != u {
			u.active = false
			stopped = append(stopped, u)
		}
	}
	for _, u := range started {
		u.active = true
	}
	k.applyMu.Unlock()

	for _, u := range stopped {
		u.cancel()
		<-u.done
	}
	present := localAddrs()
	k.mu.Lock()
	for a := range k.vips {
		present[a] = true
	}
	for _, w := range wants {
		if keep[w.key.String()] {
			next[w.key.String()].vs = w.vs
		}
	}
	k.lvs = next
	k.mu.Unlock()
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
	apply := check.ApplierFunc(func(c ipvs.Command) error {
		k.applyMu.Lock()
		defer k.applyMu.Unlock()
		if !u.active {
			return nil
		}
		// Update keeps the table's own errors (ipvs.ErrDestExists ...)
		// which the manager tells apart.
		return k.dir.Update(func(tx *ipvs.Tx) error { return tx.Exec(c) })
	})
	mgr, err := check.NewManager([]check.VirtualServer{u.run}, apply, check.Options{
		Log:     k.log.With("virtual_server", u.vs.Pos.String()),
		OnEvent: func(ev check.Event) { k.lvsEvent(u, ev) },
		Adopt:   u.adopt,
	})
	u.adopt = nil
	if err != nil {
		close(u.done)
		u.cancel = func() {}
		return fmt.Errorf("%s: %w", u.vs.Pos, err)
	}
	u.mgr = mgr
	if u.cvs.HASuspend && present[u.key.Addr] {
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
		if strings.HasPrefix(msg, w.key.String()+" ") || strings.HasPrefix(msg, w.key.String()+":") {
			return fmt.Errorf("%s: virtual server %s: %w", w.vs.Pos, w.vs.Key(), err)
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
	k.mu.Lock()
	units := make([]*lvsUnit, 0, len(k.lvs))
	for _, u := range k.lvs {
		if u.mgr != nil && u.cvs.HASuspend && u.key.Addr == addr {
			units = append(units, u)
		}
	}
	k.mu.Unlock()
	for _, u := range units {
		u.mgr.AddressChanged(addr, present)
	}
}

// checkerStatus is the "checkers" view.
func (k *keepalived) checkerStatus() []check.Status {
	out := []check.Status{}
	for _, u := range k.units() {
		out = append(out, u.mgr.Status()...)
	}
	return out
}

// virtualServerStatus is the "virtual-servers" view.
func (k *keepalived) virtualServerStatus() []check.VirtualStatus {
	out := []check.VirtualStatus{}
	for _, u := range k.units() {
		out = append(out, u.mgr.VirtualServers()...)
	}
	return out
}

// units lists the running LVS units in configuration order.
func (k *keepalived) units() []*lvsUnit {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []*lvsUnit
	for _, u := range k.lvs {
		if u.mgr != nil {
			out = append(out, u)
		}
	}
	slices.SortStableFunc(out, func(a, b *lvsUnit) int {
		if c := strings.Compare(a.vs.Pos.File, b.vs.Pos.File); c != 0 {
			return c
		}
		if a.vs.Pos.Line != b.vs.Pos.Line {
			return a.vs.Pos.Line - b.vs.Pos.Line
		}
		return a.key.Addr.Compare(b.key.Addr)
	})
	return out
}
