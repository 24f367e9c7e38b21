// Command xdp is the XDP engine's forwarding benchmark (issue 5): the
// packets per second that reach a real server through the director, in
// DR, TUN, NAT and FullNAT mode, for established flows and for new connections, against
// a trivial XDP redirect program (the ceiling) and the kernel's own path
// (nftables DNAT), all measured in the same run.
//
// Each path runs in a fresh topology of network namespaces (see topo.go):
// the client sends with an XDP program in BPF_PROG_RUN live-frames mode
// (or, where the kernel refuses live frames, from an AF_PACKET TX ring:
// -source), the real server counts with an XDP program and drops, so a
// rate is what was actually delivered. Run it as root:
//
//	go run ./bench/xdp [-duration 2s] [-rounds 3] [-flows 4096] [-source auto|live|packet]
//
// It prints a markdown table. bench/xdp/run.sh installs nftables, runs it
// and draws the plot.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

func main() {
	if os.Getenv(envRole) == "director" {
		if err := runDirector(); err != nil {
			os.Exit(1)
		}
		return
	}
	var c config
	flag.DurationVar(&c.duration, "duration", 2*time.Second, "how long each measurement sends")
	flag.DurationVar(&c.warmup, "warmup", time.Second, "how long traffic runs before each measurement")
	flag.IntVar(&c.rounds, "rounds", 3, "rounds over all paths; the median is reported")
	flag.IntVar(&c.flows, "flows", 4096, "established flows (5-tuples in the connection table)")
	flag.IntVar(&c.threads, "threads", 1, "sending threads (one per CPU) and veth queues")
	flag.StringVar(&c.mode, "mode", "", `XDP mode on the director: native, generic, or "" for native with a fallback to generic`)
	flag.StringVar(&c.source, "source", sourceAuto, "traffic source: live (xdp_gen in BPF_PROG_RUN live-frames mode), packet (AF_PACKET TX ring), or auto (live where the kernel allows it, else packet)")
	targets := flag.String("targets", "drop,ceiling,dr,tun,nat,fnat,nft", "paths to measure, in order: drop (the generator's own limit), ceiling, dr, tun, nat, fnat, nft")
	dat := flag.String("dat", "", "also write the medians to this file, for gnuplot")
	flag.Parse()
	c.targets = strings.Split(*targets, ",")

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	res, err := benchmark(ctx, c, os.Stderr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "xdp benchmark: %v\n", err)
		os.Exit(1)
	}
	res.markdown(os.Stdout)
	if *dat != "" {
		if err := os.WriteFile(*dat, []byte(res.gnuplotData()), 0o644); err != nil {
			fmt.Fprintf(os.Stderr, "xdp benchmark: %v\n", err)
			os.Exit(1)
		}
	}
}

type config struct {
	duration, warmup time.Duration
	rounds, flows    int
	threads          int
	mode             string
	source           string // sourceAuto, sourceLive or sourcePacket
	targets          []string
}

// sample is one measurement.
type sample struct {
	pps  float64 // delivered to the real server
	sent float64 // sent by the traffic source
}

// pathResult is every sample of one path.
type pathResult struct {
	target     string
	mode       string // XDP mode on the director
	sinkMode   string // and on the real server
	est, new   []sample
	conns      uint64 // connections the director made (or tracked) in the last round
	drops      map[string]uint64
	flowsReady uint64 // connections after the SYNs of the established flows
}

type results struct {
	cfg   config
	paths []*pathResult
	// source names the traffic source used; refused says why auto did
	// not use live frames (nil when it did, or when -source chose).
	source  string
	refused error
}

func benchmark(ctx context.Context, c config, logw io.Writer) (*results, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("needs root (network namespaces and BPF); run it with sudo")
	}
	for _, t := range c.targets {
		switch t {
		case targetCeiling, targetDR, targetTUN, targetNAT, targetFNAT, targetNft, targetDrop:
		default:
			return nil, fmt.Errorf("unknown target %q (want drop, ceiling, dr, tun, nat, fnat or nft)", t)
		}
	}
	if c.threads < 1 || c.threads > runtime.NumCPU() {
		return nil, fmt.Errorf("-threads %d: want 1 to %d (the CPUs)", c.threads, runtime.NumCPU())
	}
	var objs benchObjects
	if err := loadBenchObjects(&objs, nil); err != nil {
		return nil, fmt.Errorf("loading the benchmark's BPF programs: %w", err)
	}
	defer objs.Close()

	res := &results{cfg: c}
	byTarget := map[string]*pathResult{}
	for _, t := range c.targets {
		p := &pathResult{target: t}
		byTarget[t] = p
		res.paths = append(res.paths, p)
	}
	for round := range c.rounds {
		for i, t := range c.targets {
			id := fmt.Sprintf("%d-%d-%d", os.Getpid(), round, i)
			if err := measure(ctx, c, &objs, id, byTarget[t], res); err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", round+1, t, err)
			}
			if round == 0 && i == 0 {
				fmt.Fprintf(logw, "traffic source: %s\n", res.sourceNote())
			}
			p := byTarget[t]
			fmt.Fprintf(logw, "round %d %-8s established %6.3f Mpps (sent %6.3f), new %6.3f Mpps (director %s, real server %s)\n",
				round+1, t, p.est[len(p.est)-1].pps/1e6, p.est[len(p.est)-1].sent/1e6, p.new[len(p.new)-1].pps/1e6, p.mode, p.sinkMode)
		}
	}
	return res, nil
}

// measure runs one round of one path in a fresh topology.
func measure(ctx context.Context, c config, objs *benchObjects, id string, p *pathResult, res *results) error {
	t, err := newTopo(ctx, id, c.threads)
	if err != nil {
		return err
	}
	defer t.close()
	sl, sinkMode, err := attach(t.rs, t.rsIfindex, objs.XdpSink, "")
	if err != nil {
		return err
	}
	defer sl.Close()
	p.sinkMode = sinkMode
	d, err := startDirector(ctx, t, p.target, c.mode)
	if err != nil {
		return err
	}
	defer d.stop()
	p.mode = d.mode
	g, refused, err := newSource(c.source, objs, t, c.threads)
	if err != nil {
		return err
	}
	defer g.close()
	if res.source == "" {
		res.source, res.refused = g.name(), refused
	}
	sk := sink{objs}

	// Established flows: a SYN each (from one thread, so that every flow
	// gets one), then ACKs; the warm-up moves them to ESTABLISHED.
	// nftables picks the flows up from the ACKs (nf_conntrack_tcp_loose):
	// a SYN would leave them in SYN_SENT, where our ACKs are invalid.
	if err := g.reset(); err != nil {
		return err
	}
	if p.target != targetNft {
		if err := g.sendCount(flowConfig{mode: genEst, flags: tcpSYN, nflows: uint32(c.flows)}, uint32(c.flows)); err != nil {
			return err
		}
	}
	est := flowConfig{mode: genEst, flags: tcpACK, nflows: uint32(c.flows)}
	s, err := window(ctx, c, g, sk, est, func() error {
		st, err := d.status(ctx)
		p.flowsReady = st.Conns
		return err
	})
	if err != nil {
		return err
	}
	if p.target == targetDrop {
		s.pps = s.sent // nothing reaches the real server
	}
	p.est = append(p.est, s)

	// New connections: a SYN of a new flow every frame.
	nc := flowConfig{mode: genNew, flags: tcpSYN, nflows: uint32(c.flows)}
	if s, err = window(ctx, c, g, sk, nc, nil); err != nil {
		return err
	}
	if p.target == targetDrop {
		s.pps = s.sent
	}
	p.new = append(p.new, s)
	st, err := d.status(ctx)
	if err != nil {
		return fmt.Errorf("director status: %w", err)
	}
	p.conns, p.drops = st.Conns, st.Drops
	return nil
}

// window sends fc for the warm-up, calls afterWarmup, then measures for
// the duration the rates sent and delivered.
func window(ctx context.Context, c config, g source, sk sink, fc flowConfig, afterWarmup func() error) (sample, error) {
	r, err := g.start(fc)
	if err != nil {
		return sample{}, err
	}
	s, err := func() (sample, error) {
		if err := sleep(ctx, c.warmup); err != nil {
			return sample{}, err
		}
		if afterWarmup != nil {
			if err := afterWarmup(); err != nil {
				return sample{}, fmt.Errorf("director status: %w", err)
			}
		}
		r0, err := sk.received()
		if err != nil {
			return sample{}, err
		}
		s0, err := g.sent()
		if err != nil {
			return sample{}, err
		}
		t0 := time.Now()
		if err := sleep(ctx, c.duration); err != nil {
			return sample{}, err
		}
		s1, err := g.sent()
		if err != nil {
			return sample{}, err
		}
		r1, err := sk.received()
		if err != nil {
			return sample{}, err
		}
		el := time.Since(t0).Seconds()
		return sample{pps: float64(r1-r0) / el, sent: float64(s1-s0) / el}, nil
	}()
	return s, errors.Join(err, r.stop())
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func median(ss []sample) sample {
	if len(ss) == 0 {
		return sample{}
	}
	s := slices.Clone(ss)
	slices.SortFunc(s, func(a, b sample) int {
		switch {
		case a.pps < b.pps:
			return -1
		case a.pps > b.pps:
			return 1
		}
		return 0
	})
	return s[len(s)/2]
}
