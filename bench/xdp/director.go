package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/gvs-lb/gvs/internal/engine"
	"github.com/gvs-lb/gvs/internal/engine/xdp"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

// The director runs in its own process, started with `ip netns exec`, so
// that every thread of it (the engine's netlink calls included) is in the
// director's namespace. It is this same binary with these variables set.
const (
	envRole   = "GVS_XDPBENCH_ROLE" // "director"
	envTarget = "GVS_XDPBENCH_TARGET"
	envMode   = "GVS_XDPBENCH_MODE" // native, generic or "" (native, else generic)
	envRSMAC  = "GVS_XDPBENCH_RSMAC"
)

// Targets: what forwards on the director.
const (
	targetCeiling = "ceiling"
	targetDR      = "dr"
	targetTUN     = "tun"
	targetNft     = "nft"
	targetDrop    = "drop"
	targetNAT     = "nat"
	targetFNAT    = "fnat"
)

// fnatLocalAddrs is the FullNAT local address pool, on the director's
// eth1: as many addresses as the engine takes, for the most ports.
func fnatLocalAddrs() []netip.Addr {
	var as []netip.Addr
	a := netip.MustParseAddr("198.18.1.100")
	for range 16 {
		as = append(as, a)
		a = a.Next()
	}
	return as
}

// directorStatus is what the director reports on "status".
type directorStatus struct {
	Conns  uint64            `json:"conns"`  // connections made (engine) or tracked (nftables)
	Active uint32            `json:"active"` // the engine's active + inactive connections
	Drops  map[string]uint64 `json:"drops,omitempty"`
}

// runDirector is the director process: it sets up the target on eth0,
// prints "ready <xdp mode>", answers "status" lines on stdin with a JSON
// line, and tears down at end of input.
func runDirector() error {
	target, mode := os.Getenv(envTarget), os.Getenv(envMode)
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	var (
		status func() directorStatus
		stop   func()
		used   string
		err    error
	)
	switch target {
	case targetCeiling:
		stop, used, err = startCeiling(mode)
		status = func() directorStatus { return directorStatus{} }
	case targetDR, targetTUN, targetNAT, targetFNAT:
		var e *xdp.Engine
		e, used, err = startEngine(log, target, mode)
		if err == nil {
			stop = func() {
				ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
				defer cancel()
				e.Close(ctx)
			}
			status = func() directorStatus {
				var s directorStatus
				for _, st := range e.Status() {
					s.Conns += st.Stats.Conns
					for _, d := range st.Dests {
						s.Active += d.ActiveConns + d.InactConns
					}
				}
				s.Drops = e.Drops()
				return s
			}
		}
	case targetDrop:
		stop, used, err = startDrop(mode)
		status = func() directorStatus { return directorStatus{} }
	case targetNft:
		stop, used, err = startNft(mode)
		status = func() directorStatus {
			b, _ := os.ReadFile("/proc/sys/net/netfilter/nf_conntrack_count")
			n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
			return directorStatus{Conns: n}
		}
	default:
		err = fmt.Errorf("unknown target %q", target)
	}
	if err != nil {
		fmt.Printf("error %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		return err
	}
	defer stop()
	fmt.Printf("ready %s\n", used)
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		if in.Text() == "status" {
			b, _ := json.Marshal(status())
			fmt.Printf("%s\n", b)
		}
	}
	return nil
}

// startCeiling loads xdp_ceiling, rewriting for the real server behind
// eth1, and attaches it to eth0.
func startCeiling(mode string) (func(), string, error) {
	eth0, eth1, rsMAC, err := directorLinks()
	if err != nil {
		return nil, "", err
	}
	spec, err := loadBench()
	if err != nil {
		return nil, "", err
	}
	var dmac, smac [6]byte
	copy(dmac[:], rsMAC)
	copy(smac[:], eth1.HardwareAddr)
	for name, v := range map[string]any{"ceil_dmac": dmac, "ceil_smac": smac, "ceil_ifindex": uint32(eth1.Index)} {
		if err := spec.Variables[name].Set(v); err != nil {
			return nil, "", fmt.Errorf("setting %s: %w", name, err)
		}
	}
	var objs benchObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		return nil, "", fmt.Errorf("loading the ceiling program: %w", err)
	}
	l, used, err := attachHere(eth0.Index, objs.XdpCeiling, mode)
	if err != nil {
		objs.Close()
		return nil, "", err
	}
	return func() { l.Close(); objs.Close() }, used, nil
}

// startDrop attaches xdp_sink to eth0: the director drops every frame,
// which measures what the generator and one veth hop can do.
func startDrop(mode string) (func(), string, error) {
	eth0, err := net.InterfaceByName("eth0")
	if err != nil {
		return nil, "", err
	}
	var objs benchObjects
	if err := loadBenchObjects(&objs, nil); err != nil {
		return nil, "", err
	}
	l, used, err := attachHere(eth0.Index, objs.XdpSink, mode)
	if err != nil {
		objs.Close()
		return nil, "", err
	}
	return func() { l.Close(); objs.Close() }, used, nil
}

// startEngine starts the GVS XDP engine on eth0 with one TCP service, the
// VIP port 80, forwarding to the real server by DR, IPIP tunnel, NAT or
// FullNAT. For NAT and FullNAT, whose replies come back through the
// director, it is attached to eth1 too.
func startEngine(log *slog.Logger, target, mode string) (*xdp.Engine, string, error) {
	opts := xdp.Options{Interfaces: []string{"eth0"}, TunnelSource4: netip.MustParsePrefix(director1 + "/32")}
	svc := ipvs.Service{ServiceKey: ipvs.ServiceKey{Proto: ipvs.TCP, Addr: netip.MustParseAddr(vipAddr), Port: vipPort}, Scheduler: "rr"}
	method := ipvs.Route
	switch target {
	case targetTUN:
		method = ipvs.Tunnel
	case targetNAT:
		method = ipvs.Masq
		opts.Interfaces = append(opts.Interfaces, "eth1")
	case targetFNAT:
		method = ipvs.FullNAT
		opts.Interfaces = append(opts.Interfaces, "eth1")
		svc.LocalAddrs = fnatLocalAddrs()
		for _, a := range svc.LocalAddrs {
			if out, err := exec.Command("ip", "addr", "add", a.String()+"/32", "dev", "eth1").CombinedOutput(); err != nil {
				return nil, "", fmt.Errorf("adding the local address %s: %v: %s", a, err, out)
			}
		}
	}
	var e *xdp.Engine
	var err error
	used := mode
	if mode == "" {
		used = "native"
		opts.Mode = "native"
		e, err = xdp.New(log, opts)
		if err != nil {
			used = "generic"
		}
	}
	if e == nil {
		opts.Mode = used
		if e, err = xdp.New(log, opts); err != nil {
			return nil, "", err
		}
	}
	snap := &ipvs.Snapshot{Timeouts: ipvs.DefaultTimeouts, Services: []ipvs.ServiceConfig{{
		Service: svc,
		Dests:   []ipvs.Dest{{Addr: netip.MustParseAddr(rsAddr), Port: vipPort, Method: method, Weight: 1, TunType: ipvs.TunIPIP}},
	}}}
	if err := engine.ApplySnapshot(e, snap); err != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		e.Close(ctx)
		return nil, "", fmt.Errorf("applying the benchmark service: %w", err)
	}
	return e, used, nil
}

// startNft installs the kernel's path: an nftables DNAT of VIP:80 to the
// real server, routed out of eth1. eth0 gets xdp_pass, only because a
// veth receives XDP frames (what the generator sends) when its NAPI runs,
// which needs a program (or GRO); it passes every frame to the stack.
func startNft(mode string) (func(), string, error) {
	rules := fmt.Sprintf(`table ip gvsbench {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr %s tcp dport %d dnat to %s:%d
	}
}
`, vipAddr, vipPort, rsAddr, vipPort)
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, "", fmt.Errorf("nft -f: %v: %s (is nftables installed? apt-get install nftables)", err, strings.TrimSpace(string(out)))
	}
	eth0, _, _, err := directorLinks()
	if err != nil {
		return nil, "", err
	}
	var objs benchObjects
	if err := loadBenchObjects(&objs, nil); err != nil {
		return nil, "", err
	}
	l, used, err := attachHere(eth0.Index, objs.XdpPass, mode)
	if err != nil {
		objs.Close()
		return nil, "", err
	}
	return func() { l.Close(); objs.Close() }, used + " XDP_PASS", nil
}

func directorLinks() (eth0, eth1 *net.Interface, rsMAC net.HardwareAddr, err error) {
	if eth0, err = net.InterfaceByName("eth0"); err != nil {
		return
	}
	if eth1, err = net.InterfaceByName("eth1"); err != nil {
		return
	}
	rsMAC, err = net.ParseMAC(os.Getenv(envRSMAC))
	return
}

func attachHere(ifindex int, prog *ebpf.Program, mode string) (link.Link, string, error) {
	if mode != "generic" {
		l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPDriverMode})
		if err == nil {
			return l, "native", nil
		}
		if mode == "native" {
			return nil, "", fmt.Errorf("attaching in native mode: %w", err)
		}
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: link.XDPGenericMode})
	if err != nil {
		return nil, "", fmt.Errorf("attaching in generic mode: %w", err)
	}
	return l, "generic", nil
}

// director is the orchestrator's handle on a director process.
type director struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	mode string
}

// startDirector starts the director process for target in the topology's
// director namespace and waits until it is ready.
func startDirector(ctx context.Context, t *xdpTopo, target, mode string) (*director, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"netns", "exec", t.dir, self}
	if strings.HasSuffix(self, ".test") {
		args = append(args, "-test.run=^$")
	}
	cmd := exec.Command("ip", args...)
	cmd.Env = append(os.Environ(), envRole+"=director", envTarget+"="+target, envMode+"="+mode, envRSMAC+"="+t.rsMAC.String())
	cmd.Stderr = os.Stderr
	d := &director{cmd: cmd}
	if d.in, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	d.out = bufio.NewReader(stdout)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the director: %w", err)
	}
	line, err := d.readLine(ctx, 30*time.Second)
	if err != nil {
		d.stop()
		return nil, fmt.Errorf("director %s: %w", target, err)
	}
	if mode, ok := strings.CutPrefix(line, "ready "); ok {
		d.mode = mode
		return d, nil
	}
	d.stop()
	return nil, fmt.Errorf("director %s: %s", target, line)
}

func (d *director) readLine(ctx context.Context, timeout time.Duration) (string, error) {
	type res struct {
		s   string
		err error
	}
	c := make(chan res, 1)
	go func() {
		s, err := d.out.ReadString('\n')
		c <- res{strings.TrimSpace(s), err}
	}()
	select {
	case r := <-c:
		if r.err != nil && r.s == "" {
			return "", fmt.Errorf("no answer: %w", r.err)
		}
		return r.s, nil
	case <-time.After(timeout):
		return "", errors.New("no answer in time")
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

func (d *director) status(ctx context.Context) (directorStatus, error) {
	var s directorStatus
	if _, err := io.WriteString(d.in, "status\n"); err != nil {
		return s, err
	}
	line, err := d.readLine(ctx, 10*time.Second)
	if err != nil {
		return s, err
	}
	return s, json.Unmarshal([]byte(line), &s)
}

// stop ends the director: end of input, then SIGKILL by pid after 5 s.
func (d *director) stop() {
	d.in.Close()
	done := make(chan struct{})
	go func() { d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		d.cmd.Process.Kill()
		<-done
	}
}
