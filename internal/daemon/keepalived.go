package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"

	"github.com/gvs-lb/gvs/internal/config"
	"github.com/gvs-lb/gvs/internal/director"
	"github.com/gvs-lb/gvs/internal/plan"
	"github.com/gvs-lb/gvs/internal/vrrp"
)

// keepalived runs what a keepalived.conf asks for: the virtual servers,
// their health checkers and the VRRP instances.
//
// Its goroutines live under its own context, not gvsd's: on SIGTERM stop
// ends them in keepalived's order (VRRP first, so the VIPs move to the
// backup at once, then the checkers) before the engine drains.
type keepalived struct {
	path   string
	engine string // the running engine's name, which a reload is checked for
	dir    *director.Director
	log    *slog.Logger

	ctx    context.Context // lives until stop
	cancel context.CancelFunc

	reloadMu sync.Mutex // serialises start, reload and stop
	stopped  bool

	mu   sync.Mutex // guards the fields below
	cfg  *config.Config
	plan *plan.Plan           // cfg compiled
	lvs  map[string]*lvsUnit  // by service key (ipvs.ServiceKey.String())
	vrrp map[string]*vrrpUnit // by instance or sync group name
	// links follows the interfaces' states for every VRRP instance
	// (track_interface and their own); made by the first plan with VRRP.
	links vrrp.Links
	// vips are the virtual addresses the VRRP instances hold now (MASTER),
	// for ha_suspend.
	vips map[netip.Addr]int

	// applyMu makes the checkers' pool changes and a reload's table swap
	// mutually exclusive, so a stopped checker never edits the new table.
	applyMu sync.Mutex

	mail *mailer
	poll sync.WaitGroup

	// vrrpEvents carries the VRRP instances' state changes, as they
	// happen, to watchVRRP.
	vrrpEvents chan vrrpEvent
	// vrrpChanges wakes runLVSSync after a state change was handled or a
	// plan applied (wakeSync).
	vrrpChanges chan struct{}
}

func startKeepalived(ctx context.Context, path string, dir *director.Director, log *slog.Logger) (*keepalived, error) {
	kctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	k := &keepalived{path: path, engine: dir.Engine(), dir: dir, log: log, ctx: kctx, cancel: cancel,
		lvs: map[string]*lvsUnit{}, vrrp: map[string]*vrrpUnit{}, vips: map[netip.Addr]int{},
		vrrpEvents: make(chan vrrpEvent, 256), vrrpChanges: make(chan struct{}, 1)}
	if path == "" {
		return k, nil
	}
	cfg, p, err := k.load()
	if err != nil {
		cancel()
		return nil, err
	}
	k.poll.Add(1)
	go func() {
		defer k.poll.Done()
		k.watchVRRP(kctx)
	}()
	if err := k.apply(cfg, p); err != nil {
		k.stop()
		return nil, err
	}
	k.log.Info("configuration loaded", "file", path, "virtual_servers", len(cfg.VirtualServers),
		"vrrp_instances", len(cfg.Instances))
	return k, nil
}

// load reads, parses and compiles the configuration file at start,
// logging its warnings. Unlike a reload, it runs a file with the lines
// keepalived's own config test counts as errors, as keepalived does.
func (k *keepalived) load() (*config.Config, *plan.Plan, error) {
	cfg, warnings, err := config.Load(k.path)
	var p *plan.Plan
	if err == nil {
		var w []config.Warning
		p, w, err = plan.Compile(cfg)
		warnings = append(warnings, w...)
	}
	for _, w := range warnings {
		k.log.Warn("configuration: "+w.Msg, "at", w.Pos.String())
	}
	if err != nil {
		return nil, nil, err
	}
	return cfg, p, nil
}

// apply makes the plan p of cfg run: the virtual servers and checkers
// first (so a configuration the engine refuses changes nothing), then
// VRRP.
func (k *keepalived) apply(cfg *config.Config, p *plan.Plan) error {
	k.reloadMu.Lock()
	defer k.reloadMu.Unlock()
	if k.stopped {
		return fmt.Errorf("gvsd is stopping")
	}
	k.mu.Lock()
	running := k.vrrp
	k.mu.Unlock()
	if len(p.VRRP) > 0 && k.links == nil {
		// one link subscription for every instance, for gvsd's lifetime
		links, err := vrrp.WatchLinks(k.ctx, "", k.log)
		if err != nil {
			return fmt.Errorf("vrrp: %w", err)
		}
		k.links = links
	}
	vunits, err := planVRRP(p, running, k.links, k.log)
	if err != nil {
		return err
	}
	initTrackFiles(p.TrackFiles, k.log)
	mail := newMailer(cfg, k.log)
	k.mu.Lock()
	oldCfg, oldPlan, oldMail := k.cfg, k.plan, k.mail
	k.cfg, k.plan, k.mail = cfg, p, mail
	k.mu.Unlock()
	if err := k.applyLVS(p); err != nil {
		k.mu.Lock()
		k.cfg, k.plan, k.mail = oldCfg, oldPlan, oldMail
		k.mu.Unlock()
		return err
	}
	k.applyVRRP(vunits)
	k.wakeSync()
	return nil
}

// reload re-reads the configuration file (SIGHUP). A file that fails
// the configuration test (gvsd -t) leaves everything running as it was;
// otherwise only what changed is restarted.
func (k *keepalived) reload(ctx context.Context) {
	if k.path == "" {
		k.log.Info("SIGHUP ignored: no configuration file (-f)")
		return
	}
	k.log.Info("reloading the configuration", "file", k.path)
	// A reload applies only what gvsd -t accepts: a file cut short while
	// it was written (unclosed blocks) is refused, not half applied.
	cfg, p, warnings, err := checkConfig(k.path, k.engine)
	for _, w := range warnings {
		k.log.Warn("configuration: "+w.Msg, "at", w.Pos.String())
	}
	if err != nil {
		k.log.Error("reload refused, still running the previous configuration: "+err.Error(), "file", k.path)
		return
	}
	if err := k.apply(cfg, p); err != nil {
		k.log.Error("reload refused, still running the previous configuration: "+err.Error(), "file", k.path)
		return
	}
	k.log.Info("configuration reloaded", "file", k.path, "virtual_servers", len(cfg.VirtualServers),
		"vrrp_instances", len(cfg.Instances))
}

// stop ends the VRRP instances (priority 0 adverts, VIPs released), then
// the checkers. The engine is left to the caller.
func (k *keepalived) stop() {
	k.reloadMu.Lock()
	defer k.reloadMu.Unlock()
	if k.stopped {
		return
	}
	k.stopped = true
	k.mu.Lock()
	vus := make([]*vrrpUnit, 0, len(k.vrrp))
	for _, u := range k.vrrp {
		vus = append(vus, u)
	}
	k.vrrp = map[string]*vrrpUnit{}
	k.mu.Unlock()
	k.stopVRRPUnits(vus)

	k.mu.Lock()
	lus := make([]*lvsUnit, 0, len(k.lvs))
	for _, u := range k.lvs {
		lus = append(lus, u)
	}
	k.lvs = map[string]*lvsUnit{}
	k.mu.Unlock()
	k.applyMu.Lock()
	for _, u := range lus {
		u.active = false
	}
	k.applyMu.Unlock()
	for _, u := range lus {
		u.cancel()
	}
	for _, u := range lus {
		<-u.done
	}
	k.cancel()
	k.poll.Wait()
}
