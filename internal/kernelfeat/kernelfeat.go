// Package kernelfeat probes the kernel facilities that GVS's tests and
// benchmarks rely on but that a kernel (or the sandbox it runs in) may
// refuse even to root, so that a refusal is named where it happens instead
// of failing a test somewhere inside.
//
// A refusal is precise: the probe's own call failed with the error a
// kernel gives when it does not allow that facility (EPERM, EOPNOTSUPP,
// ENOTSUPP, or cilium/ebpf's ErrNotSupported), while the calls around it
// worked. Anything else is an error of its own, not a refusal.
//
// Probed here: BPF_PROG_TEST_RUN of an XDP program (the BPF data-path
// tests), and the same with BPF_F_TEST_XDP_LIVE_FRAMES (which Linux 6.18
// builds refuse with EPERM; bench/xdp falls back to an AF_PACKET sender).
// Attaching XDP programs, network namespaces and veth are not probed: every
// supported kernel has them, and the tests that use them fail with the
// kernel's error.
package kernelfeat

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// ErrRefused wraps every refusal.
var ErrRefused = errors.New("refused by the kernel")

// enotsupp is the kernel's internal ENOTSUPP (524), which BPF commands
// return to user space.
const enotsupp = syscall.Errno(524)

// refusal reports whether err is the kernel not allowing a facility.
func refusal(err error) bool {
	return errors.Is(err, unix.EPERM) || errors.Is(err, unix.EOPNOTSUPP) ||
		errors.Is(err, enotsupp) || errors.Is(err, ebpf.ErrNotSupported)
}

// xdpVerdict returns an XDP program of two instructions returning verdict.
func xdpVerdict(verdict int64) (*ebpf.Program, error) {
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.XDP,
		License:      "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, int32(verdict)), asm.Return()},
	})
	if err != nil {
		return nil, fmt.Errorf("loading a two-instruction XDP program: %w", err)
	}
	return p, nil
}

const (
	xdpDrop = 1
	xdpPass = 2
)

var testRun = sync.OnceValue(func() error {
	p, err := xdpVerdict(xdpPass)
	if err != nil {
		return err
	}
	defer p.Close()
	ret, err := p.Run(&ebpf.RunOptions{Data: make([]byte, 64)})
	switch {
	case err != nil && refusal(err):
		return fmt.Errorf("BPF_PROG_TEST_RUN of an XDP program: %w: %v", ErrRefused, err)
	case err != nil:
		return fmt.Errorf("BPF_PROG_TEST_RUN of an XDP program: %w", err)
	case ret != xdpPass:
		return fmt.Errorf("BPF_PROG_TEST_RUN of an XDP program returning XDP_PASS gave %d", ret)
	}
	return nil
})

// XDPTestRun probes BPF_PROG_TEST_RUN of an XDP program: nil when the
// kernel runs one, an error wrapping ErrRefused when it refuses to.
func XDPTestRun() error { return testRun() }

var liveFrames = sync.OnceValue(func() error {
	if err := XDPTestRun(); err != nil {
		return err
	}
	p, err := xdpVerdict(xdpDrop)
	if err != nil {
		return err
	}
	defer p.Close()
	_, err = p.Run(&ebpf.RunOptions{Data: make([]byte, 64), Repeat: 1, Flags: unix.BPF_F_TEST_XDP_LIVE_FRAMES})
	switch {
	case err != nil && refusal(err):
		return fmt.Errorf("BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES (the same program runs without the flag): %w: %v", ErrRefused, err)
	case err != nil:
		return fmt.Errorf("BPF_PROG_RUN with BPF_F_TEST_XDP_LIVE_FRAMES: %w", err)
	}
	return nil
})

// XDPLiveFrames probes BPF_PROG_RUN in live-frames mode (the program's
// XDP_TX and XDP_REDIRECT send real frames): nil when the kernel allows
// it, an error wrapping ErrRefused when it refuses while plain test runs
// work. The probe's program drops its frame, so nothing is sent.
func XDPLiveFrames() error { return liveFrames() }

// Require runs probe and, when the kernel refuses the facility, skips the
// test saying what was refused and that the rest of the suite still runs.
// A refusal skips even with CI=true: no package installs it. A probe that
// fails for another reason fails the test.
func Require(t testing.TB, probe func() error) {
	t.Helper()
	err := probe()
	switch {
	case err == nil:
	case errors.Is(err, ErrRefused):
		t.Skipf("the kernel refuses a facility this test needs: %v; tests that do not need it still run", err)
	default:
		t.Fatalf("probing the kernel: %v", err)
	}
}

// RequireRoot skips the test, saying why it needs root, unless it runs as
// root; with CI=true, where the tests run as root, it fails instead.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("this test needs root (%s), and CI=true", why)
	}
	t.Skipf("needs root: %s", why)
}
