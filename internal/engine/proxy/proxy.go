// Package proxy is the userspace data plane: a full proxy for ipvsadm's
// masquerading method (-m). It listens on each virtual service's address
// and port, schedules every new TCP connection or UDP client with the
// service's IPVS scheduler, connects to the real server and moves data
// both ways, optionally telling the real server the client's address with
// a PROXY protocol v1 or v2 header. It keeps IPVS's connection table
// (states, timeouts, persistence templates), connection counters,
// statistics and rate estimator, so gvsadm shows what ipvsadm would.
//
// On Linux, TCP connections live in event loops, one per GOMAXPROCS (an
// edge-triggered epoll set each, non-blocking system calls, pooled 16 KiB
// buffers held only while data waits; see loop_linux.go). Elsewhere each
// direction of a connection is a goroutine that copies through a buffer
// and switches to splice for bulk data. UDP flows share a pool of reply
// sockets, each read by a goroutine (udp.go).
//
// Limits (limits.go): UDP flows are bounded per service and overall
// (Options.UDPFlows, UDPFlowsPerService; by default a quarter of the
// descriptor limit, half of that per service), the least recently used
// evicted to make room and counted, so a flood of source ports cannot take
// the descriptors the listeners, TCP connections and the admin API need.
// A real server that is one of the engine's own virtual services is
// refused by CheckDest; a loop it cannot see (a real server that leads
// back to gvsd) is cut at the first connection or datagram that arrives
// from the engine's own socket. State reports the bounds and counters.
//
// Choices where a proxy cannot be the kernel:
//   - A TCP connection is SYN_RECV while the proxy connects to the real
//     server, ESTABLISHED while both sides are open, FIN_WAIT after the
//     client half-closes, CLOSE_WAIT after the server half-closes, and
//     TIME_WAIT for the tcpfin timeout once both have closed (the kernel
//     keeps TIME_WAIT a fixed 120 s, the default tcpfin). A reset leaves a
//     CLOSE entry for 10 s. An entry idle for its state's timeout is
//     closed with a reset on both sides and removed.
//   - Packets are not seen: a TCP transfer (one read, or what splice
//     moved in a tick) counts one packet per 1460 bytes or part of them,
//     a UDP datagram one packet. Counters are
//     updated at least every Options.Tick while data flows.
//   - A real server that refuses or does not answer a connection is
//     skipped by the schedulers for Options.FailBackoff (2 s by default);
//     the client that hit it gets a reset, never a retry.
//   - A new connection that no real server can take is answered by the
//     kernel's IPVS with an ICMP port unreachable (connect() fails with
//     "connection refused"). The proxy stops listening while its service
//     can take none (gate.go), so the kernel refuses for it: a TCP SYN
//     gets a RST (the same "connection refused"), a UDP datagram a port
//     unreachable. A UDP service keeps its socket while flows are live
//     (their datagrams arrive on it) and drops new clients' datagrams
//     meanwhile; a persistent service keeps listening while a template
//     leads to an available server. What only the scheduler can say after
//     accept (an sh, dh or mh slot, ovf's busy servers), a connection that
//     arrives as the socket closes and the engine-wide TCP bound are
//     answered with a reset after accept (UDP: dropped).
//   - Firewall-mark services, port 0 (all ports) services and SCTP cannot
//     be proxied: they are kept and listed, with a warning, but not served.
//   - UDP services send no PROXY header. Without -o each client address
//     is one flow to one server; with one-packet scheduling (-o) every
//     datagram is scheduled and counted on its own and never listed, and
//     replies come back through a per-client socket that lives for
//     Options.OnePacketWindow after the last datagram (udp_ops.go).
//   - A UDP flow evicted to make room for a new one leaves the table as an
//     expired one does; the connection it counted stays counted. The
//     kernel keeps UDP entries until their timeout (its table has no
//     bound but memory).
package proxy

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gvs-lb/gvs/internal/clock"
	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/sched"
)

// Options tune the engine; the zero value is usable.
type Options struct {
	// DialTimeout bounds connecting to a real server (default 2 s).
	DialTimeout time.Duration
	// FailBackoff is how long a real server that could not be reached is
	// skipped for new connections (default 2 s).
	FailBackoff time.Duration
	// Tick is how often a busy or idle connection wakes up to update the
	// counters and check its timeout (default 1 s).
	Tick time.Duration
	// Grace bounds how long Close waits for established connections, on
	// top of Close's context (0: only the context).
	Grace time.Duration
	// Clock is the engine's time (nil: the system clock): connection and
	// persistence timeouts, FailBackoff and Grace are measured on it.
	// Connections still look at it every Tick of real time.
	Clock clock.Clock
	// FreeBind lets a service listen on a virtual address this host does
	// not hold yet (IP_FREEBIND, Linux), as a VRRP backup must.
	FreeBind bool
	// OnePacketWindow is how long a client of a one-packet (-o) UDP
	// service can still get replies after its last datagram (default 5 s,
	// at most the udp timeout).
	OnePacketWindow time.Duration
	// UDPFlows bounds the UDP flows and one-packet reply paths of all
	// services together (default: a quarter of the descriptor limit,
	// RLIMIT_NOFILE, at most 65536). UDPFlowsPerService bounds one
	// service's (default: half of UDPFlows). See udp.go.
	UDPFlows, UDPFlowsPerService int
	// TCPConns bounds the open TCP connections (two descriptors each) of
	// all services together (default: a quarter of the descriptor limit,
	// at most 262144); TCPConnsPerService bounds one service's (default:
	// half of TCPConns). A service at its bound stops listening until a
	// connection ends (gate.go); a connection over the engine-wide bound
	// is accepted and reset at once, and counted (State). See limits.go.
	TCPConns, TCPConnsPerService int
}

var errDeadline = os.ErrDeadlineExceeded

// Engine is the proxy data plane. It implements engine.Engine.
type Engine struct {
	log    *slog.Logger
	opts   Options
	clock  clock.Clock
	epoch  time.Time // now's zero, on clock
	dialer net.Dialer
	ctx    context.Context // ends at Close
	cancel context.CancelFunc

	tcpTimeout, finTimeout, udpTimeout atomic.Int64 // nanoseconds

	mu       sync.Mutex
	services map[ipvs.ServiceKey]*service
	order    []*service // the snapshot's order
	warned   map[string]bool
	closed   bool

	table         connTable
	timeWait      expiryQueue
	closing       expiryQueue
	loops         sync.WaitGroup // accept loops, UDP readers and flows
	live          sync.WaitGroup // TCP connections with open sockets
	janitorDone   chan struct{}
	lastNoDestLog atomic.Int64
	udp           udpBudget
	tcp           tcpBudget
	out           outgoing      // our TCP connections to real servers, by local address
	loopsRefused  atomic.Uint64 // connections and flows from the engine itself
	lastLoopLog   atomic.Int64
	spliceOnly    bool // tests and benchmarks: TCP data moves with splice only
	goroutines    bool // tests and benchmarks: the portable TCP data path even where loops run
	evloops       []*evLoop
	gate          gate                    // services whose socket may have to close or open (gate.go)
	pausedPorts   map[ipvs.ServiceKey]int // services not listening, by wildcardOf (gate.go)
}

var _ engine.Engine = (*Engine)(nil)

// New returns an engine serving nothing until Apply. Close stops it.
func New(logger *slog.Logger, opts Options) *Engine {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if opts.DialTimeout <= 0 {
		opts.DialTimeout = 2 * time.Second
	}
	if opts.FailBackoff <= 0 {
		opts.FailBackoff = 2 * time.Second
	}
	if opts.Tick <= 0 {
		opts.Tick = time.Second
	}
	clk := opts.Clock
	if clk == nil {
		clk = clock.System
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Engine{
		log:         logger,
		opts:        opts,
		clock:       clk,
		epoch:       clk.Now(),
		dialer:      net.Dialer{Timeout: opts.DialTimeout},
		ctx:         ctx,
		cancel:      cancel,
		services:    make(map[ipvs.ServiceKey]*service),
		warned:      make(map[string]bool),
		janitorDone: make(chan struct{}),
		gate:        gate{wake: make(chan struct{}, 1)},
		pausedPorts: make(map[ipvs.ServiceKey]int),
	}
	e.timeWait.state = stTimeWait
	e.closing.state = stClose
	e.setTimeouts(ipvs.DefaultTimeouts)
	e.setUDPLimits()
	e.setTCPLimits()
	if err := e.startLoops(); err != nil {
		e.log.Warn("TCP data moves with a goroutine per direction", "reason", err)
		e.evloops = nil
	}
	go e.janitor(ctx)
	return e
}

// now is the engine's monotonic clock in nanoseconds.
func (e *Engine) now() int64 { return int64(e.clock.Now().Sub(e.epoch)) }

// Name is "proxy".
func (e *Engine) Name() string { return "proxy" }

// CheckDest accepts only masquerading (-m): a proxy forwards by opening
// its own connection to the real server. It refuses a real server that is
// one of the engine's own virtual services (a forwarding loop).
func (e *Engine) CheckDest(svc *ipvs.Service, d *ipvs.Dest) error {
	if err := CheckDest(svc, d); err != nil {
		return err
	}
	return e.checkLoop(svc, d)
}

// checkDestLocked is CheckDest with e.mu held (Apply).
func (e *Engine) checkDestLocked(svc *ipvs.Service, d *ipvs.Dest) error {
	if err := CheckDest(svc, d); err != nil {
		return err
	}
	return e.checkLoopLocked(svc, d)
}

// CheckDest is what the proxy engine's CheckDest says of the forwarding
// method, without an engine (so without the loop check): gvsd -t checks
// a configuration with it.
func CheckDest(svc *ipvs.Service, d *ipvs.Dest) error {
	switch d.Method {
	case ipvs.Masq:
		return nil
	case ipvs.Route:
		return errors.New("the proxy engine forwards only with -m (masquerading); -g (direct routing) needs the xdp engine (gvsd --engine xdp)")
	case ipvs.Tunnel:
		return errors.New("the proxy engine forwards only with -m (masquerading); -i (tunneling) needs the xdp engine (gvsd --engine xdp)")
	case ipvs.FullNAT:
		return errors.New("the proxy engine forwards only with -m (masquerading); --fullnat needs the xdp engine (gvsd --engine xdp)")
	}
	return fmt.Errorf("the proxy engine forwards only with -m (masquerading), not %s", d.Method)
}

func (e *Engine) setTimeouts(t ipvs.Timeouts) {
	def := ipvs.DefaultTimeouts
	sec := func(v, d uint32) int64 {
		if v == 0 {
			v = d
		}
		return int64(v) * int64(time.Second)
	}
	e.tcpTimeout.Store(sec(t.TCP, def.TCP))
	e.finTimeout.Store(sec(t.TCPFin, def.TCPFin))
	e.udpTimeout.Store(sec(t.UDP, def.UDP))
}

// Apply makes the batch's changes (see package engine), all or none: it
// first makes every scheduler and binds the sockets of new services, and
// refuses the batch, closing those sockets, when one cannot be (its
// address cannot be bound, its scheduler is unknown). Only the services
// the batch touches are rebuilt.
func (e *Engine) Apply(batch []ipvs.Command) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return errors.New("the proxy engine is closed")
	}
	p, err := engine.Fold(batch, func(k ipvs.ServiceKey) (ipvs.ServiceConfig, bool) {
		s := e.services[k]
		if s == nil {
			return ipvs.ServiceConfig{}, false
		}
		return s.config(), true
	})
	if err != nil {
		return err
	}
	// What can fail, first: real servers, schedulers, then the new
	// services' sockets.
	for _, u := range p.Updates {
		if u.Config == nil {
			continue
		}
		for i := range u.Config.Dests {
			if err := e.checkDestLocked(&u.Config.Service, &u.Config.Dests[i]); err != nil {
				return fmt.Errorf("%s -> %s: %w", u.Key, u.Config.Dests[i].AddrPort(), err)
			}
		}
		if s := e.services[u.Key]; s == nil || u.Recreated || s.schedKey != schedKey(&u.Config.Service) {
			if _, err := sched.New(u.Config.Scheduler, u.Config.Flags); err != nil {
				return fmt.Errorf("%s: %w", u.Key, err)
			}
		}
	}
	started := map[ipvs.ServiceKey]*service{}
	for _, u := range p.Updates {
		if !u.Added() || u.Recreated {
			continue
		}
		s, err := e.startService(u.Config)
		if err != nil {
			for _, s := range started {
				s.closeSockets()
				e.setPaused(s, false)
			}
			return err
		}
		started[u.Key] = s
	}
	// Then what cannot.
	reorder := false
	for _, u := range p.Updates {
		s := e.services[u.Key]
		switch {
		case u.Config == nil:
			if s != nil {
				e.stopService(s)
				delete(e.services, u.Key)
				reorder = true
			}
		case started[u.Key] != nil:
			s = started[u.Key]
			e.services[u.Key] = s
			e.logServing(s)
			e.warnUnserved(s)
		case u.Recreated:
			// A new service on the old one's socket: fresh counters,
			// real servers and scheduler.
			s.reset()
			s.update(u.Config)
			reorder = true
		default:
			s.update(u.Config)
			e.warnUnserved(s)
		}
	}
	if reorder {
		gone := map[*service]bool{}
		for _, u := range p.Updates {
			if u.Removed() {
				gone[e.services[u.Key]] = true
			}
		}
		e.order = slices.DeleteFunc(e.order, func(s *service) bool { return gone[s] || e.services[s.key] != s })
	}
	for _, k := range p.Added {
		e.order = append(e.order, e.services[k])
	}
	// A service that no real server can take stops listening, one that
	// can listens again, before Apply returns (gate.go).
	for _, u := range p.Updates {
		if s := e.services[u.Key]; s != nil {
			e.gateLocked(s)
		}
	}
	if p.Timeouts != nil {
		e.setTimeouts(*p.Timeouts)
	}
	return nil
}

// unserved says why a service cannot be proxied and which engines serve
// it, or "".
func unserved(k ipvs.ServiceKey) string {
	switch {
	case k.IsFWMark():
		return "a firewall-mark service; use the ipvs engine (gvsd --engine ipvs)"
	case k.Proto != ipvs.TCP && k.Proto != ipvs.UDP:
		return "an " + k.Proto.String() + " service; use the ipvs engine (gvsd --engine ipvs)"
	case k.Port == 0:
		return "a port 0 (all ports) service; use the xdp or ipvs engine (gvsd --engine xdp|ipvs)"
	}
	return ""
}

// Unserved says why the proxy engine keeps a service without serving it,
// and which engine does, or "" when it serves it: gvsd -t warns with it.
func Unserved(k ipvs.ServiceKey) string {
	if why := unserved(k); why != "" {
		return "the proxy engine keeps but does not serve " + why
	}
	return ""
}

func (e *Engine) warnUnserved(s *service) {
	if why := unserved(s.key); why != "" {
		e.warnOnce(s.key.String()+"/unserved", "service kept but not served: the proxy engine cannot serve "+why, s)
	}
	if s.key.Proto == ipvs.UDP && s.cfg.Load().ProxyProtocol != 0 {
		e.warnOnce(s.key.String()+"/pp", "no PROXY protocol header is sent on a UDP service", s)
	}
}

func (e *Engine) warnOnce(key, msg string, s *service) {
	if !e.warned[key] {
		e.warned[key] = true
		e.log.Warn(msg, "service", s.key.String())
	}
}

// startService sets up a new service and opens its socket.
func (e *Engine) startService(sc *ipvs.ServiceConfig) (*service, error) {
	s := &service{e: e, key: sc.ServiceKey, vip: sc.AddrPort()}
	if err := s.update(sc); err != nil {
		return nil, err
	}
	if unserved(s.key) != "" {
		return s, nil
	}
	if o := e.heldByPausedLocked(s.key); o != "" {
		return nil, fmt.Errorf("%s: the proxy engine cannot listen: its service %s holds the port (it does not listen while no real server can take a connection); use another virtual port", s.key, o)
	}
	if err := s.listen(); err != nil {
		return nil, err
	}
	return s, nil
}

// listen opens the service's socket and starts accepting or reading on
// it, or, when no real server can take a connection, only checks that it
// can be bound (gate.go); e.mu is held.
func (s *service) listen() error {
	e := s.e
	lc := net.ListenConfig{}
	if e.opts.FreeBind {
		lc.Control = freeBind
	}
	addr := s.vip.String()
	switch s.key.Proto {
	case ipvs.TCP:
		ln, err := lc.Listen(e.ctx, networkOf("tcp", s.vip.Addr()), addr)
		if err != nil {
			return bindError(s.key, err)
		}
		if !s.takesNew() {
			ln.Close()
			e.setPaused(s, true)
			return nil
		}
		if len(e.evloops) > 0 && !e.goroutines {
			if err := s.listenLoops(ln.(*net.TCPListener)); err != nil {
				return err
			}
			break
		}
		tl := &tcpListener{ln: ln.(*net.TCPListener), done: make(chan struct{})}
		s.tcp = tl
		e.loops.Add(1)
		go s.acceptLoop(tl)
	case ipvs.UDP:
		pc, err := lc.ListenPacket(e.ctx, networkOf("udp", s.vip.Addr()), addr)
		if err != nil {
			return bindError(s.key, err)
		}
		if !s.takesNew() {
			pc.Close()
			e.setPaused(s, true)
			return nil
		}
		s.udp = newUDPService(s, pc.(*net.UDPConn))
		e.loops.Add(1)
		go s.udp.readLoop()
	}
	e.setPaused(s, false)
	return nil
}

func (e *Engine) logServing(s *service) {
	switch {
	case s.served():
		e.log.Info("serving", "service", s.key.String(), "scheduler", s.cfg.Load().Scheduler)
	case unserved(s.key) == "":
		e.log.Info("not listening until a real server can take a new connection (the kernel refuses them meanwhile)", "service", s.key.String(), "scheduler", s.cfg.Load().Scheduler)
	}
}

// bindError says why a virtual address could not be bound and what to do.
func bindError(k ipvs.ServiceKey, err error) error {
	hint := "check the virtual address and port"
	switch {
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		hint = fmt.Sprintf("%s is not an address of this host: add it (ip addr add %s dev lo) or let gvsd bind it before it is up (free bind)", k.Addr, k.Addr)
	case errors.Is(err, syscall.EADDRINUSE):
		hint = "another program already uses this port: stop it or choose another virtual port"
	case errors.Is(err, syscall.EACCES):
		hint = "ports below 1024 need root or CAP_NET_BIND_SERVICE"
	}
	return fmt.Errorf("%s: the proxy engine cannot listen: %w; %s", k, err, hint)
}

// stopService closes the service's socket; its TCP connections finish on
// their own, its UDP flows end with the socket they reply from.
func (e *Engine) stopService(s *service) {
	s.closeSockets()
	e.setPaused(s, false)
	for _, d := range s.dests {
		d.sd.MarkRemoved()
	}
	s.dropTemplates()
	e.log.Info("stopped serving", "service", s.key.String())
}

// noDest logs, at most once a second, that a connection found no server.
func (e *Engine) noDest(s *service) {
	now := e.now()
	last := e.lastNoDestLog.Load()
	if now-last < int64(time.Second) || !e.lastNoDestLog.CompareAndSwap(last, now) {
		return
	}
	e.log.Warn("no destination available", "service", s.key.String())
}

// Status returns every service with its counters and rates, real servers
// in the kernel's order.
func (e *Engine) Status() []ipvs.ServiceStatus {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]ipvs.ServiceStatus, 0, len(e.order))
	for _, s := range e.order {
		out = append(out, s.status())
	}
	return out
}

// StatusOf returns the status of the service key names.
func (e *Engine) StatusOf(key ipvs.ServiceKey) (ipvs.ServiceStatus, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s := e.services[key]
	if s == nil {
		return ipvs.ServiceStatus{}, false
	}
	return s.status(), true
}

// status is the service with its counters and rates; the engine's lock
// is held.
func (s *service) status() ipvs.ServiceStatus {
	cfg := *s.cfg.Load()
	cfg.LocalAddrs = slices.Clone(cfg.LocalAddrs)
	ss := ipvs.ServiceStatus{Service: cfg, Dests: make([]ipvs.DestStatus, 0, len(s.dests))}
	ss.Stats, ss.Rates = s.stats.snapshot()
	for _, d := range s.dests {
		ds := ipvs.DestStatus{
			Dest:         d.cfg,
			ActiveConns:  uint32(max(d.sd.ActiveConns(), 0)),
			InactConns:   uint32(max(d.sd.InactConns(), 0)),
			PersistConns: uint32(max(d.sd.PersistConns(), 0)),
		}
		ds.Stats, ds.Rates = d.stats.snapshot()
		ss.Dests = append(ss.Dests, ds)
	}
	return ss
}

// Conns lists the connection table: TCP connections, UDP flows and
// persistence templates, sorted by virtual address, client and server.
func (e *Engine) Conns() []ipvs.Conn {
	now := e.now()
	out := e.table.entries(now, nil)
	e.mu.Lock()
	for _, s := range e.order {
		if s.udp != nil {
			out = s.udp.entries(now, out)
		}
		out = s.templateConns(now, out)
	}
	e.mu.Unlock()
	slices.SortFunc(out, func(a, b ipvs.Conn) int {
		return cmp.Or(
			cmp.Compare(a.Proto, b.Proto),
			a.Virtual.Compare(b.Virtual),
			a.Client.Compare(b.Client),
			a.Dest.Compare(b.Dest),
			cmp.Compare(a.Expires, b.Expires),
		)
	})
	return out
}

// Zero clears the counters and rates of one service and its real servers,
// or of all services when key is nil (ipvsadm -Z).
func (e *Engine) Zero(key *ipvs.ServiceKey) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.order {
		if key != nil && s.key != *key {
			continue
		}
		s.stats.zero()
		for _, d := range s.dests {
			d.stats.zero()
		}
	}
}

// Close stops accepting connections and serving UDP, waits until the
// established TCP connections finish or ctx (and Options.Grace) ends, then
// resets what is left and releases everything. It returns ctx's error
// when connections had to be cut. Status keeps listing the services, with
// their draining connections, until the end.
func (e *Engine) Close(ctx context.Context) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	for _, s := range e.order {
		e.stopService(s)
	}
	e.mu.Unlock()
	e.loops.Wait()

	var graceOver <-chan time.Time
	if e.opts.Grace > 0 {
		var stop func()
		graceOver, stop = e.clock.After(e.opts.Grace)
		defer stop()
	}
	done := make(chan struct{})
	go func() {
		e.live.Wait()
		close(done)
	}()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
	case <-graceOver:
		err = context.DeadlineExceeded
	}
	if err != nil {
		e.cancel() // ends connects in progress
		e.cutLoops()
		e.table.each(func(c *tcpConn) { c.abort() })
		<-done
	}
	e.cancel()
	e.stopLoops()
	<-e.janitorDone
	return err
}
