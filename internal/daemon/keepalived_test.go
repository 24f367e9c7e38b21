package daemon

import (
	"encoding/json"
	"flag"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/internal/check"
	"github.com/gvs-lb/gvs/internal/config"
	"github.com/gvs-lb/gvs/internal/ipvs"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// load parses testdata/name as config.Load does, without resolving the
// scripts' users against this host (every script runs as uid 0).
func load(t *testing.T, name string) *config.Config {
	t.Helper()
	path := filepath.Join("testdata", name)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err := config.Parse(path, data, config.Options{ConfigID: config.DefaultConfigID()})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// golden compares v, as indented JSON without its zero values (so a
// field added elsewhere does not change it), with testdata/name.
func golden(t *testing.T, name string, v any) {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var tree any
	if err := json.Unmarshal(raw, &tree); err != nil {
		t.Fatal(err)
	}
	got, err := json.MarshalIndent(prune(tree), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if string(got) != string(want) {
		t.Errorf("%s differs (go test -update rewrites it); got:\n%s", path, got)
	}
}

// TestMapping maps every keepalived.conf block gvsd runs to the types of
// the packages that run them, against golden files.
func TestMapping(t *testing.T) {
	quiet := slog.New(slog.DiscardHandler)
	tests := []struct {
		name string
		conf string
		run  func(t *testing.T, cfg *config.Config) any
	}{
		{"checkers", "checkers.conf", func(t *testing.T, cfg *config.Config) any {
			wants, _, err := planLVS(cfg, quiet)
			if err != nil {
				t.Fatal(err)
			}
			var out []check.VirtualServer
			for _, w := range wants {
				out = append(out, w.cvs)
			}
			return out
		}},
		{"vrrp", "vrrp.conf", func(t *testing.T, cfg *config.Config) any {
			units, err := planVRRP(cfg, quiet)
			if err != nil {
				t.Fatal(err)
			}
			names := make([]string, 0, len(units))
			for n := range units {
				names = append(names, n)
			}
			slices.Sort(names)
			out := map[string]vrrpSig{}
			for _, n := range names {
				out[n] = units[n].sig
			}
			return out
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			golden(t, tt.name+".golden", tt.run(t, load(t, tt.conf)))
		})
	}
}

// TestServicesKeepHealth: a restarted virtual server installs its kept
// real servers as they are (a down one stays out, or at weight 0 with
// inhibit_on_failure) and the others as configured; IPVS's order is the
// reverse of the configuration's.
func TestServicesKeepHealth(t *testing.T) {
	cfg := load(t, "checkers.conf")
	vs := &cfg.VirtualServers[0] // quorum 2, sorry server, RS1 weight 2 inhibit, RS2 alpha
	rs1 := netip.MustParseAddrPort("198.18.1.1:8080")
	rs2 := netip.MustParseAddrPort("198.18.1.2:8080")
	tests := []struct {
		name  string
		state map[netip.AddrPort]bool
		want  string
	}{
		{"as configured", nil, "198.18.1.1:8080 w2"},
		{"both up", map[netip.AddrPort]bool{rs1: true, rs2: true}, "198.18.1.2:8080 w1, 198.18.1.1:8080 w2"},
		{"RS1 down: inhibited, quorum lost, sorry server", map[netip.AddrPort]bool{rs1: false, rs2: true}, "198.18.1.99:8080 w1"},
		{"RS2 down", map[netip.AddrPort]bool{rs1: true, rs2: false}, "198.18.1.1:8080 w2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			scs, err := servicesOf(cfg, vs, tt.state)
			if err != nil {
				t.Fatal(err)
			}
			if len(scs) != 1 {
				t.Fatalf("%d services, want 1", len(scs))
			}
			dests := slices.Clone(scs[0].Dests)
			slices.Reverse(dests)
			var got []string
			for _, d := range dests {
				got = append(got, d.AddrPort().String()+" w"+itoa(d.Weight))
			}
			if g := strings.Join(got, ", "); g != tt.want {
				t.Errorf("dests %s, want %s", g, tt.want)
			}
		})
	}
}

// prune drops null, false, 0, "" and empty objects and arrays from
// decoded JSON objects.
func prune(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			e = prune(e)
			switch y := e.(type) {
			case nil:
				delete(x, k)
				continue
			case bool:
				if !y {
					delete(x, k)
					continue
				}
			case float64:
				if y == 0 {
					delete(x, k)
					continue
				}
			case string:
				if y == "" {
					delete(x, k)
					continue
				}
			case map[string]any:
				if len(y) == 0 {
					delete(x, k)
					continue
				}
			case []any:
				if len(y) == 0 {
					delete(x, k)
					continue
				}
			}
			x[k] = e
		}
	case []any:
		for i := range x {
			x[i] = prune(x[i])
		}
	}
	return v
}

func itoa(w int32) string { b, _ := json.Marshal(w); return string(b) }

func TestMergeTimeouts(t *testing.T) {
	tests := []struct {
		name      string
		want, cur ipvs.Timeouts
		out       ipvs.Timeouts
	}{
		{"kernel defaults", ipvs.Timeouts{}, ipvs.Timeouts{}, ipvs.DefaultTimeouts},
		{"lvs_timeouts win", ipvs.Timeouts{TCP: 60}, ipvs.Timeouts{TCP: 30, UDP: 10}, ipvs.Timeouts{TCP: 60, TCPFin: 120, UDP: 10}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mergeTimeouts(tt.want, tt.cur); got != tt.out {
				t.Errorf("got %+v, want %+v", got, tt.out)
			}
		})
	}
}
