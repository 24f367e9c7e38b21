package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// Limits: what keeps one client, service or loop from taking every file
// descriptor of the process.
//
// The Go runtime raises RLIMIT_NOFILE's soft limit to the hard limit at
// start. UDP flows and one-packet reply paths may hold at most a quarter of
// that (their sockets are the only descriptors a client can make the
// engine open without completing a TCP handshake). Open TCP connections
// (two descriptors each, from accept until both sockets are closed) may
// hold at most half: a quarter of the limit in connections. The last
// quarter is left for the listeners, the admin API, the checkers, VRRP
// and the sync daemon. Each service may hold half of the overall bounds,
// so one flooded service cannot starve the others.

// defaultUDPFlows is the overall bound on UDP flows when Options leave it
// 0 and the descriptor limit allows more.
const defaultUDPFlows = 65536

// defaultTCPConns is the overall bound on open TCP connections when
// Options leave it 0 and the descriptor limit allows more.
const defaultTCPConns = 262144

// tcpBudget is the engine's account of open TCP connections: ones that
// hold their two sockets (an entry in TIME_WAIT or CLOSE holds none).
type tcpBudget struct {
	limit, perService int
	total             atomic.Int64
	refused           atomic.Uint64
	lastLog           atomic.Int64
}

// setTCPLimits sets the bounds from Options, or from the descriptor limit.
func (e *Engine) setTCPLimits() {
	e.tcp.limit, e.tcp.perService = bounds(e.opts.TCPConns, e.opts.TCPConnsPerService, defaultTCPConns)
}

// bounds is an engine-wide bound and a per-service one as given, where
// not given (<= 0) the engine-wide one is def or a quarter of the
// descriptor limit if less (at least 64), the per-service one half the
// engine-wide one; a per-service bound never exceeds the engine-wide one.
func bounds(limit, perService, def int) (int, int) {
	if limit <= 0 {
		limit = def
		if n := fdLimit(); n > 0 {
			limit = int(min(uint64(limit), max(n/4, 64)))
		}
	}
	if perService <= 0 {
		perService = max(limit/2, 1)
	}
	return limit, min(perService, limit)
}

// admitTCP takes a place for a new connection of s; false when s or the
// engine holds as many as it may: the connection is refused (reset) and
// counted.
func (e *Engine) admitTCP(s *service) bool {
	b := &e.tcp
	switch n := s.tcpOpen.Add(1); {
	case n > int64(b.perService):
		s.tcpOpen.Add(-1)
		e.tcpRefused(s, "--tcp-conns-per-service", b.perService)
		return false
	case n == int64(b.perService):
		e.recheck(s) // full: stop listening (gate.go)
	}
	if b.total.Add(1) > int64(b.limit) {
		b.total.Add(-1)
		s.tcpOpen.Add(-1)
		e.tcpRefused(s, "--tcp-conns", b.limit)
		return false
	}
	return true
}

// leaveTCP gives back the place admitTCP took, when the connection's
// sockets are closed.
func (e *Engine) leaveTCP(s *service) {
	if s.tcpOpen.Add(-1) == int64(e.tcp.perService)-1 {
		e.recheck(s) // room again: listen again (gate.go)
	}
	e.tcp.total.Add(-1)
}

// tcpRefused counts a refused connection and logs (at most once a
// second) which bound refused it.
func (e *Engine) tcpRefused(s *service, flag string, bound int) {
	s.tcpRefused.Add(1)
	e.tcp.refused.Add(1)
	now := max(e.now(), 1) // 0: never logged
	last := e.tcp.lastLog.Load()
	if last != 0 && now-last < int64(time.Second) || !e.tcp.lastLog.CompareAndSwap(last, now) {
		return
	}
	e.log.Warn("TCP connection refused: too many open connections", "service", s.key.String(), "bound", bound, "set_with", flag)
}

// udpBudget is the engine's account of UDP flows and reply sockets.
type udpBudget struct {
	limit, perService int
	total             atomic.Int64 // flows and one-packet reply paths of every service

	mu       sync.Mutex
	services map[*udpService]struct{}

	ports sync.Map // portKey -> *atomic.Int32: the engine's UDP reply sockets
}

// setUDPLimits sets the bounds from Options, or from the descriptor limit.
func (e *Engine) setUDPLimits() {
	b := &e.udp
	b.limit, b.perService = bounds(e.opts.UDPFlows, e.opts.UDPFlowsPerService, defaultUDPFlows)
	b.services = make(map[*udpService]struct{})
}

// fdLimit is the process's RLIMIT_NOFILE soft limit, 0 when unknown.
func fdLimit() uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	return r.Cur
}

func (b *udpBudget) register(u *udpService) {
	b.mu.Lock()
	b.services[u] = struct{}{}
	b.mu.Unlock()
}

func (b *udpBudget) unregister(u *udpService) {
	b.mu.Lock()
	delete(b.services, u)
	b.mu.Unlock()
}

// largest returns the service holding the most flows (self on a tie).
func (b *udpBudget) largest(self *udpService) *udpService {
	b.mu.Lock()
	defer b.mu.Unlock()
	best, most := self, self.n.Load()
	for u := range b.services {
		if n := u.n.Load(); n > most {
			best, most = u, n
		}
	}
	return best
}

// reserve takes a place for a one-packet reply path; false when the
// overall or the service's bound is reached.
func (b *udpBudget) reserve(u *udpService, paths *atomic.Int64) bool {
	if paths.Load() >= int64(b.perService) {
		return false
	}
	if b.total.Add(1) > int64(b.limit) {
		b.total.Add(-1)
		return false
	}
	paths.Add(1)
	return true
}

// portKey is the wildcard address of a's family with a's port: the engine's
// reply sockets are bound to it.
func portKey(a netip.AddrPort) netip.AddrPort {
	if a.Addr().Unmap().Is4() {
		return netip.AddrPortFrom(netip.IPv4Unspecified(), a.Port())
	}
	return netip.AddrPortFrom(netip.IPv6Unspecified(), a.Port())
}

func (b *udpBudget) addPort(local netip.AddrPort) {
	v, _ := b.ports.LoadOrStore(portKey(local), new(atomic.Int32))
	v.(*atomic.Int32).Add(1)
}

func (b *udpBudget) removePort(local netip.AddrPort) {
	k := portKey(local)
	if v, ok := b.ports.Load(k); ok && v.(*atomic.Int32).Add(-1) <= 0 {
		b.ports.CompareAndDelete(k, v)
	}
}

// ownReplySocket says whether client is one of the engine's own UDP reply
// sockets: a datagram the engine sent came back to one of its services.
// While a reply socket holds its port on the wildcard address, no other
// socket of the host holds it (of the same family); a datagram from that
// port can only be the engine's, or one a client sent before closing its
// socket, which could not have received an answer anyway.
func (b *udpBudget) ownReplySocket(client netip.AddrPort) bool {
	if _, ok := b.ports.Load(portKey(client)); !ok {
		return false
	}
	return isLocalAddr(client.Addr())
}

// isLocalAddr says whether a is an address of this host.
func isLocalAddr(a netip.Addr) bool {
	a = a.Unmap()
	if a.IsLoopback() || a.IsUnspecified() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, ia := range addrs {
		if n, ok := ia.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == a.WithZone("") {
				return true
			}
		}
	}
	return false
}

// outgoing holds the local address and port of every TCP connection the
// engine has open to a real server, with the real server's address: a
// client connection arriving from one of them at that address is the
// engine talking to itself. Both ends count: on loopback Linux lets a
// real client and an outgoing socket share a local port when their
// peers differ.
//
// A socket's local port is known only once connect has started, and on
// loopback the kernel can complete the handshake, and another goroutine
// accept the connection, before the connecting one records it. So the
// connects in flight are counted by real server address (connecting,
// connected): a connection that arrives at an address a connect of the
// engine's own is still going to waits for it to be recorded.
type outgoing struct {
	shards [shards]struct {
		mu      sync.Mutex
		m       map[netip.AddrPort]outConn
		pending map[netip.AddrPort]int // connects in flight, by real server
		_       [32]byte
	}
	inFlight atomic.Int64 // connects in flight, all real servers
}

// connecting notes a connect to remote about to start; connected (with
// the same remote) ends it, whatever its outcome, after add.
func (o *outgoing) connecting(remote netip.AddrPort) {
	o.inFlight.Add(1)
	sh := &o.shards[remote.Port()%shards]
	sh.mu.Lock()
	if sh.pending == nil {
		sh.pending = make(map[netip.AddrPort]int)
	}
	sh.pending[remote]++
	sh.mu.Unlock()
}

func (o *outgoing) connected(remote netip.AddrPort) {
	sh := &o.shards[remote.Port()%shards]
	sh.mu.Lock()
	if sh.pending[remote]--; sh.pending[remote] <= 0 {
		delete(sh.pending, remote)
	}
	sh.mu.Unlock()
	o.inFlight.Add(-1)
}

// pendingTo reports whether a connect to remote is in flight.
func (o *outgoing) pendingTo(remote netip.AddrPort) bool {
	sh := &o.shards[remote.Port()%shards]
	sh.mu.Lock()
	n := sh.pending[remote]
	sh.mu.Unlock()
	return n > 0
}

// outConn is one connection to a real server: the tcpConn and the real
// server's address it connected to.
type outConn struct {
	c      *tcpConn
	remote netip.AddrPort
}

func (o *outgoing) add(local, remote netip.AddrPort, c *tcpConn) {
	sh := &o.shards[local.Port()%shards]
	sh.mu.Lock()
	if sh.m == nil {
		sh.m = make(map[netip.AddrPort]outConn)
	}
	sh.m[local] = outConn{c: c, remote: remote}
	sh.mu.Unlock()
}

func (o *outgoing) remove(local netip.AddrPort, c *tcpConn) {
	sh := &o.shards[local.Port()%shards]
	sh.mu.Lock()
	if sh.m[local].c == c {
		delete(sh.m, local)
	}
	sh.mu.Unlock()
}

// loops reports whether a connection from client is one of the engine's
// own connections to a real server: its local address is client and the
// real server it went to is where the connection arrived, which local
// says (called only when client matched or a connect is in flight, as it
// costs a system call). When a connect of the engine's own to where the
// connection arrived is in flight, it waits (up to loopWait) for that
// connect to be recorded before it answers.
func (o *outgoing) loops(client netip.AddrPort, local func() netip.AddrPort) bool {
	if oc, ok := o.lookup(client); ok {
		return oc.remote == local()
	}
	if o.inFlight.Load() == 0 {
		return false
	}
	at := local()
	for deadline := time.Now().Add(loopWait); o.pendingTo(at) && time.Now().Before(deadline); {
		time.Sleep(50 * time.Microsecond)
	}
	oc, ok := o.lookup(client)
	return ok && oc.remote == at
}

// loopWait bounds how long loops waits for a connect in flight to be
// recorded: a connect that takes longer is to a real server elsewhere,
// whose answer did not come from this engine.
const loopWait = 100 * time.Millisecond

func (o *outgoing) lookup(client netip.AddrPort) (outConn, bool) {
	sh := &o.shards[client.Port()%shards]
	sh.mu.Lock()
	oc, ok := sh.m[client]
	sh.mu.Unlock()
	return oc, ok
}

// loopRefused counts and logs (at most once a second) a connection or
// flow refused because it came from the engine itself.
func (e *Engine) loopRefused(s *service, client netip.AddrPort) {
	e.loopsRefused.Add(1)
	now := e.now()
	last := e.lastLoopLog.Load()
	if now-last < int64(time.Second) || !e.lastLoopLog.CompareAndSwap(last, now) {
		return
	}
	e.log.Warn("connection from gvsd itself refused: a real server leads back to a virtual service of this gvsd (a forwarding loop)",
		"service", s.key.String(), "client", client.String())
}

// loopsTo says which of the engine's listeners (or the service being
// configured, svc) a real server at d of protocol proto would reach, or
// "" when none: a real server that is one of gvsd's own virtual services
// would turn each connection into a chain of connections to itself.
func (e *Engine) loopsTo(svc *ipvs.Service, d netip.AddrPort) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.loopsToLocked(svc, d)
}

// loopsToLocked is loopsTo with e.mu held.
// Only the services a real server at d could reach are looked at (the
// one at d's address, or at the unspecified address, with d's protocol
// and port): walking every service for every real server made restoring
// a table quadratic (10,000 services: 33 s).
func (e *Engine) loopsToLocked(svc *ipvs.Service, d netip.AddrPort) string {
	var keys []ipvs.ServiceKey
	if d.Addr().Unmap().IsUnspecified() {
		keys = make([]ipvs.ServiceKey, 0, len(e.services)+1)
		for k := range e.services {
			keys = append(keys, k)
		}
	} else {
		da := d.Addr().Unmap()
		addrs := []netip.Addr{da, netip.IPv6Unspecified()}
		if da.Is4() {
			addrs = append(addrs, netip.AddrFrom16(da.As16()), netip.IPv4Unspecified(), netip.AddrFrom16(netip.IPv4Unspecified().As16()))
		}
		for _, a := range addrs {
			k := ipvs.ServiceKey{Proto: svc.Proto, Addr: a, Port: d.Port()}
			if _, ok := e.services[k]; ok {
				keys = append(keys, k)
			}
		}
	}
	keys = append(keys, svc.ServiceKey)
	local := -1 // unknown yet: isLocalAddr lists the interfaces
	for _, k := range keys {
		if k.Proto != svc.Proto || k.IsFWMark() || k.Port == 0 || k.Port != d.Port() || unserved(k) != "" {
			continue
		}
		la, da := k.Addr.Unmap(), d.Addr().Unmap()
		if la.Is4() != da.Is4() {
			continue
		}
		hit := la == da
		if !hit && (la.IsUnspecified() || da.IsUnspecified()) {
			if local < 0 {
				local = 0
				if isLocalAddr(da) {
					local = 1
				}
			}
			hit = local == 1 && (la.IsUnspecified() || isLocalAddr(la))
		}
		if hit {
			return k.String()
		}
	}
	return ""
}

// checkLoop refuses a real server that is one of this engine's own
// virtual services.
func (e *Engine) checkLoop(svc *ipvs.Service, d *ipvs.Dest) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.checkLoopLocked(svc, d)
}

// checkLoopLocked is checkLoop with e.mu held (Apply).
func (e *Engine) checkLoopLocked(svc *ipvs.Service, d *ipvs.Dest) error {
	if to := e.loopsToLocked(svc, d.AddrPort()); to != "" {
		return fmt.Errorf("real server %s is the proxy engine's own virtual service %s: every connection would loop back into gvsd; use the real server's own address and port", d.AddrPort(), to)
	}
	return nil
}

var _ engine.Stater = (*Engine)(nil)

// State returns the engine's bounds and counters: open TCP connections
// and those refused, UDP flows kept, evicted and refused, per service,
// and loops refused.
func (e *Engine) State() engine.State {
	st := engine.State{
		Engine:                 e.Name(),
		FDLimit:                fdLimit(),
		TCPConnLimit:           e.tcp.limit,
		TCPConnLimitPerService: e.tcp.perService,
		TCPConns:               int(e.tcp.total.Load()),
		TCPRefused:             e.tcp.refused.Load(),
		UDPFlowLimit:           e.udp.limit,
		UDPFlowLimitPerService: e.udp.perService,
		UDPFlows:               int(e.udp.total.Load()),
		LoopsRefused:           e.loopsRefused.Load(),
		Services:               []engine.ServiceState{},
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range e.order {
		ss := engine.ServiceState{Service: s.key.String(), Listening: s.served()}
		switch {
		case s.key.Proto == ipvs.UDP && s.udp == nil: // not listening (gate.go)
		case s.udp != nil:
			u := s.udp
			u.mu.Lock()
			ss.Flows = len(u.flows) + int(u.paths.Load())
			ss.Sockets = len(u.socks)
			ss.Evicted = u.evicted.Load()
			ss.Refused = u.refused.Load()
			u.mu.Unlock()
			st.UDPSockets += ss.Sockets
		case s.key.Proto == ipvs.TCP:
			ss.TCPConns = int(s.tcpOpen.Load())
			ss.Refused = s.tcpRefused.Load()
		default:
			continue
		}
		st.Services = append(st.Services, ss)
	}
	return st
}
