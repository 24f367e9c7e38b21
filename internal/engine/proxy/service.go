package proxy

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gvs-lb/gvs/internal/clock"
	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/sched"
)

// service is one virtual service: its configuration, scheduler, real
// servers, persistence templates, counters and sockets.
type service struct {
	e   *Engine
	key ipvs.ServiceKey
	vip netip.AddrPort

	cfg   atomic.Pointer[ipvs.Service]
	plan  atomic.Pointer[plan]
	stats stats

	// Guarded by Engine.mu.
	dests    []*dest              // the kernel's order: most recently added first
	tcp      interface{ close() } // *tcpListener or *loopListener
	udp      *udpService
	schedKey string

	pmu       sync.Mutex
	templates map[netip.Addr]*template

	tcpOpen    atomic.Int64  // connections holding their sockets (tcpBudget)
	tcpRefused atomic.Uint64 // connections refused at a bound

	// The gate (gate.go): queued while a recheck waits; rebind is the
	// back-off of a failed re-bind and gateLog when the gate last
	// logged (guarded by Engine.mu).
	queued  atomic.Bool
	paused  bool // not listening (Engine.setPaused)
	rebind  time.Duration
	retry   *time.Timer
	gateLog int64
}

// plan is what the data path reads to schedule: the scheduler and the
// engine's real server for each of the scheduler's Dests. It is replaced
// whole when the service changes.
type plan struct {
	sched sched.Scheduler
	dests map[*sched.Dest]*dest
}

// dest is a real server of a service.
type dest struct {
	svc     *service
	sd      *sched.Dest
	cfg     ipvs.Dest // guarded by Engine.mu
	stats   stats
	failing atomic.Bool
}

// template is a persistence template: new connections from the client
// prefix go to dest while it lives (ip_vs_sched_persist).
type template struct {
	client   netip.Addr // the masked client address
	dest     *dest
	expires  atomic.Int64 // engine clock
	nControl atomic.Int32 // connections it controls
	timer    clock.Timer
}

// schedKey names what the scheduler depends on: its name and the
// scheduler flags (-b). Editing other flags (-p, -o) keeps the scheduler
// and its position, as ip_vs_edit_service does.
func schedKey(s *ipvs.Service) string {
	return fmt.Sprintf("%s/%#x", s.Scheduler, s.Flags&(ipvs.SchedFlag1|ipvs.SchedFlag2|ipvs.SchedFlag3))
}

// update makes the service hold sc's configuration and real servers:
// servers that stay keep their counters, removed ones are marked so and
// finish their connections, the scheduler is replaced only when its name
// or flags change. It changes nothing when it fails.
func (s *service) update(sc *ipvs.ServiceConfig) error {
	cfg := sc.Service
	cfg.LocalAddrs = slices.Clone(cfg.LocalAddrs)
	old := s.plan.Load()
	sch := (sched.Scheduler)(nil)
	changed := false
	if old == nil || s.schedKey != schedKey(&cfg) {
		var err error
		if sch, err = sched.New(cfg.Scheduler, cfg.Flags); err != nil {
			return fmt.Errorf("%s: %w", s.key, err)
		}
		changed = true
	} else {
		sch = old.sched
	}
	byAddr := make(map[netip.AddrPort]*dest, len(s.dests))
	for _, d := range s.dests {
		byAddr[d.sd.Addr] = d
	}
	next := make([]*dest, 0, len(sc.Dests))
	for _, dc := range sc.Dests {
		ap := dc.AddrPort()
		d := byAddr[ap]
		if d == nil {
			d = &dest{svc: s, sd: sched.NewDest(dc), cfg: dc}
			d.sd.OnChange(func() { s.e.recheck(s) })
			changed = true
		} else {
			delete(byAddr, ap)
			if d.cfg.Weight != dc.Weight || d.cfg.UThreshold != dc.UThreshold || d.cfg.LThreshold != dc.LThreshold {
				d.sd.SetWeight(dc.Weight)
				d.sd.SetThresholds(dc.UThreshold, dc.LThreshold)
				changed = true
			}
			d.cfg = dc
		}
		next = append(next, d)
	}
	if !slices.Equal(next, s.dests) {
		changed = true
	}
	for _, d := range byAddr {
		d.sd.MarkRemoved()
	}
	s.cfg.Store(&cfg)
	s.schedKey = schedKey(&cfg)
	s.dests = next
	if changed {
		list := make([]*sched.Dest, len(next))
		m := make(map[*sched.Dest]*dest, len(next))
		for i, d := range next {
			list[i] = d.sd
			m[d.sd] = d
		}
		sch.Update(list)
		s.plan.Store(&plan{sched: sch, dests: m})
	}
	return nil
}

// config is the service with its real servers, as engine.Fold wants it.
// The caller holds Engine.mu.
func (s *service) config() ipvs.ServiceConfig {
	sc := ipvs.ServiceConfig{Service: *s.cfg.Load(), Dests: make([]ipvs.Dest, len(s.dests))}
	sc.LocalAddrs = slices.Clone(sc.LocalAddrs)
	for i, d := range s.dests {
		sc.Dests[i] = d.cfg
	}
	return sc
}

// reset makes the service new again (deleted and added in one batch):
// its real servers are marked removed and finish their connections, its
// templates and counters are dropped; update then starts it afresh.
func (s *service) reset() {
	for _, d := range s.dests {
		d.sd.MarkRemoved()
	}
	s.dests = nil
	s.schedKey = ""
	s.dropTemplates()
	s.stats.zero()
}

// served reports whether a socket serves the service.
func (s *service) served() bool { return s.tcp != nil || s.udp != nil }

// closeSockets stops accepting on the service's socket.
func (s *service) closeSockets() {
	if s.tcp != nil {
		s.tcp.close()
	}
	if s.udp != nil {
		s.udp.close()
	}
}

// pick chooses the real server for a new connection from client, through
// the persistence template when the service is persistent. It returns nil
// when no server is available. A template returned must be released by
// the connection when it expires.
func (s *service) pick(client netip.AddrPort) (*dest, *template) {
	cfg := s.cfg.Load()
	p := s.plan.Load()
	if !cfg.Persistent() {
		return p.schedule(client, s.vip), nil
	}
	pfx, err := client.Addr().Prefix(cfg.Netmask)
	if err != nil {
		return p.schedule(client, s.vip), nil
	}
	timeout := int64(cfg.Timeout) * int64(time.Second)
	now := s.e.now()
	s.pmu.Lock()
	defer s.pmu.Unlock()
	t := s.templates[pfx.Addr()]
	// ip_vs_check_template: a template whose server is gone or failed is
	// expired; one whose server was quiesced (weight 0) is still used, as
	// with the kernel's default expire_quiescent_template=0.
	if t != nil && !t.dest.sd.Available() {
		s.dropTemplateLocked(t)
		t = nil
	}
	if t == nil {
		d := p.schedule(client, s.vip)
		if d == nil {
			return nil, nil
		}
		t = &template{client: pfx.Addr(), dest: d}
		d.sd.Bind(sched.Template)
		t.timer = s.e.clock.AfterFunc(time.Duration(timeout), func() { s.expireTemplate(t) })
		if s.templates == nil {
			s.templates = make(map[netip.Addr]*template)
		}
		s.templates[t.client] = t
	}
	t.expires.Store(now + timeout)
	t.nControl.Add(1)
	return t.dest, t
}

func (p *plan) schedule(client, vip netip.AddrPort) *dest {
	sd := p.sched.Schedule(sched.Conn{Client: client, Virtual: vip})
	if sd == nil {
		return nil
	}
	return p.dests[sd]
}

// expireTemplate runs when a template's timer fires: it is re-armed while
// it was used since or still controls connections (the kernel's
// n_control), and removed otherwise.
func (s *service) expireTemplate(t *template) {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if s.templates[t.client] != t {
		return
	}
	now := s.e.now()
	if left := t.expires.Load() - now; left > 0 {
		t.timer.Reset(time.Duration(left))
		return
	}
	if t.nControl.Load() > 0 {
		timeout := time.Duration(s.cfg.Load().Timeout) * time.Second
		t.expires.Store(now + int64(timeout))
		t.timer.Reset(timeout)
		return
	}
	s.dropTemplateLocked(t)
}

func (s *service) dropTemplateLocked(t *template) {
	delete(s.templates, t.client)
	t.timer.Stop()
	t.dest.sd.Unbind(sched.Template)
	if len(s.templates) == 0 {
		s.e.recheck(s) // the last template may have kept the socket open
	}
}

// dropTemplates removes every template (the service is going away).
func (s *service) dropTemplates() {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	for _, t := range s.templates {
		s.dropTemplateLocked(t)
	}
}

func (s *service) templateConns(now int64, out []ipvs.Conn) []ipvs.Conn {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	for _, t := range s.templates {
		out = append(out, ipvs.Conn{
			Proto:   s.key.Proto,
			Client:  netip.AddrPortFrom(t.client, 0),
			Virtual: s.vip,
			Dest:    t.dest.sd.Addr,
			State:   "NONE",
			Expires: max(t.expires.Load()-now, 0) / int64(time.Millisecond),
			FWMark:  s.key.FWMark,
		})
	}
	return out
}

// release is called when a connection entry expires: it gives up its
// hold on the template.
func (t *template) release() {
	if t != nil {
		t.nControl.Add(-1)
	}
}

// fail marks the real server unreachable after a failed connect: the
// schedulers skip it until the back-off ends (or the table changes it).
func (d *dest) fail(err error) {
	if !d.failing.CompareAndSwap(false, true) {
		return
	}
	e := d.svc.e
	d.sd.SetFailed(true)
	e.log.Warn("real server unreachable, skipped for new connections",
		"service", d.svc.key.String(), "server", d.sd.Addr.String(), "error", err, "retry_in", e.opts.FailBackoff)
	over, stop := e.clock.After(e.opts.FailBackoff)
	go func() {
		defer stop()
		select {
		case <-over:
			d.sd.SetFailed(false)
			d.failing.Store(false)
		case <-e.ctx.Done():
		}
	}()
}

// account adds a transfer of n bytes to the service's and the server's
// counters; in is client to server.
func (d *dest) account(n int64, pkts uint64, in bool) {
	sv, dv := &d.svc.stats.raw, &d.stats.raw
	if in {
		sv.inBytes.Add(uint64(n))
		sv.inPkts.Add(pkts)
		dv.inBytes.Add(uint64(n))
		dv.inPkts.Add(pkts)
		return
	}
	sv.outBytes.Add(uint64(n))
	sv.outPkts.Add(pkts)
	dv.outBytes.Add(uint64(n))
	dv.outPkts.Add(pkts)
}

// newConn counts a new connection to d.
func (d *dest) newConn(k sched.ConnKind) {
	d.sd.Bind(k)
	d.svc.stats.raw.conns.Add(1)
	d.stats.raw.conns.Add(1)
}
