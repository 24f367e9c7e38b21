package config

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

func mustParse(t *testing.T, text string) *Config {
	t.Helper()
	c, _, err := Parse("t.conf", []byte(text), Options{})
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	return c
}

// TestDefaults checks keepalived's defaults land where keepalived puts them.
func TestDefaults(t *testing.T) {
	c := mustParse(t, `
vrrp_script s { script /bin/true }
vrrp_instance V { interface eth0
 virtual_router_id 9
 virtual_ipaddress { 198.18.0.1 } }
virtual_server 198.18.0.10 80 {
 protocol TCP
 real_server 198.18.0.11 80 {
  TCP_CHECK { }
  HTTP_GET { url { path / } }
  DNS_CHECK { }
  MISC_CHECK { misc_path /bin/true }
  SMTP_CHECK { }
 }
}`)
	v := c.Instances[0]
	s := c.Scripts[0]
	vs := c.VirtualServers[0]
	rs := vs.RealServers[0]
	tests := []struct {
		name      string
		got, want any
	}{
		{"instance state", v.State, "BACKUP"},
		{"priority", v.Priority, 100},
		{"advert_int", v.AdvertInt, time.Second},
		{"version", v.Version, 2},
		{"garp_master_delay", v.GarpMasterDelay, 5 * time.Second},
		{"garp_master_repeat", v.GarpMasterRepeat, 5},
		{"vip host prefix", v.VirtualIPs[0].Prefix.Bits(), 32},
		{"script interval", s.Interval, time.Second},
		{"script timeout", s.Timeout, time.Second},
		{"script rise/fall", [2]int{s.Rise, s.Fall}, [2]int{1, 1}},
		{"vs sched", vs.Sched, "wlc"},
		{"vs method", vs.Forwarding.Method, NAT},
		{"vs delay_loop", vs.DelayLoop, 60 * time.Second},
		{"vs quorum", vs.Quorum, 1},
		{"rs weight", rs.Weight, int32(1)},
		{"rs method inherited", rs.Forwarding.Method, NAT},
		{"tcp connect_timeout", rs.Checkers[0].ConnectTimeout, 5 * time.Second},
		{"tcp retry", rs.Checkers[0].Retry, 1},
		{"tcp delay_before_retry", rs.Checkers[0].DelayBeforeRetry, time.Second},
		{"tcp warmup", rs.Checkers[0].Warmup, 60 * time.Second},
		{"tcp connect target", rs.Checkers[0].ConnectIP.String() + ":" + itoa(rs.Checkers[0].ConnectPort), "198.18.0.11:80"},
		{"http delay_before_retry", rs.Checkers[1].DelayBeforeRetry, 3 * time.Second},
		{"http protocol", rs.Checkers[1].HTTP.Protocol, "1.0"},
		{"http status as written: none (plan fills 2xx)", rs.Checkers[1].HTTP.URLs[0].StatusCodes, []StatusRange(nil)},
		{"dns retry", rs.Checkers[2].Retry, 3},
		{"dns delay_before_retry", rs.Checkers[2].DelayBeforeRetry, 60 * time.Second},
		{"dns query", *rs.Checkers[2].DNS, DNSCheckConf{Type: "SOA", Name: "."}},
		{"misc retry", rs.Checkers[3].Retry, 0},
		{"misc timeout", rs.Checkers[3].Misc.Timeout, 60 * time.Second},
		{"smtp helo", rs.Checkers[4].SMTP.HeloName, DefaultSMTPHeloName},
		{"global smtp port", c.Global.SMTPPort, uint16(25)},
		{"global vrrp_version", c.Global.VRRPVersion, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !equal(tt.got, tt.want) {
				t.Errorf("got %v, want %v", tt.got, tt.want)
			}
		})
	}
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }

func equal(a, b any) bool {
	switch x := a.(type) {
	case []StatusRange:
		y := b.([]StatusRange)
		if len(x) != len(y) {
			return false
		}
		for i := range x {
			if x[i] != y[i] {
				return false
			}
		}
		return true
	}
	return a == b
}

// TestInheritance checks virtual server settings flow to real servers and
// real server settings to checkers, nearest wins.
func TestInheritance(t *testing.T) {
	c := mustParse(t, `
virtual_server 198.18.0.10 80 {
 protocol TCP
 lvs_method DR
 delay_loop 10
 retry 4
 connect_timeout 2
 inhibit_on_failure
 real_server 198.18.0.11 80 {
  connect_timeout 3
  TCP_CHECK { retry 7 }
 }
}`)
	ch := c.VirtualServers[0].RealServers[0].Checkers[0]
	rs := c.VirtualServers[0].RealServers[0]
	if ch.DelayLoop != 10*time.Second || ch.Retry != 7 || ch.ConnectTimeout != 3*time.Second {
		t.Errorf("checker timers = loop %v retry %d timeout %v, want 10s 7 3s", ch.DelayLoop, ch.Retry, ch.ConnectTimeout)
	}
	if !rs.InhibitOnFailure || rs.Forwarding.Method != DR {
		t.Errorf("real server inhibit %v method %s, want true DR", rs.InhibitOnFailure, rs.Forwarding.Method)
	}
}

// TestServicesStartState checks how real servers enter the IPVS table at
// startup: up as configured; with alpha down (absent, or weight 0 with
// inhibit_on_failure); the sorry server when the quorum is not met.
func TestServicesStartState(t *testing.T) {
	tests := []struct {
		name string
		body string
		want []ipvs.Dest
	}{
		{"up as configured", `real_server 198.18.0.11 80 { weight 3 }`,
			[]ipvs.Dest{{Addr: addr("198.18.0.11"), Port: 80, Method: ipvs.Masq, Weight: 3}}},
		{"alpha starts down", `real_server 198.18.0.11 80 { alpha }`, nil},
		{"alpha with inhibit is weight 0", `real_server 198.18.0.11 80 { alpha
 inhibit_on_failure }`,
			[]ipvs.Dest{{Addr: addr("198.18.0.11"), Port: 80, Method: ipvs.Masq, Weight: 0}}},
		{"sorry server below quorum", `alpha
 sorry_server 198.18.0.99 8080
 real_server 198.18.0.11 80 { }`,
			[]ipvs.Dest{{Addr: addr("198.18.0.99"), Port: 8080, Method: ipvs.Masq, Weight: 1}}},
		{"DR takes the service port", `lvs_method DR
 real_server 198.18.0.11 8080 { }`,
			[]ipvs.Dest{{Addr: addr("198.18.0.11"), Port: 80, Method: ipvs.Route, Weight: 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, "virtual_server 198.18.0.10 80 {\n protocol TCP\n lvs_sched rr\n "+tt.body+"\n}\n")
			svcs, _, err := c.Services()
			if err != nil {
				t.Fatal(err)
			}
			got := svcs[0].Dests
			if len(got) != len(tt.want) {
				t.Fatalf("dests %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("dest %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

// TestServicesPersistence checks persistence_timeout and granularity map
// to the IPVS flags, timeout and netmask.
func TestServicesPersistence(t *testing.T) {
	c := mustParse(t, "global_defs { lvs_timeouts tcp 100 udp 50 }\nvirtual_server 198.18.0.10 80 {\n protocol TCP\n persistence_timeout 50\n persistence_granularity 255.255.0.0\n}\n")
	svcs, to, err := c.Services()
	if err != nil {
		t.Fatal(err)
	}
	s := svcs[0].Service
	if !s.Persistent() || s.Timeout != 50 || s.Netmask != 16 {
		t.Errorf("service flags %#x timeout %d netmask %d, want persistent 50 /16", s.Flags, s.Timeout, s.Netmask)
	}
	if to != (ipvs.Timeouts{TCP: 100, UDP: 50}) {
		t.Errorf("timeouts %+v, want tcp 100 tcpfin 0 (unchanged) udp 50", to)
	}
}

// TestWarnings checks deprecated spellings load with keepalived's warning.
func TestWarnings(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"nb_get_retry", "virtual_server 198.18.0.10 80 {\nprotocol TCP\nreal_server 198.18.0.11 80 {\nTCP_CHECK {\nnb_get_retry 3\n}\n}\n}\n", "t.conf:5: nb_get_retry is deprecated - please use 'retry'"},
		{"lb_algo", "virtual_server 198.18.0.10 80 {\nprotocol TCP\nlb_algo rr\n}\n", "t.conf:3: lb_algo is deprecated - please use 'lvs_sched'"},
		{"missing brace", "virtual_server 198.18.0.10 80 {\nprotocol TCP\n", "t.conf:1: virtual_server block is never closed: '}' missing at end of file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, warns, err := Parse("t.conf", []byte(tt.text), Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range warns {
				if w.String() == tt.want {
					return
				}
			}
			t.Errorf("warnings %v lack %q", warns, tt.want)
		})
	}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }
