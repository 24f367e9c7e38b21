package daemon

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/gvs-lb/gvs/internal/config"
	"github.com/gvs-lb/gvs/internal/ipvs"
	"github.com/gvs-lb/gvs/internal/plan"
	"github.com/gvs-lb/gvs/internal/vrrp"
)

// keywordBase has one of every block; a row of TestKeywordsReachTheRuntime
// puts its line where a "#SLOT" comment is.
const keywordBase = `
global_defs {
	notification_email { ops@example.org }
	smtp_server 198.18.0.250
	#GLOBAL
}
vrrp_script chk {
	script /bin/true
	#SCRIPT
}
track_file tf {
	file /tmp/gvs-keyword-test
	#TRACKFILE
}
vrrp_track_process proc {
	process gvsd
	#PROC
}
vrrp_sync_group G {
	group { VI_1 }
	#GROUP
}
vrrp_instance VI_1 {
	interface eth0
	virtual_router_id 51
	virtual_ipaddress {
		198.18.0.1/24 #VIP
	}
	track_script { chk }
	track_file { tf }
	track_process { proc }
	#INST
}
vrrp_instance VI_2 {
	virtual_router_id 52
	unicast_peer { 198.18.0.3 }
	virtual_ipaddress { 198.18.0.2/24 }
	#UNICAST
}
local_address_group L { 198.18.3.1 }
virtual_server_group VG {
	198.18.0.30 80
	#VSG
}
virtual_server group VG {
	protocol TCP
	lvs_sched rr
	lvs_method NAT
	real_server 198.18.1.3 80 {
		TCP_CHECK { connect_timeout 1 }
	}
}
virtual_server 198.18.0.10 80 {
	protocol TCP
	lvs_sched rr
	#VS
	real_server 198.18.1.1 8080 {
		#RS
		TCP_CHECK {
			#TCP
		}
		HTTP_GET {
			url {
				path /
				#URL
			}
			#HTTP
		}
		SSL_GET {
			url { path / }
			#SSL
		}
		MISC_CHECK {
			misc_path /bin/true
			#MISC
		}
		DNS_CHECK {
			#DNS
		}
		SMTP_CHECK {
			#SMTP
		}
		PING_CHECK {
			#PING
		}
		FILE_CHECK {
			track_file tf
			#FILE
		}
	}
	real_server 198.18.1.2 8080 {
		weight 3
	}
}
virtual_server 198.18.0.20 53 {
	protocol UDP
	lvs_sched rr
	lvs_method NAT
	real_server 198.18.1.1 53 {
		UDP_CHECK {
			#UDP
		}
	}
}
virtual_server fwmark 7 {
	lvs_sched rr
	lvs_method DR
	#FWMARK
}
`

// runtime is everything gvsd runs from a configuration, as JSON: the plan
// (with each service's first real servers), the mailer and which changes
// it mails, and the kernel engine's options.
func runtime(t *testing.T, text string) (string, []config.Warning) {
	t.Helper()
	cfg, warns, err := config.Parse("k.conf", []byte(text), config.Options{ConfigID: "gvs"})
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	p, w, err := plan.Compile(cfg)
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	warns = append(warns, w...)
	var dests [][]ipvs.Dest
	for i := range p.Services {
		dests = append(dests, p.Services[i].Dests(nil))
	}
	ml := newMailer(cfg, slog.New(slog.DiscardHandler))
	var alerts []bool
	if ml.m != nil {
		ml.m.Log = nil
	}
	for i := range cfg.VirtualServers {
		vs := &cfg.VirtualServers[i]
		alerts = append(alerts, ml.checker(vs, nil))
		for j := range vs.RealServers {
			alerts = append(alerts, ml.checker(vs, &vs.RealServers[j]))
		}
	}
	for _, st := range []vrrp.State{vrrp.StateMaster, vrrp.StateFault} {
		for _, in := range cfg.Instances {
			alerts = append(alerts, ml.vrrp(in.SMTPAlert, st))
		}
		for _, g := range cfg.SyncGroups {
			alerts = append(alerts, ml.vrrp(g.SMTPAlert, st))
		}
	}
	out, err := json.Marshal(struct {
		Plan   *plan.Plan
		Dests  [][]ipvs.Dest
		Mail   any
		Alerts []bool
		Kernel any
	}{p, dests, ml.m, alerts, kernelOptions(cfg)})
	if err != nil {
		t.Fatal(err)
	}
	return string(out), warns
}

// TestKeywordsReachTheRuntime: every keyword internal/config/doc.go lists
// as supported changes what gvsd runs when it is set (or says in a
// warning at its line why it does not), so none is parsed and lost.
func TestKeywordsReachTheRuntime(t *testing.T) {
	type row struct {
		slot, line string
		// unsupported is a word of the warning that says the keyword is
		// read but not run; "" means it must reach the runtime.
		unsupported string
	}
	rows := []row{
		// global_defs
		{"GLOBAL", "router_id R1", ""},
		{"GLOBAL", "notification_email_from gvs@example.org", ""},
		{"GLOBAL", "smtp_helo_name mx.example.org", ""},
		{"GLOBAL", "smtp_connect_timeout 5", ""},
		{"GLOBAL", "smtp_alert", ""},
		{"GLOBAL", "smtp_alert_vrrp", ""},
		{"GLOBAL", "smtp_alert_checker", ""},
		{"GLOBAL", "no_email_faults\n\tsmtp_alert", ""},
		{"GLOBAL", "checker_log_all_failures", ""},
		{"GLOBAL", "vrrp_version 3", ""},
		{"GLOBAL", "vrrp_mcast_group4 224.0.0.19", "multicast group"},
		{"GLOBAL", "vrrp_garp_master_delay 2", ""},
		{"GLOBAL", "vrrp_garp_master_repeat 2", ""},
		{"GLOBAL", "vrrp_garp_master_refresh 60", ""},
		{"GLOBAL", "vrrp_garp_master_refresh_repeat 2", ""},
		{"GLOBAL", "vrrp_garp_lower_prio_delay 2", "vrrp_garp_lower_prio_delay"},
		{"GLOBAL", "vrrp_garp_lower_prio_repeat 2", "vrrp_garp_lower_prio_repeat"},
		{"GLOBAL", "vrrp_garp_interval 0.01", ""},
		{"GLOBAL", "vrrp_skip_check_adv_addr", "vrrp_skip_check_adv_addr"},
		{"GLOBAL", "vrrp_strict", "vrrp_strict"},
		{"GLOBAL", "vrrp_check_unicast_src", ""},
		{"GLOBAL", "notify_fifo /tmp/fifo", ""},
		{"GLOBAL", "vrrp_notify_fifo /tmp/fifo", ""},
		{"GLOBAL", "lvs_notify_fifo /tmp/fifo", ""},
		{"GLOBAL", "notify_fifo /tmp/fifo\n\tnotify_fifo_script /bin/cat", ""},
		{"GLOBAL", "vrrp_notify_fifo /tmp/fifo\n\tvrrp_notify_fifo_script /bin/cat", ""},
		{"GLOBAL", "lvs_notify_fifo /tmp/fifo\n\tlvs_notify_fifo_script /bin/cat", ""},
		{"GLOBAL", "default_interface eth9", ""},
		{"GLOBAL", "lvs_timeouts tcp 60", ""},
		{"GLOBAL", "lvs_flush", ""},
		{"GLOBAL", "lvs_flush_onstop", ""},
		{"GLOBAL", "lvs_sync_daemon eth0 VI_1", ""},
		// vrrp_script
		{"SCRIPT", "interval 2", ""},
		{"SCRIPT", "timeout 3", ""},
		{"SCRIPT", "weight 10", ""},
		{"SCRIPT", "weight 10 reverse", ""},
		{"SCRIPT", "rise 2", ""},
		{"SCRIPT", "fall 2", ""},
		{"SCRIPT", "init_fail", ""},
		// track_file
		{"TRACKFILE", "weight 5", ""},
		{"TRACKFILE", "weight 5 reverse", ""},
		{"TRACKFILE", "init_file 1", ""},
		// vrrp_track_process
		{"PROC", "param_match partial", ""},
		{"PROC", "full_command", ""},
		{"PROC", "quorum 2", ""},
		{"PROC", "quorum_max 3", ""},
		{"PROC", "weight 5", ""},
		{"PROC", "delay 2", ""},
		{"PROC", "terminate_delay 2", ""},
		{"PROC", "fork_delay 2", ""},
		// vrrp_sync_group
		{"GROUP", "track_interface { eth1 }", ""},
		{"GROUP", "track_script { chk }", ""},
		{"GROUP", "notify_master /bin/true", ""},
		{"GROUP", "notify_backup /bin/true", ""},
		{"GROUP", "notify_fault /bin/true", ""},
		{"GROUP", "notify_stop /bin/true", ""},
		{"GROUP", "notify /bin/true", ""},
		{"GROUP", "smtp_alert", ""},
		// vrrp_instance
		{"INST", "state MASTER", ""},
		{"INST", "priority 150", ""},
		{"INST", "advert_int 2", ""},
		{"INST", "version 3", ""},
		{"INST", "nopreempt", ""},
		{"INST", "preempt_delay 5", ""},
		{"INST", "accept", "accept"},
		{"INST", "no_accept", "accept"},
		{"INST", "authentication {\n auth_type PASS\n auth_pass secret\n}", ""},
		{"INST", "virtual_ipaddress_excluded { 198.18.9.9 }", ""},
		{"INST", "virtual_routes { 198.18.8.0/24 via 198.18.0.254 }", ""},
		{"INST", "mcast_src_ip 198.18.0.5", ""},
		{"INST", "unicast_src_ip 198.18.0.5", ""},
		{"INST", "unicast_peer { 198.18.0.6 }", ""},
		{"INST", "unicast_peer { 198.18.0.6 min_ttl 10 }", "min_ttl"},
		{"INST", "unicast_ttl 10", "unicast_ttl"},
		{"INST", "track_interface { eth1 weight 10 }", ""},
		{"INST", "dont_track_primary", ""},
		{"INST", "notify_master /bin/true", ""},
		{"INST", "notify_backup /bin/true", ""},
		{"INST", "notify_fault /bin/true", ""},
		{"INST", "notify_stop /bin/true", ""},
		{"INST", "notify /bin/true", ""},
		{"INST", "smtp_alert", ""},
		{"INST", "garp_master_delay 0", ""},
		{"INST", "garp_master_repeat 1", ""},
		{"INST", "garp_master_refresh 30", ""},
		{"INST", "garp_master_refresh_repeat 3", ""},
		{"INST", "garp_lower_prio_delay 3", "garp_lower_prio"},
		{"INST", "garp_lower_prio_repeat 3", "garp_lower_prio"},
		{"INST", "use_vmac", ""},
		{"INST", "use_vmac vrrp51\n\tvmac_xmit_base", ""},
		{"INST", "native_ipv6\n\tunicast_src_ip 2001:db8::5", ""},
		{"INST", "skip_check_adv_addr", "skip_check_adv_addr"},
		{"INST", "strict_mode", "strict_mode"},
		{"VIP", "dev eth1", ""},
		{"VIP", "label eth0:1", ""},
		{"VIP", "scope host", "scope"},
		{"VIP", "brd 198.18.0.255", "brd"},
		{"UNICAST", "interface eth1", ""},
		// virtual_server_group
		{"VSG", "198.18.0.31-32 80", ""},
		{"VSG", "fwmark 9", ""},
		// virtual_server
		{"VS", "lvs_sched sh\n\tsh-port", ""},
		{"VS", "lvs_sched mh\n\tmh-fallback", ""},
		{"VS", "ops", ""},
		{"VS", "lvs_method DR", ""},
		{"VS", "lvs_method FNAT\n\tladdr_group_name L", ""},
		{"VS", "persistence_timeout 60", ""},
		{"VS", "persistence_timeout 60\n\tpersistence_granularity 255.255.255.0", ""},
		{"VS", "persistence_engine sip", ""},
		{"VS", "ha_suspend", ""},
		{"VS", "alpha", ""},
		{"VS", "omega", "omega"},
		{"VS", "quorum 3", ""},
		{"VS", "hysteresis 1", ""},
		{"VS", "quorum_up /bin/true", ""},
		{"VS", "quorum_down /bin/true", ""},
		{"VS", "sorry_server 198.18.1.9 80", ""},
		{"VS", "sorry_server 198.18.1.9 80\n\tsorry_server_inhibit", ""},
		{"VS", "sorry_server 198.18.1.9 80\n\tsorry_server_lvs_method DR", ""},
		{"VS", "virtualhost www.example.org", ""},
		{"VS", "smtp_alert", ""},
		{"VS", "delay_loop 5", ""},
		{"VS", "connect_timeout 2", ""},
		{"VS", "retry 4", ""},
		{"VS", "delay_before_retry 2", ""},
		{"VS", "warmup 1", ""},
		{"VS", "inhibit_on_failure", ""},
		{"VS", "proxy_protocol 2", ""},
		{"FWMARK", "ip_family inet6", ""},
		// real_server
		{"RS", "weight 5", ""},
		{"RS", "lvs_method TUN", ""},
		{"RS", "lvs_method TUN type gue port 6080 csum", ""},
		{"RS", "uthreshold 100", ""},
		{"RS", "uthreshold 100\n\tlthreshold 10", ""},
		{"RS", "notify_up /bin/true", ""},
		{"RS", "notify_down /bin/true", ""},
		{"RS", "alpha", ""},
		{"RS", "inhibit_on_failure", ""},
		{"RS", "virtualhost www.example.org", ""},
		{"RS", "smtp_alert", ""},
		{"RS", "delay_loop 5", ""},
		// checkers
		{"TCP", "connect_ip 198.18.1.8", ""},
		{"TCP", "connect_port 81", ""},
		{"TCP", "bindto 198.18.0.9", ""},
		{"TCP", "bind_if eth1", ""},
		{"TCP", "bind_port 1234", ""},
		{"TCP", "fwmark 5", ""},
		{"TCP", "connect_timeout 2", ""},
		{"TCP", "retry 4", ""},
		{"TCP", "nb_get_retry 4", ""},
		{"TCP", "delay_before_retry 4", ""},
		{"TCP", "warmup 4", ""},
		{"TCP", "delay_loop 4", ""},
		{"TCP", "alpha", ""},
		{"TCP", "log_all_failures", ""},
		{"HTTP", "http_protocol 1.1", ""},
		{"HTTP", "virtualhost www.example.org", ""},
		{"HTTP", "fast_recovery", "fast_recovery"},
		{"SSL", "enable_sni", ""},
		{"SSL", "sni_name www.example.org", ""},
		{"SSL", "tls_compliant", "tls_compliant"},
		{"URL", "digest 9b3a0c85a887a256d6939da88aabd8cd", ""},
		{"URL", "status_code 200 404", ""},
		{"URL", "virtualhost www.example.org", ""},
		{"URL", "regex ok", ""},
		{"URL", "regex ok\n\t\t\t\tregex_no_match", ""},
		{"URL", "regex ok\n\t\t\t\tregex_options caseless", ""},
		{"URL", "regex ok\n\t\t\t\tregex_min_offset 2", ""},
		{"URL", "regex ok\n\t\t\t\tregex_max_offset 20", ""},
		{"MISC", "misc_timeout 3", ""},
		{"MISC", "misc_dynamic", ""},
		{"DNS", "type A", ""},
		{"DNS", "name example.org", ""},
		{"SMTP", "helo_name mx.example.org", ""},
		{"SMTP", "host {\n connect_ip 198.18.1.7\n}", ""},
		{"PING", "delay_loop 4", ""},
		{"FILE", "weight 4", ""},
		{"UDP", "payload 0102", ""},
		{"UDP", "require_reply", ""},
		{"UDP", "require_reply 01X2", ""},
		{"UDP", "require_reply\n\t\t\tmin_reply_length 4", ""},
		{"UDP", "require_reply\n\t\t\tmax_reply_length 100", ""},
	}
	base, _ := runtime(t, keywordBase)
	for _, r := range rows {
		t.Run(r.slot+" "+strings.ReplaceAll(r.line, "\n", " "), func(t *testing.T) {
			slot := "#" + r.slot + "\n"
			if !strings.Contains(keywordBase, slot) {
				t.Fatalf("no %s in the base configuration", slot)
			}
			got, warns := runtime(t, strings.Replace(keywordBase, slot, r.line+"\n", 1))
			var said []string
			for _, w := range warns {
				if strings.Contains(w.Msg, "not supported") || strings.Contains(w.Msg, "changes nothing") {
					said = append(said, w.String())
				}
			}
			if r.unsupported == "" {
				if got == base {
					t.Errorf("%q changes nothing gvsd runs: it is parsed and lost", r.line)
				}
				if len(said) > 0 {
					t.Errorf("warned of as unsupported: %q", said)
				}
				return
			}
			if !strings.Contains(strings.Join(said, "\n"), r.unsupported) {
				t.Errorf("%q: no warning that %s is not run (warnings: %q)", r.line, r.unsupported, warns)
			}
		})
	}
}
