package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/cloudflare/ipvs"
)

// On the ipvs engine the kernel forwards the packets, so what gvsd adds is
// the control plane. Its references are the tools a user would otherwise
// drive the kernel's IPVS with, measured in the same run on the same
// kernel table: ipvsadm (restore and one edit) and keepalived (start from
// keepalived.conf and a reload). They need the kernel's ip_vs, ipvsadm and
// keepalived on PATH; bench/control/run-ipvs.sh runs all of it in the
// IPVS VM of test/ipvsvm.

// ipvsRefs is an ipvs row's comparison with ipvsadm and keepalived.
type ipvsRefs struct {
	failed string // the error that ended the comparison

	ipvsadmRestore time.Duration // ipvsadm -R of the text gvsadm -R restored
	ipvsadmEdit    time.Duration // median of one ipvsadm -e, as the -e column

	// From exec to the kernel table complete, with keepalived.conf of every
	// service (no checkers: every real server is up at once).
	gvsdStart, kaStart time.Duration
	// RSS once the table is complete: gvsd, and keepalived's parent and
	// checker processes together.
	gvsdStartRSS, kaStartRSS uint64
	// SIGHUP with one real server's weight changed in the file, to the
	// kernel showing the new weight.
	gvsdReload, kaReload time.Duration
}

// ipvsTools are the reference programs the ipvs rows need.
var ipvsTools = []string{"ipvsadm", "keepalived"}

// checkIPVS says what is missing for the ipvs engine's rows.
func checkIPVS() error {
	for _, t := range ipvsTools {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("the ipvs engine is compared with %s, which is not installed", t)
		}
	}
	if _, err := os.Stat("/proc/net/ip_vs"); err != nil {
		return errors.New("the ipvs engine needs the kernel's IPVS (/proc/net/ip_vs is missing: modprobe ip_vs, or run bench/control/run-ipvs.sh, which uses the IPVS VM)")
	}
	return nil
}

// flushKernel empties the kernel's IPVS table (ipvsadm -C) and, with
// reload (the -ipvs-reload flag, which run-ipvs.sh sets), reloads the
// ip_vs modules, so that every step starts from the same kernel.
// ipvsadm -C alone is not enough: the kernel keeps each deleted real
// server for one to three minutes in a trash list that it walks, entry by
// entry, on every real server added (ip_vs_trash_get_dest, Linux 6.1), so
// the steps after a large flush would pay for the steps before them (in
// the VM, 1,000 services of 4 real servers took 54 s to add after a flush
// of 10,000 services, 2.7 s on a fresh module).
// The smoke test in the VM does not reload: there, other tests' network
// namespaces come and go after it, and once (of several runs) deleting
// one soft-locked Linux 6.1 after the modules had been reloaded.
func flushKernel(ctx context.Context, reload bool) error {
	if out, err := exec.CommandContext(ctx, "ipvsadm", "-C").CombinedOutput(); err != nil {
		return fmt.Errorf("ipvsadm -C: %v: %s", err, out)
	}
	if !reload {
		return nil
	}
	mods, err := os.ReadFile("/proc/modules")
	if err != nil {
		return err
	}
	var unload []string
	for l := range strings.Lines(string(mods)) {
		if name, _, _ := strings.Cut(l, " "); strings.HasPrefix(name, "ip_vs_") {
			unload = append(unload, name)
		}
	}
	unload = append(unload, "ip_vs")
	if out, err := exec.CommandContext(ctx, "modprobe", append([]string{"-r"}, unload...)...).CombinedOutput(); err != nil {
		return fmt.Errorf("modprobe -r %s (to empty the kernel's trash of deleted real servers between steps; ip_vs must be a module nothing else uses): %v: %s",
			strings.Join(unload, " "), err, out)
	}
	if out, err := exec.CommandContext(ctx, "modprobe", "ip_vs").CombinedOutput(); err != nil {
		return fmt.Errorf("modprobe ip_vs: %v: %s", err, out)
	}
	return nil
}

// kernelCount counts the services and real servers in the kernel's
// table, from /proc/net/ip_vs (one read, no process started).
func kernelCount() (n [2]int, err error) {
	b, err := os.ReadFile("/proc/net/ip_vs")
	if err != nil {
		return n, err
	}
	return countProcIPVS(b), nil
}

// countProcIPVS counts the services and real servers in the text of
// /proc/net/ip_vs, whose lines start as gvsadm -Ln's do.
func countProcIPVS(b []byte) [2]int { return countListing(string(b)) }

// measureRefs fills r.refs: the table of r (services 1 … size−1 restored,
// one -e in the middle) done with ipvsadm, then the whole table started
// from keepalived.conf and reloaded with one weight changed, by keepalived
// and by gvsd. Each step starts from an empty kernel table and runs under
// the limit.
func (c *config) measureRefs(ctx context.Context, l layout, r *row, log io.Writer) error {
	ref := &ipvsRefs{}
	r.refs = ref
	if err := flushKernel(ctx, c.ipvsReload); err != nil {
		return err
	}

	// ipvsadm -R of the very text gvsadm -R restored, then the same edits.
	rctx, cancel := context.WithTimeout(ctx, c.limit)
	took, err := ipvsadm(rctx, l.rules(r.sched, 1, r.size, c.servers), "-R")
	cancel()
	if err != nil {
		return err
	}
	ref.ipvsadmRestore = took
	if err := wantKernel(r.size-1, (r.size-1)*c.servers); err != nil {
		return fmt.Errorf("after ipvsadm -R: %w", err)
	}
	mid := r.size / 2
	var edits []time.Duration
	for i := range c.repeat {
		took, err := ipvsadm(ctx, nil, "-e", "-t", l.vip(mid), "-r", l.rs(mid, 1), l.method, "-w", fmt.Sprint(2-i%2))
		if err != nil {
			return err
		}
		edits = append(edits, took)
	}
	slices.Sort(edits)
	ref.ipvsadmEdit = edits[len(edits)/2]
	if err := flushKernel(ctx, c.ipvsReload); err != nil {
		return err
	}

	dir, err := os.MkdirTemp(c.work, "ipvs.")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	conf := filepath.Join(dir, "keepalived.conf")
	ka := []string{"keepalived", "--dont-fork", "--log-console", "--check", "-f", conf,
		"--pid", filepath.Join(dir, "keepalived.pid"), "--checkers_pid", filepath.Join(dir, "checkers.pid"),
		"--vrrp_pid", filepath.Join(dir, "vrrp.pid")}
	gvsd := []string{c.gvsd, "--engine", "ipvs", "-f", conf, "--socket", filepath.Join(dir, "gvsd.sock"), "--grace", "1s"}
	kaRSS := func(p *os.Process) (uint64, error) {
		checker, err := readPid(filepath.Join(dir, "checkers.pid"))
		if err != nil {
			return 0, err
		}
		a, err := rssOf(p.Pid)
		if err != nil {
			return 0, err
		}
		b, err := rssOf(checker)
		return a + b, err
	}
	gvsdRSS := func(p *os.Process) (uint64, error) { return rssOf(p.Pid) }
	if ref.kaStart, ref.kaReload, ref.kaStartRSS, err = c.startReload(ctx, l, r, conf, ka, kaRSS); err != nil {
		return fmt.Errorf("keepalived: %w", err)
	}
	if ref.gvsdStart, ref.gvsdReload, ref.gvsdStartRSS, err = c.startReload(ctx, l, r, conf, gvsd, gvsdRSS); err != nil {
		return fmt.Errorf("gvsd: %w", err)
	}
	fmt.Fprintf(log, "  ipvsadm -R %v, ipvsadm -e %v; start gvsd %v, keepalived %v; reload gvsd %v, keepalived %v\n",
		ref.ipvsadmRestore.Round(time.Millisecond), ref.ipvsadmEdit.Round(time.Microsecond),
		ref.gvsdStart.Round(time.Millisecond), ref.kaStart.Round(time.Millisecond),
		ref.gvsdReload.Round(time.Millisecond), ref.kaReload.Round(time.Millisecond))
	return nil
}

// startReload writes keepalived.conf with every service of r, starts argv
// on it and times it until the kernel table is complete; then rewrites the
// file with one weight changed, sends SIGHUP and times it until the kernel
// has the new weight. The process is stopped and the table emptied after.
func (c *config) startReload(ctx context.Context, l layout, r *row, conf string, argv []string,
	rss func(*os.Process) (uint64, error)) (start, reload time.Duration, mem uint64, err error) {
	mid := r.size / 2
	if err := os.WriteFile(conf, l.fullConf(r.sched, r.size, c.servers, -1), 0o644); err != nil {
		return 0, 0, 0, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var logb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logb, &logb
	done := make(chan struct{})
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, 0, 0, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	go func() { cmd.Wait(); close(done) }()
	defer func() {
		stopProcess(cmd.Process, done, c.limit)
		if ferr := flushKernel(context.WithoutCancel(ctx), c.ipvsReload); err == nil {
			err = ferr
		}
		if err != nil {
			err = fmt.Errorf("%w\nits log ends:\n%s", err, lastLines(logb.String(), 15))
		}
	}()
	lctx, cancel := context.WithTimeout(ctx, c.limit)
	defer cancel()
	cl, err := ipvs.New()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("netlink to the kernel's IPVS: %w", err)
	}
	// Complete: the last service of the file has its real servers (one
	// small netlink request), then /proc/net/ip_vs holds every service and
	// real server (a read of the whole table, milliseconds to a second in
	// the VM, so it waits 4 reads' time after an incomplete one: polling
	// takes at most a fifth of a CPU from the process measured).
	want := [2]int{r.size, r.size * c.servers}
	last := l.kernelService(r.size - 1)
	var n [2]int
	for {
		pause := 5 * time.Millisecond
		if dests, _ := cl.Destinations(last); len(dests) == c.servers {
			t := time.Now()
			if n, err = kernelCount(); err != nil {
				return 0, 0, 0, err
			}
			if n == want {
				start = t.Sub(t0)
				break
			}
			pause = max(pause, 4*time.Since(t))
		}
		select {
		case <-done:
			return 0, 0, 0, fmt.Errorf("exited (%v) with %v services and real servers in the kernel", cmd.ProcessState, n)
		case <-lctx.Done():
			return 0, 0, 0, fmt.Errorf("the kernel table had %v services and real servers, not %v, after %v: %w", n, want, c.limit, lctx.Err())
		case <-time.After(pause):
		}
	}
	if mem, err = rss(cmd.Process); err != nil {
		return 0, 0, 0, err
	}

	svc, rs := l.kernelService(mid), l.kernelRS(mid, 1)
	if err := os.WriteFile(conf, l.fullConf(r.sched, r.size, c.servers, mid), 0o644); err != nil {
		return 0, 0, 0, err
	}
	t0 = time.Now()
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		return 0, 0, 0, err
	}
	for {
		if w, err := kernelWeight(cl, svc, rs); err != nil {
			return 0, 0, 0, err
		} else if w == 2 {
			break
		}
		select {
		case <-done:
			return 0, 0, 0, fmt.Errorf("exited (%v) after SIGHUP (a SIGHUP before the process catches it ends it)", cmd.ProcessState)
		case <-lctx.Done():
			return 0, 0, 0, fmt.Errorf("the kernel did not show weight 2 for %s of %s within %v after SIGHUP", l.rs(mid, 1), l.vip(mid), c.limit)
		case <-time.After(time.Millisecond):
		}
	}
	reload = time.Since(t0)
	if n, err := kernelCount(); err != nil || n != want {
		return 0, 0, 0, fmt.Errorf("after the reload the kernel has %v services and real servers, want %v (%v)", n, want, err)
	}
	return start, reload, mem, nil
}

// kernelWeight is the weight the kernel has for real server rs of svc.
func kernelWeight(cl ipvs.Client, svc ipvs.Service, rs netip.AddrPort) (uint32, error) {
	dests, err := cl.Destinations(svc)
	if err != nil {
		return 0, fmt.Errorf("reading the real servers of %s:%d from the kernel: %w", svc.Address, svc.Port, err)
	}
	for _, d := range dests {
		if d.Address == rs.Addr() && d.Port == rs.Port() {
			return d.Weight, nil
		}
	}
	return 0, nil
}

// ipvsadm runs the real ipvsadm and times it.
func ipvsadm(ctx context.Context, stdin []byte, args ...string) (time.Duration, error) {
	cmd := exec.CommandContext(ctx, "ipvsadm", args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	t0 := time.Now()
	err := cmd.Run()
	took := time.Since(t0)
	if err == nil && errb.Len() > 0 {
		err = errors.New("wrote to stderr")
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (limit)", ctx.Err())
		}
		return took, fmt.Errorf("ipvsadm %s: %v: %s", strings.Join(args, " "), err, firstLines(errb.String(), 5))
	}
	return took, nil
}

// wantKernel checks the kernel's table holds services and servers.
func wantKernel(services, servers int) error {
	n, err := kernelCount()
	if err != nil {
		return err
	}
	if n != [2]int{services, servers} {
		return fmt.Errorf("the kernel's table has %d services and %d real servers, want %d and %d", n[0], n[1], services, servers)
	}
	return nil
}

// stopProcess ends p by its pid: SIGTERM (keepalived and gvsd then remove
// their services from the kernel), then SIGKILL to its process group after
// limit.
func stopProcess(p *os.Process, done <-chan struct{}, limit time.Duration) {
	select {
	case <-done:
		return
	default:
	}
	p.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(limit):
		syscall.Kill(-p.Pid, syscall.SIGKILL)
		<-done
	}
}

func readPid(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	var pid int
	if _, err := fmt.Sscan(string(b), &pid); err != nil {
		return 0, fmt.Errorf("%s: %w", path, err)
	}
	return pid, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
