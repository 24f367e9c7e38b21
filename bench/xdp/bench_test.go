package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/gvs-lb/gvs/internal/kernelfeat"
	"github.com/gvs-lb/gvs/internal/netns/netnstest"
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
	netnstest.Require(t, "sysctl")
	targets := []string{targetDrop, targetCeiling, targetDR, targetTUN, targetNAT, targetFNAT}
	if _, err := exec.LookPath("nft"); err == nil {
		targets = append(targets, targetNft)
	} else {
		t.Log("nft is not installed: the nftables path is not tried (apt-get install nftables)")
	}
	c := config{duration: 300 * time.Millisecond, warmup: 200 * time.Millisecond, rounds: 1, flows: 256, threads: 1, source: sourceAuto, targets: targets}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := benchmark(ctx, c, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("traffic source: %s", res.sourceNote())
	t.Run("live-frames", func(t *testing.T) {
		// Not a missing prerequisite: the kernel forbids it, and every
		// path above ran with the other source.
		if res.refused != nil {
			t.Skipf("the live-frames traffic source is not measured: %v; every path ran with the %s instead", res.refused, res.source)
		}
	})
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

// TestFrameMatchesXDPGen holds the Go frame builder of the AF_PACKET
// source equal to xdp_gen, run with BPF_PROG_TEST_RUN (no live frames),
// so both sources send the same flows.
func TestFrameMatchesXDPGen(t *testing.T) {
	kernelfeat.RequireRoot(t, "loads xdp_gen")
	kernelfeat.Require(t, kernelfeat.XDPTestRun)
	var objs benchObjects
	if err := loadBenchObjects(&objs, nil); err != nil {
		t.Fatal(err)
	}
	defer objs.Close()
	tp := &xdpTopo{dirMAC0: net.HardwareAddr{0x02, 0, 0, 0, 0, 0x01}}
	g := newLiveFrames(&objs, tp, 1)
	ft := newFrameTemplate(tp)
	tests := []struct {
		name string
		fc   flowConfig
		n    uint64 // frames xdp_gen built before on this CPU
	}{
		{"established SYN, flow 0", flowConfig{mode: genEst, flags: tcpSYN, nflows: 4096}, 0},
		{"established ACK, flow 4095", flowConfig{mode: genEst, flags: tcpACK, nflows: 4096}, 4095},
		{"established ACK wraps", flowConfig{mode: genEst, flags: tcpACK, nflows: 4096}, 4096 + 20000},
		{"new SYN, far flow", flowConfig{mode: genNew, flags: tcpSYN, nflows: 4096}, 1 << 22},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := g.configure(tc.fc, false); err != nil {
				t.Fatal(err)
			}
			per := make([]uint64, ebpf.MustPossibleCPU())
			for i := range per {
				per[i] = tc.n
			}
			if err := objs.GenSent.Put(uint32(0), per); err != nil {
				t.Fatal(err)
			}
			// Run on CPU 0: xdp_gen numbers new flows by CPU.
			got := make([]byte, frameLen)
			err := inNS("", 0, func() error {
				ret, err := objs.XdpGen.Run(&ebpf.RunOptions{Data: make([]byte, frameLen), DataOut: got})
				if err == nil && ret != 3 { // XDP_TX
					return fmt.Errorf("xdp_gen returned %d, want XDP_TX", ret)
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			want := make([]byte, frameLen)
			ft.build(want, tc.fc.flags, flowIndex(tc.fc, tc.n, 0))
			if !bytes.Equal(got, want) {
				t.Errorf("frames differ\nxdp_gen: % x\nGo:      % x", got, want)
			}
		})
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
