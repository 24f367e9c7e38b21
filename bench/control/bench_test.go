package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/netns/netnstest"
)

// TestSmoke runs the benchmark on the smallest table (10 services, rr and
// mh) with the real gvsd and gvsadm, and checks that the table was built
// (gvsadm -Ln shows every service and real server), that the edit and the
// flap happened, and that the report has its rows. It asserts no time:
// timing is for the benchmark run by hand. The xdp engine needs root.
func TestSmoke(t *testing.T) {
	if os.Getenv("GVS_IPVS_VM") != "" {
		t.Skip("in the IPVS VM only TestSmokeIPVS runs: the guest has no Go to build gvsd with, and the proxy and xdp rows run on the host")
	}
	c := config{scheds: []string{"rr", "mh"}, sizes: []int{10}, servers: 4, limit: 30 * time.Second, repeat: 1, work: t.TempDir()}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := c.build(ctx, testWriter{t}); err != nil {
		t.Fatal(err)
	}
	t.Run("proxy", func(t *testing.T) { smoke(ctx, t, c, "proxy") })
	t.Run("xdp", func(t *testing.T) {
		netnstest.Require(t)
		smoke(ctx, t, c, "xdp")
		ns, _ := exec.Command("ip", "netns", "list").Output()
		if strings.Contains(string(ns), fmt.Sprintf("%s-%d-", namespacePfx, pid())) {
			t.Errorf("namespaces left behind:\n%s", ns)
		}
	})
}

// TestSmokeIPVS runs the ipvs engine's rows on the smallest table (10
// services, rr) against the kernel's IPVS, ipvsadm and keepalived, with
// the gvsd and gvsadm of GVS_BIN: test/ipvsvm's TestVM runs it in the IPVS
// VM (GVS_IPVS_VM=1). It checks that every figure, gvsd's and the
// references', was measured and that the report has them; it asserts no
// time.
func TestSmokeIPVS(t *testing.T) {
	bin := os.Getenv("GVS_BIN")
	if os.Getenv("GVS_IPVS_VM") == "" || bin == "" {
		t.Skip("needs the kernel's IPVS, ipvsadm and keepalived: runs in the IPVS VM (go test ./test/ipvsvm)")
	}
	c := config{scheds: []string{"rr"}, sizes: []int{10}, servers: 4, limit: 60 * time.Second, repeat: 1,
		gvsd: filepath.Join(bin, "gvsd"), gvsadm: filepath.Join(bin, "gvsadm")}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res := smoke(ctx, t, c, "ipvs")
	for _, r := range res.rows {
		f := r.refs
		switch {
		case f == nil:
			t.Errorf("ipvs %s: no references measured", r.sched)
		case f.failed != "":
			t.Errorf("ipvs %s: the references failed: %s", r.sched, f.failed)
		case f.ipvsadmRestore <= 0 || f.ipvsadmEdit <= 0 || f.gvsdStart <= 0 || f.kaStart <= 0 ||
			f.gvsdReload <= 0 || f.kaReload <= 0 || f.gvsdStartRSS == 0 || f.kaStartRSS == 0:
			t.Errorf("ipvs %s: a reference is missing: %+v", r.sched, *f)
		}
	}
	if n, err := kernelCount(); err != nil || n != [2]int{} {
		t.Errorf("the kernel's table is not empty after the benchmark: %v (%v)", n, err)
	}
}

// smoke runs the benchmark of engine on c's sizes and schedulers, and
// checks gvsd's figures and the report.
func smoke(ctx context.Context, t *testing.T, c config, engine string) *result {
	c.engines, c.work = []string{engine}, t.TempDir()
	res, err := benchmark(ctx, c, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.rows) != len(c.scheds) {
		t.Fatalf("%d rows, want %d (%v)", len(res.rows), len(c.scheds), c.scheds)
	}
	for _, r := range res.rows {
		if r.failed != "" {
			t.Errorf("%s %s: %s", r.engine, r.sched, r.failed)
			continue
		}
		if !r.restoreOK || !r.editOK || !r.flapOK {
			t.Errorf("%s %s: restore done %v, edit done %v, flap done %v (%s)", r.engine, r.sched, r.restoreOK, r.editOK, r.flapOK, r.flapErr)
		}
		if r.listed != [2]int{10, 40} {
			t.Errorf("%s %s: gvsadm -Ln listed %d services and %d real servers, want 10 and 40", r.engine, r.sched, r.listed[0], r.listed[1])
		}
		if r.restore <= 0 || r.edit <= 0 || r.flapDown <= 0 || r.flapUp <= 0 || r.rssFull == 0 {
			t.Errorf("%s %s: a figure is missing: %+v", r.engine, r.sched, *r)
		}
	}
	var out bytes.Buffer
	res.markdown(&out)
	var want []string
	if engine != "ipvs" {
		want = append(want, "Goals (issue 10):")
	}
	for _, s := range c.scheds {
		want = append(want, "| "+engine+" | "+s+" | 10 |")
		if engine == "ipvs" {
			want = append(want, "| "+s+" | 10 | ")
		}
	}
	for _, s := range want {
		if !strings.Contains(out.String(), s) {
			t.Errorf("the report has no %q:\n%s", s, out.String())
		}
	}
	var dat bytes.Buffer
	res.plotData(&dat) // the proxy's and xdp's plot; ipvs has its table
	if engine != "ipvs" && !strings.Contains(dat.String(), "\n10 ") {
		t.Errorf("the plot data has no row for 10 services:\n%s", dat.String())
	}
	t.Logf("\n%s", out.String())
	return res
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func pid() int { return os.Getpid() }
