// Package ipvsvm runs the tests that need the kernel's IPVS in a virtual
// machine: this package's TestVM builds the VM (build.sh: Debian
// bookworm's stock kernel with the ip_vs modules, ipvsadm and keepalived,
// from the Debian archive), builds the test binaries and gvsd, gvsadm and
// rs on the host, and boots the VM once (run.sh, QEMU) to run them all
// inside (guest.sh). The in-guest tests are internal/engine/ipvs's,
// test/ipvsvm/guest's and bench/control's ipvs smoke test (the benchmark
// of bench/control/run-ipvs.sh at 10 services); they need GVS_IPVS_VM=1,
// and skip elsewhere.
//
// It needs root (debootstrap, netns), Linux on amd64, qemu-system-x86,
// debootstrap and cpio (build.sh installs them with apt when missing); it
// skips without them, and fails under CI=true. go test -short skips it.
package ipvsvm

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// missing skips the test, or fails it under CI=true.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
}

func TestVM(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the IPVS VM tests boot a VM (about a minute)")
	}
	if runtime.GOOS != "linux" || runtime.GOARCH != "amd64" {
		t.Skipf("the IPVS VM is an amd64 Linux VM, run from Linux on amd64 (this is %s/%s)", runtime.GOOS, runtime.GOARCH)
	}
	if os.Getuid() != 0 {
		missing(t, "the IPVS VM tests need root: build.sh runs debootstrap; run as root: go test ./test/ipvsvm")
	}
	for _, tool := range []string{"apt-get", "flock"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing(t, "the IPVS VM tests need %s (Debian's apt and util-linux)", tool)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Minute)
	defer cancel()

	// The image: ~1 minute the first time, a no-op after.
	build := exec.CommandContext(ctx, "bash", "build.sh")
	if out, err := build.CombinedOutput(); err != nil {
		missing(t, "building the IPVS VM (test/ipvsvm/build.sh) failed: %v\n%s", err, out)
	}

	share := t.TempDir()
	steps := [][]string{
		{"go", "test", "-c", "-o", filepath.Join(share, "engine-ipvs.test"), "../../internal/engine/ipvs"},
		{"go", "test", "-c", "-o", filepath.Join(share, "guest.test"), "./guest"},
		{"go", "test", "-c", "-o", filepath.Join(share, "bench-control.test"), "../../bench/control"},
		{"go", "build", "-o", filepath.Join(share, "bin") + "/", "../../cmd/gvsd", "../../cmd/gvsadm", "../../test/rs"},
		{"cp", "guest.sh", filepath.Join(share, "guest.sh")},
		{"cp", "-r", "../../examples", filepath.Join(share, "examples")},
		{"cp", "../../README.md", filepath.Join(share, "README.md")},
	}
	for _, s := range steps {
		cmd := exec.CommandContext(ctx, s[0], s[1:]...)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // static: the guest's libc is not the host's
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(s, " "), err, out)
		}
	}

	// One boot runs everything; guest.sh's status is run.sh's.
	run := exec.CommandContext(ctx, "bash", "run.sh", filepath.Join(share, "guest.sh"))
	run.Env = append(os.Environ(), "IPVS_VM_SHARE="+share, "IPVS_VM_TIMEOUT=900")
	var out bytes.Buffer
	run.Stdout, run.Stderr = &out, &out
	start := time.Now()
	err := run.Run()
	t.Logf("the VM ran for %s:\n%s", time.Since(start).Round(time.Second), summary(out.String()))
	if err != nil {
		t.Errorf("the tests in the IPVS VM failed (%v); their whole output:\n%s", err, out.String())
	}
}

// summary keeps the lines that say how each test and binary ended, and
// why a test was skipped.
func summary(out string) string {
	var b strings.Builder
	var test []string // the output of the running test, for a skip's reason
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "=== RUN"):
			test = test[:0]
		case strings.HasPrefix(l, "--- SKIP"):
			for _, r := range test[:min(len(test), 3)] {
				b.WriteString(r + "\n")
			}
		case strings.HasPrefix(l, "    ") && !strings.HasPrefix(strings.TrimSpace(l), "---"):
			test = append(test, l)
		}
		if strings.HasPrefix(l, "=== ") && !strings.HasPrefix(l, "=== RUN") && !strings.HasPrefix(l, "=== PAUSE") && !strings.HasPrefix(l, "=== CONT") ||
			strings.HasPrefix(l, "--- ") || strings.HasPrefix(l, "    --- ") || strings.HasPrefix(l, "ok") || strings.HasPrefix(l, "FAIL") ||
			strings.HasPrefix(l, "GUEST") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}
