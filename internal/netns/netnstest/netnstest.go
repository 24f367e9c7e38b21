// Package netnstest builds throw-away network namespaces, veth pairs and
// bridges for tests, with `ip`, and removes them when the test ends.
//
// Tests that use it need root and iproute2. Without them they skip with a
// reason, except when CI=true, where a missing prerequisite fails the test.
package netnstest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// Require skips the test (fails it when CI=true) unless we are root and
// every tool named is on PATH; "ip" is always required.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	missing := func(why string) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %s", why)
		}
		t.Skip(why)
	}
	if os.Geteuid() != 0 {
		missing("network namespace test needs root (run as root or with sudo)")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			missing(fmt.Sprintf("%s is not installed (apt-get install %s)", tool, debPackage(tool)))
		}
	}
}

func debPackage(tool string) string {
	switch tool {
	case "ip", "bridge":
		return "iproute2"
	case "sysctl":
		return "procps"
	}
	return tool
}

var seq atomic.Uint32

// NS is a network namespace made for one test.
type NS struct {
	Name string
	t    testing.TB
}

// New creates a namespace with lo up and IPv6 duplicate address detection
// off (so addresses are usable at once). It is deleted, with every
// interface inside, when the test ends.
func New(t testing.TB, label string) *NS {
	t.Helper()
	name := fmt.Sprintf("gvst-%s-%d-%d", label, os.Getpid(), seq.Add(1))
	if err := run("ip", "netns", "add", name); err != nil {
		t.Fatal(err)
	}
	n := &NS{Name: name, t: t}
	t.Cleanup(func() {
		if err := run("ip", "netns", "del", name); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
	n.Run("ip", "link", "set", "lo", "up")
	n.Run("sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0")
	return n
}

func run(name string, args ...string) error {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// Cmd is a command to run inside the namespace.
func (n *NS) Cmd(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Run runs a command in the namespace and returns its output; the test
// fails when it fails.
func (n *NS) Run(name string, args ...string) string {
	n.t.Helper()
	out, err := n.Output(name, args...)
	if err != nil {
		n.t.Fatal(err)
	}
	return out
}

// Output runs a command in the namespace and returns its output.
func (n *NS) Output(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("in %s: %s %s: %v: %s", n.Name, name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

// Do runs fn on a thread moved into the namespace: sockets it opens, and
// what it reads under /proc/thread-self/net, are the namespace's.
func (n *NS) Do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	h, err := netns.GetFromName(n.Name)
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer h.Close()
	if err := netns.Set(h); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("entering %s: %w", n.Name, err)
	}
	defer func() {
		// A thread that cannot go back stays locked and dies with the
		// goroutine.
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
	}()
	return fn()
}

// EnterNew moves the test's goroutine, locked to its thread, into a fresh
// unnamed network namespace with lo up until the test ends, and returns
// the namespace (subtests run on goroutines of their own: they enter it
// with netns.Set on a locked thread). It needs root, which the caller
// checks.
func EnterNew(t testing.TB) netns.NsHandle {
	t.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		t.Fatal(err)
	}
	ns, err := netns.New()
	if err != nil {
		orig.Close()
		runtime.UnlockOSThread()
		t.Fatalf("new network namespace: %v", err)
	}
	t.Cleanup(func() {
		// A thread that cannot go back stays locked and dies with the
		// goroutine.
		if netns.Set(orig) == nil {
			runtime.UnlockOSThread()
		}
		orig.Close()
		ns.Close()
	})
	if lo, err := netlink.LinkByName("lo"); err != nil || netlink.LinkSetUp(lo) != nil {
		t.Fatalf("lo in the new namespace: %v", err)
	}
	return ns
}

// Veth links namespaces a and b with a veth pair, named aIf in a and bIf
// in b, both up.
func Veth(t testing.TB, a *NS, aIf string, b *NS, bIf string) {
	t.Helper()
	if err := run("ip", "link", "add", "name", aIf, "netns", a.Name, "type", "veth", "peer", "name", bIf, "netns", b.Name); err != nil {
		t.Fatal(err)
	}
	a.Run("ip", "link", "set", aIf, "up")
	b.Run("ip", "link", "set", bIf, "up")
}

// Bridge makes a bridge named br in hub and connects each namespace to it
// with a veth pair: ifName inside the namespace, a port in hub.
func Bridge(t testing.TB, hub *NS, br string, ifName string, nss ...*NS) {
	t.Helper()
	hub.Run("ip", "link", "add", br, "type", "bridge")
	hub.Run("ip", "link", "set", br, "up")
	for i, n := range nss {
		port := fmt.Sprintf("%s-p%d", br, i)
		Veth(t, hub, port, n, ifName)
		hub.Run("ip", "link", "set", port, "master", br)
	}
}

// Addr adds an address (with prefix length) to ifName in the namespace.
func (n *NS) Addr(ifName, prefix string) {
	n.t.Helper()
	args := []string{"addr", "add", prefix, "dev", ifName}
	if strings.Contains(prefix, ":") {
		args = append(args, "nodad")
	}
	n.Run("ip", args...)
}

// Start starts a long-running command in the namespace. It is stopped by
// its pid (SIGTERM, then SIGKILL after 5 s) when the test ends, and its
// output is logged if the test failed.
func (n *NS) Start(name string, args ...string) *Proc {
	n.t.Helper()
	p := &Proc{out: &syncBuffer{}}
	p.Cmd = n.Cmd(name, args...)
	p.Cmd.Stdout, p.Cmd.Stderr = p.out, p.out
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := p.Cmd.Start(); err != nil {
		n.t.Fatalf("start %s in %s: %v", name, n.Name, err)
	}
	p.done = make(chan struct{})
	go func() { p.Cmd.Wait(); close(p.done) }()
	n.t.Cleanup(func() {
		p.Stop()
		if n.t.Failed() {
			n.t.Logf("output of %s in %s:\n%s", name, n.Name, p.Output())
		}
	})
	return p
}

// Proc is a process started by NS.Start.
type Proc struct {
	Cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

// Output is what the process wrote so far.
func (p *Proc) Output() string { return p.out.String() }

// Stop sends SIGTERM to the process group it leads and waits up to 5 s,
// then SIGKILLs it.
func (p *Proc) Stop() {
	select {
	case <-p.done:
		return
	default:
	}
	pid := p.Cmd.Process.Pid
	syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		syscall.Kill(-pid, syscall.SIGKILL)
		<-p.done
	}
}

// Kill SIGKILLs the process group, as a crash would end it.
func (p *Proc) Kill() {
	syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
