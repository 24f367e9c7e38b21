#!/bin/bash
# Guest script: what real IPVS answers a new connection when no real
# server is available (ip_vs_leave), for TCP and UDP over IPv4 and IPv6:
# every real server at weight 0, every one over its upper threshold, and
# an sh service whose slot holds a server at weight 0 (no fallback).
# Run from the repository root in the ipvs-vm rig:
#   ../shared/tools/ipvs-vm/run.sh internal/engine/xdp/testdata/record-refusal.sh
# The output is kept in testdata/linux-6.1-refusal.txt.
set -euo pipefail
echo "### kernel $(uname -r)"
modprobe -a ip_vs ip_vs_rr ip_vs_sh veth dummy
sysctl -qw net.ipv4.ip_forward=1
ip netns add client
ip link add veth-c type veth peer name eth0 netns client
ip addr add 198.18.0.1/24 dev veth-c
ip addr add 2001:db8::1/64 dev veth-c nodad
ip addr add 198.18.200.10/32 dev veth-c
ip addr add 2001:db8:200::10/128 dev veth-c nodad
ip link set veth-c up
ip -n client link set lo up
ip -n client addr add 198.18.0.2/24 dev eth0
ip -n client addr add 2001:db8::2/64 dev eth0 nodad
ip -n client link set eth0 up
ip -n client route add 198.18.200.0/24 via 198.18.0.1
ip -n client route add 2001:db8:200::/64 via 2001:db8::1
ip link add rsnet type dummy
ip addr add 198.19.0.1/24 dev rsnet
ip link set rsnet up

V4=198.18.200.10 V6=[2001:db8:200::10]
ipvsadm -A -t $V4:80 -s rr; ipvsadm -a -t $V4:80 -r 198.19.0.11:80 -m -w 0
ipvsadm -A -u $V4:53 -s rr; ipvsadm -a -u $V4:53 -r 198.19.0.11:53 -m -w 0
ipvsadm -A -t $V6:80 -s rr; ipvsadm -a -t $V6:80 -r [2001:db8:1::11]:80 -m -w 0
ipvsadm -A -u $V6:53 -s rr; ipvsadm -a -u $V6:53 -r [2001:db8:1::11]:53 -m -w 0
ipvsadm -A -t $V4:81 -s rr; ipvsadm -a -t $V4:81 -r 198.19.0.11:80 -m -w 1 -x 1
ipvsadm -A -t $V4:82 -s sh; ipvsadm -a -t $V4:82 -r 198.19.0.11:80 -m -w 0
ipvsadm -Ln

ip netns exec client tcpdump -n -l -v -i eth0 'icmp or icmp6 or tcp[tcpflags] & tcp-rst != 0' > /tmp/dump.txt 2>/dev/null &
DUMP=$!
sleep 2
ip netns exec client python3 - <<'PY'
import socket, time, errno
def tcp(fam, host, port, label):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(3)
    t = time.monotonic()
    try:
        s.connect((host, port))
        r = "connected"
    except OSError as e:
        r = "%s (%s)" % (errno.errorcode.get(e.errno, e.errno), e.strerror) if e.errno else repr(e)
    print("TCP %s: connect() -> %s after %.1f s" % (label, r, time.monotonic() - t))
    s.close()
def udp(fam, host, port, label):
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(2)
    s.connect((host, port))
    s.send(b"hello")
    t = time.monotonic()
    try:
        s.recv(100)
        r = "answer"
    except OSError as e:
        r = "%s (%s)" % (errno.errorcode.get(e.errno, e.errno), e.strerror) if e.errno else repr(e)
    print("UDP %s: send, recv() -> %s after %.1f s" % (label, r, time.monotonic() - t))
tcp(socket.AF_INET, "198.18.200.10", 80, "IPv4 weight 0")
udp(socket.AF_INET, "198.18.200.10", 53, "IPv4 weight 0")
tcp(socket.AF_INET6, "2001:db8:200::10", 80, "IPv6 weight 0")
udp(socket.AF_INET6, "2001:db8:200::10", 53, "IPv6 weight 0")
s = socket.socket(); s.setblocking(False)
try: s.connect(("198.18.200.10", 81))
except BlockingIOError: pass
time.sleep(0.3)
tcp(socket.AF_INET, "198.18.200.10", 81, "IPv4 over its upper threshold")
tcp(socket.AF_INET, "198.18.200.10", 82, "IPv4 sh slot at weight 0")
time.sleep(1.5)
# A burst: how many of 20 refusals arrive (the kernel rate-limits ICMP).
n = 0
for i in range(20):
    c = socket.socket(); c.settimeout(0.5)
    try: c.connect(("198.18.200.10", 80))
    except ConnectionRefusedError: n += 1
    except OSError: pass
    c.close()
print("TCP IPv4 burst of 20 connects: %d refused at once" % n)
PY
sleep 1
kill $DUMP; sleep 0.5
echo "### tcpdump in the client namespace"
cat /tmp/dump.txt
echo "### sysctl"
sysctl net.ipv4.icmp_ratelimit net.ipv4.icmp_ratemask net.ipv4.icmp_msgs_per_sec net.ipv4.icmp_msgs_burst net.ipv6.icmp.ratelimit 2>&1 || true
