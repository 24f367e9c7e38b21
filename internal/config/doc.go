// Package config reads keepalived.conf (keepalived 2.2's grammar, as
// keepalived.conf(5) documents it) into an immutable, typed Config, and
// turns its virtual servers into the IPVS services GVS installs.
// internal/plan compiles a Config into what gvsd runs.
//
// # Syntax
//
// Blocks are delimited by '{' and '}', on the keyword's line or the next;
// several statements may share a line when braces separate them
// ("url { path / }"). '#' and '!' start comments anywhere. Double or
// single quotes keep spaces. "include PATTERN" (and includer, includem,
// includew, includeb, includea) reads files matching a glob, relative to
// the including file; a plain include matching nothing only warns.
// "@id" / "@^id" conditional lines and "$NAME=value" parameters with
// $NAME / ${NAME} substitution work as in keepalived.
//
// # Blocks and keywords
//
//   - global_defs: router_id, notification_email, notification_email_from,
//     smtp_server [port], smtp_helo_name, smtp_connect_timeout,
//     smtp_alert[_vrrp|_checker], no_email_faults, checker_log_all_failures,
//     vrrp_version, vrrp_mcast_group4/6, vrrp_garp_master_delay/repeat/
//     refresh/refresh_repeat, vrrp_garp_lower_prio_delay/repeat,
//     vrrp_garp_interval, vrrp_gna_interval, vrrp_skip_check_adv_addr,
//     vrrp_strict, vrrp_check_unicast_src, notify_fifo, vrrp_notify_fifo,
//     lvs_notify_fifo (PATH [user [group]]) and their readers
//     notify_fifo_script, vrrp_notify_fifo_script, lvs_notify_fifo_script,
//     default_interface, enable_script_security,
//     script_user, lvs_timeouts, lvs_flush, lvs_flush_onstop,
//     lvs_sync_daemon. Other keepalived global keywords (SNMP, D-Bus,
//     nftables, process tuning ...) are accepted with a warning.
//   - vrrp_script: script, interval, timeout, weight [reverse], rise, fall,
//     user, init_fail.
//   - track_file NAME (or vrrp_track_file NAME): file, weight [reverse],
//     init_file [VALUE] [overwrite]; tracked by vrrp_instance and
//     vrrp_sync_group track_file and by real_server FILE_CHECK. gvsd reads
//     the file when inotify says it was written and closed, renamed in or
//     out, created or removed (as keepalived; a FILE_CHECK has no
//     delay_loop), or every 250 ms while its directory cannot be watched:
//     the number at its start, as strtol reads it; a missing file reads 0.
//   - vrrp_track_process NAME: process NAME|PATH [PARAMS...],
//     param_match [initial|partial], full_command, quorum, quorum_max,
//     weight [reverse], delay, terminate_delay, fork_delay. gvsd counts
//     from /proc once, then follows the kernel's process events (the
//     netlink proc connector, as keepalived; one socket for every block),
//     or scans /proc every second
//     where they do not reach it (another PID or network namespace than
//     the host's): a process matches by its comm (15 bytes), or with
//     full_command or parameters by the first word of its command line
//     and the words after it; zombies do not count. A change is reported
//     once it has lasted its delay.
//   - vrrp_sync_group: group, track_interface, track_script, track_file,
//     track_process, notify_master/backup/fault/stop, notify, smtp_alert.
//   - vrrp_instance: state, interface, virtual_router_id, priority,
//     advert_int, version, nopreempt, preempt, preempt_delay, accept,
//     no_accept, authentication { auth_type PASS|AH, auth_pass } (version 2;
//     with version 3 it is ignored with a warning, as keepalived does),
//     virtual_ipaddress and virtual_ipaddress_excluded (ADDR[/LEN] dev,
//     scope, label, brd, peer, use_vmac, no_track, flags),
//     no_virtual_ipaddress, virtual_routes, mcast_src_ip, unicast_src_ip,
//     unicast_peer, unicast_ttl, track_interface, track_script, track_file,
//     track_process,
//     dont_track_primary, notify_*, notify, smtp_alert, garp_master_*,
//     garp_lower_prio_*, use_vmac, vmac_xmit_base, native_ipv6,
//     skip_check_adv_addr, strict_mode. track_interface and the
//     instance's own interface follow the kernel's link messages over
//     netlink, as keepalived does (no polling); with dont_track_primary
//     the own interface going down is no fault. A link counts as up when
//     it is set up and has its carrier; a missing one counts as down.
//   - virtual_server_group: ADDR [PORT], ranges (A.B.C.D-E, ADDR-ADDR,
//     ADDR/LEN) and fwmark N [inet|inet6].
//   - virtual_server ADDR PORT | fwmark N | group NAME: lvs_sched (lb_algo),
//     flag-1/2/3, sh-port, sh-fallback, mh-port, mh-fallback, ops,
//     lvs_method (lb_kind) NAT|DR|TUN [type ipip|gue port N|gre]
//     [nocsum|csum|remcsum]|FNAT, persistence_timeout [N],
//     persistence_granularity, persistence_engine, protocol TCP|UDP|SCTP,
//     ha_suspend, alpha, omega, quorum, hysteresis, quorum_up, quorum_down,
//     ip_family, sorry_server, sorry_server_inhibit,
//     sorry_server_lvs_method, virtualhost, smtp_alert, delay_loop,
//     connect_timeout, retry, delay_before_retry, warmup,
//     inhibit_on_failure, real_server.
//   - real_server ADDR [PORT]: weight, lvs_method (lb_kind), tun_type,
//     tun_port, uthreshold, lthreshold, notify_up, notify_down, alpha,
//     inhibit_on_failure, virtualhost, smtp_alert, the common timers, and
//     checkers: TCP_CHECK, HTTP_GET, SSL_GET (http_protocol, virtualhost,
//     fast_recovery, enable_sni, sni_name, tls_compliant, url { path,
//     digest, status_code 200-299 404 ..., virtualhost, regex,
//     regex_no_match, regex_options, regex_min_offset, regex_max_offset,
//     regex_stack }), MISC_CHECK (misc_path, misc_timeout, misc_dynamic,
//     user), DNS_CHECK (type, name), SMTP_CHECK (helo_name, deprecated host
//     blocks), UDP_CHECK (payload, require_reply, min_reply_length,
//     max_reply_length), PING_CHECK, FILE_CHECK (track_file NAME,
//     weight W [reverse]: with weight 0 a non-zero number takes the real
//     server down, else the number times the weight is added to the real
//     server's weight), the network checkers each with connect_ip,
//     connect_port, bindto, bind_if, bind_port, fwmark, connect_timeout,
//     retry (nb_get_retry), delay_before_retry, warmup, delay_loop,
//     alpha, log_all_failures.
//
// BFD_CHECK, track_bfd and bfd_instance are accepted with a warning and
// ignored: they follow a BFD session (RFC 5880) that keepalived's own BFD
// process runs, and GVS has no BFD implementation to take its place.
//
// # Read but not run
//
// These keywords of the lists above are valid and parsed, but gvsd does
// not act on them; internal/plan.Compile (so gvsd -t) warns of each one
// set, at its line (the block's line for those inside a block):
//
//   - vrrp_garp_lower_prio_delay/repeat, garp_lower_prio_delay/repeat:
//     no gratuitous ARPs are sent on a lower-priority advert.
//   - vrrp_skip_check_adv_addr, skip_check_adv_addr, vrrp_strict,
//     strict_mode, accept, no_accept: gvsd installs no firewall rules (the
//     VIPs always accept packets) and does not compare an advert's
//     addresses with its own.
//   - unicast_ttl, unicast_peer min_ttl/max_ttl: adverts are sent with TTL
//     255 and must arrive with it (RFC 5798).
//   - virtual_ipaddress brd, peer, scope, use_vmac, no_track and address
//     flags: an address is added with its prefix, dev and label only.
//   - omega: notify_down and quorum_down do not run at shutdown.
//   - fast_recovery: a failed check is retried after delay_before_retry.
//   - tls_compliant: changes nothing; Go's TLS always ends a connection
//     with close_notify.
//   - vrrp_mcast_group4/6 other than 224.0.0.18 and ff02::12.
//
// Everything else listed reaches what gvsd runs (internal/daemon's
// TestKeywordsReachTheRuntime holds each keyword to it). default_interface
// is the interface of a vrrp_instance that names none.
//
// A virtual server's settings are the defaults of its real servers, and a
// real server's the defaults of its checkers; the resolved values are in
// the Checker (checker_log_all_failures is the default of
// log_all_failures). Defaults are keepalived's and are documented on each
// field.
//
// # Regular expressions
//
// keepalived matches url regex with PCRE2; GVS with Go's regexp, which is
// RE2: the common syntax is the same, but lookahead and lookbehind,
// backreferences, possessive quantifiers, atomic groups and recursion
// fail the configuration test with the regex's file:line. regex_options
// caseless, dotall, multiline and ungreedy become the flags i, s, m and
// U; the UTF, JIT and optimisation options change nothing in RE2 and are
// accepted; the others (extended, firstline, dupnames ...) are errors.
// regex_stack (the PCRE2 JIT stack) is accepted and has no effect.
// "$" without multiline matches only at the very end of the body (PCRE2's
// dollar_endonly). A quoted regex has its backslash escapes processed
// by the lexer, as every quoted string: write "\d" or leave the regex
// unquoted.
//
// # GVS extensions
//
//   - lvs_method FNAT (or FULLNAT): full NAT, ipvs.FullNAT: the director
//     rewrites the source too, using a local address from the pool.
//   - local_address_group NAME { ADDR|RANGE [DEV] ... } at the top level
//     (laddr_group is a synonym) and laddr_group_name NAME (or
//     laddr_group NAME) in a virtual_server: the FNAT source address pool,
//     as DPVS's keepalived spells it.
//   - proxy_protocol 1|2 in a virtual_server: the proxy engine sends a
//     PROXY protocol v1 or v2 header to the real servers (TCP only).
//
// # Scripts
//
// Load (not Parse) settles every Script as keepalived does when it reads
// its configuration: who runs it (Script.UID and GID: its own user and
// group, else global_defs script_user, else keepalived_script when that
// user exists, else gvsd's own user) and whether it may run at all
// (Script.Disabled: a user that does not exist; a script that cannot be
// found or that its user cannot execute; with enable_script_security, a
// script run with root's privileges that a non-root user could change).
// It reports keepalived's messages as warnings, those keepalived -t
// counts as errors with KeepalivedError, and "SECURITY VIOLATION - scripts
// are being executed but script_security not enabled." with Security
// (keepalived -t's exit ExitConfigTestSecurity). The notify FIFOs'
// readers (notify_fifo_script and its vrrp_ and lvs_ kin) are notify
// scripts here; a notify FIFO's own user (the owner of a FIFO gvsd
// creates) is resolved as a script's, and a FIFO whose user does not
// exist is not written (Disabled), but it is not a script and is not
// checked.
//
// # Errors and warnings
//
// Errors are *Error ("file:line: what is wrong", with a hint such as the
// valid values or the nearest keyword), or Errors when there are several.
// Where keepalived carries on with a complaint (deprecated spellings,
// missing closing braces at the end of a file, a missing protocol) Parse
// returns a Warning; Warning.KeepalivedError marks those keepalived -t
// counts as errors, and Warning.Security its script security errors.
// TestExitCode maps an error to keepalived's config-test exit codes
// (ExitOK, ExitConfig, ExitConfigTest); ExitConfigTestSecurity is for a
// configuration whose warnings include a Security one.
package config
