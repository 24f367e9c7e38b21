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

// udpService serves a UDP virtual service: datagrams from each client
// address go to the real server chosen for its first datagram, through a
// connected socket of their own (a "flow"); replies go back from the
// virtual address. A one-packet service (-o) schedules every datagram
// instead (see udp_ops.go).
type udpService struct {
	s     *service
	pc    *net.UDPConn
	flows sync.Map // netip.AddrPort -> *udpFlow
	ops   sync.Map // netip.AddrPort -> *replyPath, for one-packet scheduling
	done  chan struct{}
}

// maxDatagram is the largest UDP payload.
const maxDatagram = 65535

// udpBufs holds the buffers replies are read into; a flow holds one only
// while it has a reply to move.
var udpBufs = sync.Pool{New: func() any { b := make([]byte, maxDatagram); return &b }}

// readLoop reads the clients' datagrams until the socket is closed.
func (u *udpService) readLoop() {
	e := u.s.e
	defer e.loops.Done()
	defer close(u.done)
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
			f := u.flow(client)
			if f == nil {
				break
			}
			f.last.Store(e.now())
			if try == 0 {
				f.dest.account(int64(n), 1, true)
			}
			_, err := f.up.Write(buf[:n])
			if err == nil {
				break
			}
			// The flow expired under us (try again with a new one) or
			// the server refused an earlier datagram.
			if !errors.Is(err, net.ErrClosed) {
				f.failed(err)
			}
		}
	}
}

// flow returns the client's flow, making one when it has none.
func (u *udpService) flow(client netip.AddrPort) *udpFlow {
	if v, ok := u.flows.Load(client); ok {
		return v.(*udpFlow)
	}
	s := u.s
	e := s.e
	d, t := s.pick(client)
	if d == nil {
		e.noDest(s)
		return nil
	}
	up, err := e.dialer.DialUDP(e.ctx, networkOf("udp", d.sd.Addr.Addr()), netip.AddrPort{}, d.sd.Addr)
	if err != nil {
		d.fail(err)
		t.release()
		return nil
	}
	f := &udpFlow{u: u, client: client, dest: d, tmpl: t, up: up}
	f.last.Store(e.now())
	d.newConn(sched.Inactive)
	u.flows.Store(client, f)
	e.loops.Add(1)
	go f.relay()
	return f
}

// close stops the service: no more datagrams are read and every flow ends.
func (u *udpService) close() {
	u.pc.Close()
	<-u.done
	u.flows.Range(func(_, v any) bool {
		v.(*udpFlow).expire()
		return true
	})
	u.ops.Range(func(_, v any) bool {
		v.(*replyPath).close()
		return true
	})
}

func (u *udpService) entries(now int64, out []ipvs.Conn) []ipvs.Conn {
	timeout := u.s.e.udpTimeout.Load()
	u.flows.Range(func(_, v any) bool {
		f := v.(*udpFlow)
		out = append(out, ipvs.Conn{
			Proto:   ipvs.UDP,
			Client:  f.client,
			Virtual: u.s.vip,
			Dest:    f.dest.sd.Addr,
			State:   "UDP",
			Expires: max(f.last.Load()+timeout-now, 0) / int64(time.Millisecond),
		})
		return true
	})
	return out
}

// udpFlow is one client's UDP "connection" to its real server.
type udpFlow struct {
	u      *udpService
	client netip.AddrPort
	dest   *dest
	tmpl   *template
	up     *net.UDPConn
	last   atomic.Int64
	gone   atomic.Bool
}

// relay moves the real server's replies back to the client until the flow
// has been idle for the udp timeout.
func (f *udpFlow) relay() {
	e := f.u.s.e
	defer e.loops.Done()
	left := func() time.Duration {
		if f.gone.Load() {
			return 0
		}
		return time.Duration(f.last.Load() + e.udpTimeout.Load() - e.now())
	}
	err := relayDatagrams(f.up, readConnected, left, func(b []byte, _ netip.AddrPort) error {
		f.last.Store(e.now())
		f.dest.account(int64(len(b)), 1, false)
		_, err := f.u.pc.WriteToUDPAddrPort(b, f.client)
		return err
	})
	if err != nil {
		f.failed(err)
		return
	}
	f.expire()
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

// readConnected receives on a connected socket, whose peer is known.
func readConnected(fd uintptr, b []byte) (int, netip.AddrPort, error) {
	n, err := syscall.Read(int(fd), b)
	return n, netip.AddrPort{}, err
}

// failed ends the flow after an error; a refused datagram (ICMP port
// unreachable) also marks the server failed, as a refused TCP connect does.
func (f *udpFlow) failed(err error) {
	if errors.Is(err, syscall.ECONNREFUSED) {
		f.dest.fail(err)
	}
	f.expire()
}

// expire removes the flow and uncounts it.
func (f *udpFlow) expire() {
	if !f.gone.CompareAndSwap(false, true) {
		return
	}
	f.u.flows.CompareAndDelete(f.client, f)
	f.up.Close()
	f.dest.sd.Unbind(sched.Inactive)
	f.tmpl.release()
}
