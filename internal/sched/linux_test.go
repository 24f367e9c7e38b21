package sched

import (
	"bufio"
	"os"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// recorded reads testdata/linux-6.1.txt: the choices real IPVS made
// (Linux 6.1.0-56-amd64, Debian bookworm, recorded in the ipvs-vm rig by
// testdata/record-linux.sh), keyed by "vip:port", in the order the
// connections were made for the sequence services.
func recorded(t *testing.T) map[string][][2]string {
	t.Helper()
	f, err := os.Open("testdata/linux-6.1.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][][2]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// RESULT 198.18.200.10:80 198.18.0.2:40000 -> 198.19.0.12
		fs := strings.Fields(sc.Text())
		if len(fs) != 5 || fs[0] != "RESULT" {
			continue
		}
		out[fs[1]] = append(out[fs[1]], [2]string{fs[2], strings.TrimPrefix(fs[4], "198.19.0.")})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestLinuxRecorded replays every service of the recording: the same
// scheduler, flags and ipvsadm -a order, the same clients, and expects
// the same real server for every connection.
func TestLinuxRecorded(t *testing.T) {
	rec := recorded(t)
	tests := []struct {
		name    string
		virtual string
		sched   string
		flags   uint32
		dests   string // in ipvsadm -a order: "11/4 12/3" is .11 weight 4, then .12 weight 3
	}{
		{"rr", "198.18.200.10:80", "rr", 0, "11/1 12/1"},
		{"wrr 4 3 2", "198.18.200.10:81", "wrr", 0, "11/4 12/3 13/2"},
		{"wrr 2 3 4", "198.18.200.10:82", "wrr", 0, "11/2 12/3 13/4"},
		{"wlc", "198.18.200.10:83", "wlc", 0, "11/3 12/2 13/1"},
		{"lc", "198.18.200.10:84", "lc", 0, "11/1 12/1 13/1"},
		{"sed", "198.18.200.10:85", "sed", 0, "11/1 12/3 13/2"},
		{"nq", "198.18.200.10:86", "nq", 0, "11/1 12/3 13/2"},
		{"fo", "198.18.200.10:87", "fo", 0, "11/1 12/3 13/2"},
		{"ovf", "198.18.200.10:88", "ovf", 0, "11/1 12/3 13/2"},
		{"sh", "198.18.200.10:90", "sh", 0, "11/1 12/2 13/3"},
		{"sh-port", "198.18.200.10:91", "sh", ipvs.SchedFlag2, "11/1 12/2 13/3"},
		{"sh-fallback", "198.18.200.10:92", "sh", ipvs.SchedFlag1, "11/1 12/0 13/1"},
		{"mh", "198.18.200.10:93", "mh", 0, "11/1 12/2 13/3"},
		{"mh-port", "198.18.200.10:94", "mh", ipvs.SchedFlag2, "11/1 12/2 13/3"},
		{"mh-fallback", "198.18.200.10:95", "mh", ipvs.SchedFlag1, "11/1 12/0 13/1"},
		{"lblc", "198.18.200.10:96", "lblc", 0, "11/1 12/2 13/3"},
		{"lblcr", "198.18.200.10:97", "lblcr", 0, "11/1 12/2 13/3"},
		{"dh vip .11", "198.18.200.11:80", "dh", 0, "11/1 12/1 13/1"},
		{"dh vip .12", "198.18.200.12:80", "dh", 0, "11/1 12/1 13/1"},
		{"dh vip .13", "198.18.200.13:80", "dh", 0, "11/1 12/1 13/1"},
		{"dh vip .14", "198.18.200.14:80", "dh", 0, "11/1 12/1 13/1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conns := rec[tt.virtual]
			if len(conns) == 0 {
				t.Fatalf("no recorded connections for %s", tt.virtual)
			}
			v := newService(t, tt.sched, tt.flags)
			v.addAll(tt.dests)
			var got, want []string
			for _, c := range conns {
				got = append(got, v.conn(c[0], tt.virtual))
				want = append(want, c[1])
			}
			if g, w := strings.Join(got, " "), strings.Join(want, " "); g != w {
				t.Errorf("choices for %s\n got: %s\nwant: %s (Linux 6.1)", tt.virtual, g, w)
			}
		})
	}
}
