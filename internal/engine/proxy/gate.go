package proxy

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// Refusal. Kernel IPVS answers a new connection that no real server can
// take at once (ip_vs_leave: an ICMP port unreachable, for TCP and UDP),
// so the client's connect() fails with "connection refused". A proxy
// that accepted the connection could only reset it after the client's
// connect() succeeded. So a service that cannot take a new connection
// stops listening: its socket is closed and the kernel refuses for it (a
// TCP SYN gets a RST, a UDP datagram an ICMP port unreachable), and it
// listens again as soon as it can take one.
//
// A service can take a new connection (takesNew) when one of its real
// servers is eligible (sched.Dest.Eligible: available, weight above 0,
// under its -x threshold; for lblc overload does not count), or, when it
// is persistent, while a template leads to an available server (the
// kernel uses a template to a quiesced server), and, for TCP, while it
// holds fewer connections than --tcp-conns-per-service. A UDP service
// keeps its socket while flows are live: they receive and answer through
// it (a one-packet service's reply paths end with the socket).
//
// The check runs on events only, never on a timer: Apply (weights, real
// servers, thresholds), a real server's overload, failed or removed mark
// changing (sched.Dest.OnChange), a TCP service's count of connections
// crossing its bound, the last template or UDP flow of a service ending.
// recheck queues the service; the janitor closes or opens its socket
// under Engine.mu. A socket that cannot be
// bound again (another program took the port) is retried with a back-off
// until it is, or until the service can no longer take connections.
//
// What only the scheduler knows, connection by connection, is still
// answered after accept with a reset (TCP) or a dropped datagram (UDP):
// an sh, dh or mh slot whose server cannot take it, ovf with every server
// at its weight in active connections, a connection arriving while the
// socket is about to close, or the engine-wide --tcp-conns bound.
//
// A service that does not listen still holds its address and port for
// the engine: a new service that could not be bound beside it (the same
// port on the unspecified address, or on an address when the paused one
// is the unspecified one) is refused as if the port were in use.

// gate is the queue of services whose socket may have to close or open.
type gate struct {
	mu    sync.Mutex
	queue []*service
	wake  chan struct{} // capacity 1
}

// Re-binding back-off when another program holds the port.
const (
	rebindMin = 100 * time.Millisecond
	rebindMax = 10 * time.Second
)

// recheck queues s for the janitor to open or close its socket. It only
// takes the gate's own lock, so the data path may call it anywhere.
func (e *Engine) recheck(s *service) {
	if !s.queued.CompareAndSwap(false, true) {
		return
	}
	e.gate.mu.Lock()
	e.gate.queue = append(e.gate.queue, s)
	e.gate.mu.Unlock()
	select {
	case e.gate.wake <- struct{}{}:
	default:
	}
}

// gateRun serves the queued services (the janitor's).
func (e *Engine) gateRun() {
	e.gate.mu.Lock()
	q := e.gate.queue
	e.gate.queue = nil
	e.gate.mu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range q {
		s.queued.Store(false) // an event from now on queues it again
		e.gateLocked(s)
	}
}

// gateLocked opens or closes s's socket as takesNew says; e.mu is held.
func (e *Engine) gateLocked(s *service) {
	if e.closed || e.services[s.key] != s || unserved(s.key) != "" {
		return
	}
	take := s.takesNew()
	switch {
	case take && !s.served():
		if err := s.listen(); err != nil {
			s.rebind = min(max(2*s.rebind, rebindMin), rebindMax)
			e.log.Warn("cannot listen again; new connections are refused until it can", "service", s.key.String(), "error", err, "retry_in", s.rebind)
			if s.retry != nil {
				s.retry.Stop() // one retry pending at most
			}
			s.retry = time.AfterFunc(s.rebind, func() { e.recheck(s) })
			return
		}
		s.rebind = 0
		if s.served() {
			s.logGate("listening again: a real server can take new connections")
		}
	case !take && s.served():
		s.closeSockets()
		s.tcp, s.udp = nil, nil
		e.setPaused(s, true)
		s.logGate("not listening: no real server can take a new connection, so the kernel refuses them")
	}
}

// heldByPausedLocked says which service of the engine holds the port a
// new service k would take, while that one does not listen, or "": the
// same port on the unspecified address and on an address of the same
// family cannot both be bound (Linux refuses two listeners, and UDP
// sockets set no SO_REUSEADDR), so the new one would keep the paused one
// from ever listening again, and take its connections. e.mu is held.
func (e *Engine) heldByPausedLocked(k ipvs.ServiceKey) string {
	w := wildcardOf(k)
	if k.Addr.Unmap().IsUnspecified() {
		if e.pausedPorts[w] > 0 {
			return fmt.Sprintf("%s %s on port %d", k.Proto, familyOf(k), k.Port)
		}
		return ""
	}
	for _, wk := range []ipvs.ServiceKey{w, {Proto: w.Proto, Addr: netip.AddrFrom16(w.Addr.As16()), Port: w.Port}} {
		if s := e.services[wk]; s != nil && s.paused {
			return wk.String()
		}
	}
	return ""
}

// wildcardOf is k's protocol and port on the unspecified address of k's
// family.
func wildcardOf(k ipvs.ServiceKey) ipvs.ServiceKey {
	w := netip.IPv6Unspecified()
	if k.Addr.Unmap().Is4() {
		w = netip.IPv4Unspecified()
	}
	return ipvs.ServiceKey{Proto: k.Proto, Addr: w, Port: k.Port}
}

func familyOf(k ipvs.ServiceKey) string {
	if k.Addr.Unmap().Is4() {
		return "IPv4"
	}
	return "IPv6"
}

// setPaused records whether s, a service the engine serves, does not
// listen, and counts the paused services on an address by protocol, port
// and family for heldByPausedLocked. e.mu is held.
func (e *Engine) setPaused(s *service, p bool) {
	if s.paused == p {
		return
	}
	s.paused = p
	if s.key.Addr.Unmap().IsUnspecified() {
		return // looked up by its key
	}
	w := wildcardOf(s.key)
	if p {
		e.pausedPorts[w]++
		return
	}
	if e.pausedPorts[w]--; e.pausedPorts[w] <= 0 {
		delete(e.pausedPorts, w)
	}
}

// takesNew says whether s could schedule a new connection; e.mu is held.
func (s *service) takesNew() bool {
	if s.key.Proto == ipvs.TCP && s.tcpOpen.Load() >= int64(s.e.tcp.perService) {
		return false
	}
	lblc := s.cfg.Load().Scheduler == "lblc"
	for _, d := range s.dests {
		if d.sd.Eligible() || lblc && d.sd.Available() && d.sd.Weight() > 0 {
			return true
		}
	}
	if s.cfg.Load().Persistent() && s.hasTemplate() {
		return true
	}
	// One-packet reply paths do not count: every new client makes one,
	// server or not, so a flood of them would keep the socket open.
	if u := s.udp; u != nil && u.n.Load() > 0 {
		return true
	}
	return false
}

// hasTemplate says whether a persistence template leads to an available
// real server.
func (s *service) hasTemplate() bool {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	for _, t := range s.templates {
		if t.dest.sd.Available() {
			return true
		}
	}
	return false
}

// logGate logs a socket opened or closed, at most once a second for each
// service: a service at a threshold may close and open often.
func (s *service) logGate(msg string) {
	now := max(s.e.now(), 1)
	if s.gateLog != 0 && now-s.gateLog < int64(time.Second) {
		return
	}
	s.gateLog = now
	s.e.log.Info(msg, "service", s.key.String())
}
