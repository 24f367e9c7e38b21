package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestMain lets the test binary be the director process too, as the
// benchmark binary is.
func TestMain(m *testing.M) {
	if os.Getenv(envRole) == "director" {
		if err := runDirector(); err != nil {
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// TestSmoke runs every path of the benchmark for a moment and checks that
// frames reach the real server through each and that the report names
// them. It asserts no rate: timing is for the benchmark run by hand.
func TestSmoke(t *testing.T) {
	missing := func(why string) {
		t.Helper()
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true and %s", why)
		}
		t.Skip(why)
	}
	if os.Geteuid() != 0 {
		missing("the XDP benchmark needs root (network namespaces and BPF); run as root")
	}
	for _, tool := range []string{"ip", "sysctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing(tool + " is not installed (apt-get install iproute2 procps)")
		}
	}
	targets := []string{targetDrop, targetCeiling, targetDR, targetTUN, targetNAT, targetFNAT}
	if _, err := exec.LookPath("nft"); err == nil {
		targets = append(targets, targetNft)
	} else {
		t.Log("nft is not installed: the nftables path is not tried (apt-get install nftables)")
	}
	c := config{duration: 300 * time.Millisecond, warmup: 200 * time.Millisecond, rounds: 1, flows: 256, threads: 1, targets: targets}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := benchmark(ctx, c, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.paths {
		e, n := median(p.est), median(p.new)
		if e.pps <= 0 || n.pps <= 0 {
			t.Errorf("%s: established %.0f pps, new %.0f pps; want frames through both", p.target, e.pps, n.pps)
		}
		if p.mode == "" || p.sinkMode == "" {
			t.Errorf("%s: XDP modes not recorded (%q, %q)", p.target, p.mode, p.sinkMode)
		}
		if (p.target == targetDR || p.target == targetTUN || p.target == targetNAT || p.target == targetFNAT) && p.flowsReady != uint64(c.flows) {
			t.Errorf("%s: %d connections after the SYNs of %d flows", p.target, p.flowsReady, c.flows)
		}
	}
	var out bytes.Buffer
	res.markdown(&out)
	for _, p := range res.paths {
		if !strings.Contains(out.String(), "| "+pathNames[p.target]+" |") {
			t.Errorf("the table has no row for %s:\n%s", p.target, out.String())
		}
	}
	if !strings.Contains(out.String(), "DR established ≥ 85% of the ceiling") {
		t.Errorf("the goals are missing:\n%s", out.String())
	}
	t.Logf("\n%s", out.String())
	ns, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(ns), fmt.Sprintf("%s-%d-", namespacePfx, os.Getpid())) {
		t.Errorf("namespaces left behind:\n%s", ns)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
