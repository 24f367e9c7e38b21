package proxy

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/sched"
)

// tcpState is a connection's state, named and timed as IPVS's TCP states.
type tcpState uint32

const (
	stSynRecv     tcpState = iota // connecting to the real server
	stEstablished                 // both sides open
	stFinWait                     // the client half-closed
	stCloseWait                   // the real server half-closed
	stTimeWait                    // both closed; listed until the tcpfin timeout
	stClose                       // reset; listed for 10 s
)

var stateNames = [...]string{"SYN_RECV", "ESTABLISHED", "FIN_WAIT", "CLOSE_WAIT", "TIME_WAIT", "CLOSE"}

func (s tcpState) String() string { return stateNames[s] }

// Fixed timeouts of the states ipvsadm --set does not change
// (ip_vs_proto_tcp.c tcp_timeouts).
const (
	synRecvTimeout   = 60 * time.Second
	closeWaitTimeout = 60 * time.Second
	closeTimeout     = 10 * time.Second
)

// stateTimeout is how long a connection may stay idle in a state.
func (e *Engine) stateTimeout(s tcpState) int64 {
	switch s {
	case stSynRecv:
		return int64(synRecvTimeout)
	case stEstablished:
		return e.tcpTimeout.Load()
	case stFinWait, stTimeWait:
		return e.finTimeout.Load()
	case stCloseWait:
		return int64(closeWaitTimeout)
	}
	return int64(closeTimeout)
}

// tcpListener is a TCP service's listening socket and its accept loop.
type tcpListener struct {
	ln   *net.TCPListener
	done chan struct{}
}

func (l *tcpListener) close() {
	l.ln.Close()
	<-l.done
}

// acceptLoop accepts client connections until the listener is closed.
func (s *service) acceptLoop(l *tcpListener) {
	e := s.e
	defer e.loops.Done()
	defer close(l.done)
	backoff := 5 * time.Millisecond
	for {
		c, err := l.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: wait a little.
			e.log.Warn("accept failed", "service", s.key.String(), "error", err, "retry_in", backoff)
			time.Sleep(backoff)
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		e.live.Add(1)
		go s.serveTCP(c)
	}
}

// tcpConn is one proxied TCP connection and its connection table entry.
type tcpConn struct {
	svc    *service
	dest   *dest
	tmpl   *template
	client netip.AddrPort
	shard  uint32

	last     atomic.Int64 // engine clock of the last data moved
	state    atomic.Uint32
	closedAt atomic.Int64   // engine clock when it entered TIME_WAIT or CLOSE
	out      netip.AddrPort // local address of the socket to the server while open (Engine.out)

	mu      sync.Mutex // state changes and the end of the sockets
	socks   sockPair   // nil once closed
	halves  uint8      // clientDone | serverDone
	final   bool       // sockets closed
	expired bool       // removed from the table
}

const (
	clientDone uint8 = 1 << iota
	serverDone
)

// sockPair is a connection's two sockets as its data path holds them.
// The methods are called with tcpConn.mu held, from the data path.
type sockPair interface {
	closeWrite(toServer bool) error // pass a FIN on
	close()                         // close both
	reset()                         // close both with a RST
}

// netPair is the portable data path's pair: two goroutines copy between
// them.
type netPair struct{ cc, sc *net.TCPConn }

func (p *netPair) closeWrite(toServer bool) error {
	if toServer {
		return p.sc.CloseWrite()
	}
	return p.cc.CloseWrite()
}

func (p *netPair) close() {
	p.cc.Close()
	p.sc.Close()
}

func (p *netPair) reset() {
	reset(p.cc)
	reset(p.sc)
}

func (c *tcpConn) getState() tcpState { return tcpState(c.state.Load()) }

// setState changes the state and moves the connection between the
// server's active and inactive counters as set_tcp_state does: only
// ESTABLISHED counts as active. c.mu is held.
func (c *tcpConn) setState(s tcpState) {
	old := c.getState()
	if old == s {
		return
	}
	switch {
	case old == stEstablished:
		c.dest.sd.Move(sched.Active, sched.Inactive)
	case s == stEstablished:
		c.dest.sd.Move(sched.Inactive, sched.Active)
	}
	c.state.Store(uint32(s))
}

// scheduleTCP admits a new client connection within the bounds and picks
// its real server; local is the connection's local address. A connection
// it refuses (over a bound, from gvsd itself, no real server) is reset
// with reset, counted and logged, and d is nil.
func (s *service) scheduleTCP(client netip.AddrPort, local func() netip.AddrPort, reset func()) (d *dest, t *template) {
	e := s.e
	if !e.admitTCP(s) {
		reset()
		return nil, nil
	}
	if e.out.loops(client, local) {
		e.loopRefused(s, client)
		reset()
		e.leaveTCP(s)
		return nil, nil
	}
	if d, t = s.pick(client); d == nil {
		e.noDest(s)
		reset()
		e.leaveTCP(s)
	}
	return d, t
}

// serveTCP proxies one client connection: schedule, connect to the real
// server, then move data both ways until both sides have closed.
func (s *service) serveTCP(cc *net.TCPConn) {
	e := s.e
	defer e.live.Done()
	client := addrPortOf(cc.RemoteAddr())
	d, t := s.scheduleTCP(client, func() netip.AddrPort { return addrPortOf(cc.LocalAddr()) }, func() { reset(cc) })
	if d == nil {
		return
	}
	pair := &netPair{cc: cc}
	c := &tcpConn{svc: s, dest: d, tmpl: t, client: client, socks: pair}
	c.last.Store(e.now())
	c.state.Store(uint32(stSynRecv))
	d.newConn(sched.Inactive)
	e.table.add(c)

	e.out.connecting(d.sd.Addr)
	sc, err := e.dialer.DialTCP(e.ctx, networkOf("tcp", d.sd.Addr.Addr()), netip.AddrPort{}, d.sd.Addr)
	if err == nil {
		c.track(addrPortOf(sc.LocalAddr()))
	}
	e.out.connected(d.sd.Addr)
	if err != nil {
		// The client gets a reset; the server is skipped for a while so
		// the client's next connection goes elsewhere. No retry here.
		if e.ctx.Err() == nil { // not cut by Close
			d.fail(err)
		}
		c.abort()
		return
	}
	if v := s.cfg.Load().ProxyProtocol; v != 0 {
		var buf [maxProxyHeader]byte
		hdr := buf[:0]
		vip := addrPortOf(cc.LocalAddr())
		if v == 1 {
			hdr = appendProxyV1(hdr, client, vip)
		} else {
			hdr = appendProxyV2(hdr, client, vip, false)
		}
		if _, err := sc.Write(hdr); err != nil {
			c.mu.Lock()
			pair.sc = sc
			c.mu.Unlock()
			c.abort()
			return
		}
	}
	c.mu.Lock()
	pair.sc = sc
	final := c.final // Close may have aborted it while connecting
	if !final {
		c.setState(stEstablished)
	}
	c.mu.Unlock()
	if final {
		reset(sc)
		return
	}
	c.last.Store(e.now())
	e.live.Add(1)
	go func() {
		defer e.live.Done()
		c.pipe(sc, cc, true)
	}()
	c.pipe(cc, sc, false)
}

// track records the local address of the connection's socket to the real
// server, so that a connection arriving from it is known as a loop.
func (c *tcpConn) track(local netip.AddrPort) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.final || !local.IsValid() {
		return
	}
	c.out = local
	c.svc.e.out.add(local, c.dest.sd.Addr, c)
}

// untrack forgets the socket to the real server as it closes; c.mu is
// held.
func (c *tcpConn) untrack() {
	if c.out.IsValid() {
		c.svc.e.out.remove(c.out, c)
		c.out = netip.AddrPort{}
	}
}

// halfClose passes a FIN on: the client's to the server (FIN_WAIT) or the
// server's to the client (CLOSE_WAIT); when both have closed the sockets
// are released and the entry stays as TIME_WAIT.
func (c *tcpConn) halfClose(in bool) {
	c.mu.Lock()
	if c.final {
		c.mu.Unlock()
		return
	}
	if in {
		c.halves |= clientDone
	} else {
		c.halves |= serverDone
	}
	// The last FIN goes with the close itself: one system call fewer.
	if c.halves != clientDone|serverDone {
		if err := c.socks.closeWrite(in); err != nil {
			c.mu.Unlock()
			c.abort()
			return
		}
	}
	switch c.halves {
	case clientDone:
		c.setState(stFinWait)
	case serverDone:
		c.setState(stCloseWait)
	default:
		c.closedAt.Store(c.svc.e.now())
		c.setState(stTimeWait)
		c.final = true
		c.svc.e.leaveTCP(c.svc)
		c.socks.close()
		c.socks = nil
		c.untrack()
	}
	done := c.final
	c.mu.Unlock()
	if done {
		c.svc.e.timeWait.push(c)
	}
}

// abort resets both sides; the entry stays as CLOSE for 10 seconds.
func (c *tcpConn) abort() {
	c.mu.Lock()
	if c.final {
		c.mu.Unlock()
		return
	}
	c.final = true
	c.svc.e.leaveTCP(c.svc)
	// The entry is CLOSE before the client can see the reset, so whoever
	// lists the table after the reset finds it so.
	c.closedAt.Store(c.svc.e.now())
	c.setState(stClose)
	c.socks.reset()
	c.socks = nil
	c.untrack()
	c.mu.Unlock()
	c.svc.e.closing.push(c)
}

// expire ends a connection idle for its state's timeout: both sides are
// reset and the entry is gone at once, as an expired IPVS entry is.
func (c *tcpConn) expire() {
	c.mu.Lock()
	if c.final {
		c.mu.Unlock()
		return
	}
	c.final = true
	c.svc.e.leaveTCP(c.svc)
	c.socks.reset()
	c.socks = nil
	c.untrack()
	c.mu.Unlock()
	c.release()
}

// release removes the entry from the table and uncounts it.
func (c *tcpConn) release() {
	c.mu.Lock()
	if c.expired {
		c.mu.Unlock()
		return
	}
	c.expired = true
	kind := sched.Inactive
	if c.getState() == stEstablished {
		kind = sched.Active
	}
	c.mu.Unlock()
	c.svc.e.table.remove(c)
	c.dest.sd.Unbind(kind)
	c.tmpl.release()
}

func (c *tcpConn) entry(now int64) ipvs.Conn {
	st := c.getState()
	var left int64
	switch st {
	case stTimeWait, stClose:
		left = c.closedAt.Load() + c.svc.e.stateTimeout(st) - now
	default:
		left = c.last.Load() + c.svc.e.stateTimeout(st) - now
	}
	return ipvs.Conn{
		Proto:   ipvs.TCP,
		Client:  c.client,
		Virtual: c.svc.vip,
		Dest:    c.dest.sd.Addr,
		State:   st.String(),
		Expires: max(left, 0) / int64(time.Millisecond),
	}
}

// reset closes a socket with a RST (SO_LINGER 0) instead of a FIN.
func reset(c *net.TCPConn) {
	if c == nil {
		return
	}
	c.SetLinger(0)
	c.Close()
}

func addrPortOf(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// networkOf is "tcp4", "tcp6", "udp4" or "udp6" for proto and a's family.
func networkOf(proto string, a netip.Addr) string {
	switch {
	case proto == "tcp" && a.Is4():
		return "tcp4"
	case proto == "tcp":
		return "tcp6"
	case a.Is4():
		return "udp4"
	}
	return "udp6"
}

var _ io.ReaderFrom = (*net.TCPConn)(nil)
