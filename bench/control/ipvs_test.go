package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kaconf "github.com/gvs-lb/gvs/internal/config"
)

// TestFullConf checks that the keepalived.conf the start and reload rows
// give gvsd and keepalived is the restored table: every service with its
// real servers of weight 1, and the reload's one weight of 2.
func TestFullConf(t *testing.T) {
	l := layouts["ipvs"]
	path := filepath.Join(t.TempDir(), "keepalived.conf")
	if err := os.WriteFile(path, l.fullConf("rr", 10, 4, 5), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _, err := kaconf.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	svcs, _, err := cfg.Services()
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 10 {
		t.Fatalf("%d services, want 10", len(svcs))
	}
	heavy := 0
	for i, s := range svcs {
		if len(s.Dests) != 4 {
			t.Errorf("service %d: %d real servers, want 4", i, len(s.Dests))
		}
		for _, d := range s.Dests {
			if d.Weight == 2 {
				heavy++
				if got, want := d.AddrPort(), l.kernelRS(5, 1); got != want || s.Addr.String() != l.vipAddr(5) {
					t.Errorf("weight 2 on %v of %v, want %v of %s", got, s.Addr, want, l.vipAddr(5))
				}
			}
		}
	}
	if heavy != 1 {
		t.Errorf("%d real servers of weight 2, want 1", heavy)
	}
}

// TestCountProcIPVS counts a table as the kernel prints it in
// /proc/net/ip_vs.
func TestCountProcIPVS(t *testing.T) {
	text := `IP Virtual Server version 1.2.1 (size=4096)
Prot LocalAddress:Port Scheduler Flags
  -> RemoteAddress:Port Forward Weight ActiveConn InActConn
TCP  C6130001:0050 rr
  -> C612010D:0050      Masq    1      0          0
  -> C612010C:0050      Masq    1      0          0
UDP  C6130002:0035 wlc
  -> C612010A:0035      Masq    1      0          0
FWM  00000001 rr
`
	if got := countProcIPVS([]byte(text)); got != [2]int{3, 3} {
		t.Errorf("counted %v services and real servers, want [3 3]", got)
	}
}

// TestIPVSReport checks the comparison table: the figures and ratios of a
// measured row, and a failed reference named in its row.
func TestIPVSReport(t *testing.T) {
	ok := &row{engine: "ipvs", sched: "rr", size: 10, restoreOK: true, editOK: true, flapOK: true,
		restore: 30 * time.Millisecond, edit: 4 * time.Millisecond, rssBase: 10 << 20, rssFull: 10<<20 + 9*2048,
		refs: &ipvsRefs{ipvsadmRestore: 10 * time.Millisecond, ipvsadmEdit: 2 * time.Millisecond,
			gvsdStart: 100 * time.Millisecond, kaStart: 50 * time.Millisecond,
			gvsdReload: 20 * time.Millisecond, kaReload: 40 * time.Millisecond,
			gvsdStartRSS: 12 << 20, kaStartRSS: 6 << 20}}
	bad := &row{engine: "ipvs", sched: "rr", size: 100, restoreOK: true, editOK: true, flapOK: true,
		refs: &ipvsRefs{failed: "keepalived: exited | badly\nmore"}}
	res := &result{c: config{engines: []string{"ipvs"}, scheds: []string{"rr"}, sizes: []int{10, 100}}, rows: []*row{ok, bad}}
	var b bytes.Buffer
	res.ipvsMarkdown(&b)
	for _, want := range []string{
		"| rr | 10 | 30 ms | 10 ms | 3.00× | 100 ms | 50 ms | 2.00× | 4 ms | 2 ms | 2.00× | 20 ms | 40 ms | 0.50× | 12.0 MiB | 6.0 MiB | 2.0 KiB |",
		`| rr | 100 | references failed: keepalived: exited \| badly … |`,
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in:\n%s", want, b.String())
		}
	}
	var none bytes.Buffer
	(&result{rows: []*row{{engine: "proxy"}}}).ipvsMarkdown(&none)
	if none.Len() != 0 {
		t.Errorf("a run without the ipvs engine has an ipvs table:\n%s", none.String())
	}
}
