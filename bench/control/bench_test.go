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

	"github.com/gvs-lb/gvs/internal/netns/netnstest"
)

// TestSmoke runs the benchmark on the smallest table (10 services, rr and
// mh) with the real gvsd and gvsadm, and checks that the table was built
// (gvsadm -Ln shows every service and real server), that the edit and the
// flap happened, and that the report has its rows. It asserts no time:
// timing is for the benchmark run by hand. The xdp engine needs root.
func TestSmoke(t *testing.T) {
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

func smoke(ctx context.Context, t *testing.T, c config, engine string) {
	c.engines, c.work = []string{engine}, t.TempDir()
	res, err := benchmark(ctx, c, testWriter{t})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.rows) != 2 {
		t.Fatalf("%d rows, want 2 (rr and mh)", len(res.rows))
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
	for _, s := range []string{"| " + engine + " | rr | 10 |", "| " + engine + " | mh | 10 |", "Goals (issue 10):"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("the report has no %q:\n%s", s, out.String())
		}
	}
	var dat bytes.Buffer
	res.plotData(&dat)
	if !strings.Contains(dat.String(), "\n10 ") {
		t.Errorf("the plot data has no row for 10 services:\n%s", dat.String())
	}
	t.Logf("\n%s", out.String())
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

func pid() int { return os.Getpid() }
