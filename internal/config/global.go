package config

import (
	"net/netip"
	"strings"
	"time"

	"github.com/gvs-lb/gvs/internal/ipvs"
)

// Global is global_defs, with keepalived's defaults filled in.
type Global struct {
	// RouterID identifies this machine in alerts (default: host name,
	// filled by the daemon; empty here when not set).
	RouterID string `json:"router_id,omitempty"`
	// NotificationEmail are the alert recipients.
	NotificationEmail []string `json:"notification_email,omitempty"`
	// NotificationEmailFrom is the alerts' From (default keepalived@<host>,
	// filled by the daemon when empty).
	NotificationEmailFrom string `json:"notification_email_from,omitempty"`
	// SMTPServer is the mail relay's address or name; SMTPPort defaults
	// to 25.
	SMTPServer string `json:"smtp_server,omitempty"`
	SMTPPort   uint16 `json:"smtp_port"`
	// SMTPHeloName is the HELO name (default: host name).
	SMTPHeloName string `json:"smtp_helo_name,omitempty"`
	// SMTPConnectTimeout defaults to 30 seconds.
	SMTPConnectTimeout time.Duration `json:"smtp_connect_timeout"`
	// SMTPAlert is the default of every smtp_alert; SMTPAlertVRRP and
	// SMTPAlertChecker the defaults for VRRP and checkers when set.
	SMTPAlert        *bool `json:"smtp_alert,omitempty"`
	SMTPAlertVRRP    *bool `json:"smtp_alert_vrrp,omitempty"`
	SMTPAlertChecker *bool `json:"smtp_alert_checker,omitempty"`
	NoEmailFaults    bool  `json:"no_email_faults,omitempty"`

	// CheckerLogAllFailures logs every failed check, not only
	// transitions.
	CheckerLogAllFailures bool `json:"checker_log_all_failures,omitempty"`

	// VRRPVersion is the default VRRP version of instances (default 2).
	VRRPVersion int `json:"vrrp_version"`
	// VRRPMcastGroup4 and VRRPMcastGroup6 default to 224.0.0.18 and
	// ff02::12.
	VRRPMcastGroup4 netip.Addr `json:"vrrp_mcast_group4"`
	VRRPMcastGroup6 netip.Addr `json:"vrrp_mcast_group6"`
	// Gratuitous ARP defaults for instances: delay 5 s after becoming
	// master, 5 repeats, no refresh (0), 1 refresh repeat.
	VRRPGarpMasterDelay         time.Duration `json:"vrrp_garp_master_delay"`
	VRRPGarpMasterRepeat        int           `json:"vrrp_garp_master_repeat"`
	VRRPGarpMasterRefresh       time.Duration `json:"vrrp_garp_master_refresh"`
	VRRPGarpMasterRefreshRepeat int           `json:"vrrp_garp_master_refresh_repeat"`
	VRRPGarpLowerPrioDelay      time.Duration `json:"vrrp_garp_lower_prio_delay"`
	VRRPGarpLowerPrioRepeat     int           `json:"vrrp_garp_lower_prio_repeat"`
	// VRRPGarpInterval and VRRPGnaInterval are the gaps between
	// gratuitous ARPs / unsolicited NAs (default 0: no gap).
	VRRPGarpInterval time.Duration `json:"vrrp_garp_interval"`
	VRRPGnaInterval  time.Duration `json:"vrrp_gna_interval"`
	// VRRPSkipCheckAdvAddr skips checking advert addresses against the
	// instance's VIPs; VRRPStrict enforces RFC compliance.
	VRRPSkipCheckAdvAddr bool `json:"vrrp_skip_check_adv_addr,omitempty"`
	VRRPStrict           bool `json:"vrrp_strict,omitempty"`
	// VRRPCheckUnicastSrc checks unicast adverts come from a peer.
	VRRPCheckUnicastSrc bool `json:"vrrp_check_unicast_src,omitempty"`
	// NotifyFIFO (every change), VRRPNotifyFIFO (VRRP's) and
	// LVSNotifyFIFO (the checkers') are the paths of FIFOs that state
	// changes are written to, one line each; Cmd is the path, User and
	// Group (resolved as a script's) own a FIFO gvsd creates. The
	// *Script fields are the programs started with the FIFO's path as
	// their last argument to read it.
	NotifyFIFO           *Script `json:"notify_fifo,omitempty"`
	NotifyFIFOScript     *Script `json:"notify_fifo_script,omitempty"`
	VRRPNotifyFIFO       *Script `json:"vrrp_notify_fifo,omitempty"`
	VRRPNotifyFIFOScript *Script `json:"vrrp_notify_fifo_script,omitempty"`
	LVSNotifyFIFO        *Script `json:"lvs_notify_fifo,omitempty"`
	LVSNotifyFIFOScript  *Script `json:"lvs_notify_fifo_script,omitempty"`

	// DefaultInterface is where static addresses go (default eth0).
	DefaultInterface string `json:"default_interface"`

	// EnableScriptSecurity refuses scripts a non-root user could change
	// when they run as root. ScriptUser and ScriptGroup run scripts
	// that name no user (default keepalived_script if it exists, else
	// gvsd's own user); Load resolves every Script's user.
	EnableScriptSecurity bool   `json:"enable_script_security,omitempty"`
	ScriptUser           string `json:"script_user,omitempty"`
	ScriptGroup          string `json:"script_group,omitempty"`
	ScriptUserPos        Pos    `json:"-"`

	// LVSTimeouts are lvs_timeouts (tcp, tcpfin, udp); a zero leaves that
	// timeout as it is.
	LVSTimeouts ipvs.Timeouts `json:"lvs_timeouts"`
	// LVSFlush clears the IPVS table at startup.
	LVSFlush bool `json:"lvs_flush,omitempty"`
	// LVSFlushOnStop clears it at shutdown.
	LVSFlushOnStop bool `json:"lvs_flush_onstop,omitempty"`
	// LVSSyncDaemon is lvs_sync_daemon's words (interface, instance, id
	// ...), kept for the daemon.
	LVSSyncDaemon    []string `json:"lvs_sync_daemon,omitempty"`
	LVSSyncDaemonPos Pos      `json:"-"`
	// Lines are where each keyword was set, for messages.
	Lines map[string]Pos `json:"-"`
}

func defaultGlobal() Global {
	return Global{
		SMTPPort:                    25,
		SMTPConnectTimeout:          30 * time.Second,
		VRRPVersion:                 2,
		VRRPMcastGroup4:             netip.MustParseAddr("224.0.0.18"),
		VRRPMcastGroup6:             netip.MustParseAddr("ff02::12"),
		VRRPGarpMasterDelay:         5 * time.Second,
		VRRPGarpMasterRepeat:        5,
		VRRPGarpMasterRefreshRepeat: 1,
		VRRPGarpLowerPrioRepeat:     5,
		DefaultInterface:            "eth0",
	}
}

func boolPtr(b bool) *bool { return &b }

func (d *decoder) global(n *node, g *Global) {
	if g.Lines == nil {
		g.Lines = map[string]Pos{}
	}
	for _, ch := range n.children {
		g.Lines[ch.kw()] = ch.pos
	}
	run(d, "global_defs", n.children, globalTable, globalIgnored, g)
}

func setBool(f func(g *Global) *bool) handler[Global] {
	return handler[Global]{max: 1, fn: func(d *decoder, n *node, g *Global) {
		if v, ok := d.boolArg(n, 1); ok {
			*f(g) = v
		}
	}}
}

func setOptBool(f func(g *Global) **bool) handler[Global] {
	return handler[Global]{max: 1, fn: func(d *decoder, n *node, g *Global) {
		if v, ok := d.boolArg(n, 1); ok {
			*f(g) = boolPtr(v)
		}
	}}
}

func setString(f func(g *Global) *string) handler[Global] {
	return handler[Global]{min: 1, max: 1, fn: func(d *decoder, n *node, g *Global) { *f(g) = n.args[1] }}
}

// garpTimer is a gratuitous ARP delay: keepalived 2.2.7 refuses 0 for
// the intervals (its range starts at 1 µs) but carries on, and so do we.
func garpTimer(f func(g *Global) *time.Duration, zeroIsKeepalivedError bool) handler[Global] {
	return handler[Global]{min: 1, max: 1, fn: func(d *decoder, n *node, g *Global) {
		v, ok := d.timer(n, 1, 0, maxTimer)
		if !ok {
			return
		}
		if v == 0 && zeroIsKeepalivedError {
			d.kaWarnf(n, "%s 0: keepalived 2.2.7 rejects 0 (its range starts at 0.000001) and keeps its default; GVS takes 0 as no delay", n.kw())
		}
		*f(g) = v
	}}
}

func setCount(f func(g *Global) *int, lo, hi int64) handler[Global] {
	return handler[Global]{min: 1, max: 1, fn: func(d *decoder, n *node, g *Global) {
		if v, ok := d.int(n, 1, lo, hi); ok {
			*f(g) = int(v)
		}
	}}
}

func setScript(f func(g *Global) **Script) handler[Global] {
	return handler[Global]{min: 1, max: 3, fn: func(d *decoder, n *node, g *Global) { *f(g) = d.script(n, 1) }}
}

var globalTable = table[Global]{
	"router_id": setString(func(g *Global) *string { return &g.RouterID }),
	"notification_email": {block: true, fn: func(d *decoder, n *node, g *Global) {
		for _, c := range n.children {
			if c.block {
				d.errorf(c, "notification_email holds addresses, not blocks")
				continue
			}
			g.NotificationEmail = append(g.NotificationEmail, c.args...)
		}
	}},
	"notification_email_from": {min: 1, max: -1, fn: func(d *decoder, n *node, g *Global) {
		g.NotificationEmailFrom = strings.Join(n.args[1:], " ")
	}},
	"smtp_server": {min: 1, max: 2, fn: func(d *decoder, n *node, g *Global) {
		g.SMTPServer = n.args[1]
		if len(n.args) > 2 {
			if p, ok := d.port(n, 2, "smtp_server port"); ok {
				g.SMTPPort = p
			}
		}
	}},
	"smtp_helo_name": setString(func(g *Global) *string { return &g.SMTPHeloName }),
	"smtp_connect_timeout": {min: 1, max: 1, fn: func(d *decoder, n *node, g *Global) {
		if v, ok := d.uint(n, 1, 1, 3600); ok {
			g.SMTPConnectTimeout = time.Duration(v) * time.Second
		}
	}},
	"smtp_alert":               setOptBool(func(g *Global) **bool { return &g.SMTPAlert }),
	"smtp_alert_vrrp":          setOptBool(func(g *Global) **bool { return &g.SMTPAlertVRRP }),
	"smtp_alert_checker":       setOptBool(func(g *Global) **bool { return &g.SMTPAlertChecker }),
	"no_email_faults":          setBool(func(g *Global) *bool { return &g.NoEmailFaults }),
	"checker_log_all_failures": setBool(func(g *Global) *bool { return &g.CheckerLogAllFailures }),
	"vrrp_version": {min: 1, max: 1, fn: func(d *decoder, n *node, g *Global) {
		if v, ok := d.int(n, 1, 2, 3); ok {
			g.VRRPVersion = int(v)
		}
	}},
	"vrrp_mcast_group4": {min: 1, max: 1, fn: func(d *decoder, n *node, g *Global) {
		if a, ok := d.addr(n, 1, "vrrp_mcast_group4"); ok {
			if !a.Is4() || !a.IsMulticast() {
				d.errorf(n, "vrrp_mcast_group4 %s is not an IPv4 multicast address", a)
				return
			}
			g.VRRPMcastGroup4 = a
		}
	}},
	"vrrp_mcast_group6": {min: 1, max: 1, fn: func(d *decoder, n *node, g *Global) {
		if a, ok := d.addr(n, 1, "vrrp_mcast_group6"); ok {
			if !a.Is6() || !a.IsMulticast() {
				d.errorf(n, "vrrp_mcast_group6 %s is not an IPv6 multicast address", a)
				return
			}
			g.VRRPMcastGroup6 = a
		}
	}},
	"vrrp_garp_master_delay":          garpTimer(func(g *Global) *time.Duration { return &g.VRRPGarpMasterDelay }, false),
	"vrrp_garp_master_repeat":         setCount(func(g *Global) *int { return &g.VRRPGarpMasterRepeat }, 0, 1<<31-1),
	"vrrp_garp_master_refresh":        garpTimer(func(g *Global) *time.Duration { return &g.VRRPGarpMasterRefresh }, false),
	"vrrp_garp_master_refresh_repeat": setCount(func(g *Global) *int { return &g.VRRPGarpMasterRefreshRepeat }, 0, 1<<31-1),
	"vrrp_garp_lower_prio_delay":      garpTimer(func(g *Global) *time.Duration { return &g.VRRPGarpLowerPrioDelay }, false),
	"vrrp_garp_lower_prio_repeat":     setCount(func(g *Global) *int { return &g.VRRPGarpLowerPrioRepeat }, 0, 1<<31-1),
	"vrrp_garp_interval":              garpTimer(func(g *Global) *time.Duration { return &g.VRRPGarpInterval }, true),
	"vrrp_gna_interval":               garpTimer(func(g *Global) *time.Duration { return &g.VRRPGnaInterval }, true),
	"vrrp_skip_check_adv_addr":        setBool(func(g *Global) *bool { return &g.VRRPSkipCheckAdvAddr }),
	"vrrp_strict":                     setBool(func(g *Global) *bool { return &g.VRRPStrict }),
	"vrrp_check_unicast_src":          setBool(func(g *Global) *bool { return &g.VRRPCheckUnicastSrc }),
	"notify_fifo":                     setScript(func(g *Global) **Script { return &g.NotifyFIFO }),
	"vrrp_notify_fifo":                setScript(func(g *Global) **Script { return &g.VRRPNotifyFIFO }),
	"lvs_notify_fifo":                 setScript(func(g *Global) **Script { return &g.LVSNotifyFIFO }),
	"notify_fifo_script":              setScript(func(g *Global) **Script { return &g.NotifyFIFOScript }),
	"vrrp_notify_fifo_script":         setScript(func(g *Global) **Script { return &g.VRRPNotifyFIFOScript }),
	"lvs_notify_fifo_script":          setScript(func(g *Global) **Script { return &g.LVSNotifyFIFOScript }),
	"default_interface":               setString(func(g *Global) *string { return &g.DefaultInterface }),
	"enable_script_security":          setBool(func(g *Global) *bool { return &g.EnableScriptSecurity }),
	"script_user": {min: 1, max: 2, fn: func(d *decoder, n *node, g *Global) {
		g.ScriptUser, g.ScriptUserPos = n.args[1], n.pos
		if len(n.args) > 2 {
			g.ScriptGroup = n.args[2]
		}
	}},
	"lvs_timeouts": {min: 2, max: 6, fn: func(d *decoder, n *node, g *Global) {
		if len(n.args)%2 == 0 {
			d.errorf(n, "lvs_timeouts takes pairs: [tcp SECS] [tcpfin SECS] [udp SECS]")
			return
		}
		for i := 1; i+1 < len(n.args); i += 2 {
			v, ok := d.uint(n, i+1, 1, 86400*31)
			if !ok {
				continue
			}
			switch n.args[i] {
			case "tcp":
				g.LVSTimeouts.TCP = uint32(v)
			case "tcpfin":
				g.LVSTimeouts.TCPFin = uint32(v)
			case "udp":
				g.LVSTimeouts.UDP = uint32(v)
			default:
				d.errorf(n, "unknown lvs_timeouts timeout %q (want tcp, tcpfin or udp)", n.args[i])
			}
		}
	}},
	"lvs_flush":        setBool(func(g *Global) *bool { return &g.LVSFlush }),
	"lvs_flush_onstop": setBool(func(g *Global) *bool { return &g.LVSFlushOnStop }),
	"lvs_sync_daemon": {min: 1, max: -1, fn: func(d *decoder, n *node, g *Global) {
		g.LVSSyncDaemon, g.LVSSyncDaemonPos = append([]string(nil), n.args[1:]...), n.pos
	}},
}

// globalIgnored are global_defs keywords of keepalived 2.2 that GVS reads
// and does not act on.
var globalIgnored = ignored{}

func init() {
	for _, k := range strings.Fields(`tmp_config_directory config_save_dir process_names
		process_name vrrp_process_name checker_process_name bfd_process_name
		use_symlink_paths set_supplementary_groups startup_script startup_script_timeout
		shutdown_script shutdown_script_timeout dynamic_interfaces no_checker_emails
		vrrp_iptables vrrp_ipsets vrrp_nftables vrrp_nftables_priority vrrp_nftables_ifindex
		nftables nftables_priority nftables_counters nftables_ifindex
		vrrp_check_unicast_src vrrp_skip_check_adv_addr vrrp_priority checker_priority bfd_priority
		vrrp_no_swap checker_no_swap bfd_no_swap vrrp_rt_priority checker_rt_priority bfd_rt_priority
		vrrp_rlimit_rttime checker_rlimit_rttime bfd_rlimit_rttime vrrp_cpu_affinity checker_cpu_affinity
		snmp_socket enable_snmp_vrrp enable_snmp_keepalived enable_snmp_checker enable_snmp_rfc
		enable_snmp_rfcv2 enable_snmp_rfcv3 enable_traps enable_dbus enable_dbus_instance
		vrrp_netlink_cmd_rcv_bufs vrrp_netlink_cmd_rcv_bufs_force vrrp_netlink_monitor_rcv_bufs
		vrrp_netlink_monitor_rcv_bufs_force lvs_netlink_cmd_rcv_bufs lvs_netlink_cmd_rcv_bufs_force
		lvs_netlink_monitor_rcv_bufs lvs_netlink_monitor_rcv_bufs_force process_monitor_rcv_bufs
		process_monitor_rcv_bufs_force vrrp_rx_bufs_policy vrrp_rx_bufs_multiplier
		vrrp_startup_delay vrrp_log_unknown_vrids vrrp_min_garp vrrp_garp_extra_if
		vrrp_higher_prio_send_advert vrrp_lower_prio_no_advert vrrp_own_all_associated_vips
		vrrp_down_timer_adverts random_seed reload_time_file reload_repeat reload_file
		umask max_auto_priority min_auto_priority_delay fifo_write_vrrp_states_on_reload
		vrrp_notify_priority_changes
		linkbeat_use_polling net_namespace net_namespace_ipvs namespace_with_ipsets instance
		use_pid_dir child_wait_time script_security data_use_instance vrrp_track_process
		disable_local_igmp cpu_affinity`) {
		if _, ok := globalTable[k]; !ok {
			globalIgnored[k] = true
		}
	}
}
