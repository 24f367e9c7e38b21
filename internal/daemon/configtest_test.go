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
		{"firewall mark on the xdp engine, with its rules", "fwmark-xdp.conf", "xdp", config.ExitOK, `^[^\n]*configuration OK\n$`},
		{"firewall mark on the ipvs engine", "fwmark-xdp.conf", "ipvs", config.ExitOK, `^[^\n]*configuration OK\n$`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			opts := Options{Engine: tt.engine}
			// An example's firewall-mark rules are beside it.
			if rules := "../../examples/" + strings.TrimSuffix(tt.file, ".conf") + ".rules"; tt.engine == "xdp" {
				if _, err := os.Stat(rules); err == nil {
					opts.FWMarkRules = rules
				}
			}
			if code := ConfigTest("../../examples/"+tt.file, opts, &out); code != tt.code {
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
			if code := ConfigTest(path, Options{Engine: "proxy"}, &out); code != tt.code {
				t.Errorf("exit code %d, want %d\n%s", code, tt.code, out.String())
			}
			got := strings.ReplaceAll(out.String(), path, "k.conf")
			if !regexp.MustCompile(tt.want).MatchString(got) {
				t.Errorf("output does not match %s:\n%s", tt.want, got)
			}
		})
	}
}

// TestConfigTestUnservedKinds: SCTP services fail gvsd -t on the xdp
// engine, warn on the proxy engine (which keeps them without serving
// them, as it keeps firewall-mark services), and pass on the ipvs engine;
// each message names the ipvs engine.
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
			if code := ConfigTest(file, Options{Engine: tt.engine}, &out); code != tt.code {
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

// TestConfigTestFWMarkRules: on the xdp engine gvsd -t reads the rules
// files too: their errors fail it at their lines, and a firewall-mark
// service whose mark no rule sets is a warning at its line.
func TestConfigTestFWMarkRules(t *testing.T) {
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good.rules"), filepath.Join(dir, "bad.rules")
	os.WriteFile(good, []byte("*mangle\n-A PREROUTING -d 198.18.0.200 -p tcp -m multiport --dports 80,443 -j MARK --set-mark 1\nCOMMIT\n"), 0o644)
	os.WriteFile(bad, []byte("*mangle\n-A PREROUTING -d 198.18.0.200 -p tcp -j MARK --set-mark 1\n-A PREROUTING ! -d 198.18.0.200 -j MARK --set-mark 2\n"), 0o644)
	conf := "../../examples/fwmark-xdp.conf"
	tests := []struct {
		name string
		opts Options
		code int
		want string
	}{
		{"no rules", Options{Engine: "xdp"}, config.ExitOK,
			`fwmark-xdp.conf:18: warning: virtual server FWM 1: no rule of --fwmark-rules sets mark 1, so the xdp engine gives it no connections: add -j MARK --set-mark 1 rules for its addresses and ports\n.*configuration OK`},
		{"IPv6 rules only", Options{Engine: "auto", FWMarkRules6: good}, config.ExitConfigTest, `good.rules:2: -d 198.18.0.200 is not an IPv6 address`},
		{"good rules", Options{Engine: "xdp", FWMarkRules: good}, config.ExitOK, `^[^\n]*configuration OK\n$`},
		{"bad rules", Options{Engine: "xdp", FWMarkRules: bad}, config.ExitConfigTest, `bad.rules:3: negation \(! -d 198.18.0.200\) is not supported`},
		{"missing rules", Options{Engine: "xdp", FWMarkRules: filepath.Join(dir, "missing")}, config.ExitConfigTest, `firewall-mark rules: open .*missing: no such file`},
		{"rules on the proxy engine", Options{Engine: "proxy", FWMarkRules: good}, config.ExitConfigTest, `--fwmark-rules and --fwmark-rules6 are for the xdp engine, not --engine proxy`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			if code := ConfigTest(conf, tt.opts, &out); code != tt.code {
				t.Errorf("exit code %d, want %d\n%s", code, tt.code, out.String())
			}
			if !regexp.MustCompile(tt.want).MatchString(out.String()) {
				t.Errorf("output does not match %s:\n%s", tt.want, out.String())
			}
		})
	}
}
