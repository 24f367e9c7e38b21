package proxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/gvs-lb/gvs/internal/sched"
)

// The Linux TCP data path: a few event loops (one per GOMAXPROCS), each a
// goroutine around its own edge-triggered epoll set, accept, connect and
// move the data of their connections with plain non-blocking system calls,
// as HAProxy does. Against a goroutine per direction this saves, per
// request and direction, the read that only finds the socket empty (a read
// shorter than the buffer means the socket is drained; the next edge says
// when there is more) and the goroutine switches; the sockets never enter
// Go's poller.
//
// Every socket of a loop is touched only by the loop's goroutine; other
// goroutines ask through commands (a queue and an eventfd).

// evLoop is one event loop.
type evLoop struct {
	e      *Engine
	epfd   int
	file   *os.File // epfd in Go's poller: the loop sleeps there, not in a system call
	wakefd int
	ents   []loopEnt // by file descriptor
	gen    uint32
	flows  []*flow         // f.idx is f's place
	paused []*loopListener // accept failed: watched again at the next tick
	now    int64           // engine clock after the last epoll_wait
	done   chan struct{}

	mu   sync.Mutex
	cmds []func()
}

// loopEnt is what a file descriptor of the loop belongs to.
type loopEnt struct {
	gen    uint32
	f      *flow
	ln     *loopListener
	server bool // f's server side
}

// flow is a TCP connection in an event loop.
type flow struct {
	l          *evLoop
	c          *tcpConn
	cfd, sfd   int
	connecting bool
	started    int64 // engine clock of the accept, for the connect timeout
	up, down   half  // client to server, server to client
	idx        int   // in l.flows
}

// half is one direction of a flow.
type half struct {
	buf      *[copyBufSize]byte // data read and not yet written, buf[off:end]
	off, end int
	readable bool // the source may have data (an edge came since it was drained)
	rdhup    bool // the source's peer has closed: read until EOF
	blocked  bool // the destination was full; wait for its edge
	eof      bool // the source ended; FIN passed on once buf is written
	fin      bool // FIN passed on
	bytes    int64
	pkts     uint64
}

// loopListener is a TCP service's listening socket, shared by the loops.
type loopListener struct {
	s  *service
	fd int
}

func (l *loopListener) close() {
	e := l.s.e
	var wg sync.WaitGroup
	for _, lp := range e.evloops {
		wg.Add(1)
		lp.post(func() {
			lp.forget(l.fd)
			lp.paused = slices.DeleteFunc(lp.paused, func(p *loopListener) bool { return p == l })
			wg.Done()
		})
	}
	wg.Wait()
	syscall.Close(l.fd)
}

const (
	epollET        = 1 << 31 // EPOLLET as an unsigned event mask
	epollExclusive = 1 << 28
)

// startLoops starts one event loop per GOMAXPROCS.
func (e *Engine) startLoops() error {
	n := runtime.GOMAXPROCS(0)
	for range n {
		epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return fmt.Errorf("proxy engine: epoll: %w", err)
		}
		wfd, _, errno := syscall.Syscall(syscall.SYS_EVENTFD2, 0, syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
		if errno != 0 {
			syscall.Close(epfd)
			return fmt.Errorf("proxy engine: eventfd: %w", errno)
		}
		l := &evLoop{e: e, epfd: epfd, wakefd: int(wfd), done: make(chan struct{})}
		if err := syscall.SetNonblock(epfd, true); err != nil {
			return fmt.Errorf("proxy engine: epoll: %w", err)
		}
		l.file = os.NewFile(uintptr(epfd), "epoll")
		if err := l.add(l.wakefd, syscall.EPOLLIN, loopEnt{}); err != nil {
			return err
		}
		e.evloops = append(e.evloops, l)
	}
	for _, l := range e.evloops {
		go l.run()
	}
	return nil
}

// stopLoops ends the loops once their connections are gone.
func (e *Engine) stopLoops() {
	for _, l := range e.evloops {
		l.post(nil)
	}
	for _, l := range e.evloops {
		<-l.done
	}
}

// cutLoops resets every connection of the loops and waits until done.
func (e *Engine) cutLoops() {
	var wg sync.WaitGroup
	for _, l := range e.evloops {
		wg.Add(1)
		l.post(func() {
			// Backwards: a flow that ends leaves its place to the last.
			for i := len(l.flows) - 1; i >= 0; i-- {
				if i < len(l.flows) {
					l.flows[i].c.abort()
				}
			}
			wg.Done()
		})
	}
	wg.Wait()
}

// listenLoops makes the loops accept on the service's listener: the
// socket is taken out of Go's poller (dup, close) so its events wake only
// the loops.
func (s *service) listenLoops(ln *net.TCPListener) error {
	raw, err := ln.SyscallConn()
	if err != nil {
		ln.Close()
		return err
	}
	fd := -1
	var derr error
	raw.Control(func(f uintptr) {
		r, _, errno := syscall.Syscall(syscall.SYS_FCNTL, f, syscall.F_DUPFD_CLOEXEC, 0)
		if errno != 0 {
			derr = errno
			return
		}
		fd = int(r)
	})
	ln.Close()
	if derr != nil {
		return fmt.Errorf("%s: the proxy engine cannot take its listening socket: %w", s.key, derr)
	}
	// Accepted sockets inherit TCP_NODELAY: one system call per connection
	// fewer.
	rawNoDelay(fd)
	l := &loopListener{s: s, fd: fd}
	for _, lp := range s.e.evloops {
		lp.post(func() { lp.watch(l) })
	}
	s.tcp = l
	return nil
}

// watch makes the loop accept on l.
func (l *evLoop) watch(ln *loopListener) {
	if err := l.add(ln.fd, syscall.EPOLLIN|epollExclusive, loopEnt{ln: ln}); err != nil {
		l.e.log.Error("cannot watch a listening socket", "service", ln.s.key.String(), "error", err)
	}
}

// post queues cmd for the loop's goroutine; nil stops the loop.
func (l *evLoop) post(cmd func()) {
	l.mu.Lock()
	l.cmds = append(l.cmds, cmd)
	l.mu.Unlock()
	one := uint64(1)
	syscall.Write(l.wakefd, (*[8]byte)(unsafe.Pointer(&one))[:])
}

// add registers fd with ent.
func (l *evLoop) add(fd int, events uint32, ent loopEnt) error {
	for fd >= len(l.ents) {
		l.ents = append(l.ents, make([]loopEnt, max(64, len(l.ents)))...)
	}
	l.gen++
	ent.gen = l.gen
	l.ents[fd] = ent
	ev := syscall.EpollEvent{Events: events, Fd: int32(fd), Pad: int32(ent.gen)}
	if err := rawEpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, fd, &ev); err != nil {
		l.ents[fd] = loopEnt{}
		return fmt.Errorf("proxy engine: epoll_ctl: %w", err)
	}
	return nil
}

// forget unregisters fd (a listener the loop shares, or before a close).
func (l *evLoop) forget(fd int) {
	if fd >= 0 && fd < len(l.ents) {
		l.ents[fd] = loopEnt{}
	}
	rawEpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, fd, nil)
}

// run waits for events and handles them. The loop polls its epoll set
// without blocking and, when nothing is ready, parks in Go's poller (the
// epoll descriptor is itself readable while it has events), so it never
// holds a thread in a blocking system call; the read deadline is the tick.
func (l *evLoop) run() {
	defer close(l.done)
	defer l.file.Close()
	defer syscall.Close(l.wakefd)
	raw, err := l.file.SyscallConn()
	if err != nil {
		l.e.log.Error("the event loop cannot wait", "error", err)
		return
	}
	events := new([128]syscall.EpollEvent)
	n := 0
	poll := func(fd uintptr) bool {
		r, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, fd, uintptr(unsafe.Pointer(&events[0])), uintptr(len(events)), 0, 0, 0)
		if errno != 0 {
			n = 0
			return false
		}
		n = int(r)
		return n > 0
	}
	tick := min(l.e.opts.Tick, time.Second)
	l.now = l.e.now()
	next := l.now + int64(tick)
	l.file.SetReadDeadline(time.Now().Add(tick))
	for {
		err := raw.Read(poll)
		l.now = l.e.now()
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			n = 0
			next = l.now
		default:
			l.e.log.Error("the event loop cannot wait", "error", err)
			return
		}
		for i := range n {
			ev := &events[i]
			fd := int(ev.Fd)
			if fd == l.wakefd {
				if !l.commands() {
					return
				}
				continue
			}
			if fd >= len(l.ents) || l.ents[fd].gen != uint32(ev.Pad) {
				continue // closed since
			}
			ent := l.ents[fd]
			switch {
			case ent.ln != nil:
				l.accept(ent.ln)
			case ent.f != nil:
				ent.f.event(ent.server, ev.Events)
			}
		}
		if l.now >= next {
			next = l.now + int64(tick)
			l.file.SetReadDeadline(time.Now().Add(tick))
			l.tick()
		}
	}
}

// commands runs the queued commands; false means stop.
func (l *evLoop) commands() bool {
	var buf [8]byte
	syscall.Read(l.wakefd, buf[:])
	l.mu.Lock()
	cmds := l.cmds
	l.cmds = nil
	l.mu.Unlock()
	for _, cmd := range cmds {
		if cmd == nil {
			return false
		}
		cmd()
	}
	return true
}

// tick accounts what moved, ends connects that take too long and expires
// idle connections.
func (l *evLoop) tick() {
	e := l.e
	for _, ln := range l.paused {
		l.watch(ln)
	}
	l.paused = l.paused[:0]
	// Backwards: a flow that ends leaves its place to the last, seen
	// already.
	for i := len(l.flows) - 1; i >= 0; i-- {
		f := l.flows[i]
		f.flush()
		c := f.c
		if f.connecting {
			if l.now-f.started >= int64(e.opts.DialTimeout) {
				f.connectFailed(syscall.ETIMEDOUT)
			}
			continue
		}
		if l.now-c.last.Load() >= e.stateTimeout(c.getState()) {
			c.expire()
		}
	}
}

// accept takes the waiting connections (a batch; the listener is level
// triggered, so more come with the next epoll_wait).
func (l *evLoop) accept(ln *loopListener) {
	for range 32 {
		nfd, client, err := rawAccept(ln.fd)
		switch {
		case err == syscall.EAGAIN:
			return
		case err == syscall.EINTR || err == syscall.ECONNABORTED:
			continue
		case err != nil:
			// Out of file descriptors and the like: the listener stays
			// readable, so the loop stops watching it until the next tick.
			l.e.log.Warn("accept failed", "service", ln.s.key.String(), "error", err, "retry_in", min(l.e.opts.Tick, time.Second))
			l.forget(ln.fd)
			l.paused = append(l.paused, ln)
			return
		}
		l.serve(ln.s, nfd, client)
	}
}

// serve schedules a new client connection and connects to the real server.
func (l *evLoop) serve(s *service, cfd int, client netip.AddrPort) {
	e := s.e
	d, t := s.scheduleTCP(client, func() netip.AddrPort { return localOfFD(cfd) }, func() { resetFD(cfd) })
	if d == nil {
		return
	}
	c := &tcpConn{svc: s, dest: d, tmpl: t, client: client}
	f := &flow{l: l, c: c, cfd: cfd, sfd: -1, connecting: true, started: l.now}
	c.socks = f
	c.last.Store(l.now)
	c.state.Store(uint32(stSynRecv))
	d.newConn(sched.Inactive)
	e.table.add(c)
	e.live.Add(1)
	f.idx = len(l.flows)
	l.flows = append(l.flows, f)
	if err := l.add(cfd, syscall.EPOLLIN|syscall.EPOLLOUT|syscall.EPOLLRDHUP|epollET, loopEnt{f: f}); err != nil {
		e.log.Warn("cannot watch a client connection", "error", err)
		c.abort()
		return
	}
	e.out.connecting(d.sd.Addr)
	sfd, err := rawConnect(d.sd.Addr, zoneIndex(d.sd.Addr.Addr()))
	if err != nil && err != syscall.EINPROGRESS {
		e.out.connected(d.sd.Addr)
		if sfd >= 0 {
			rawClose(sfd)
		}
		f.connectFailed(err)
		return
	}
	f.sfd = sfd
	if sa, err := syscall.Getsockname(sfd); err == nil {
		c.track(addrPortOfSockaddr(sa))
	}
	e.out.connected(d.sd.Addr)
	if err := l.add(sfd, syscall.EPOLLIN|syscall.EPOLLOUT|syscall.EPOLLRDHUP|epollET, loopEnt{f: f, server: true}); err != nil {
		e.log.Warn("cannot watch a real server connection", "error", err)
		c.abort()
		return
	}
	// The connect's outcome comes as an EPOLLOUT edge, even when it is
	// already known.
}

// event handles the epoll events of one of the flow's sockets.
func (f *flow) event(server bool, ev uint32) {
	in, out := &f.up, &f.down // in reads the socket, out writes to it
	if server {
		in, out = &f.down, &f.up
	}
	if ev&(syscall.EPOLLIN|syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
		in.readable = true
		if ev&(syscall.EPOLLRDHUP|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
			in.rdhup = true
		}
	}
	if ev&(syscall.EPOLLOUT|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
		out.blocked = false
	}
	if f.connecting {
		if !server || ev&(syscall.EPOLLOUT|syscall.EPOLLHUP|syscall.EPOLLERR) == 0 {
			return
		}
		// A clean EPOLLOUT is a connect that succeeded.
		if ev&(syscall.EPOLLHUP|syscall.EPOLLERR) != 0 {
			err := rawSoError(f.sfd)
			if err == nil {
				err = syscall.ECONNREFUSED
			}
			f.connectFailed(err)
			return
		}
		if !f.connected() {
			return
		}
	}
	if f.move(&f.up, f.cfd, f.sfd, true) {
		f.move(&f.down, f.sfd, f.cfd, false)
	}
}

// connectFailed resets the client and skips the server for a while.
func (f *flow) connectFailed(err error) {
	c := f.c
	if c.svc.e.ctx.Err() == nil {
		c.dest.fail(&net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(c.dest.sd.Addr), Err: err})
	}
	c.abort()
}

// connected makes the connection ESTABLISHED and queues the PROXY header;
// false when the connection ended meanwhile.
func (f *flow) connected() bool {
	c := f.c
	f.connecting = false
	c.mu.Lock()
	final := c.final
	if !final {
		c.setState(stEstablished)
	}
	c.mu.Unlock()
	if final {
		return false
	}
	c.last.Store(f.l.now)
	if v := c.svc.cfg.Load().ProxyProtocol; v != 0 {
		vip := c.svc.vip
		if sa, err := syscall.Getsockname(f.cfd); err == nil {
			vip = addrPortOfSockaddr(sa)
		}
		h := &f.up
		// Nothing was read from the client yet (reads wait for the connect).
		h.buf = copyBufs.Get().(*[copyBufSize]byte)
		var hdr []byte
		if v == 1 {
			hdr = appendProxyV1(h.buf[:0], c.client, vip)
		} else {
			hdr = appendProxyV2(h.buf[:0], c.client, vip, false)
		}
		h.off, h.end = 0, len(hdr)
	}
	return true
}

// move copies from src to dst until src is drained or dst is full. It
// returns false when the connection ended.
//
// Data is read into an empty buffer only, except once the source's peer
// has closed: then move reads on to EOF before writing, and the last data
// is sent with MSG_MORE so that the FIN passed on right after leaves in
// the same segment (one packet and one wake-up of the peer fewer, as
// HAProxy does).
func (f *flow) move(h *half, src, dst int, in bool) bool {
	c := f.c
	for {
		if h.readable && !h.eof && (h.end == 0 || h.rdhup && h.off == 0 && h.end < copyBufSize) {
			if h.buf == nil {
				h.buf = copyBufs.Get().(*[copyBufSize]byte)
			}
			n, err := rawIO(syscall.SYS_READ, src, h.buf[h.end:])
			switch {
			case err == syscall.EAGAIN:
				h.readable = false
			case err == syscall.EINTR:
				continue
			case err != nil:
				c.abort()
				return false
			case n == 0:
				h.eof = true
			default:
				if n < copyBufSize-h.end && !h.rdhup {
					// Drained: the next edge says when more comes.
					h.readable = false
				}
				h.end += n
				h.bytes += int64(n)
				h.pkts += segments(int64(n))
				c.last.Store(f.l.now)
				continue
			}
			if h.end == 0 {
				copyBufs.Put(h.buf)
				h.buf = nil
			}
		}
		if h.off < h.end {
			if h.blocked {
				return true
			}
			var n int
			var err error
			if h.eof {
				n, err = rawSend(dst, h.buf[h.off:h.end], syscall.MSG_MORE)
			} else {
				n, err = rawIO(syscall.SYS_WRITE, dst, h.buf[h.off:h.end])
			}
			switch {
			case err == syscall.EAGAIN:
				h.blocked = true
				return true
			case err == syscall.EINTR:
				continue
			case err != nil:
				c.abort()
				return false
			}
			h.off += n
			if h.off < h.end {
				continue
			}
			copyBufs.Put(h.buf)
			h.buf, h.off, h.end = nil, 0, 0
			continue
		}
		if h.eof && !h.fin {
			h.fin = true
			f.flush()
			c.halfClose(in)
			return f.cfd >= 0
		}
		return true
	}
}

// flush adds what moved since the last flush to the counters.
func (f *flow) flush() {
	for _, h := range []*half{&f.up, &f.down} {
		if h.bytes > 0 {
			f.c.dest.account(h.bytes, h.pkts, h == &f.up)
			h.bytes, h.pkts = 0, 0
		}
	}
}

// The sockPair methods run on the loop's goroutine with c.mu held.

func (f *flow) closeWrite(toServer bool) error {
	fd := f.cfd
	if toServer {
		fd = f.sfd
	}
	return rawShutdown(fd, syscall.SHUT_WR)
}

func (f *flow) close() { f.end(false) }

func (f *flow) reset() { f.end(true) }

// end closes both sockets and lets the flow go.
func (f *flow) end(rst bool) {
	l := f.l
	f.flush()
	for _, fd := range []int{f.cfd, f.sfd} {
		if fd < 0 {
			continue
		}
		if fd < len(l.ents) {
			l.ents[fd] = loopEnt{}
		}
		if rst {
			resetFD(fd)
		} else {
			rawClose(fd)
		}
	}
	f.cfd, f.sfd = -1, -1
	for _, h := range []*half{&f.up, &f.down} {
		if h.buf != nil {
			copyBufs.Put(h.buf)
			h.buf = nil
		}
	}
	last := l.flows[len(l.flows)-1]
	l.flows[f.idx], last.idx = last, f.idx
	l.flows[len(l.flows)-1] = nil
	l.flows = l.flows[:len(l.flows)-1]
	l.e.live.Done()
}

// zoneIndex is the interface index of a's zone, 0 without one.
func zoneIndex(a netip.Addr) uint32 {
	if a.Zone() == "" {
		return 0
	}
	if ifi, err := net.InterfaceByName(a.Zone()); err == nil {
		return uint32(ifi.Index)
	}
	return 0
}

// localOfFD is the local address of the socket fd, or the zero AddrPort.
func localOfFD(fd int) netip.AddrPort {
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}
	}
	return addrPortOfSockaddr(sa)
}
