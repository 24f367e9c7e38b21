package main

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// packetSource sends the benchmark's frames from the client namespace
// through AF_PACKET sockets with a TX ring (PACKET_TX_RING, TPACKET_V2,
// PACKET_QDISC_BYPASS): the frames are written into memory shared with
// the kernel and one send() hands a whole batch to the veth. It needs no
// BPF test run, so it works where the kernel refuses live frames; it costs
// more per frame than xdp_gen (an skb for every frame, and on the
// director's side the veth turns it back into an XDP frame), so its floor
// is lower (bench/README.md has both).
type packetSource struct {
	ns      string
	ifindex int
	tmpl    frameTemplate
	rings   []*txRing // one per sending thread

	frames  atomic.Uint64 // handed to the veth since reset
	dropped uint64        // the veth's tx_dropped at reset
}

// TX ring geometry: 2048 slots of 128 bytes (the TPACKET_V2 header, 32
// bytes, then the frame), 32 slots to a page.
const (
	ringFrameSize = 128
	ringBlockSize = 4096
	ringBlocks    = 64
	ringFrames    = ringBlocks * ringBlockSize / ringFrameSize
	// tpacket2Hdr is TPACKET_ALIGN(sizeof(struct tpacket2_hdr)), where
	// a TX frame's data starts.
	tpacket2Hdr = 32
	// ringBatch is the frames one send() sends while running; chosen by
	// measurement (bench/README.md).
	ringBatch = 256
	// countBatch is the frames one send() sends when every frame must
	// arrive (the SYNs of the established flows): few enough that the
	// director's veth queue never overflows.
	countBatch = 32
)

// txRing is one AF_PACKET socket with its mapped TX ring.
type txRing struct {
	fd   int
	mem  []byte
	next int // the next slot to fill
}

func newPacketSource(t *xdpTopo, threads int) (*packetSource, error) {
	s := &packetSource{ns: t.cli, ifindex: t.cliIfindex, tmpl: newFrameTemplate(t)}
	for range threads {
		var r *txRing
		err := inNS(s.ns, -1, func() (err error) {
			r, err = openTXRing(s.ifindex)
			return err
		})
		if err != nil {
			s.close()
			return nil, err
		}
		s.rings = append(s.rings, r)
	}
	return s, nil
}

func openTXRing(ifindex int) (*txRing, error) {
	// Protocol 0: the socket sends and never receives.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("AF_PACKET socket: %w", err)
	}
	r := &txRing{fd: fd}
	setup := func() error {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VERSION, unix.TPACKET_V2); err != nil {
			return fmt.Errorf("PACKET_VERSION: %w", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			return fmt.Errorf("PACKET_QDISC_BYPASS: %w", err)
		}
		req := unix.TpacketReq{Block_size: ringBlockSize, Block_nr: ringBlocks, Frame_size: ringFrameSize, Frame_nr: ringFrames}
		if err := unix.SetsockoptTpacketReq(fd, unix.SOL_PACKET, unix.PACKET_TX_RING, &req); err != nil {
			return fmt.Errorf("PACKET_TX_RING: %w", err)
		}
		mem, err := unix.Mmap(fd, 0, ringBlocks*ringBlockSize, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
		if err != nil {
			return fmt.Errorf("mapping the TX ring: %w", err)
		}
		r.mem = mem
		sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifindex}
		if err := unix.Bind(fd, sa); err != nil {
			return fmt.Errorf("binding to interface %d: %w", ifindex, err)
		}
		return nil
	}
	if err := setup(); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

func (r *txRing) close() {
	if r.mem != nil {
		unix.Munmap(r.mem)
	}
	unix.Close(r.fd)
}

// status is the slot's tp_status word, shared with the kernel.
func (r *txRing) status(slot int) *uint32 {
	return (*uint32)(unsafe.Pointer(&r.mem[slot*ringFrameSize]))
}

// send builds n frames (n at most ringFrames) with build and sends them;
// it returns when the kernel has sent them all.
func (r *txRing) send(n int, build func(b []byte)) error {
	for range n {
		st := r.status(r.next)
		if err := waitAvailable(st); err != nil {
			return fmt.Errorf("TX ring slot %d: %w", r.next, err)
		}
		off := r.next * ringFrameSize
		build(r.mem[off+tpacket2Hdr : off+tpacket2Hdr+frameLen])
		*(*uint32)(unsafe.Pointer(&r.mem[off+4])) = frameLen // tp_len
		atomic.StoreUint32(st, unix.TP_STATUS_SEND_REQUEST)
		r.next = (r.next + 1) % ringFrames
	}
	deadline := time.Now().Add(time.Second)
	for {
		// A blocking send returns once every requested slot is sent.
		// ENOBUFS: the veth's queue to the director was full; the frame
		// that met it is still requested, and the next send tries again.
		err := unix.Sendto(r.fd, nil, 0, nil)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, unix.EINTR):
		case errors.Is(err, unix.ENOBUFS) && time.Now().Before(deadline):
			runtime.Gosched()
		default:
			return fmt.Errorf("sending the TX ring (AF_PACKET): %w", err)
		}
	}
}

// waitAvailable waits until the kernel has given a slot back. A blocking
// send returns when the last frame's skb is freed; the veth may still hold
// an earlier one (a frame queued on another CPU), so a slot can come back
// a moment later.
func waitAvailable(st *uint32) error {
	deadline := time.Now().Add(time.Second)
	for {
		switch v := atomic.LoadUint32(st); {
		case v == unix.TP_STATUS_AVAILABLE:
			return nil
		case v&unix.TP_STATUS_WRONG_FORMAT != 0:
			return fmt.Errorf("the kernel refused the frame (TP_STATUS_WRONG_FORMAT)")
		case time.Now().After(deadline):
			return fmt.Errorf("not sent after 1 s (status %#x)", v)
		}
		runtime.Gosched()
	}
}

func (s *packetSource) name() string {
	return "AF_PACKET TX ring"
}

func (s *packetSource) close() {
	for _, r := range s.rings {
		r.close()
	}
}

// txDropped is the client veth's tx_dropped counter: frames the veth
// could not queue at the director.
func (s *packetSource) txDropped() (n uint64, err error) {
	err = inNS(s.ns, -1, func() error {
		l, err := netlink.LinkByIndex(s.ifindex)
		if err != nil {
			return fmt.Errorf("reading the client interface's counters: %w", err)
		}
		n = l.Attrs().Statistics.TxDropped
		return nil
	})
	return n, err
}

func (s *packetSource) reset() error {
	d, err := s.txDropped()
	if err != nil {
		return err
	}
	s.frames.Store(0)
	s.dropped = d
	return nil
}

// sent counts the frames that left the client's veth for the director:
// those sent less those the veth dropped.
func (s *packetSource) sent() (uint64, error) {
	d, err := s.txDropped()
	if err != nil {
		return 0, err
	}
	return s.frames.Load() - (d - s.dropped), nil
}

// sendCount sends count frames from one thread, countBatch at a time.
func (s *packetSource) sendCount(fc flowConfig, count uint32) error {
	r := s.rings[0]
	return inNS(s.ns, 0, func() error {
		var n uint64
		for n < uint64(count) {
			b := min(uint64(countBatch), uint64(count)-n)
			if err := r.send(int(b), func(buf []byte) {
				s.tmpl.build(buf, fc.flags, flowIndex(fc, n, 0))
				n++
			}); err != nil {
				return err
			}
			s.frames.Add(b)
		}
		return nil
	})
}

// packetRun is the source sending until stopped.
type packetRun struct {
	stopped atomic.Bool
	errc    chan error
	threads int
}

// start sends from one thread per ring, pinned to CPUs 0, 1, ..., until
// stop; flows start again at 0, as xdp_gen's do after a reset.
func (s *packetSource) start(fc flowConfig) (running, error) {
	r := &packetRun{errc: make(chan error, len(s.rings)), threads: len(s.rings)}
	ncpu := runtime.NumCPU()
	for i, ring := range s.rings {
		go func() {
			r.errc <- inNS(s.ns, i%ncpu, func() error {
				var n uint64
				for !r.stopped.Load() {
					if err := ring.send(ringBatch, func(buf []byte) {
						s.tmpl.build(buf, fc.flags, flowIndex(fc, n, i))
						n++
					}); err != nil {
						return err
					}
					s.frames.Add(ringBatch)
				}
				return nil
			})
		}()
	}
	return r, nil
}

func (r *packetRun) stop() error {
	r.stopped.Store(true)
	var errs []error
	for range r.threads {
		errs = append(errs, <-r.errc)
	}
	return errors.Join(errs...)
}
