package check

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// fileReal is a real server whose only checker is a FILE_CHECK of path.
func fileReal(addr string, weight int32, path string, fileWeight int, reverse bool) RealServer {
	s := defaultSpec(FILE)
	s.DelayLoop = 50 * time.Millisecond
	s.TrackFile, s.FileWeight, s.FileReverse = path, fileWeight, reverse
	ap := netip.MustParseAddrPort(addr)
	return RealServer{Dest: ipvs.Dest{Addr: ap.Addr(), Port: ap.Port(), Method: ipvs.Masq, Weight: weight}, Checks: []Spec{s}}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	// write and rename, as an operator's script should, so that a poll
	// never reads a half-written file
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestFileCheckPool(t *testing.T) {
	tests := []struct {
		name       string
		fileWeight int
		reverse    bool
		inhibit    bool
		steps      []struct{ content, want string } // file content ("" removes the file), pool after it
	}{
		{
			name: "weight 0: non-zero takes the server down",
			steps: []struct{ content, want string }{
				{"0", "198.18.1.1:80=10"},
				{"1", ""},
				{"", "198.18.1.1:80=10"}, // a missing file reads as 0
				{"7\n", ""},
				{"0\n", "198.18.1.1:80=10"},
			},
		},
		{
			name: "weight 0 reverse: zero takes the server down", reverse: true,
			steps: []struct{ content, want string }{
				{"1", "198.18.1.1:80=10"},
				{"0", ""},
				{"5", "198.18.1.1:80=10"},
			},
		},
		{
			name: "weight 0 with inhibit_on_failure", inhibit: true,
			steps: []struct{ content, want string }{
				{"1", "198.18.1.1:80=0"},
				{"0", "198.18.1.1:80=10"},
			},
		},
		{
			name: "weight 5 adds value*5", fileWeight: 5,
			steps: []struct{ content, want string }{
				{"0", "198.18.1.1:80=10"},
				{"3", "198.18.1.1:80=25"},
				{"-1", "198.18.1.1:80=5"},
				{"-4", "198.18.1.1:80=0"}, // 10-20 is below 0: quiesced, still in the pool
				{"0x2", "198.18.1.1:80=20"},
			},
		},
		{
			name: "weight 5 reverse subtracts", fileWeight: 5, reverse: true,
			steps: []struct{ content, want string }{
				{"1", "198.18.1.1:80=5"},
				{"0", "198.18.1.1:80=10"},
				{"99999999999", "198.18.1.1:80=10"}, // out of range: ignored
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state")
			set := func(c string) {
				if c == "" {
					os.Remove(path)
					return
				}
				writeFile(t, path, c)
			}
			set(tt.steps[0].content)
			rs := fileReal("198.18.1.1:80", 10, path, tt.fileWeight, tt.reverse)
			rs.Inhibit = tt.inhibit
			p := newPool(t)
			m := p.run(t, VirtualServer{Service: vip, Quorum: 1, RealServers: []RealServer{rs}})
			for i, st := range tt.steps {
				if i > 0 {
					set(st.content)
				}
				p.wantDests(t, st.want)
			}
			if s := m.Status(); len(s) != 1 || s[0].Type != FILE {
				t.Errorf("status %+v", s)
			}
		})
	}
}

// TestFileCheckStartsFromTheFile: a file saying "down" keeps the server out
// of the pool from the start, with no flap in and out.
func TestFileCheckStartsFromTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	writeFile(t, path, "1")
	p := newPool(t)
	var added []string
	m, err := NewManager([]VirtualServer{{Service: vip, Quorum: 1, RealServers: []RealServer{fileReal("198.18.1.1:80", 10, path, 0, false)}}},
		ApplierFunc(func(c ipvs.Command) error {
			added = append(added, fmt.Sprint(c.Op))
			return p.table.Exec(c)
		}), Options{})
	if err != nil {
		t.Fatal(err)
	}
	m.mu.Lock()
	m.initVS(m.vss[0])
	m.mu.Unlock()
	if len(added) != 0 || p.dests() != "" {
		t.Errorf("at start: commands %v, pool %q; want nothing", added, p.dests())
	}
}

// TestFileCheckWithTCP: a real server with a FILE_CHECK and a TCP_CHECK is
// up only when both are, at the weight the file sets.
func TestFileCheckWithTCP(t *testing.T) {
	srv := newTCPServer(t)
	path := filepath.Join(t.TempDir(), "state")
	writeFile(t, path, "2")
	rs := tcpReal(srv, 4)
	f := fileReal("198.18.1.1:80", 0, path, 3, false).Checks[0]
	rs.Checks = append(rs.Checks, f)
	p := newPool(t)
	p.run(t, VirtualServer{Service: vip, Quorum: 1, RealServers: []RealServer{rs}})
	p.wantDests(t, name(srv, 10))
	srv.stop()
	p.wantDests(t, "")
	writeFile(t, path, "1")
	srv.restart()
	p.wantDests(t, name(srv, 7))
}

// TestFileCheckFollowsTheFile: a FILE_CHECK reads its file at the start
// and then each time it is written, replaced by a rename or removed, as
// keepalived's; never on a timer: it asks its clock for none, whether
// its spec has a delay_loop (ignored) or none (as plan compiles it). A
// change while it is suspended is read when it is resumed, at the latest.
func TestFileCheckFollowsTheFile(t *testing.T) {
	for _, tc := range []struct {
		name      string
		delayLoop time.Duration
	}{
		{"no delay_loop", 0},
		{"a delay_loop", time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state")
			s := defaultSpec(FILE)
			s.TrackFile, s.DelayLoop = path, tc.delayLoop
			c, clk, ch, _ := clockedChecker(t, s, netip.MustParseAddrPort("198.18.1.1:80"))
			// attempt returns the next report, waiting for at most 10 s:
			// a hang, not a timing bound.
			attempt := func(what string) timedReport {
				t.Helper()
				select {
				case r := <-ch:
					return r
				case <-time.After(10 * time.Second):
					t.Fatalf("%s: no attempt", what)
					return timedReport{}
				}
			}
			if first := attempt("the start"); !first.Up { // no file reads as 0
				t.Fatalf("first attempt, no file: down (%v)", first.Err)
			}
			for _, step := range []struct {
				what string
				do   func()
				up   bool
			}{
				{"written 1", func() { os.WriteFile(path, []byte("1\n"), 0o644) }, false},
				{"replaced by a rename with 0", func() { writeFile(t, path, "0") }, true},
				{"written 5", func() { os.WriteFile(path, []byte("5"), 0o644) }, false},
				{"removed", func() { os.Remove(path) }, true},
				{"suspended, written 3, resumed", func() {
					c.SetEnabled(false)
					os.WriteFile(path, []byte("3"), 0o644)
					c.SetEnabled(true)
				}, false},
			} {
				step.do()
				for r := attempt(step.what); r.Up != step.up; r = attempt(step.what) {
				}
			}
			// The last attempt came after the checker went to sleep again
			// following the ones before it: every sleep so far is counted.
			if n := clk.asked(); n != 0 {
				t.Errorf("the checker asked its clock for %d timers; want none (it reads the file when it changes)", n)
			}
			if len(ch) > 1 {
				t.Errorf("%d more attempts after the last change; want at most the one a late inotify event may bring", len(ch))
			}
		})
	}
}
