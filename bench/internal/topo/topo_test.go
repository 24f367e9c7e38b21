package topo

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestRemoveStale: a namespace left by a benchmark process that has
// ended is removed; one of a live process (this one) is kept.
func TestRemoveStale(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root to make network namespaces, and CI runs as root")
		}
		t.Skip("needs root to make network namespaces")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A process that has ended: its pid is free until reused.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	const prefix = "gvstopotest"
	dead := fmt.Sprintf("%s-%d-0-dir", prefix, cmd.Process.Pid)
	live := fmt.Sprintf("%s-%d-0-dir", prefix, os.Getpid())
	var ns Namespaces
	defer ns.Close()
	for _, name := range []string{dead, live} {
		if err := ns.Add(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	RemoveStale(ctx, prefix)
	out, err := Output(ctx, "ip", "netns", "list")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), dead) {
		t.Errorf("%s is still there after its process ended", dead)
	}
	if !strings.Contains(string(out), live) {
		t.Errorf("%s of a live process was removed", live)
	}
	ns.made = []string{live} // the other one is gone already
}
