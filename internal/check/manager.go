package check

import (
	"context"
	"errors"
	"fmt"
	"github.com/gvs-lb/gvs/internal/script"
	"log/slog"
	"math"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/gvs-lb/gvs/internal/clock"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// Applier receives the pool changes the checkers decide: OpAddDest,
// OpDelDest and OpEditDest commands. *ipvs.Table satisfies it; wrap a
// director with ApplierFunc.
type Applier interface {
	Exec(ipvs.Command) error
}

// ApplierFunc adapts a function to Applier.
type ApplierFunc func(ipvs.Command) error

// Exec calls f.
func (f ApplierFunc) Exec(c ipvs.Command) error { return f(c) }

// VirtualServer is a virtual_server block as the checkers need it.
type VirtualServer struct {
	Service     ipvs.ServiceKey
	RealServers []RealServer
	// SorryServer joins the pool when the quorum is lost (by default: when
	// no real server is up) and leaves it when the quorum is back.
	SorryServer *RealServer
	// Quorum is the minimum sum of the weights of live real servers (at
	// least 1); Hysteresis widens it both ways.
	Quorum     int
	Hysteresis int
	// QuorumUp and QuorumDown are scripts run when the quorum is gained
	// or lost.
	QuorumUp   script.Cmd
	QuorumDown script.Cmd
	// HASuspend: the checkers only run while the virtual address is on
	// this host; they start suspended until Resume or AddressChanged.
	HASuspend bool
}

// RealServer is a real_server block.
type RealServer struct {
	// Dest is the server as the pool holds it when up (address, port,
	// forwarding method, configured weight, thresholds). A zero port is
	// the service's.
	Dest ipvs.Dest
	// Inhibit (inhibit_on_failure) sets the weight to 0 when the server is
	// down instead of removing it.
	Inhibit bool
	// NotifyUp and NotifyDown are scripts run when the server goes up or
	// down. keepalived passes no extra arguments.
	NotifyUp   script.Cmd
	NotifyDown script.Cmd
	Checks     []Spec
}

// EventKind names an Event.
type EventKind string

// Events, as keepalived's SMTP alerts and notify FIFO report them.
const (
	RealServerUp   EventKind = "RS_UP"
	RealServerDown EventKind = "RS_DOWN"
	QuorumUp       EventKind = "QUORUM_UP"
	QuorumDown     EventKind = "QUORUM_DOWN"
)

// Event is a change worth telling an operator (a mailer consumes these).
type Event struct {
	Kind       EventKind       `json:"kind"`
	Time       time.Time       `json:"time"`
	Service    ipvs.ServiceKey `json:"service"`
	RealServer netip.AddrPort  `json:"real_server,omitzero"`
	Checker    Type            `json:"checker,omitempty"` // the checker that decided
	// Message is keepalived's alert wording ("=> TCP_CHECK failed on
	// service <=", "=> Gained quorum 1+0=1 <= 2 <=").
	Message string `json:"message"`
	Error   string `json:"error,omitempty"`
}

// Options tune a Manager; the zero value is usable.
type Options struct {
	Log *slog.Logger
	// OnEvent is called from the manager's goroutine; it must not block
	// long.
	OnEvent func(Event)
	// ScriptTimeout bounds notify and quorum scripts (default 10s).
	ScriptTimeout time.Duration
	// Adopt are the checkers of a manager this one replaces, whose Run
	// has returned (Checkers lists them): a checker whose real server
	// and spec (alpha aside) did not change is taken over with its state,
	// retries, counters and schedule instead of starting afresh, so a
	// reload does not reset a failure being counted.
	Adopt []*Checker
	// Clock schedules the checkers; nil is the system clock.
	Clock clock.Clock
}

// Manager runs the checkers of many virtual servers and keeps their pools
// as keepalived does: a real server is up when all its checkers are up;
// inhibit_on_failure, quorum with hysteresis, sorry_server and the notify
// scripts apply per virtual server.
type Manager struct {
	apply   Applier
	opts    Options
	log     *slog.Logger
	reports chan Report
	scripts sync.WaitGroup

	mu    sync.Mutex // guards the state below, read by the status methods
	vss   []*vsState
	owner map[*Checker]*rsState
}

type vsState struct {
	cfg      VirtualServer
	rss      []*rsState
	sorry    *rsState
	quorumUp bool
}

type rsState struct {
	vs        *vsState
	cfg       RealServer
	checkers  []*Checker
	checkerUp map[*Checker]bool
	failed    int   // checkers DOWN
	alive     bool  // counted as up (keepalived's ISALIVE)
	set       bool  // present in the pool (possibly at weight 0)
	weight    int32 // effective weight: base plus the FILE_CHECK deltas
	base      int32 // configured weight, or misc_dynamic's
	deltas    map[*Checker]int64
	poolW     int32 // weight in the pool
	adopted   bool  // some checker was taken over from another manager
}

// effective is keepalived's effective_weight: the base weight plus every
// FILE_CHECK's change, within the int32 range.
func (rs *rsState) effective() int32 {
	w := int64(rs.base)
	for _, d := range rs.deltas {
		w += d
	}
	return int32(min(max(w, math.MinInt32), math.MaxInt32))
}

// NewManager prepares the checkers; nothing runs before Run.
func NewManager(vss []VirtualServer, apply Applier, opts Options) (*Manager, error) {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.ScriptTimeout <= 0 {
		opts.ScriptTimeout = 10 * time.Second
	}
	m := &Manager{apply: apply, opts: opts, log: opts.Log, owner: map[*Checker]*rsState{}}
	adopt := slices.Clone(opts.Adopt)
	for _, cfg := range vss {
		vs := &vsState{cfg: cfg}
		if cfg.Quorum < 1 {
			return nil, fmt.Errorf("virtual server %s: quorum %d: want 1 or more", cfg.Service, cfg.Quorum)
		}
		for _, rcfg := range cfg.RealServers {
			rs := &rsState{vs: vs, cfg: rcfg, weight: rcfg.Dest.Weight, base: rcfg.Dest.Weight,
				checkerUp: map[*Checker]bool{}, deltas: map[*Checker]int64{}}
			addr := rcfg.Dest.AddrPort()
			if addr.Port() == 0 {
				addr = netip.AddrPortFrom(addr.Addr(), cfg.Service.Port)
			}
			for _, spec := range rcfg.Checks {
				if i := slices.IndexFunc(adopt, func(c *Checker) bool { return c != nil && c.sameAs(spec, addr) }); i >= 0 {
					c := adopt[i]
					adopt[i] = nil
					if !cfg.HASuspend {
						c.SetEnabled(true)
					}
					rs.checkers = append(rs.checkers, c)
					rs.adopted = true
					up := c.Up()
					if spec.Type == FILE {
						rs.deltas[c] = c.Status().Delta
					}
					rs.checkerUp[c] = up
					if !up {
						rs.failed++
					}
					m.owner[c] = rs
					continue
				}
				c, err := newChecker(spec, addr, m.log.With("service", cfg.Service.String()), opts.Clock)
				if err != nil {
					return nil, fmt.Errorf("virtual server %s, real server %s: %w", cfg.Service, addr, err)
				}
				if cfg.HASuspend {
					c.SetEnabled(false)
				}
				rs.checkers = append(rs.checkers, c)
				up := !spec.Alpha
				if spec.Type == FILE {
					// a file's state is known at once, as in keepalived:
					// the pool starts with it
					r := c.Attempt(context.Background())
					up, rs.deltas[c] = r.Up, r.Delta
				}
				rs.checkerUp[c] = up
				if !up {
					rs.failed++
				}
				m.owner[c] = rs
			}
			rs.weight = rs.effective()
			vs.rss = append(vs.rss, rs)
		}
		if cfg.SorryServer != nil {
			vs.sorry = &rsState{vs: vs, cfg: *cfg.SorryServer, weight: cfg.SorryServer.Dest.Weight}
		}
		m.vss = append(m.vss, vs)
	}
	return m, nil
}

// Checkers lists every checker, in configuration order: after Run
// returned, a new manager can adopt them (Options.Adopt).
func (m *Manager) Checkers() []*Checker {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []*Checker
	for _, vs := range m.vss {
		for _, rs := range vs.rss {
			out = append(out, rs.checkers...)
		}
	}
	return out
}

// Run, called once, fills the pools as keepalived does at start (servers without alpha
// checkers are in, the sorry server too when the quorum is not met), then
// runs every checker until ctx ends.
func (m *Manager) Run(ctx context.Context) error {
	m.reports = make(chan Report)
	m.mu.Lock()
	for _, vs := range m.vss {
		m.initVS(vs)
	}
	m.mu.Unlock()

	var wg sync.WaitGroup
	for c := range m.owner {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.Run(ctx, func(r Report) {
				select {
				case m.reports <- r:
				case <-ctx.Done():
				}
			})
		}()
	}
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			m.scripts.Wait()
			return nil
		case r := <-m.reports:
			m.mu.Lock()
			m.handle(r)
			m.mu.Unlock()
		}
	}
}

func (m *Manager) initVS(vs *vsState) {
	for _, rs := range vs.rss {
		switch {
		case rs.failed == 0:
			m.add(rs)
			rs.alive = true
		case rs.cfg.Inhibit:
			m.del(rs)
		case rs.adopted:
			// A checker taken over DOWN: the pool, made before, may
			// still hold the server.
			m.exec(ipvs.OpDelDest, rs, 0)
		}
	}
	vs.quorumUp = vs.liveWeight() >= int64(vs.cfg.Quorum+vs.cfg.Hysteresis)
	m.updateQuorum(vs, true)
	if s := vs.sorry; s != nil && s.cfg.Inhibit && !s.set {
		m.del(s)
	}
}

func (m *Manager) handle(r Report) {
	rs := m.owner[r.Checker]
	if rs == nil {
		return
	}
	if r.Err == nil && r.Weight >= 0 {
		rs.base = int32(r.Weight)
		m.setWeight(rs, rs.effective())
	}
	if r.HasDelta {
		rs.deltas[r.Checker] = r.Delta
		m.setWeight(rs, rs.effective())
	}
	if !r.Verdict || rs.checkerUp[r.Checker] == r.Up {
		return
	}
	rs.checkerUp[r.Checker] = r.Up
	if r.Up {
		rs.failed--
		if rs.failed == 0 {
			m.setAlive(rs, true, r)
		}
	} else {
		rs.failed++
		if rs.failed == 1 {
			m.setAlive(rs, false, r)
		}
	}
}

// setAlive is keepalived's perform_svr_state.
func (m *Manager) setAlive(rs *rsState, alive bool, r Report) {
	if rs.alive == alive {
		return
	}
	vs := rs.vs
	if vs.quorumUp || vs.sorry == nil || !vs.sorry.alive {
		if alive {
			m.add(rs)
		} else {
			m.del(rs)
		}
	}
	rs.alive = alive
	ev := Event{Kind: RealServerUp, Service: vs.cfg.Service, RealServer: rs.addrPort(), Checker: r.Checker.spec.Type}
	sc := rs.cfg.NotifyUp
	ev.Message = fmt.Sprintf("=> %s succeed on service <=", ev.Checker)
	if !alive {
		ev.Kind, sc = RealServerDown, rs.cfg.NotifyDown
		ev.Message = fmt.Sprintf("=> %s failed on service <=", ev.Checker)
		if r.Err != nil {
			ev.Error = r.Err.Error()
		}
	}
	m.log.Info("real server "+map[bool]string{true: "up", false: "down"}[alive],
		"service", vs.cfg.Service.String(), "real_server", rs.addrPort().String(), "inhibit", rs.cfg.Inhibit)
	m.notify(sc, ev)
	m.updateQuorum(vs, false)
}

// setWeight is keepalived's update_svr_wgt, for misc_dynamic and
// FILE_CHECK.
func (m *Manager) setWeight(rs *rsState, w int32) {
	if w == rs.weight {
		return
	}
	rs.weight = w
	vs := rs.vs
	if rs.set && rs.alive && (vs.quorumUp || vs.sorry == nil || !vs.sorry.alive) {
		m.exec(ipvs.OpEditDest, rs, w)
	}
	m.updateQuorum(vs, false)
}

// updateQuorum is keepalived's update_quorum_state.
func (m *Manager) updateQuorum(vs *vsState, init bool) {
	sum := vs.liveWeight()
	q, h := int64(vs.cfg.Quorum), int64(vs.cfg.Hysteresis)
	threshold := q + h
	if vs.quorumUp {
		threshold = q - h
	}
	ev := Event{Service: vs.cfg.Service}
	switch {
	case !vs.quorumUp && sum >= threshold:
		vs.quorumUp = true
		if s := vs.sorry; s != nil && s.alive {
			m.del(s)
			s.alive = false
			m.poolAlive(vs, true)
		}
		ev.Kind = QuorumUp
		ev.Message = fmt.Sprintf("=> Gained quorum %d+%d=%d <= %d <=", q, h, threshold, sum)
		m.notify(vs.cfg.QuorumUp, ev)
	case (vs.quorumUp && (sum == 0 || sum < threshold)) ||
		(init && !vs.quorumUp && vs.sorry != nil && !vs.sorry.alive):
		vs.quorumUp = false
		if s := vs.sorry; s != nil && !s.alive {
			m.poolAlive(vs, false)
			m.add(s)
			s.alive = true
		}
		ev.Kind = QuorumDown
		what := "Lost quorum"
		if init {
			what = "Starting with quorum down"
		}
		ev.Message = fmt.Sprintf("=> %s %d-%d=%d > %d <=", what, q, h, threshold, sum)
		m.notify(vs.cfg.QuorumDown, ev)
	}
}

// poolAlive adds (or removes) the live real servers to (from) the pool,
// keepalived's perform_quorum_state.
func (m *Manager) poolAlive(vs *vsState, add bool) {
	for _, rs := range vs.rss {
		if !rs.alive {
			continue
		}
		if add {
			m.add(rs)
		} else {
			m.del(rs)
		}
	}
}

func (vs *vsState) liveWeight() int64 {
	var sum int64
	for _, rs := range vs.rss {
		if rs.alive {
			sum += int64(max(rs.weight, 0))
		}
	}
	return sum
}

func (rs *rsState) addrPort() netip.AddrPort {
	ap := rs.cfg.Dest.AddrPort()
	if ap.Port() == 0 && !rs.vs.cfg.Service.IsFWMark() {
		ap = netip.AddrPortFrom(ap.Addr(), rs.vs.cfg.Service.Port)
	}
	return ap
}

// add puts rs in the pool at its weight (an inhibited one is re-weighted).
func (m *Manager) add(rs *rsState) {
	if rs.set {
		if rs.poolW != rs.weight {
			m.exec(ipvs.OpEditDest, rs, rs.weight)
		}
		return
	}
	m.exec(ipvs.OpAddDest, rs, rs.weight)
}

// del takes rs out of the pool, or sets its weight to 0 with
// inhibit_on_failure.
func (m *Manager) del(rs *rsState) {
	switch {
	case rs.cfg.Inhibit && rs.set:
		if rs.poolW != 0 {
			m.exec(ipvs.OpEditDest, rs, 0)
		}
	case rs.cfg.Inhibit:
		m.exec(ipvs.OpAddDest, rs, 0)
	case rs.set:
		m.exec(ipvs.OpDelDest, rs, 0)
	}
}

// maxWeight is IPVS's highest weight.
const maxWeight = 65535

func (m *Manager) exec(op ipvs.Op, rs *rsState, weight int32) {
	d := rs.cfg.Dest
	d.Weight = min(max(weight, 0), maxWeight)
	cmd := ipvs.Command{Op: op, Service: &ipvs.Service{ServiceKey: rs.vs.cfg.Service}, Dest: &d}
	err := m.apply.Exec(cmd)
	if err != nil && !(op == ipvs.OpAddDest && errors.Is(err, ipvs.ErrDestExists)) &&
		!(op == ipvs.OpDelDest && errors.Is(err, ipvs.ErrNoDest)) {
		m.log.Error("changing the pool failed", "op", string(op), "service", rs.vs.cfg.Service.String(),
			"real_server", rs.addrPort().String(), "error", err)
		return
	}
	switch op {
	case ipvs.OpAddDest, ipvs.OpEditDest:
		rs.set, rs.poolW = true, d.Weight
	case ipvs.OpDelDest:
		rs.set, rs.poolW = false, 0
	}
}

// notify runs script (if any) in the background and hands ev to OnEvent.
func (m *Manager) notify(sc script.Cmd, ev Event) {
	ev.Time = time.Now()
	if !sc.IsZero() {
		m.scripts.Add(1)
		go func() {
			defer m.scripts.Done()
			if err := runScript(context.Background(), sc, m.opts.ScriptTimeout); err != nil {
				m.log.Warn("notify script failed", "error", err)
			}
		}()
	}
	if m.opts.OnEvent != nil {
		m.opts.OnEvent(ev)
	}
}

// Suspend stops the probes of a virtual server with ha_suspend (its
// address left this host); the checkers keep their state.
func (m *Manager) Suspend(svc ipvs.ServiceKey) error { return m.setEnabled(svc, false) }

// Resume restarts the probes of a virtual server with ha_suspend.
func (m *Manager) Resume(svc ipvs.ServiceKey) error { return m.setEnabled(svc, true) }

func (m *Manager) setEnabled(svc ipvs.ServiceKey, on bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, vs := range m.vss {
		if vs.cfg.Service != svc {
			continue
		}
		if !vs.cfg.HASuspend {
			return fmt.Errorf("virtual server %s has no ha_suspend", svc)
		}
		for _, rs := range vs.rss {
			for _, c := range rs.checkers {
				c.SetEnabled(on)
			}
		}
		return nil
	}
	return fmt.Errorf("no virtual server %s", svc)
}

// AddressChanged resumes (present) or suspends the checkers of every
// ha_suspend virtual server with this address, as keepalived follows its
// VIPs appearing on and leaving the host's interfaces.
func (m *Manager) AddressChanged(addr netip.Addr, present bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, vs := range m.vss {
		if !vs.cfg.HASuspend || vs.cfg.Service.Addr != addr {
			continue
		}
		for _, rs := range vs.rss {
			for _, c := range rs.checkers {
				c.SetEnabled(present)
			}
		}
	}
}

// Status lists every checker's state, in configuration order.
func (m *Manager) Status() []Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Status
	for _, vs := range m.vss {
		for _, rs := range vs.rss {
			for _, c := range rs.checkers {
				s := c.Status()
				s.Service = vs.cfg.Service.String()
				out = append(out, s)
			}
		}
	}
	return out
}

// VirtualStatus is a virtual server's pool state for display.
type VirtualStatus struct {
	Service     string             `json:"service"`
	QuorumUp    bool               `json:"quorum_up"`
	Quorum      int                `json:"quorum"`
	Hysteresis  int                `json:"hysteresis"`
	LiveWeight  int64              `json:"live_weight"`
	SorryServer *RealServerStatus  `json:"sorry_server,omitempty"`
	RealServers []RealServerStatus `json:"real_servers"`
}

// RealServerStatus is a real server's pool state.
type RealServerStatus struct {
	Addr           netip.AddrPort `json:"addr"`
	Alive          bool           `json:"alive"`
	InPool         bool           `json:"in_pool"`
	Weight         int32          `json:"weight"`      // effective weight
	PoolWeight     int32          `json:"pool_weight"` // weight in the pool (0 when inhibited)
	FailedCheckers int            `json:"failed_checkers"`
}

// VirtualServers lists every virtual server's pool state.
func (m *Manager) VirtualServers() []VirtualStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []VirtualStatus
	for _, vs := range m.vss {
		v := VirtualStatus{Service: vs.cfg.Service.String(), QuorumUp: vs.quorumUp, Quorum: vs.cfg.Quorum,
			Hysteresis: vs.cfg.Hysteresis, LiveWeight: vs.liveWeight(), RealServers: []RealServerStatus{}}
		for _, rs := range vs.rss {
			v.RealServers = append(v.RealServers, rs.status())
		}
		if vs.sorry != nil {
			s := vs.sorry.status()
			v.SorryServer = &s
		}
		out = append(out, v)
	}
	return out
}

func (rs *rsState) status() RealServerStatus {
	return RealServerStatus{Addr: rs.addrPort(), Alive: rs.alive, InPool: rs.set, Weight: rs.weight,
		PoolWeight: rs.poolW, FailedCheckers: rs.failed}
}
