package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestDependencies: gvsadm is the admin API's client and ipvsadm's command
// line, nothing more. It links none of gvsd's runtime or data-plane
// packages, neither cilium/ebpf nor netlink, nor net/http (which would
// bring TLS and HTTP/2 for a unix socket).
func TestDependencies(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	ours := []string{
		"github.com/gvs-lb/gvs/cmd/gvsadm",
		"github.com/gvs-lb/gvs/internal/api/client",
		"github.com/gvs-lb/gvs/internal/api/wire",
		"github.com/gvs-lb/gvs/internal/ipvs",
		"github.com/gvs-lb/gvs/internal/ipvsadm",
	}
	for _, d := range deps {
		switch {
		case strings.HasPrefix(d, "github.com/gvs-lb/gvs/") && !slices.Contains(ours, d):
			t.Errorf("gvsadm links %s; it may link only %v", d, ours)
		case strings.HasPrefix(d, "github.com/cilium/ebpf"), strings.HasPrefix(d, "github.com/vishvananda/"),
			d == "net/http", d == "crypto/tls":
			t.Errorf("gvsadm links %s", d)
		}
	}
}

// TestSize: gvsadm is at most half gvsd's size.
func TestSize(t *testing.T) {
	if testing.Short() {
		t.Skip("builds gvsd and gvsadm; skipped with -short")
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", dir+"/", "../gvsd", ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	size := func(name string) int64 {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	gvsadm, gvsd := size("gvsadm"), size("gvsd")
	t.Logf("gvsadm %d bytes, gvsd %d bytes (%.0f%%)", gvsadm, gvsd, 100*float64(gvsadm)/float64(gvsd))
	if gvsadm > gvsd/2 {
		t.Errorf("gvsadm is %d bytes, more than half of gvsd's %d", gvsadm, gvsd)
	}
}
