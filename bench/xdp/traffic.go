package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Generator modes, as GEN_* in bench.c.
const (
	genEst = 0
	genNew = 1
)

// TCP flags the generator can send.
const (
	tcpSYN = 0x02
	tcpACK = 0x10
)

// inNS runs f on a fresh OS thread moved into the namespace ns (unless ns
// is "": this one) and pinned
// to cpu (when cpu >= 0). The thread is thrown away afterwards (the
// goroutine exits locked), so no other goroutine ever runs in ns.
func inNS(ns string, cpu int, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if ns != "" {
			h, err := netns.GetFromName(ns)
			if err != nil {
				errc <- fmt.Errorf("namespace %s: %w", ns, err)
				return
			}
			defer h.Close()
			if err := netns.Set(h); err != nil {
				errc <- fmt.Errorf("entering namespace %s: %w", ns, err)
				return
			}
		}
		if cpu >= 0 {
			var set unix.CPUSet
			set.Set(cpu)
			if err := unix.SchedSetaffinity(0, &set); err != nil {
				errc <- fmt.Errorf("pinning to CPU %d: %w", cpu, err)
				return
			}
		}
		errc <- f()
	}()
	return <-errc
}

// attach attaches prog to the interface ifindex of namespace ns, in
// native mode when it can and else in generic mode; it says which.
func attach(ns string, ifindex int, prog *ebpf.Program, want string) (l link.Link, mode string, err error) {
	err = inNS(ns, -1, func() error {
		if want != "generic" {
			l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPDriverMode})
			if err == nil {
				mode = "native"
				return nil
			}
			if want == "native" {
				return fmt.Errorf("attaching XDP in native mode in %s: %w", ns, err)
			}
		}
		l, err = link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPGenericMode})
		if err != nil {
			return fmt.Errorf("attaching XDP in %s: %w", ns, err)
		}
		mode = "generic"
		return nil
	})
	return l, mode, err
}

// xdpMD is struct xdp_md, the context of an XDP test run.
type xdpMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// flowConfig is what the generator sends.
type flowConfig struct {
	mode   uint8
	flags  uint8
	nflows uint32
}

// source sends the benchmark's frames from the client namespace: a SYN
// or ACK of flow i, as xdp_gen numbers the flows.
type source interface {
	// name says which source sends, for the report.
	name() string
	// reset starts the count of sent frames (and the established flows)
	// again at 0.
	reset() error
	// sendCount sends count frames from one thread, every one of them.
	sendCount(fc flowConfig, count uint32) error
	// start sends as fast as it can until the run is stopped.
	start(fc flowConfig) (running, error)
	// sent is the number of frames sent since reset, all threads.
	sent() (uint64, error)
	close()
}

// running is a source sending until stopped.
type running interface{ stop() error }

// Traffic sources, the -source flag.
const (
	sourceAuto   = "auto"   // live frames where the kernel allows them, else packet
	sourceLive   = "live"   // xdp_gen in BPF_PROG_RUN live-frames mode
	sourcePacket = "packet" // AF_PACKET TX ring
)

// errLiveFramesRefused is the kernel refusing BPF_PROG_RUN in live-frames
// mode while running the same program without the flag: a kernel (or a
// sandbox) that does not let a test run transmit.
var errLiveFramesRefused = errors.New("the kernel refuses BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES (EPERM) although it runs the program without the flag")

// newSource returns the source that kind names, or for auto the
// live-frames generator when the kernel allows it and the AF_PACKET one
// otherwise; refused is errLiveFramesRefused when auto fell back because
// the kernel refused live frames.
func newSource(kind string, objs *benchObjects, t *xdpTopo, threads int) (s source, refused error, err error) {
	switch kind {
	case sourceLive:
		return newLiveFrames(objs, t, threads), nil, nil
	case sourcePacket:
		s, err := newPacketSource(t, threads)
		return s, nil, err
	case sourceAuto:
		g := newLiveFrames(objs, t, threads)
		switch err := g.probe(); {
		case err == nil:
			return g, nil, nil
		case errors.Is(err, errLiveFramesRefused):
			s, perr := newPacketSource(t, threads)
			return s, err, perr
		default:
			return nil, nil, err
		}
	}
	return nil, nil, fmt.Errorf("unknown traffic source %q (want auto, live or packet)", kind)
}

// liveFrames sends frames from the client namespace with xdp_gen in
// live-frames mode.
type liveFrames struct {
	objs    *benchObjects
	ns      string
	ifindex int
	threads int
	base    benchGenCfg
}

func newLiveFrames(objs *benchObjects, t *xdpTopo, threads int) *liveFrames {
	g := &liveFrames{objs: objs, ns: t.cli, ifindex: t.cliIfindex, threads: threads}
	ft := newFrameTemplate(t)
	copy(g.base.Dmac[:], ft.dst)
	copy(g.base.Smac[:], ft.src)
	g.base.Saddr = be32(netip.MustParseAddr(flowBase))
	g.base.Daddr = be32(netip.MustParseAddr(vipAddr))
	g.base.Dport = be16(vipPort)
	return g
}

func (g *liveFrames) name() string { return "xdp_gen, BPF_PROG_RUN live frames" }

func (g *liveFrames) close() {}

// probe runs xdp_gen once in live-frames mode with the generator stopped
// (it drops the frame), and once without the flag if that was refused:
// errLiveFramesRefused when only the live-frames run is refused.
func (g *liveFrames) probe() error {
	if err := g.configure(flowConfig{mode: genEst, flags: tcpACK, nflows: 1}, true); err != nil {
		return err
	}
	return inNS(g.ns, -1, func() error {
		err := g.runOnce(1)
		if err == nil || !errors.Is(err, unix.EPERM) {
			return err
		}
		if _, plain := g.objs.XdpGen.Run(&ebpf.RunOptions{Data: make([]byte, frameLen)}); plain != nil {
			return fmt.Errorf("%w; and without the flag: %v", err, plain)
		}
		return fmt.Errorf("%w: %v", errLiveFramesRefused, err)
	})
}

func be32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.NativeEndian.Uint32(b[:])
}

func be16(p uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], p)
	return binary.NativeEndian.Uint16(b[:])
}

// sent is the number of frames built so far, all CPUs.
func (g *liveFrames) sent() (uint64, error) {
	var per []uint64
	if err := g.objs.GenSent.Lookup(uint32(0), &per); err != nil {
		return 0, fmt.Errorf("reading the generator's counter: %w", err)
	}
	var n uint64
	for _, x := range per {
		n += x
	}
	return n, nil
}

// reset sets the per-CPU frame counters to 0, so that established flows
// start again at flow 0 on every CPU.
func (g *liveFrames) reset() error {
	per := make([]uint64, ebpf.MustPossibleCPU())
	return g.objs.GenSent.Put(uint32(0), per)
}

// configure writes the flow config; stop makes xdp_gen drop the rest of
// a run's frames.
func (g *liveFrames) configure(fc flowConfig, stop bool) error {
	c := g.base
	c.Mode, c.TcpFlags, c.Nflows = fc.mode, fc.flags, fc.nflows
	if stop {
		c.Stop = 1
	}
	if err := g.objs.GenConfig.Put(uint32(0), &c); err != nil {
		return fmt.Errorf("configuring the generator: %w", err)
	}
	return nil
}

// runOnce runs xdp_gen repeat times in live-frames mode from the client
// namespace, pinned to cpu.
func (g *liveFrames) runOnce(repeat uint32) error {
	frame := make([]byte, 60) // xdp_gen writes the headers
	_, err := g.objs.XdpGen.Run(&ebpf.RunOptions{
		Data:    frame,
		Repeat:  repeat,
		Flags:   unix.BPF_F_TEST_XDP_LIVE_FRAMES,
		Context: xdpMD{DataEnd: uint32(len(frame)), IngressIfindex: uint32(g.ifindex)},
	})
	if err != nil {
		return fmt.Errorf("sending frames (BPF_PROG_RUN in live-frames mode): %w", err)
	}
	return nil
}

// sendCount sends count frames from one thread on CPU 0.
func (g *liveFrames) sendCount(fc flowConfig, count uint32) error {
	if err := g.configure(fc, false); err != nil {
		return err
	}
	return inNS(g.ns, 0, func() error { return g.runOnce(count) })
}

// genRun is the generator sending until stopped.
type genRun struct {
	g       *liveFrames
	fc      flowConfig
	stopped atomic.Bool
	errc    chan error
}

// start sends frames from g.threads threads pinned to CPUs 0, 1, ...
// until stop. Each thread calls BPF_PROG_RUN with as many repetitions as
// it sends in about 4 s: every call costs the kernel two RCU grace
// periods (it switches the XDP dispatcher), time in which no frame is
// sent, so calls must be few.
func (g *liveFrames) start(fc flowConfig) (running, error) {
	if err := g.configure(fc, false); err != nil {
		return nil, err
	}
	r := &genRun{g: g, fc: fc, errc: make(chan error, g.threads)}
	ncpu := runtime.NumCPU()
	for i := range g.threads {
		go func() {
			r.errc <- inNS(g.ns, i%ncpu, func() error {
				repeat := uint32(1 << 20)
				for !r.stopped.Load() {
					t0 := time.Now()
					if err := g.runOnce(repeat); err != nil {
						return err
					}
					if r.stopped.Load() {
						break
					}
					rate := float64(repeat) / time.Since(t0).Seconds()
					repeat = uint32(min(max(rate*4, 1<<16), 1<<30))
				}
				return nil
			})
		}()
	}
	return r, nil
}

// stop makes the generator drop what its runs have left and waits for
// its threads.
func (r *genRun) stop() error {
	r.stopped.Store(true)
	errs := []error{r.g.configure(r.fc, true)}
	for range r.g.threads {
		errs = append(errs, <-r.errc)
	}
	return errors.Join(errs...)
}

// sink counts what the real server received.
type sink struct{ objs *benchObjects }

func (s sink) received() (uint64, error) {
	var per []benchCounter
	if err := s.objs.SinkCount.Lookup(uint32(0), &per); err != nil {
		return 0, fmt.Errorf("reading the real server's counter: %w", err)
	}
	var n uint64
	for _, c := range per {
		n += c.Pkts
	}
	return n, nil
}
