package proxy

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gvs-lb/gvs/internal/sched"
)

// One-packet scheduling (ipvsadm -o, IP_VS_SVC_F_ONEPACKET): the kernel
// schedules every UDP datagram of such a service on its own and creates its
// connection entry already expired, unhashed, so -Lnc never lists it; the
// datagram still counts one connection, one packet and its bytes.
//
// A proxy also needs a way back for the replies. Each client address gets
// a reply path: one unconnected socket that sends each of the client's
// datagrams to the server scheduled for it, and relays what those servers
// answer to the client from the virtual address (a DNS client asking A and
// AAAA from one port may get its two answers from two servers, both from
// the address it asked). The path is not a connection entry: it is not
// listed and holds no server's connection count; it ends once idle for the
// reply window (Options.OnePacketWindow, at most the udp timeout).

// defaultOnePacketWindow is the reply window when Options leave it 0: as
// long as a resolver waits for an answer by default (resolv.conf timeout).
const defaultOnePacketWindow = 5 * time.Second

// replyPath is one client's way to the servers of a one-packet service
// and back.
type replyPath struct {
	u      *udpService
	client netip.AddrPort
	up     *net.UDPConn

	local netip.AddrPort
	ended atomic.Bool

	mu   sync.Mutex
	last int64                    // engine clock of the last datagram either way
	sent map[netip.AddrPort]*dest // servers it sent to: only their answers are relayed
	gone bool
}

// onePacket schedules one datagram of a one-packet service and sends it.
func (u *udpService) onePacket(client netip.AddrPort, b []byte) {
	for try := 0; try < 2; try++ {
		p := u.replyPath(client)
		if p == nil || p.send(b) {
			return
		}
		// The path expired under us: send on a new one.
	}
}

// replyPath returns the client's reply path, making one when it has none.
func (u *udpService) replyPath(client netip.AddrPort) *replyPath {
	if v, ok := u.ops.Load(client); ok {
		p := v.(*replyPath)
		p.mu.Lock()
		gone := p.gone
		p.mu.Unlock()
		if !gone {
			return p
		}
	}
	e := u.s.e
	if e.udp.ownReplySocket(client) {
		u.refused.Add(1)
		e.loopRefused(u.s, client)
		return nil
	}
	// Reply paths share the flows' bounds; being short-lived, a new one
	// over the bound is refused rather than an old one evicted.
	if !e.udp.reserve(u, &u.paths) {
		u.refused.Add(1)
		return nil
	}
	pc, err := net.ListenUDP(networkOf("udp", u.s.vip.Addr()), nil)
	if err != nil {
		e.udp.total.Add(-1)
		u.paths.Add(-1)
		u.refused.Add(1)
		e.log.Warn("one-packet datagram dropped: no socket for its replies", "service", u.s.key.String(), "client", client.String(), "error", err)
		return nil
	}
	p := &replyPath{u: u, client: client, up: pc, local: addrPortOf(pc.LocalAddr()), last: e.now(), sent: make(map[netip.AddrPort]*dest, 2)}
	e.udp.addPort(p.local)
	u.ops.Store(client, p)
	e.loops.Add(1)
	go p.relay()
	return p
}

// send schedules b and sends it unless the path has ended; it returns
// false when it had. A datagram that cannot be sent is lost, as a dropped
// packet is, but still counted: the kernel counts before it transmits.
func (p *replyPath) send(b []byte) bool {
	s := p.u.s
	e := s.e
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.gone {
		return false
	}
	d, t := s.pick(p.client)
	if d == nil {
		e.noDest(s)
		return true
	}
	// The connection entry expires at once: counted, then released.
	d.newConn(sched.Inactive)
	d.account(int64(len(b)), 1, true)
	d.sd.Unbind(sched.Inactive)
	t.release()
	p.last = e.now()
	p.sent[d.sd.Addr] = d
	if _, err := p.up.WriteToUDPAddrPort(b, d.sd.Addr); err != nil {
		e.log.Debug("one-packet datagram not sent", "service", s.key.String(), "server", d.sd.Addr.String(), "error", err)
	}
	return true
}

// window is the reply window in nanoseconds.
func (p *replyPath) window() int64 {
	e := p.u.s.e
	w := int64(e.opts.OnePacketWindow)
	if w <= 0 {
		w = int64(defaultOnePacketWindow)
	}
	return min(w, e.udpTimeout.Load())
}

// idleLeft returns how long the path may still wait for replies; at 0 it
// has ended.
func (p *replyPath) idleLeft() time.Duration {
	now := p.u.s.e.now()
	p.mu.Lock()
	left := p.last + p.window() - now
	if left <= 0 {
		p.gone = true
	}
	gone := p.gone
	p.mu.Unlock()
	if gone {
		p.end()
		return 0
	}
	return time.Duration(left)
}

// answered records a reply from server and returns its real server, or
// nil when the path sent nothing there.
func (p *replyPath) answered(server netip.AddrPort) *dest {
	p.mu.Lock()
	defer p.mu.Unlock()
	d := p.sent[server]
	if d != nil {
		p.last = p.u.s.e.now()
	}
	return d
}

// relay moves the servers' answers to the client until the path has been
// idle for the reply window or is closed. Its end, for whatever reason,
// ends the path: an unconnected socket gets no ICMP errors, so a server
// that refuses is not marked failed here (health checks do that).
func (p *replyPath) relay() {
	defer p.u.s.e.loops.Done()
	defer p.close()
	relayDatagrams(p.up, recvFrom, p.idleLeft, func(b []byte, from netip.AddrPort) error {
		d := p.answered(from)
		if d == nil {
			return nil // not from a server it asked
		}
		d.account(int64(len(b)), 1, false)
		_, err := p.u.pc.WriteToUDPAddrPort(b, p.client)
		return err
	})
}

// close ends the path at once (the service stops, or its relay ended).
func (p *replyPath) close() {
	p.mu.Lock()
	p.gone = true
	p.mu.Unlock()
	p.end()
}

// end removes an ended path and closes its socket; it may run twice.
func (p *replyPath) end() {
	if !p.ended.CompareAndSwap(false, true) {
		return
	}
	e := p.u.s.e
	p.u.ops.CompareAndDelete(p.client, p)
	p.up.Close()
	e.udp.removePort(p.local)
	e.udp.total.Add(-1)
	p.u.paths.Add(-1)
}

// relayDatagrams reads the datagrams arriving on up with recv and hands
// each to deliver, until left says the relay's time is up (0 or less) or
// reading or delivering fails. It returns that error, nil when the time
// ran out.
func relayDatagrams(up *net.UDPConn, recv func(fd uintptr, b []byte) (int, netip.AddrPort, error),
	left func() time.Duration, deliver func(b []byte, from netip.AddrPort) error) error {
	rc, err := up.SyscallConn()
	if err != nil {
		return err
	}
	var rerr error
	read := func(fd uintptr) bool {
		bp := udpBufs.Get().(*[]byte)
		defer udpBufs.Put(bp)
		for {
			n, from, err := recv(fd, *bp)
			switch {
			case err == syscall.EAGAIN:
				return false
			case err == syscall.EINTR:
				continue
			case err != nil:
				rerr = err
				return true
			}
			if err := deliver((*bp)[:n], from); err != nil {
				rerr = err
				return true
			}
		}
	}
	for {
		l := left()
		if l <= 0 {
			return nil
		}
		// Wake up at least every 2 s so that a shorter udp timeout set
		// meanwhile is noticed.
		up.SetReadDeadline(time.Now().Add(min(l, 2*time.Second)))
		rerr = nil
		err := rc.Read(read)
		if err == nil {
			err = rerr
		}
		switch {
		case err == nil, errors.Is(err, syscall.EAGAIN), errors.Is(err, errDeadline):
		default:
			return err
		}
	}
}
