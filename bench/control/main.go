// Command control benchmarks GVS's control plane, black-box: it builds the
// real gvsd and gvsadm, starts gvsd on each engine (proxy on loopback, xdp
// in network namespaces, ipvs on the kernel's IPVS), and times what a user
// does to large tables: restoring the whole table with `gvsadm -R`, one
// `gvsadm -e`, one health-check flap, and gvsd's memory per service. The
// ipvs engine is also compared with ipvsadm and keepalived doing the same
// to the same kernel (ipvs.go). See bench/README.md, "Control plane" and
// "IPVS engine"; run it with `bash bench/control/run.sh`, or
// `bash bench/control/run-ipvs.sh` for the ipvs engine in the IPVS VM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// xdpDefaultServices is gvsd's --xdp-max-services by default; larger
// tables pass the flag (and --xdp-max-real-servers).
const xdpDefaultServices = 4096

type config struct {
	engines []string
	scheds  []string
	sizes   []int // services in the table, ascending
	servers int   // real servers per service
	limit   time.Duration
	repeat  int // runs of each timed gvsadm command (median kept)
	// ipvsReload reloads the ip_vs modules between the ipvs engine's
	// steps (see flushKernel).
	ipvsReload bool

	gvsd, gvsadm string // binaries; built from the tree when empty
	work         string // scratch directory
}

func main() {
	c := config{servers: 4}
	var engines, scheds, sizes, dat string
	flag.StringVar(&engines, "engines", "proxy,xdp", "engines to measure: proxy, xdp (needs root), ipvs (needs root, the kernel's ip_vs, ipvsadm and keepalived)")
	flag.StringVar(&scheds, "scheds", "rr,mh", "schedulers (-s) of the services")
	flag.StringVar(&sizes, "sizes", "10,100,1000,10000", "table sizes, in services")
	flag.DurationVar(&c.limit, "limit", 60*time.Second, "time allowed to each restore, edit and flap; a size that takes longer is reported as \"> limit\" and larger ones are not run")
	flag.IntVar(&c.repeat, "repeat", 5, "runs of each timed gvsadm command (the median is reported)")
	flag.BoolVar(&c.ipvsReload, "ipvs-reload", false, "ipvs engine: reload the ip_vs modules between steps, so that none pays for the real servers an earlier step deleted (the kernel walks them on each add); ip_vs must be a module nothing else uses")
	flag.StringVar(&c.gvsd, "gvsd", "", "gvsd binary to measure (default: built from this tree)")
	flag.StringVar(&c.gvsadm, "gvsadm", "", "gvsadm binary (default: built from this tree)")
	flag.StringVar(&dat, "dat", "", "write the plot's data to this file (gnuplot: bench/control/plot.gp)")
	flag.Parse()
	c.engines, c.scheds = split(engines), split(scheds)
	for _, s := range split(sizes) {
		n, err := strconv.Atoi(s)
		if err != nil || n < 2 {
			fatal(fmt.Errorf("-sizes: %q is not a number of services of at least 2", s))
		}
		c.sizes = append(c.sizes, n)
	}
	sort.Ints(c.sizes)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	work, err := os.MkdirTemp("", "gvs-ctlbench.")
	if err != nil {
		fatal(err)
	}
	defer os.RemoveAll(work)
	c.work = work
	res, err := benchmark(ctx, c, os.Stderr)
	if err != nil {
		fatal(err)
	}
	res.markdown(os.Stdout)
	if dat != "" {
		f, err := os.Create(dat)
		if err != nil {
			fatal(err)
		}
		res.plotData(f)
		if err := f.Close(); err != nil {
			fatal(err)
		}
	}
}

func split(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "control:", err)
	os.Exit(1)
}

// result is every row of one run.
type result struct {
	c    config
	rows []*row
	when time.Time
}

// row is one engine, scheduler and table size.
type row struct {
	engine, sched string
	size          int

	skipped string // why it was not measured
	failed  string // the error that ended its measurement

	restore   time.Duration // gvsadm -R of services 1 … size-1
	restoreOK bool          // false: stopped at the limit
	reached   int           // services in the table when the restore was stopped
	listed    [2]int        // services and real servers gvsadm -Ln shows

	save, trivial, edit time.Duration // medians: gvsadm -Sn, -L --timeout, one -e
	editOK              bool
	flapDown, flapUp    time.Duration // verdict logged → pool change logged
	flapOK              bool
	flapErr             string
	rssBase, rssFull    uint64 // gvsd's RSS before and after the restore

	refs *ipvsRefs // the ipvs engine's references (ipvs.go); nil on the others
}

func (r *row) flap() time.Duration { return r.flapDown + r.flapUp }

// benchmark measures every engine, scheduler and size; progress goes to log.
func benchmark(ctx context.Context, c config, log io.Writer) (*result, error) {
	if err := c.build(ctx, log); err != nil {
		return nil, err
	}
	res := &result{c: c, when: time.Now()}
	for _, eng := range c.engines {
		l, ok := layouts[eng]
		if !ok {
			return nil, fmt.Errorf("no engine %q (proxy, xdp or ipvs)", eng)
		}
		if eng == "ipvs" {
			if err := checkIPVS(); err != nil {
				return nil, err
			}
		}
		for _, sched := range c.scheds {
			var tooSlow string
			for _, n := range c.sizes {
				r := &row{engine: eng, sched: sched, size: n}
				res.rows = append(res.rows, r)
				if tooSlow != "" {
					r.skipped = tooSlow
					continue
				}
				fmt.Fprintf(log, "%s %s %d services …\n", eng, sched, n)
				if err := c.measure(ctx, l, r, log); err != nil {
					if ctx.Err() != nil {
						return nil, ctx.Err()
					}
					// Reported in its row; the other engines and
					// schedulers still run.
					r.failed = err.Error()
					fmt.Fprintf(log, "  failed: %v\n", err)
					tooSlow = fmt.Sprintf("not run: %d services failed", n)
					continue
				}
				if !r.restoreOK || !r.editOK || !r.flapOK {
					tooSlow = fmt.Sprintf("not run: %d services exceeded the limit", n)
					continue
				}
				if eng == "ipvs" {
					if err := c.measureRefs(ctx, l, r, log); err != nil {
						if ctx.Err() != nil {
							return nil, ctx.Err()
						}
						r.refs.failed = err.Error()
						fmt.Fprintf(log, "  references failed: %v\n", err)
						tooSlow = fmt.Sprintf("not run: the references of %d services failed", n)
					}
				}
			}
		}
	}
	return res, ctx.Err()
}

// build builds gvsd and gvsadm from the module this benchmark is in,
// unless given.
func (c *config) build(ctx context.Context, log io.Writer) error {
	if c.gvsd != "" && c.gvsadm != "" {
		return nil
	}
	gomod, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil || len(strings.TrimSpace(string(gomod))) == 0 {
		return fmt.Errorf("finding the module to build gvsd from (go env GOMOD): %v", err)
	}
	fmt.Fprintln(log, "building gvsd and gvsadm …")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", c.work+"/", "./cmd/gvsd", "./cmd/gvsadm")
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(gomod)))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/gvsd ./cmd/gvsadm: %v\n%s", err, out)
	}
	c.gvsd, c.gvsadm = filepath.Join(c.work, "gvsd"), filepath.Join(c.work, "gvsadm")
	return nil
}

// measure runs one row on a fresh gvsd (and, for xdp, fresh namespaces).
// A timeout of the limit is recorded in the row; other failures are
// errors.
func (c *config) measure(ctx context.Context, l layout, r *row, log io.Writer) error {
	dir, err := os.MkdirTemp(c.work, "run.")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if l.engine == "ipvs" {
		// An empty kernel table: gvsd refuses services added outside it.
		if err := flushKernel(ctx, c.ipvsReload); err != nil {
			return err
		}
	}
	if l.engine == "proxy" {
		// A port no one uses now, so that two runs (or a test beside this
		// one) do not collide on the VIPs.
		if l.port, err = freePort(l.vip(0)); err != nil {
			return err
		}
	}
	flagFile := filepath.Join(dir, "up")
	conf := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(flagFile, nil, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(conf, l.keepalivedConf(r.sched, c.servers, flagFile), 0o644); err != nil {
		return err
	}
	args := []string{"--engine", l.engine, "--socket", filepath.Join(dir, "gvsd.sock"), "-f", conf, "--grace", "1s"}
	var prefix []string
	if l.engine == "xdp" {
		t, err := newTopo(ctx, l.rsAddrs())
		if err != nil {
			return err
		}
		defer t.close()
		prefix = []string{"ip", "netns", "exec", t.dir}
		args = append(args, "--interface", "eth0")
		if r.size > xdpDefaultServices {
			args = append(args, "--xdp-max-services", fmt.Sprint(r.size), "--xdp-max-real-servers", fmt.Sprint(r.size*c.servers))
		}
	}
	d, err := startDaemon(ctx, c.gvsd, c.gvsadm, filepath.Join(dir, "gvsd.sock"), prefix, args)
	if err != nil {
		return err
	}
	defer d.stop()
	// keepalived.conf's service 0, with every real server, before anything
	// is timed.
	if err := c.waitListed(ctx, d, 1, c.servers); err != nil {
		return err
	}
	if r.rssBase, err = d.rss(); err != nil {
		return err
	}

	rules := l.rules(r.sched, 1, r.size, c.servers)
	rctx, cancel := context.WithTimeout(ctx, c.limit)
	_, r.restore, err = d.run(rctx, rules, "-R")
	cancel()
	switch {
	case err == nil:
		r.restoreOK = true
	case rctx.Err() != nil && ctx.Err() == nil:
		// Stopped at the limit: how far did it get? gvsd may still be
		// busy with the last request.
		sctx, cancel := context.WithTimeout(ctx, c.limit)
		out, _, lerr := d.run(sctx, nil, "-Sn")
		cancel()
		r.reached = strings.Count(out, "-A ")
		if lerr != nil {
			r.reached = -1 // gvsd still busy after another limit
		}
		fmt.Fprintf(log, "  restore stopped at the limit (%v) with %d services in the table\n", c.limit, r.reached)
		return nil
	default:
		return err
	}
	if err := c.listed(ctx, d, r); err != nil {
		return err
	}
	if l.engine == "ipvs" {
		if err := wantKernel(r.size, r.size*c.servers); err != nil {
			return fmt.Errorf("after gvsadm -R: %w", err)
		}
	}
	if r.rssFull, err = d.rss(); err != nil {
		return err
	}
	if r.save, err = c.median(ctx, d, func(int) []string { return []string{"-Sn"} }); err != nil {
		return err
	}
	if r.trivial, err = c.median(ctx, d, func(int) []string { return []string{"-L", "--timeout"} }); err != nil {
		return err
	}
	// One -e: the weight of the second real server of the service in the
	// middle of the table, 2 then 1 then 2 …
	mid := r.size / 2
	ectx, cancel := context.WithTimeout(ctx, c.limit)
	r.edit, err = c.median(ectx, d, func(i int) []string {
		return []string{"-e", "-t", l.vip(mid), "-r", l.rs(mid, 1), l.method, "-w", fmt.Sprint(2 - i%2)}
	})
	timedOut := ectx.Err() != nil
	cancel()
	switch {
	case err == nil:
		r.editOK = true
	case timedOut && ctx.Err() == nil:
		fmt.Fprintf(log, "  %d edits did not finish within the limit (%v)\n", c.repeat, c.limit)
		return nil
	default:
		return err
	}
	if err := c.flap(ctx, d, l, r, flagFile); err != nil {
		return err
	}
	fmt.Fprintf(log, "  restore %v, save %v, trivial %v, edit %v, flap %v+%v, RSS %d → %d MiB\n",
		r.restore.Round(time.Millisecond), r.save.Round(time.Millisecond), r.trivial.Round(time.Millisecond),
		r.edit.Round(time.Millisecond), r.flapDown.Round(time.Microsecond), r.flapUp.Round(time.Microsecond),
		r.rssBase>>20, r.rssFull>>20)
	return nil
}

// median runs gvsadm c.repeat times (args(i) for the i-th run) and returns
// the median time.
func (c *config) median(ctx context.Context, d *daemon, args func(i int) []string) (time.Duration, error) {
	var ts []time.Duration
	for i := range c.repeat {
		_, took, err := d.run(ctx, nil, args(i)...)
		if err != nil {
			return 0, err
		}
		ts = append(ts, took)
	}
	slices.Sort(ts)
	return ts[len(ts)/2], nil
}

// listed checks with gvsadm -Ln that the table holds every service and
// real server restored.
func (c *config) listed(ctx context.Context, d *daemon, r *row) error {
	out, _, err := d.run(ctx, nil, "-Ln")
	if err != nil {
		return err
	}
	r.listed = countListing(out)
	if r.listed != [2]int{r.size, r.size * c.servers} {
		return fmt.Errorf("gvsadm -Ln shows %d services and %d real servers after the restore, want %d and %d",
			r.listed[0], r.listed[1], r.size, r.size*c.servers)
	}
	return nil
}

// waitListed waits until gvsadm -Ln shows services services and servers
// real servers.
func (c *config) waitListed(ctx context.Context, d *daemon, services, servers int) error {
	ctx, cancel := context.WithTimeout(ctx, cmdTimeout)
	defer cancel()
	for {
		out, _, err := d.run(ctx, nil, "-Ln")
		got := countListing(out)
		if err == nil && got == [2]int{services, servers} {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gvsd's table did not come to %d services and %d real servers (last %v, %v):\n%s%s",
				services, servers, got, err, out, d.logTail())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// countListing counts the services and real servers in gvsadm -Ln's table.
func countListing(out string) (n [2]int) {
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "TCP ") || strings.HasPrefix(l, "UDP ") || strings.HasPrefix(l, "FWM ") || strings.HasPrefix(l, "SCTP "):
			n[0]++
		case strings.HasPrefix(l, "  -> ") && !strings.HasPrefix(l, "  -> RemoteAddress"):
			n[1]++
		}
	}
	return n
}

// flap takes service 0's checked real server down and up again by
// removing and re-creating the file its MISC_CHECK tests. Each half is
// timed from the checker's verdict (its "check failed" / "check
// succeeded" log line) to the pool change (the "real server down" / "up"
// line), which gvsd logs once the table and the engine have it; the
// detection delay (delay_loop) is not counted. gvsadm -L then confirms the
// table says the same.
func (c *config) flap(ctx context.Context, d *daemon, l layout, r *row, flagFile string) error {
	ctx, cancel := context.WithTimeout(ctx, c.limit)
	defer cancel()
	half := func(verdict, change string, flip func() error, wantServers int) (time.Duration, error) {
		d.drain()
		if err := flip(); err != nil {
			return 0, err
		}
		t0, err := d.wait(ctx, verdict)
		if err != nil {
			return 0, err
		}
		t1, err := d.wait(ctx, change)
		if err != nil {
			return 0, err
		}
		out, _, err := d.run(ctx, nil, "-Ln", "-t", l.vip(0))
		if err != nil {
			return 0, err
		}
		if got := countListing(out)[1]; got != wantServers {
			return 0, fmt.Errorf("after %q gvsadm -Ln -t %s shows %d real servers, want %d:\n%s", change, l.vip(0), got, wantServers, out)
		}
		return t1.Sub(t0), nil
	}
	var err error
	r.flapDown, err = half(msgCheckFailed, msgServerDown, func() error { return os.Remove(flagFile) }, c.servers-1)
	if err == nil {
		r.flapUp, err = half(msgCheckSucceeded, msgServerUp, func() error { return os.WriteFile(flagFile, nil, 0o644) }, c.servers)
	}
	switch {
	case err == nil:
		r.flapOK = true
		return nil
	case ctx.Err() != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		r.flapErr = err.Error()
		return nil
	}
	return err
}

// freePort is a TCP port free on the address of vip (ADDR:PORT) now.
func freePort(vip string) (int, error) {
	addr, _, err := net.SplitHostPort(vip)
	if err != nil {
		return 0, err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		return 0, fmt.Errorf("finding a free port on %s: %w", addr, err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
