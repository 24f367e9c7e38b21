package proxy

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/sched"
)

// UDP flows. Datagrams from each client address go to the real server
// chosen for its first datagram (a "flow", listed by -Lnc); replies go back
// from the virtual address. A one-packet service (-o) schedules every
// datagram instead (see udp_ops.go).
//
// A flow holds no socket and no goroutine of its own. The service keeps a
// pool of unconnected reply sockets; a flow borrows the first one that has
// no flow to the same real server yet, so one socket carries one flow per
// real server and the real server's address tells the socket's reader
// whose reply it is. A service with n real servers needs a socket for
// every n flows at best, one per flow to its busiest server at worst. ICMP
// errors come back through IP_RECVERR: a refused datagram ends the flow and
// marks the server failed, as a refused TCP connect does.
//
// Flows are bounded, per service and overall (Options.UDPFlows,
// UDPFlowsPerService): a new flow over the bound evicts the least recently
// used flow of its own service, or, when the overall bound is what is
// reached, of the service holding the most flows; kernel IPVS's conntrack
// does the like (early drop). Evicting rather than refusing keeps a flood
// of one-datagram clients from locking everyone else out for the UDP
// timeout: the flood's own idle flows go first, and a client that talks
// more often than the flood renews its flows keeps its own.

// udpService serves a UDP virtual service.
type udpService struct {
	s    *service
	pc   *net.UDPConn
	ops  sync.Map // netip.AddrPort -> *replyPath, for one-packet scheduling
	done chan struct{}

	mu     sync.Mutex
	flows  map[netip.AddrPort]*udpFlow // by client
	lru    flowList                    // least recently used first
	socks  []*udpSock                  // the reply sockets
	closed bool

	n       atomic.Int64  // len(flows), read by other services
	paths   atomic.Int64  // one-packet reply paths
	evicted atomic.Uint64 // flows ended early to make room
	refused atomic.Uint64 // new flows refused: no room, no socket, or a loop
}

// maxDatagram is the largest UDP payload.
const maxDatagram = 65535

// udpBufs holds the buffers replies are read into.
var udpBufs = sync.Pool{New: func() any { b := make([]byte, maxDatagram); return &b }}

func newUDPService(s *service, pc *net.UDPConn) *udpService {
	return &udpService{s: s, pc: pc, done: make(chan struct{}), flows: make(map[netip.AddrPort]*udpFlow)}
}

// readLoop reads the clients' datagrams until the socket is closed; it
// also runs the service's flow expiry.
func (u *udpService) readLoop() {
	e := u.s.e
	defer e.loops.Done()
	defer close(u.done)
	e.udp.register(u)
	stop := make(chan struct{})
	e.loops.Add(1)
	go u.expireLoop(stop)
	defer close(stop)
	buf := make([]byte, maxDatagram)
	for {
		n, client, err := u.pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		client = netip.AddrPortFrom(client.Addr().Unmap(), client.Port())
		if u.s.cfg.Load().Flags&ipvs.FlagOnePacket != 0 {
			u.onePacket(client, buf[:n])
			continue
		}
		for try := 0; try < 2; try++ {
			sock, d := u.forward(client, try == 0, n)
			if sock == nil {
				break
			}
			// A socket closed under us (its last flow was evicted or
			// expired meanwhile): send again on a new flow.
			if sock.dead.Load() {
				continue
			}
			_, err := sock.pc.WriteToUDPAddrPort(buf[:n], d.sd.Addr)
			if !errors.Is(err, net.ErrClosed) {
				break
			}
		}
	}
}

// forward finds or makes the client's flow, marks it used and returns the
// socket and real server its datagram of n bytes goes to, or nil.
func (u *udpService) forward(client netip.AddrPort, count bool, n int) (*udpSock, *dest) {
	u.mu.Lock()
	defer u.mu.Unlock()
	f := u.flows[client]
	if f == nil {
		if f = u.newFlowLocked(client); f == nil {
			return nil, nil
		}
	}
	u.touchLocked(f)
	if count {
		f.dest.account(int64(n), 1, true)
	}
	return f.sock, f.dest
}

// newFlowLocked schedules a new flow for client and gives it a socket,
// making room first; nil when the datagram is to be dropped.
func (u *udpService) newFlowLocked(client netip.AddrPort) *udpFlow {
	s := u.s
	e := s.e
	if u.closed {
		return nil
	}
	if e.udp.ownReplySocket(client) {
		u.refused.Add(1)
		e.loopRefused(s, client)
		return nil
	}
	if !u.makeRoomLocked() {
		u.refused.Add(1)
		return nil
	}
	d, t := s.pick(client)
	if d == nil {
		e.noDest(s)
		return nil
	}
	sock, err := u.sockFor(d.sd.Addr)
	if err != nil {
		u.refused.Add(1)
		e.log.Warn("UDP datagram dropped: no socket for its flow", "service", s.key.String(), "client", client.String(), "error", err)
		t.release()
		return nil
	}
	f := &udpFlow{client: client, dest: d, tmpl: t, sock: sock}
	sock.peers[d.sd.Addr] = f
	u.flows[client] = f
	u.lru.pushBack(f)
	u.n.Add(1)
	e.udp.total.Add(1)
	d.newConn(sched.Inactive)
	return f
}

// makeRoomLocked makes room for one more flow: it evicts the oldest flow
// of this service at its own bound, or at the overall bound the oldest of
// the service holding the most flows. False when there is no room. It may
// release u.mu for a while.
func (u *udpService) makeRoomLocked() bool {
	b := &u.s.e.udp
	if len(u.flows) >= b.perService {
		u.evictLocked(u.lru.head)
		return true
	}
	if int(b.total.Load()) < b.limit {
		return true
	}
	v := b.largest(u)
	if v == u {
		if u.lru.head == nil {
			return false
		}
		u.evictLocked(u.lru.head)
		return true
	}
	// Never hold two services' locks: two services making room for each
	// other would wait for each other. Meanwhile another service may take
	// the place, so the overall count can pass the bound by as many
	// services as make room at once.
	u.mu.Unlock()
	v.mu.Lock()
	ok := v.lru.head != nil
	if ok {
		v.evictLocked(v.lru.head)
	}
	v.mu.Unlock()
	u.mu.Lock()
	return ok && !u.closed
}

func (u *udpService) evictLocked(f *udpFlow) {
	u.evicted.Add(1)
	u.endLocked(f)
}

// touchLocked marks f used now: it moves to the end of the LRU list.
func (u *udpService) touchLocked(f *udpFlow) {
	f.last = u.s.e.now()
	u.lru.remove(f)
	u.lru.pushBack(f)
}

// sockFor returns a reply socket with no flow to server, opening one when
// every socket has one.
func (u *udpService) sockFor(server netip.AddrPort) (*udpSock, error) {
	for _, k := range u.socks {
		if k.peers[server] == nil && k.is4 == server.Addr().Is4() {
			return k, nil
		}
	}
	k, err := u.openSock(server.Addr().Is4())
	if err != nil {
		return nil, err
	}
	u.socks = append(u.socks, k)
	return k, nil
}

// endLocked removes a flow and uncounts it; a socket left with no flow is
// closed.
func (u *udpService) endLocked(f *udpFlow) {
	if f.gone {
		return
	}
	f.gone = true
	e := u.s.e
	delete(u.flows, f.client)
	u.lru.remove(f)
	if u.n.Add(-1) == 0 {
		e.recheck(u.s) // the last flow may have kept the socket open
	}
	e.udp.total.Add(-1)
	k := f.sock
	delete(k.peers, f.dest.sd.Addr)
	if len(k.peers) == 0 {
		for i, o := range u.socks {
			if o == k {
				u.socks[i] = u.socks[len(u.socks)-1]
				u.socks[len(u.socks)-1] = nil
				u.socks = u.socks[:len(u.socks)-1]
				break
			}
		}
		k.close()
	}
	f.dest.sd.Unbind(sched.Inactive)
	f.tmpl.release()
}

// expireLoop ends the flows idle for the udp timeout, every tick, until
// stop is closed.
func (u *udpService) expireLoop(stop chan struct{}) {
	e := u.s.e
	defer e.loops.Done()
	tick := time.NewTicker(min(e.opts.Tick, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			u.expire(e.now())
		}
	}
}

// expire ends the flows idle for the udp timeout at now; the LRU list is
// in the order of last use, so they are at its head.
func (u *udpService) expire(now int64) {
	timeout := u.s.e.udpTimeout.Load()
	u.mu.Lock()
	defer u.mu.Unlock()
	for f := u.lru.head; f != nil && f.last+timeout <= now; f = u.lru.head {
		u.endLocked(f)
	}
}

// close stops the service: no more datagrams are read and every flow ends.
func (u *udpService) close() {
	u.pc.Close()
	<-u.done
	u.s.e.udp.unregister(u)
	u.mu.Lock()
	u.closed = true
	for f := u.lru.head; f != nil; f = u.lru.head {
		u.endLocked(f)
	}
	u.mu.Unlock()
	u.ops.Range(func(_, v any) bool {
		v.(*replyPath).close()
		return true
	})
}

func (u *udpService) entries(now int64, out []ipvs.Conn) []ipvs.Conn {
	timeout := u.s.e.udpTimeout.Load()
	u.mu.Lock()
	defer u.mu.Unlock()
	for f := u.lru.head; f != nil; f = f.next {
		out = append(out, ipvs.Conn{
			Proto:   ipvs.UDP,
			Client:  f.client,
			Virtual: u.s.vip,
			Dest:    f.dest.sd.Addr,
			State:   "UDP",
			Expires: max(f.last+timeout-now, 0) / int64(time.Millisecond),
		})
	}
	return out
}

// udpFlow is one client's UDP "connection" to its real server. Its fields
// are guarded by udpService.mu.
type udpFlow struct {
	client     netip.AddrPort
	dest       *dest
	tmpl       *template
	sock       *udpSock
	last       int64 // engine clock of the last datagram either way
	prev, next *udpFlow
	gone       bool
}

// flowList is a doubly linked list of flows, least recently used first.
type flowList struct{ head, tail *udpFlow }

func (l *flowList) pushBack(f *udpFlow) {
	f.prev, f.next = l.tail, nil
	if l.tail != nil {
		l.tail.next = f
	} else {
		l.head = f
	}
	l.tail = f
}

func (l *flowList) remove(f *udpFlow) {
	if f.prev != nil {
		f.prev.next = f.next
	} else if l.head == f {
		l.head = f.next
	}
	if f.next != nil {
		f.next.prev = f.prev
	} else if l.tail == f {
		l.tail = f.prev
	}
	f.prev, f.next = nil, nil
}

// udpSock is a reply socket of a service: unconnected, it sends the
// datagrams of at most one flow per real server and reads their replies.
type udpSock struct {
	u     *udpService
	pc    *net.UDPConn
	is4   bool
	local netip.AddrPort
	dead  atomic.Bool                 // closed, or about to be
	peers map[netip.AddrPort]*udpFlow // real server -> flow; guarded by udpService.mu
}

// openSock opens a reply socket and starts its reader.
func (u *udpService) openSock(is4 bool) (*udpSock, error) {
	e := u.s.e
	network := "udp6"
	if is4 {
		network = "udp4"
	}
	pc, err := net.ListenUDP(network, nil)
	if err != nil {
		return nil, err
	}
	if err := recvErrors(pc, is4); err != nil {
		pc.Close()
		return nil, err
	}
	k := &udpSock{u: u, pc: pc, is4: is4, local: addrPortOf(pc.LocalAddr()), peers: make(map[netip.AddrPort]*udpFlow, 1)}
	e.udp.addPort(k.local)
	e.loops.Add(1)
	go k.relay()
	return k, nil
}

// close ends the socket. Its reader closes it: closing a socket waits for
// the reads in progress, and the reader may be waiting for the service's
// lock, held here.
func (k *udpSock) close() {
	k.dead.Store(true)
	k.pc.SetReadDeadline(time.Unix(1, 0))
}

// relay moves the real servers' replies to their flows' clients until the
// socket is closed.
func (k *udpSock) relay() {
	u := k.u
	e := u.s.e
	defer e.loops.Done()
	rc, err := k.pc.SyscallConn()
	if err != nil {
		return
	}
	deliver := func(b []byte, from netip.AddrPort) {
		u.mu.Lock()
		f := k.peers[from]
		if f != nil {
			u.touchLocked(f)
		}
		u.mu.Unlock()
		if f == nil {
			return // not from a server a flow of this socket sent to
		}
		f.dest.account(int64(len(b)), 1, false)
		u.pc.WriteToUDPAddrPort(b, f.client)
	}
	read := func(fd uintptr) bool {
		bp := udpBufs.Get().(*[]byte)
		defer udpBufs.Put(bp)
		for {
			n, from, err := recvFrom(fd, *bp)
			switch {
			case err == syscall.EAGAIN:
				readErrors(int(fd), k.failed)
				return false
			case err == syscall.EINTR:
			case err != nil:
				// An ICMP error: IP_RECVERR queued what it was about.
				readErrors(int(fd), k.failed)
				return true
			default:
				deliver((*bp)[:n], from)
			}
		}
	}
	defer e.udp.removePort(k.local)
	defer k.pc.Close()
	for !k.dead.Load() {
		if err := rc.Read(read); err != nil && !errors.Is(err, errDeadline) {
			return
		}
	}
}

// failed ends the flow whose datagram to server met an ICMP error; a
// refused one (port unreachable) also marks the server failed.
func (k *udpSock) failed(server netip.AddrPort, err error) {
	u := k.u
	u.mu.Lock()
	f := k.peers[server]
	if f != nil {
		u.endLocked(f)
	}
	u.mu.Unlock()
	if f != nil && errors.Is(err, syscall.ECONNREFUSED) {
		f.dest.fail(err)
	}
}

// recvFrom reads one datagram and its sender from a raw socket.
func recvFrom(fd uintptr, b []byte) (int, netip.AddrPort, error) {
	n, sa, err := syscall.Recvfrom(int(fd), b, 0)
	if err != nil {
		return 0, netip.AddrPort{}, err
	}
	return n, addrPortOfSockaddr(sa), nil
}

func addrPortOfSockaddr(sa syscall.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *syscall.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *syscall.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port))
	}
	return netip.AddrPort{}
}
