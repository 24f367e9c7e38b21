#!/bin/bash
set -u
O=/tmp/out2; mkdir -p $O
c() { local name=$1; shift
  ipvsadm "$@" >$O/$name.out 2>$O/$name.err </dev/null; echo $? >$O/$name.rc
  printf '%s\n' "ipvsadm $*" >$O/$name.cmd; }
modprobe -a ip_vs ip_vs_rr ip_vs_wrr ip_vs_wlc ip_vs_sh ip_vs_pe_sip
ip link set lo up
ipvsadm -A -t 198.18.0.10:80 -s rr
ipvsadm -a -t 198.18.0.10:80 -r 198.19.0.11:80 -m
ipvsadm -A -f 1 -s rr
c p_missing_arg -A -t
c p_At -At 198.18.0.60:80
c p_t_attached -A -t198.18.0.61:80
c p_nL -nL
c p_long_eq -A --tcp-service=198.18.0.62:80
c p_p_then_opt -A -t 198.18.0.63:80 -p -s rr
c p_p_attached -A -t 198.18.0.64:80 -s rr -p30
c p_p_neg -A -t 198.18.0.65:80 -s rr -p -1
c p_p_extra -A -t 198.18.0.66:80 -s rr -p 30 extra
c p_dashdash -A -t 198.18.0.67:80 -- -s
c p_h_after -A -h
c p_L6 -L -6
c p_w_intmax -a -t 198.18.0.10:80 -r 198.19.0.30 -w 2147483647
c p_w_over -a -t 198.18.0.10:80 -r 198.19.0.34 -w 2147483648
c p_x_neg -a -t 198.18.0.10:80 -r 198.19.0.35 -x -1
c p_x_abc -a -t 198.18.0.10:80 -r 198.19.0.35 -x abc
c p_y_abc -a -t 198.18.0.10:80 -r 198.19.0.35 -y abc
c p_port_65536 -A -t 198.18.0.68:65536
c p_port_empty_host -A -t :80
c p_port_neg -A -t 198.18.0.69:-1
c p_port_080 -A -t 198.18.0.70:080 -s rr
c p_port_empty -A -t 198.18.0.71: -s rr
c p_sched_upper -A -t 198.18.0.72:80 -s RR
c p_fwm_big -A -f 4294967296
c p_fwm_max -A -f 4294967295 -s rr
c p_fwm_neg -A -f -5
c p_edit_no_s -E -t 198.18.0.10:80
c p_dest_g_port -a -t 198.18.0.10:80 -r 198.19.0.31:8080 -g
c p_fwm_dest_g_port -a -f 1 -r 198.19.0.32:8080 -g
c p_set_four --set 1 2 3 4
c p_set_big --set 100000000 1 1
c p_set_max --set 2678400 1 1
c p_nn -S -n -n
c p_exact_rate -L --exact --rate
c p_c_stats -L -c --stats
c p_timeout_pc -L --timeout --persistent-conn
c p_Z_n -Z -t 198.18.0.10:80 -n
c p_edit_dest_default -e -t 198.18.0.10:80 -r 198.19.0.11
c p_sctp -A --sctp-service 198.18.0.73:80 -s rr
c p_sctp_dest -a --sctp-service 198.18.0.73:80 -r 198.19.0.40 -m
c p_ops_udp -A -u 198.18.0.74:53 -o
c p_ops_tcp -A -t 198.18.0.75:80 -o
c p_pe_foo -A -t 198.18.0.76:80 --pe foo
c p_b_default_sched -A -t 198.18.0.77:80 -b sh-port
c p_b_dup -A -t 198.18.0.78:80 -s sh -b sh-port,sh-port
c p_svc_stats -Ln -t 198.18.0.10:80 --stats
c p_v -v
c p_help_long --help
c p_M_before_p -A -t 198.18.0.80:80 -M 255.255.255.0 -p 10
c p_v6_M -A -t [2001:db8::80]:80 -s rr -p -M 64
c p_v6_M_bad -A -t [2001:db8::82]:80 -s rr -p -M 255.255.255.0
c p_v6_M_129 -A -t [2001:db8::83]:80 -s rr -p -M 129
c p_v6_dest_noport -a -t [2001:db8::80]:80 -r 2001:db8::23 -g
c p_v6_portname -A -t [2001:db8::81]:http -s rr
c p_dest_portname -a -t 198.18.0.10:80 -r 198.19.0.33:http -m
c p_dest_noaddr -a -t 198.18.0.10:80 -r :80
c p_dest_bad -a -t 198.18.0.10:80 -r 198.19.0.300
c p_r_digits -a -t 198.18.0.10:80 -r 12345
c p_t_digits -A -t 12345
c p_tun_csum_twice -a -t 198.18.0.10:80 -r 198.19.0.41 -i --tun-type gue --tun-port 1 --tun-csum --tun-nocsum
c p_tun_type_no_i -a -t 198.18.0.10:80 -r 198.19.0.42 --tun-type gue --tun-port 1
c p_tun_port_0 -a -t 198.18.0.10:80 -r 198.19.0.43 -i --tun-type gue --tun-port 0
c p_two_methods -a -t 198.18.0.10:80 -r 198.19.0.44 -m -g
c p_D_extra_s -D -t 198.18.0.10:80 -s rr
c p_C_n -C -n
c p_R_n -R -n
c p_list_t_c -L -t 198.18.0.10:80 --timeout
c p_Ln_sctp -Ln
c p_S_sctp -Sn
c p_S_noN -S
c p_Lt_stats_exact -Ln --stats --exact -t 198.18.0.10:80
cd /tmp && tar czf /tmp/out2.tgz out2
echo BEGIN-TGZ; base64 -w0 /tmp/out2.tgz; echo; echo END-TGZ
