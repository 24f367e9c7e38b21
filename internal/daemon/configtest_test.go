package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/internal/config"
)

// TestConfigTestChecksTheEngine runs gvsd -t on the examples for each
// engine: a configuration the engine would refuse at start fails the
// test (exit 5) at the real server's line.
func TestConfigTestChecksTheEngine(t *testing.T) {
	tests := []struct {
		name   string
		file   string
		engine string
		code   int
		want   string // a regexp the output must match
	}{
		{"FullNAT on the default engine", "fnat-xdp.conf", "", config.ExitConfigTest,
			`fnat-xdp.conf:18: virtual server TCP 198.18.0.50:443, real server 198.19.5.1:8443: .*--fullnat needs the xdp engine`},
		{"FullNAT on the proxy engine", "fnat-xdp.conf", "proxy", config.ExitConfigTest, `fnat-xdp.conf:24: .*xdp engine`},
		{"FullNAT on the xdp engine", "fnat-xdp.conf", "xdp", config.ExitOK, `configuration OK`},
		{"FullNAT on auto: xdp first, a warning for the fallback", "fnat-xdp.conf", "auto", config.ExitOK,
			`fnat-xdp.conf:18: warning: .*--engine auto.*\n(.*\n)*.*configuration OK`},
		{"DR on the proxy engine", "dr-vrrp.conf", "proxy", config.ExitConfigTest, `dr-vrrp.conf:37: .*direct routing\) needs the xdp engine`},
		{"DR on the xdp engine", "dr-vrrp.conf", "xdp", config.ExitOK, `configuration OK`},
		{"NAT on the proxy engine", "nat-http.conf", "proxy", config.ExitOK, `configuration OK`},
		{"proxy_protocol on the proxy engine", "nat-proxy-protocol.conf", "proxy", config.ExitOK, `^[^\n]*configuration OK\n$`},
		{"proxy_protocol on the xdp engine", "nat-proxy-protocol.conf", "xdp", config.ExitOK,
			`nat-proxy-protocol.conf:6: warning: proxy_protocol is sent by the proxy engine only`},
		{"unknown engine", "nat-http.conf", "kernel", config.ExitConfigTest, `unknown engine "kernel"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			if code := ConfigTest("../../examples/"+tt.file, tt.engine, &out); code != tt.code {
				t.Errorf("exit code %d, want %d\n%s", code, tt.code, out.String())
			}
			if !regexp.MustCompile(tt.want).MatchString(out.String()) {
				t.Errorf("output does not match %s:\n%s", tt.want, out.String())
			}
		})
	}
}

// TestConfigTestWarnsOfKeywordsNotRun: gvsd -t passes a file with
// keywords gvsd reads but does not run and says so at their lines; a
// malformed lvs_sync_daemon fails it at its line.
func TestConfigTestWarnsOfKeywordsNotRun(t *testing.T) {
	const conf = `global_defs {
	vrrp_strict
	%s
}
vrrp_instance VI_1 {
	interface lo
	virtual_router_id 51
	unicast_ttl 10
	virtual_ipaddress { 198.18.0.1/24 }
}
`
	tests := []struct {
		name string
		sync string
		code int
		want string
	}{
		{"warnings", "", config.ExitOK,
			`k.conf:2: warning: vrrp_strict is not supported by gvsd and is ignored: .*\n` +
				`k.conf:5: warning: vrrp_instance VI_1: unicast_ttl is not supported by gvsd and is ignored: .*\n` +
				`.*configuration OK`},
		{"lvs_sync_daemon naming no instance", "lvs_sync_daemon eth0 VI_9", config.ExitConfigTest,
			`k.conf:3: lvs_sync_daemon: no vrrp_instance named "VI_9"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "k.conf")
			if err := os.WriteFile(path, []byte(fmt.Sprintf(conf, tt.sync)), 0o644); err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			if code := ConfigTest(path, "proxy", &out); code != tt.code {
				t.Errorf("exit code %d, want %d\n%s", code, tt.code, out.String())
			}
			got := strings.ReplaceAll(out.String(), path, "k.conf")
			if !regexp.MustCompile(tt.want).MatchString(got) {
				t.Errorf("output does not match %s:\n%s", tt.want, got)
			}
		})
	}
}

// TestConfigTestUnservedKinds: firewall-mark and SCTP services fail gvsd
// -t on the xdp engine, warn on the proxy engine (which keeps them
// without serving them), and pass on the ipvs engine; each message names
// the ipvs engine.
func TestConfigTestUnservedKinds(t *testing.T) {
	file := filepath.Join(t.TempDir(), "kinds.conf")
	conf := `virtual_server fwmark 1 {
    lvs_sched rr
    lvs_method NAT
    real_server 198.18.0.11 0 {
        weight 1
    }
}
virtual_server 198.18.0.50 9999 {
    protocol SCTP
    lvs_sched rr
    lvs_method NAT
    real_server 198.18.0.12 9999 {
        weight 1
    }
}
`
	if err := os.WriteFile(file, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		engine string
		code   int
		want   []string // regexps the output must match
	}{
		{"xdp", config.ExitConfigTest, []string{
			`kinds.conf:1: virtual server FWM 1: firewall-mark services are not served by the xdp engine .*; use gvsd --engine ipvs`,
			`kinds.conf:8: virtual server SCTP 198.18.0.50:9999: SCTP services are not served by the xdp engine .*; use gvsd --engine ipvs`,
		}},
		{"proxy", config.ExitOK, []string{
			`kinds.conf:1: warning: .*the proxy engine keeps but does not serve a firewall-mark service; use the ipvs engine`,
			`kinds.conf:8: warning: .*the proxy engine keeps but does not serve an SCTP service; use the ipvs engine`,
		}},
		{"ipvs", config.ExitOK, []string{`^[^\n]*configuration OK\n$`}},
	}
	for _, tt := range tests {
		t.Run(tt.engine, func(t *testing.T) {
			var out strings.Builder
			if code := ConfigTest(file, tt.engine, &out); code != tt.code {
				t.Errorf("exit code %d, want %d\n%s", code, tt.code, out.String())
			}
			for _, want := range tt.want {
				if !regexp.MustCompile(want).MatchString(out.String()) {
					t.Errorf("output does not match %s:\n%s", want, out.String())
				}
			}
		})
	}
}
