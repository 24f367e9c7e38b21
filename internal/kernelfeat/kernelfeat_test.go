package kernelfeat

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

func TestRefusal(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"EPERM", fmt.Errorf("run program: %w", unix.EPERM), true},
		{"EOPNOTSUPP", unix.EOPNOTSUPP, true},
		{"ENOTSUPP", enotsupp, true},
		{"cilium's not supported", fmt.Errorf("x: %w", ebpf.ErrNotSupported), true},
		{"EINVAL is a bad call, not a refusal", unix.EINVAL, false},
		{"ENOMEM", unix.ENOMEM, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := refusal(tc.err); got != tc.want {
				t.Errorf("refusal(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// TestProbes runs both probes on this kernel: each either works or is a
// refusal, never another error, and live frames are never allowed where
// plain test runs are refused.
func TestProbes(t *testing.T) {
	RequireRoot(t, "loads BPF programs")
	run, live := XDPTestRun(), XDPLiveFrames()
	t.Logf("BPF_PROG_TEST_RUN: %v; live frames: %v", run, live)
	for name, err := range map[string]error{"test run": run, "live frames": live} {
		if err != nil && !errors.Is(err, ErrRefused) {
			t.Errorf("%s: %v, want nil or a refusal", name, err)
		}
	}
	if run != nil && live == nil {
		t.Error("live frames allowed where test runs are refused")
	}
}
