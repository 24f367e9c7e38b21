#!/bin/bash
# Guest script: records real ipvsadm 1.31 outputs for gvsadm's golden tests.
set -u
O=/tmp/out; mkdir -p $O
n=0
c() { # c NAME args...   runs ipvsadm args, records out/err/rc
  local name=$1; shift
  ipvsadm "$@" >$O/$name.out 2>$O/$name.err </dev/null; echo $? >$O/$name.rc
  printf '%s\n' "ipvsadm $*" >$O/$name.cmd
}
cin() { # cin NAME INPUTFILE args...
  local name=$1 in=$2; shift 2
  ipvsadm "$@" >$O/$name.out 2>$O/$name.err <$in; echo $? >$O/$name.rc
  printf '%s < %s\n' "ipvsadm $*" "$(basename $in)" >$O/$name.cmd
  cp $in $O/$name.in
}
modprobe -a ip_vs ip_vs_rr ip_vs_wrr ip_vs_lc ip_vs_wlc ip_vs_sh ip_vs_mh ip_vs_lblc ip_vs_pe_sip veth bridge ipip
ip link set lo up
c noargs_empty
c version --version
c help -h
c empty_Ln -Ln

# a rich table
ipvsadm -A -t 198.18.0.10:80 -s rr
ipvsadm -a -t 198.18.0.10:80 -r 198.19.0.12:80 -m -w 1
ipvsadm -a -t 198.18.0.10:80 -r 198.19.0.11:80 -m -w 3 -x 100 -y 50
ipvsadm -a -t 198.18.0.10:80 -r 198.19.0.13:8080 -m -w 0
ipvsadm -A -t 198.18.0.10:443 -s wlc -p 600 -M 255.255.255.0
ipvsadm -a -t 198.18.0.10:443 -r 198.18.0.21 -g
ipvsadm -a -t 198.18.0.10:443 -r 198.18.0.22 -i -w 5
ipvsadm -A -t 198.18.0.10:22 -s lc -p
ipvsadm -a -t 198.18.0.10:22 -r 198.18.0.23:22 -g -w 2
ipvsadm -A -u 198.18.0.10:53 -s sh -b sh-fallback,sh-port
ipvsadm -a -u 198.18.0.10:53 -r 198.19.0.11:53 -m
ipvsadm -a -u 198.18.0.10:53 -r 198.19.0.12:5353 -m -w 2
ipvsadm -A -u 198.18.0.10:5060 -s rr -o -p 30 --pe sip
ipvsadm -a -u 198.18.0.10:5060 -r 198.19.0.11 -m
ipvsadm -A -f 1 -s wrr
ipvsadm -a -f 1 -r 198.18.0.24 -g -w 4
ipvsadm -a -f 1 -r 198.19.0.14:8080 -m
ipvsadm -A -f 2 -6 -s rr -p 100 -M 64
ipvsadm -a -f 2 -6 -r 2001:db8::31 -g
ipvsadm -A -t [2001:db8::10]:80 -s mh -b mh-port
ipvsadm -a -t [2001:db8::10]:80 -r [2001:db8::21]:80 -m -w 2
ipvsadm -a -t [2001:db8::10]:80 -r [2001:db8::20]:8080 -m
ipvsadm -a -t [2001:db8::10]:80 -r [2001:db8::22]:80 -i --tun-type gue --tun-port 6080 --tun-csum
ipvsadm -A -t 198.18.0.10:8443 -s wrr
ipvsadm -a -t 198.18.0.10:8443 -r 198.18.0.25:8443 -i --tun-type gue --tun-port 5555 --tun-remcsum -w 1
ipvsadm -a -t 198.18.0.10:8443 -r 198.18.0.26:8443 -i --tun-type gre --tun-nocsum
ipvsadm -a -t 198.18.0.10:8443 -r 198.18.0.27:8443 -i --tun-type ipip
ipvsadm -A -t 127.0.0.1:8000 -s rr
ipvsadm -a -t 127.0.0.1:8000 -r 127.0.0.1:8001 -m
ipvsadm -A -t 198.18.0.10:25 -s fo -b flag-1,flag-3
ipvsadm -A -t 198.18.0.10:0 -s rr -p 60
ipvsadm -a -t 198.18.0.10:0 -r 198.18.0.28 -g

c rich_Ln -Ln
c rich_L -L
c rich_l -l
c rich_Ln_nosort -Ln --nosort
c rich_Ln_sort -Ln --sort
c rich_Ln_stats -Ln --stats
c rich_Ln_stats_exact -Ln --stats --exact
c rich_Ln_rate -Ln --rate
c rich_Ln_thresholds -Ln --thresholds
c rich_Ln_persistent -Ln --persistent-conn
c rich_Ln_tun -Ln --tun-info
c rich_Sn -Sn
c rich_S -S
c rich_Ln_svc -Ln -t 198.18.0.10:443
c rich_Ln_fwm -Ln -f 1
c rich_Ln_fwm6 -Ln -f 2 -6
c rich_Ln_v6 -Ln -t [2001:db8::10]:80
c rich_Ln_udp -Ln -u 198.18.0.10:53
c rich_Ln_missing -Ln -t 198.18.0.99:80
c rich_Lnc_empty -Lnc
c rich_Lc_empty -Lc
c timeout_default -L --timeout
c timeout_set --set 100 50 200
c timeout_after -L --timeout
c timeout_set0 --set 0 10 0
c timeout_after0 -L --timeout
c timeout_Ln -Ln --timeout
c daemon -L --daemon
ipvsadm -Sn > /tmp/saved.txt
c clear -C
c after_clear -Ln
cin restore /tmp/saved.txt -R
c restored_Sn -Sn
cat > /tmp/bad.txt <<'X'
-A -t 198.18.0.40:80 -s rr
-A -t 198.18.0.40:80 -s rr
-A -t 198.18.0.41:80 -s rr
X
cin restore_dup /tmp/bad.txt -R
c restore_dup_after -Ln -t 198.18.0.41:80
cat > /tmp/bad2.txt <<'X'
-A -t 198.18.0.42:80 -s rr
-Q -t 198.18.0.43:80
-A -t 198.18.0.44:80 -s rr
X
cin restore_badopt /tmp/bad2.txt -R
c restore_badopt_after -Ln -t 198.18.0.44:80
cat > /tmp/comments.txt <<'X'
# a comment

-A -t 198.18.0.45:80 -s rr
  -a -t 198.18.0.45:80 -r 198.18.0.46
X
cin restore_comments /tmp/comments.txt -R
c restore_comments_after -Ln -t 198.18.0.45:80

# errors
c e_svc_exists -A -t 198.18.0.10:80 -s rr
c e_del_missing -D -t 198.18.0.99:80
c e_edit_missing -E -t 198.18.0.99:80 -s rr
c e_bad_sched -A -t 198.18.0.30:80 -s foo
c e_missing_r -a -t 198.18.0.10:80
c e_missing_r_w -a -t 198.18.0.10:80 -w 2
c e_weight_big -a -t 198.18.0.10:80 -r 198.19.0.19 -w 70000
c e_weight_max -a -t 198.18.0.10:80 -r 198.19.0.19 -w 65535
c e_weight_neg -a -t 198.18.0.10:80 -r 198.19.0.18 -w -1
c e_weight_abc -a -t 198.18.0.10:80 -r 198.19.0.18 -w abc
c e_bad_port -A -t 198.18.0.30:99999 -s rr
c e_bad_port_name -A -t 198.18.0.30:nosuchport -s rr
c e_port_name -A -t 198.18.0.31:http -s rr
c e_port_name_https -A -t 198.18.0.31:https -s rr
c e_no_port -A -t 198.18.0.32 -s rr
c e_port0_nonpersist -A -t 198.18.0.33:0 -s rr
c e_bad_host -A -t nosuch.invalid:80 -s rr
c e_bad_addr -A -t 198.18.0.300:80 -s rr
c e_localhost -A -t localhost:81 -s rr
c e_svc_not_defined -a -t 198.18.0.99:80 -r 198.19.0.11
c e_dest_exists -a -t 198.18.0.10:80 -r 198.19.0.11:80 -m
c e_del_dest_missing -d -t 198.18.0.10:80 -r 198.19.0.99
c e_edit_dest_missing -e -t 198.18.0.10:80 -r 198.19.0.99 -w 2
c e_zero_missing -Z -t 198.18.0.99:80
c e_zero_ok -Z -t 198.18.0.10:80
c e_zero_all -Z
c e_x_on_A -A -t 198.18.0.34:80 -s rr -x 10
c e_r_on_A -A -t 198.18.0.34:80 -r 198.19.0.11
c e_s_on_a -a -t 198.18.0.10:80 -r 198.19.0.17 -s rr
c e_bflag_rr -A -t 198.18.0.35:80 -s rr -b sh-port
c e_bflag_bad -A -t 198.18.0.35:81 -s sh -b foo
c e_p_abc -A -t 198.18.0.36:80 -s rr -p abc
c e_p_0 -A -t 198.18.0.36:81 -s rr -p 0
c e_p_value -A -t 198.18.0.36:82 -s rr -p 45
c e_p_before_t -A -p 45 -t 198.18.0.36:83 -s rr
c e_p_last -A -t 198.18.0.36:84 -s rr -p
c e_p_eq -A -t 198.18.0.36:85 -s rr --persistent=77
c e_M_without_p -A -t 198.18.0.37:80 -s rr -M 255.255.255.0
c e_M_bad -A -t 198.18.0.37:81 -s rr -p -M 255.0.255.0
c e_M_len -A -t 198.18.0.37:82 -s rr -p -M 24
c e_unknown_opt -A --foo
c e_unknown_short -Q
c e_no_service -A
c e_no_service_s -A -s rr
c e_two_services -A -t 198.18.0.38:80 -u 198.18.0.38:80
c e_two_cmds -A -L
c e_lower_gt_upper -a -t 198.18.0.10:80 -r 198.19.0.16 -x 5 -y 10
c e_family -a -t 198.18.0.10:80 -r [2001:db8::1]:80 -m
c e_family_tun -a -t 198.18.0.10:80 -r [2001:db8::1]:80 -i
c e_dest_port0 -a -t 198.18.0.10:80 -r 198.19.0.15:0 -m
c e_fwm0 -A -f 0 -s rr
c e_fwm_abc -A -f abc -s rr
c e_list_missing -L -t 198.18.0.99:80
c e_set_missing -A --set 1 2
c e_set_two --set 1 2
c e_set_abc --set a b c
c e_C_extra -C extra
c e_L_extra -L extra
c e_tun_gue_noport -a -t 198.18.0.10:80 -r 198.19.0.20 -i --tun-type gue
c e_tun_port_ipip -a -t 198.18.0.10:80 -r 198.19.0.21 -i --tun-port 6080
c e_tun_bad_type -a -t 198.18.0.10:80 -r 198.19.0.22 -i --tun-type vxlan
c e_tun_csum_gre -a -t 198.18.0.10:80 -r 198.19.0.23 -i --tun-type gre --tun-csum
c e_dup_opt -A -t 198.18.0.39:80 -s rr -s wrr
c e_u_ipv6_mixed -A -t [2001:db8::1]:80 -6 -s rr
c e_fwm_ipv6_dest4 -a -f 2 -6 -r 198.18.0.1 -g
c e_n_on_A -A -t 198.18.0.39:81 -s rr -n
c e_stats_on_A -A -t 198.18.0.39:82 -s rr --stats
c e_c_on_S -S -c
c e_rate_stats -L --rate --stats
c e_S_t -Sn -t 198.18.0.10:80
c e_D_ok -D -t 198.18.0.10:25
c e_edit_ok -E -t 198.18.0.10:80 -s wrr
c e_edit_dest_ok -e -t 198.18.0.10:80 -r 198.19.0.11:80 -w 7
c e_edit_dest_method -e -t 198.18.0.10:80 -r 198.19.0.12:80 -g -w 7
c after_errors_Ln -Ln
c after_errors_Sn -Sn
c ipv6_bad -A -t 2001:db8::1:80 -s rr
c ipv6_nobracket_port -A -t [2001:db8::1] -s rr
c ipv6_bad_bracket -A -t [2001:db8::zz]:80 -s rr

# connections: NAT topology with a persistent service
VIP=198.18.0.50
sysctl -qw net.ipv4.ip_forward=1
ip netns add client
ip link add veth-c type veth peer name eth0 netns client
ip addr add 198.18.0.1/24 dev veth-c; ip addr add $VIP/32 dev veth-c; ip link set veth-c up
ip -n client addr add 198.18.0.2/24 dev eth0; ip -n client link set lo up; ip -n client link set eth0 up
ip -n client route add default via 198.18.0.1
ip link add br-rs type bridge; ip addr add 198.19.0.1/24 dev br-rs; ip link set br-rs up
for i in 1 2; do
  ip netns add rs$i
  ip link add veth-rs$i type veth peer name eth0 netns rs$i
  ip link set veth-rs$i master br-rs up
  ip -n rs$i addr add 198.19.0.6$i/24 dev eth0; ip -n rs$i link set lo up; ip -n rs$i link set eth0 up
  ip -n rs$i route add default via 198.19.0.1
  mkdir -p /tmp/www$i && echo RS$i > /tmp/www$i/index.html
  ip netns exec rs$i busybox httpd -p 80 -h /tmp/www$i
  ip netns exec rs$i socat -T1 UDP-RECVFROM:53,fork SYSTEM:'echo pong' >/dev/null 2>&1 &
done
for r in 198.19.0.61 198.19.0.62; do for _ in $(seq 50); do curl -s -o /dev/null --max-time 1 http://$r/ && break; sleep 0.1; done; done
c clear2 -C
ipvsadm -A -t $VIP:80 -s rr -p 300
ipvsadm -a -t $VIP:80 -r 198.19.0.61:80 -m
ipvsadm -a -t $VIP:80 -r 198.19.0.62:80 -m
ipvsadm -A -u $VIP:53 -s rr
ipvsadm -a -u $VIP:53 -r 198.19.0.61:53 -m
ipvsadm -a -u $VIP:53 -r 198.19.0.62:53 -m
for n in 1 2 3; do ip netns exec client curl -s --max-time 5 http://$VIP/ >/dev/null; done
ip netns exec client bash -c "echo ping | socat -T1 - UDP:$VIP:53" >/dev/null 2>&1
ip netns exec client bash -c "echo ping | socat -T1 - UDP:$VIP:53" >/dev/null 2>&1
sleep 3
c conn_Lnc -Lnc
c conn_Lc -Lc
c conn_Lnc_sep -L -n -c
c conn_Ln_persistent -Ln --persistent-conn
c conn_Ln -Ln
c conn_Ln_stats -Ln --stats
c conn_Ln_rate -Ln --rate
c conn_Lnc_svc -Lnc -t $VIP:80
cat /proc/net/ip_vs_conn > $O/conn_proc.out
c conn_zero -Z
c conn_Ln_stats_zeroed -Ln --stats
cd /tmp && tar czf /tmp/out.tgz out
echo BEGIN-TGZ; base64 -w0 /tmp/out.tgz; echo; echo END-TGZ
