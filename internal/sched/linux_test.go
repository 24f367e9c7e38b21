package sched

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
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

// changeLog is testdata/linux-6.1-changes.txt: per service, the ipvsadm
// changes (STEP) at the client port they preceded, the choices (RESULT)
// by client port, and where the client ports end (END).
type changeLog struct {
	steps   map[string][]changeStep
	results map[string]map[int]string // vip:port -> client port -> server
	order   []string                  // services, in the order recorded
	end     int
}

type changeStep struct {
	port int      // the first client port after the change
	args []string // add N W [X], del N, edit N W [X]
}

// ReadChangeLog parses a recording of record-changes.sh.
func readChangeLog(t testing.TB, path string) *changeLog {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	l := &changeLog{steps: map[string][]changeStep{}, results: map[string]map[int]string{}}
	for _, line := range strings.Split(string(b), "\n") {
		fs := strings.Fields(line)
		switch {
		case len(fs) >= 4 && fs[0] == "STEP":
			if _, ok := l.steps[fs[1]]; !ok {
				l.order = append(l.order, fs[1])
			}
			l.steps[fs[1]] = append(l.steps[fs[1]], changeStep{port: atoi(t, fs[2]), args: fs[3:]})
		case len(fs) == 5 && fs[0] == "RESULT":
			if l.results[fs[1]] == nil {
				l.results[fs[1]] = map[int]string{}
			}
			_, port, _ := strings.Cut(fs[2], ":")
			l.results[fs[1]][atoi(t, port)] = strings.TrimPrefix(fs[4], "198.19.0.")
		case len(fs) == 2 && fs[0] == "END":
			l.end = atoi(t, fs[1])
		}
	}
	return l
}

func atoi(t testing.TB, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("bad number %q", s)
	}
	return n
}

// TestLinuxRecordedChanges replays testdata/linux-6.1-changes.txt: rr
// and wrr services changed with ipvsadm -a, -d and -e between
// connections, and wrr with weights up to 2147483647, and expects the
// kernel's choice for every connection ("-" where it had none).
func TestLinuxRecordedChanges(t *testing.T) {
	l := readChangeLog(t, "testdata/linux-6.1-changes.txt")
	if len(l.order) == 0 || l.end == 0 {
		t.Fatal("nothing recorded")
	}
	for i, vs := range l.order {
		t.Run(vs, func(t *testing.T) {
			_, vport, _ := strings.Cut(vs, ":")
			name := map[string]string{"80": "rr"}[vport]
			if name == "" {
				name = "wrr"
			}
			end := l.end
			if i+1 < len(l.order) {
				end = l.steps[l.order[i+1]][0].port
			}
			v := newService(t, name, 0)
			steps := l.steps[vs]
			var got, want []string
			for port := steps[0].port; port < end; port++ {
				for len(steps) > 0 && steps[0].port == port {
					v.change(steps[0].args)
					steps = steps[1:]
				}
				got = append(got, v.conn(fmt.Sprintf("198.18.0.2:%d", port), vs))
				w := l.results[vs][port]
				if w == "" {
					w = "-"
				}
				want = append(want, w)
			}
			if g, w := strings.Join(got, " "), strings.Join(want, " "); g != w {
				t.Errorf("choices for %s\n got: %s\nwant: %s (Linux 6.1)", vs, g, w)
			}
		})
	}
}
