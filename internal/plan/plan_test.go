package plan

import (
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/internal/config"
	"github.com/gvs-lb/gvs/internal/ipvssync"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// parse parses text as config.Load does, without resolving the scripts'
// users against this host (every script runs as uid 0).
func parse(t *testing.T, name string, text []byte) *config.Config {
	t.Helper()
	cfg, _, err := config.Parse(name, text, config.Options{ConfigID: "gvs"})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// compile compiles testdata/name.
func compile(t *testing.T, name string) *Plan {
	t.Helper()
	path := filepath.Join("testdata", name)
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := Compile(parse(t, path, data))
	if err != nil {
		t.Fatal(err)
	}
	return p
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

// TestCompileGolden compiles every keepalived.conf block gvsd runs into
// the plan, against golden files.
func TestCompileGolden(t *testing.T) {
	for _, name := range []string{"checkers", "vrrp"} {
		t.Run(name, func(t *testing.T) {
			golden(t, name+".golden", compile(t, name+".conf"))
		})
	}
}

// TestDestsKeepHealth: a restarted virtual server installs its kept real
// servers as they are (a down one stays out, or at weight 0 with
// inhibit_on_failure) and the others as configured.
func TestDestsKeepHealth(t *testing.T) {
	p := compile(t, "checkers.conf")
	s := &p.Services[0] // quorum 2, sorry server, RS1 weight 2 inhibit, RS2 alpha
	rs1 := netip.MustParseAddrPort("198.18.1.1:8080")
	rs2 := netip.MustParseAddrPort("198.18.1.2:8080")
	tests := []struct {
		name  string
		alive map[netip.AddrPort]bool
		want  string
	}{
		{"as configured", nil, "198.18.1.1:8080 w2"},
		{"both up", map[netip.AddrPort]bool{rs1: true, rs2: true}, "198.18.1.1:8080 w2, 198.18.1.2:8080 w1"},
		{"RS1 down: inhibited, quorum lost, sorry server", map[netip.AddrPort]bool{rs1: false, rs2: true}, "198.18.1.99:8080 w1"},
		{"RS2 down", map[netip.AddrPort]bool{rs1: true, rs2: false}, "198.18.1.1:8080 w2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, d := range s.Dests(tt.alive) {
				b, _ := json.Marshal(d.Weight)
				got = append(got, d.AddrPort().String()+" w"+string(b))
			}
			if g := strings.Join(got, ", "); g != tt.want {
				t.Errorf("dests %s, want %s", g, tt.want)
			}
		})
	}
}

// TestDestsAreConfigServices: as configured, a service's real servers are
// the ones config.Services installs.
func TestDestsAreConfigServices(t *testing.T) {
	for _, name := range []string{"checkers.conf", "vrrp.conf"} {
		data, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		cfg := parse(t, name, data)
		scs, _, err := cfg.Services()
		if err != nil {
			t.Fatal(err)
		}
		p, _, err := Compile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Services) != len(scs) {
			t.Fatalf("%s: %d services, config has %d", name, len(p.Services), len(scs))
		}
		for i := range scs {
			if !p.Services[i].Service.Equal(&scs[i].Service) || !slices.Equal(p.Services[i].Dests(nil), scs[i].Dests) {
				t.Errorf("%s: service %d: %+v %+v, config has %+v", name, i, p.Services[i].Service, p.Services[i].Dests(nil), scs[i])
			}
		}
	}
}

func TestSyncDaemon(t *testing.T) {
	const inst = "vrrp_instance VI_1 {\n interface eth0\n virtual_router_id 51\n virtual_ipaddress { 198.18.0.1 }\n}\n"
	tests := []struct {
		name    string
		words   string
		want    SyncDaemon
		wantErr string
	}{
		{name: "interface and instance: the syncid is the VRID", words: "eth1 VI_1",
			want: SyncDaemon{Instance: "VI_1", Config: ipvssync.Config{Interface: "eth1", SyncID: 51}}},
		{name: "every option", words: "eth1 VI_1 id 7 maxlen 1400 port 9000 ttl 3 group 224.0.0.99",
			want: SyncDaemon{Instance: "VI_1", Config: ipvssync.Config{Interface: "eth1", SyncID: 7, MaxLen: 1400,
				Port: 9000, TTL: 3, Group: netip.MustParseAddr("224.0.0.99")}}},
		{name: "no instance", words: "eth1", wantErr: "t.conf:1: lvs_sync_daemon needs an interface and a VRRP instance"},
		{name: "unknown instance", words: "eth1 VI_2", wantErr: "t.conf:1: lvs_sync_daemon: no vrrp_instance named \"VI_2\""},
		{name: "id out of range", words: "eth1 VI_1 id 256", wantErr: "id \"256\": want a number from 0 to 255"},
		{name: "option without value", words: "eth1 VI_1 ttl", wantErr: "\"ttl\" needs a value"},
		{name: "unicast group", words: "eth1 VI_1 group 198.18.0.1", wantErr: "not a multicast address"},
		{name: "unknown option", words: "eth1 VI_1 mtu 1500", wantErr: "unknown option \"mtu\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := parse(t, "t.conf", []byte("global_defs { lvs_sync_daemon "+tt.words+" }\n"+inst))
			p, _, err := Compile(cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || p.Sync == nil || *p.Sync != tt.want {
				t.Fatalf("got %+v, %v; want %+v", p.Sync, err, tt.want)
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

// TestOneChangeOneDifference: compiling a file again gives equal units
// and services, and changing one keyword makes exactly the unit or
// service it belongs to differ, which is what a reload restarts.
func TestOneChangeOneDifference(t *testing.T) {
	for _, tt := range []struct {
		name, file, from, to string
		service              int // the service that differs, -1: none
		unit                 string
	}{
		{"nothing", "checkers.conf", "", "", -1, ""},
		{"a checker's delay_loop", "checkers.conf", "delay_loop 2", "delay_loop 3", 0, ""},
		{"an instance's priority", "vrrp.conf", "priority 150", "priority 140", -1, "group G1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			changed := data
			if tt.from != "" {
				if !strings.Contains(string(data), tt.from) {
					t.Fatalf("%s has no %q", tt.file, tt.from)
				}
				changed = []byte(strings.Replace(string(data), tt.from, tt.to, 1))
			}
			a, _, err := Compile(parse(t, tt.file, data))
			if err != nil {
				t.Fatal(err)
			}
			b, _, err := Compile(parse(t, tt.file, changed))
			if err != nil {
				t.Fatal(err)
			}
			for i := range a.Services {
				same := a.Services[i].Service.Equal(&b.Services[i].Service) && a.Services[i].Check.Equal(&b.Services[i].Check)
				if same == (i == tt.service) {
					t.Errorf("service %s: equal %v", a.Services[i].Key(), same)
				}
			}
			for i := range a.VRRP {
				if same := a.VRRP[i].Equal(&b.VRRP[i]); same == (a.VRRP[i].Name == tt.unit) {
					t.Errorf("vrrp unit %s: equal %v", a.VRRP[i].Name, same)
				}
			}
		})
	}
}

// TestStatusCodesDefault: a url block without status_code accepts 2xx,
// as keepalived; the compile step fills that in, so check runs the
// ranges it is given and nothing else.
func TestStatusCodesDefault(t *testing.T) {
	const conf = "virtual_server 198.18.0.1 80 {\n protocol TCP\n real_server 198.18.1.1 80 {\n" +
		"  HTTP_GET {\n   url {\n    path /a\n   }\n   url {\n    path /b\n    status_code 200 302-304\n   }\n  }\n }\n}\n"
	p, _, err := Compile(parse(t, "t.conf", []byte(conf)))
	if err != nil {
		t.Fatal(err)
	}
	urls := p.Services[0].Check.RealServers[0].Checks[0].URLs
	if len(urls) != 2 {
		t.Fatalf("%d urls, want 2", len(urls))
	}
	for _, tt := range []struct {
		url        int
		code       int
		wantAccept bool
	}{
		{0, 200, true}, {0, 204, true}, {0, 299, true}, {0, 302, false}, {0, 500, false},
		{1, 200, true}, {1, 204, false}, {1, 303, true}, {1, 305, false},
	} {
		if got := urls[tt.url].Status.Match(tt.code); got != tt.wantAccept {
			t.Errorf("url %s accepts %d: %v, want %v (status codes %v)", urls[tt.url].Path, tt.code, got, tt.wantAccept, urls[tt.url].Status)
		}
	}
}
