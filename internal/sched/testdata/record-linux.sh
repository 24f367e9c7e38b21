#!/bin/bash
# Guest script: record real IPVS scheduling choices for internal/sched tests
# (TestLinuxRecorded). Run from the repository root, in the ipvs-vm rig:
#   ../shared/tools/ipvs-vm/run.sh internal/sched/testdata/record-linux.sh
# It sends one TCP SYN per connection from a client netns (no real server
# needs to answer: IPVS schedules on the SYN, and SYN_RECV counts as an
# active connection) and prints RESULT lines from /proc/net/ip_vs_conn;
# keep those (and the CONFIG lines) in linux-6.1.txt.
set -euo pipefail
echo "### kernel $(uname -r)"
grep -E 'IP_VS_(SH|DH|MH|LBLC|LBLCR)_TAB|IP_VS_MH_TAB_INDEX|CONFIG_IP_VS_IPV6' /boot/config-$(uname -r) || true
modprobe -a ip_vs ip_vs_rr ip_vs_wrr ip_vs_lc ip_vs_wlc ip_vs_sh ip_vs_mh ip_vs_dh ip_vs_sed ip_vs_nq ip_vs_fo ip_vs_ovf ip_vs_lblc ip_vs_lblcr veth dummy
sysctl -qw net.ipv4.ip_forward=1
ip netns add client
ip link add veth-c type veth peer name eth0 netns client
ip addr add 198.18.0.1/16 dev veth-c
for v in 10 11 12 13 14; do ip addr add 198.18.200.$v/32 dev veth-c; done
ip link set veth-c up
ip -n client link set lo up
ip -n client addr add 198.18.0.2/16 dev eth0
CLIENTS="198.18.1.1 198.18.1.2 198.18.1.3 198.18.1.4 198.18.1.5 198.18.1.6 198.18.1.7 198.18.1.8 198.18.7.33 198.18.42.9 198.18.100.200 198.18.128.1 198.18.255.254 198.18.3.77 198.18.64.64 198.18.250.5"
for c in $CLIENTS; do ip -n client addr add $c/16 dev eth0; done
ip -n client link set eth0 up
ip -n client route add 198.18.200.0/24 dev eth0
ip link add rsnet type dummy
ip addr add 198.19.0.1/24 dev rsnet
ip link set rsnet up

V=198.18.200.10
svc() { # port sched [flags] then dests as ip:weight
  local port=$1 s=$2; shift 2
  local fl=""
  if [[ "${1:-}" == -b* ]]; then fl="$1"; shift; fi
  ipvsadm -A -t $V:$port -s $s ${fl:+-b ${fl#-b}}
  for d in "$@"; do ipvsadm -a -t $V:$port -r 198.19.0.${d%%:*}:80 -m -w ${d##*:}; done
}
svc 80 rr 11:1 12:1
svc 81 wrr 11:4 12:3 13:2
svc 82 wrr 11:2 12:3 13:4
svc 83 wlc 11:3 12:2 13:1
svc 84 lc 11:1 12:1 13:1
svc 85 sed 11:1 12:3 13:2
svc 86 nq 11:1 12:3 13:2
svc 87 fo 11:1 12:3 13:2
svc 88 ovf 11:1 12:3 13:2
svc 90 sh 11:1 12:2 13:3
svc 91 sh -bsh-port 11:1 12:2 13:3
svc 92 sh -bsh-fallback 11:1 12:0 13:1
svc 93 mh 11:1 12:2 13:3
svc 94 mh -bmh-port 11:1 12:2 13:3
svc 95 mh -bmh-fallback 11:1 12:0 13:1
svc 96 lblc 11:1 12:2 13:3
svc 97 lblcr 11:1 12:2 13:3
for v in 11 12 13 14; do
  ipvsadm -A -t 198.18.200.$v:80 -s dh
  for d in 11 12 13; do ipvsadm -a -t 198.18.200.$v:80 -r 198.19.0.$d:80 -m -w 1; done
done
echo "### /proc/net/ip_vs"; cat /proc/net/ip_vs

cat > /tmp/syn.py <<'PY'
import socket, sys, time
V = "198.18.200.10"
clients = sys.argv[1].split()
socks = []
def syn(src, sport, dst, dport):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((src, sport))
    s.setblocking(False)
    try:
        s.connect((dst, dport))
    except BlockingIOError:
        pass
    socks.append(s)
    time.sleep(0.03)
seq = {80: 6, 81: 18, 82: 18, 83: 12, 84: 6, 85: 4, 86: 4, 87: 4, 88: 4, 96: 4, 97: 4}
for vport, n in seq.items():
    for i in range(n):
        syn("198.18.0.2", 40000 + i, V, vport)
for vport in (90, 92, 93, 95):
    for c in clients:
        syn(c, 50000, V, vport)
for vport in (91, 94):
    for p in range(50000, 50016):
        syn("198.18.1.1", p, V, vport)
for v in (11, 12, 13, 14):
    syn("198.18.0.2", 45000, "198.18.200.%d" % v, 80)
time.sleep(0.5)
PY
ip netns exec client python3 /tmp/syn.py "$CLIENTS"
python3 - <<'PY'
def ip(h): 
    v = int(h, 16); return "%d.%d.%d.%d" % (v>>24, (v>>16)&255, (v>>8)&255, v&255)
rows = []
for line in open("/proc/net/ip_vs_conn").read().splitlines()[1:]:
    f = line.split()
    rows.append((ip(f[3]), int(f[4],16), int(f[2],16), ip(f[1]), ip(f[5]), f[7]))
rows.sort(key=lambda r: (r[0], r[1], r[2] if r[1] in (80,81,82,83,84,85,86,87,88,91,94,96,97) else 0, r[3]))
for r in rows:
    print("RESULT %s:%d %s:%d -> %s %s" % (r[0], r[1], r[3], r[2], r[4], r[5]))
PY
echo "### ipvsadm -Ln"; ipvsadm -Ln
