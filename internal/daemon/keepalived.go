package daemon

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"sync/atomic"

	"github.com/gvs-lb/gvs/internal/config"
	"github.com/gvs-lb/gvs/internal/director"
	"github.com/gvs-lb/gvs/internal/ipvssync"
	"github.com/gvs-lb/gvs/internal/notify"
	"github.com/gvs-lb/gvs/internal/plan"
	"github.com/gvs-lb/gvs/internal/vrrp"
)

// keepalived runs what a keepalived.conf asks for: the virtual servers,
// their health checkers, the VRRP instances and lvs_sync_daemon's role.
//
// One goroutine, the reconciler (run), owns the running state: it takes
// the plans to apply (the first one, then SIGHUP's), stop, the VRRP
// instances' state changes and the wake-ups of a sync daemon that could
// not start (a link or address change, or a slow timer), one at a time,
// works out what changed and hands the director, the checkers, the VRRP
// units and the sync daemons only that. Nothing else writes that state,
// so it needs no lock; the API's views read what the reconciler
// publishes (shown). Checker verdicts do not pass through it: they go
// straight to director.Update, the table's own serialised owner, and a
// reload retires the replaced checkers inside the batch that replaces
// their services (director.Replace's committed function).
//
// Its goroutines live under its own context, not gvsd's: on SIGTERM stop
// ends them in keepalived's order (VRRP first, so the VIPs move to the
// backup at once, then the checkers) before the engine drains.
type keepalived struct {
	path   string
	engine string // the running engine's name, which a reload is checked for
	dir    *director.Director
	syncd  *ipvssync.Manager // lvs_sync_daemon's daemons; nil: none run
	log    *slog.Logger

	ctx    context.Context // the units' goroutines live under it until stop
	cancel context.CancelFunc

	// To the reconciler.
	requests   chan request
	vrrpEvents chan vrrpEvent // the VRRP instances' state changes, as they happen
	done       chan struct{}  // closed when the reconciler has returned

	// shown is what the reconciler runs, for the API's views.
	shown atomic.Pointer[shown]

	// The running state, the reconciler's alone (no other goroutine
	// reads or writes these fields).
	cfg   *config.Config
	plan  *plan.Plan           // cfg compiled
	lvs   map[string]*lvsUnit  // by service key (ipvs.ServiceKey.String())
	vrrp  map[string]*vrrpUnit // by instance or sync group name
	mail  *mailer
	links vrrp.Links // the interfaces' states, made by the first plan with VRRP
	// procs is the one subscription to the kernel's process events that
	// every vrrp_track_process shares.
	procs *vrrp.ProcEvents
	// vips are the virtual addresses the VRRP instances hold now
	// (MASTER), for ha_suspend.
	vips map[netip.Addr]int
	sync syncRole
	// fifos are the notify FIFOs open now; vrrpFIFO and lvsFIFO write
	// to them (the instances and checkers hold these two for gvsd's
	// life).
	fifos             notifyFIFOs
	vrrpFIFO, lvsFIFO notify.Sink
}

// request is a plan to apply, or (plan nil) stop.
type request struct {
	cfg   *config.Config
	plan  *plan.Plan
	reply chan error
}

// shown is what the reconciler published last: the running units, for
// the views, and the configuration (tests compare it).
type shown struct {
	cfg   *config.Config
	lvs   []*lvsUnit       // with a checker manager, in configuration order
	insts []*vrrp.Instance // every running instance
}

var errStopping = errors.New("gvsd is stopping")

// startKeepalived runs the configuration at path (none when empty), as
// first holds it when the caller has loaded it already (nil: it is loaded
// here), with syncd for lvs_sync_daemon (nil: it is not run).
func startKeepalived(ctx context.Context, path string, first *loaded, dir *director.Director, syncd *ipvssync.Manager, log *slog.Logger) (*keepalived, error) {
	kctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	k := &keepalived{path: path, engine: dir.Engine(), dir: dir, syncd: syncd, log: log, ctx: kctx, cancel: cancel,
		requests: make(chan request), vrrpEvents: make(chan vrrpEvent, 256), done: make(chan struct{}),
		lvs: map[string]*lvsUnit{}, vrrp: map[string]*vrrpUnit{}, vips: map[netip.Addr]int{},
		procs: vrrp.NewProcEvents(), sync: syncRole{retry: syncRetry}}
	k.shown.Store(&shown{})
	if path == "" {
		close(k.done)
		return k, nil
	}
	if first == nil {
		var err error
		if first, err = loadConfig(path, log); err != nil {
			cancel()
			close(k.done)
			return nil, err
		}
	}
	cfg := first.cfg
	go k.run()
	if err := k.apply(cfg, first.plan); err != nil {
		k.stop()
		return nil, err
	}
	k.log.Info("configuration loaded", "file", path, "virtual_servers", len(cfg.VirtualServers),
		"vrrp_instances", len(cfg.Instances))
	return k, nil
}

// loaded is a configuration file as read at start: parsed and compiled.
type loaded struct {
	cfg  *config.Config
	plan *plan.Plan
}

// loadConfig reads, parses and compiles the configuration file at start,
// logging its warnings. Unlike a reload, it runs a file with the lines
// keepalived's own config test counts as errors, as keepalived does.
func loadConfig(path string, log *slog.Logger) (*loaded, error) {
	cfg, warnings, err := config.Load(path)
	var p *plan.Plan
	if err == nil {
		var w []config.Warning
		p, w, err = plan.Compile(cfg)
		warnings = append(warnings, w...)
	}
	for _, w := range warnings {
		log.Warn("configuration: "+w.Msg, "at", w.Pos.String())
	}
	if err != nil {
		return nil, err
	}
	return &loaded{cfg: cfg, plan: p}, nil
}

// run is the reconciler: it takes one event at a time until stop.
func (k *keepalived) run() {
	defer close(k.done)
	for {
		select {
		case r := <-k.requests:
			if r.plan == nil {
				k.shutdown()
				close(r.reply)
				return
			}
			r.reply <- k.reconcile(r.cfg, r.plan)
		case ev := <-k.vrrpEvents:
			k.vrrpChanged(ev)
			k.reconcileSync()
		case <-k.sync.linkChanged():
			k.reconcileSync()
		case <-k.sync.again:
			k.reconcileSync()
		}
	}
}

// ask hands r to the reconciler and waits for its answer.
func (k *keepalived) ask(r request) error {
	r.reply = make(chan error, 1)
	select {
	case k.requests <- r:
	case <-k.done:
		return errStopping
	}
	return <-r.reply
}

// apply has the reconciler run the plan p of cfg.
func (k *keepalived) apply(cfg *config.Config, p *plan.Plan) error {
	return k.ask(request{cfg: cfg, plan: p})
}

// reconcile makes the plan p of cfg run: the virtual servers and
// checkers first (so a configuration the engine refuses changes
// nothing), then VRRP, then the sync daemon's role. Only what differs
// from the running plan is restarted.
func (k *keepalived) reconcile(cfg *config.Config, p *plan.Plan) error {
	if len(p.VRRP) > 0 && k.links == nil {
		// one link subscription for every instance, for gvsd's lifetime
		links, err := vrrp.WatchLinks(k.ctx, "", k.log)
		if err != nil {
			return errors.New("vrrp: " + err.Error())
		}
		k.links = links
	}
	vunits, err := planVRRP(p, k.vrrp, k.links, &k.vrrpFIFO, k.log)
	if err != nil {
		return err
	}
	initTrackFiles(p.TrackFiles, k.log)
	mail := newMailer(cfg, k.log)
	// The FIFOs first: the checkers and instances started next write
	// their first changes to them.
	k.applyFIFOs(p.NotifyFIFOs)
	if err := k.applyLVS(p, mail); err != nil {
		return err
	}
	k.cfg, k.plan, k.mail = cfg, p, mail
	k.applyVRRP(vunits)
	k.publish()
	k.reconcileSync()
	return nil
}

// reload re-reads the configuration file (SIGHUP). A file that fails
// the configuration test (gvsd -t) leaves everything running as it was;
// otherwise only what changed is restarted. The file is read and
// compiled here, in the caller's goroutine; the reconciler gets the
// finished plan.
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
	if err == nil {
		err = k.apply(cfg, p)
	}
	if err != nil {
		k.log.Error("reload refused, still running the previous configuration: "+err.Error(), "file", k.path)
		return
	}
	k.log.Info("configuration reloaded", "file", k.path, "virtual_servers", len(cfg.VirtualServers),
		"vrrp_instances", len(cfg.Instances))
}

// stop ends the VRRP instances (priority 0 adverts, VIPs released), then
// the checkers and the sync daemon lvs_sync_daemon started, and returns
// when they have. The engine is left to the caller.
func (k *keepalived) stop() {
	select {
	case k.requests <- request{reply: make(chan error)}:
	case <-k.done:
	}
	<-k.done
	k.cancel()
}

// shutdown is stop, in the reconciler.
func (k *keepalived) shutdown() {
	vus := make([]*vrrpUnit, 0, len(k.vrrp))
	for _, u := range k.vrrp {
		vus = append(vus, u)
	}
	k.vrrp = map[string]*vrrpUnit{}
	k.stopVRRPUnits(vus)

	lus := make([]*lvsUnit, 0, len(k.lvs))
	for _, u := range k.lvs {
		u.active.Store(false)
		lus = append(lus, u)
	}
	k.lvs = map[string]*lvsUnit{}
	for _, u := range lus {
		u.cancel()
	}
	for _, u := range lus {
		<-u.done
	}
	k.publish()
	k.stopSync()
	k.sync.stopLinks()
	k.closeFIFOs() // after the last STOP and DOWN lines
}

// publish shows the running units to the API's views.
func (k *keepalived) publish() {
	s := &shown{cfg: k.cfg, lvs: k.units()}
	for _, u := range k.vrrp {
		s.insts = append(s.insts, u.insts...)
	}
	k.shown.Store(s)
}
