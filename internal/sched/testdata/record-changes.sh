#!/bin/bash
# Guest script: record real IPVS rr/wrr choices across table changes
# (ipvsadm -a, -d, -e between connections) and with large weights, for
# TestLinuxRecordedChanges and the xdp engine's differential test. Run
# from the repository root, in the ipvs-vm rig:
#   ../shared/tools/ipvs-vm/run.sh internal/sched/testdata/record-changes.sh
# Keep the STEP, RESULT and END lines in linux-6.1-changes.txt. Like
# record-linux.sh it sends one TCP SYN per connection from a client netns
# to NAT real servers that need not exist: IPVS schedules on the SYN.
set -euo pipefail
echo "### kernel $(uname -r)"
modprobe -a ip_vs ip_vs_rr ip_vs_wrr veth dummy
sysctl -qw net.ipv4.ip_forward=1
ip netns add client
ip link add veth-c type veth peer name eth0 netns client
ip addr add 198.18.0.1/16 dev veth-c
ip addr add 198.18.200.10/32 dev veth-c
ip link set veth-c up
ip -n client link set lo up
ip -n client addr add 198.18.0.2/16 dev eth0
ip -n client link set eth0 up
ip -n client route add 198.18.200.0/24 dev eth0
ip link add rsnet type dummy
ip addr add 198.19.0.1/24 dev rsnet
ip link set rsnet up

V=198.18.200.10
SPORT=40000
# syn PORT N: N connections to V:PORT, one SYN each, from consecutive
# client ports (the order RESULT lines are sorted in).
syn() {
	ip netns exec client python3 - "$1" "$2" "$SPORT" <<'PY'
import socket, sys, time
port, n, sport = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
socks = []
for i in range(n):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("198.18.0.2", sport + i))
    s.setblocking(False)
    try:
        s.connect(("198.18.200.10", port))
    except BlockingIOError:
        pass
    socks.append(s)
    time.sleep(0.02)
time.sleep(0.1)
PY
	SPORT=$((SPORT + $2))
}
# step PORT WHAT...: an ipvsadm command on V:PORT, logged for the replay.
step() {
	local port=$1
	shift
	echo "STEP $V:$port $SPORT $*"
	case $1 in
	add) ipvsadm -a -t $V:$port -r 198.19.0.$2:80 -m -w $3 ${4:+-x $4} ;;
	del) ipvsadm -d -t $V:$port -r 198.19.0.$2:80 ;;
	edit) ipvsadm -e -t $V:$port -r 198.19.0.$2:80 -m -w $3 ${4:+-x $4} ;;
	esac
}

# rr: the cursor survives additions and edits; a deleted cursor server
# hands it to the one before it.
ipvsadm -A -t $V:80 -s rr
step 80 add 11 1; step 80 add 12 1; step 80 add 13 1
syn 80 2
step 80 del 12
syn 80 2
step 80 add 14 1
syn 80 3
step 80 edit 14 5
syn 80 2
step 80 edit 13 0
syn 80 3
step 80 del 11
syn 80 2
step 80 del 14
syn 80 2
step 80 add 15 1
syn 80 3

# wrr 4,3,2 with changes: the walk restarts at the list head, cw kept
# when it still fits.
ipvsadm -A -t $V:81 -s wrr
step 81 add 11 4; step 81 add 12 3; step 81 add 13 2
syn 81 5
step 81 add 14 5
syn 81 6
step 81 del 12
syn 81 4
step 81 edit 11 1
syn 81 6
step 81 edit 13 0
syn 81 4
step 81 edit 14 6
syn 81 4
step 81 add 15 9
syn 81 6

# wrr with weights whose common divisor changes.
ipvsadm -A -t $V:82 -s wrr
step 82 add 11 6; step 82 add 12 4; step 82 add 13 2
syn 82 7
step 82 edit 13 3
syn 82 7
step 82 edit 13 8
syn 82 5

# Weights above 4,096 (refused by the old cycle table).
ipvsadm -A -t $V:83 -s wrr
step 83 add 11 5000; step 83 add 12 4999; step 83 add 13 1
syn 83 8
step 83 edit 12 70000
syn 83 5
step 83 add 14 65535
syn 83 5

ipvsadm -A -t $V:84 -s wrr
step 84 add 11 2147483647; step 84 add 12 2147483646; step 84 add 13 65535
syn 84 8
step 84 edit 11 1
syn 84 5

# A heavy server over its threshold beside light ones: the kernel walks
# 70000 empty passes per connection.
ipvsadm -A -t $V:85 -s wrr
step 85 add 11 70000 1; step 85 add 12 1; step 85 add 13 3
syn 85 9
step 85 edit 11 70000 5
syn 85 5

echo "END $SPORT"
python3 - <<'PY'
def ip(h):
    v = int(h, 16); return "%d.%d.%d.%d" % (v>>24, (v>>16)&255, (v>>8)&255, v&255)
rows = []
for line in open("/proc/net/ip_vs_conn").read().splitlines()[1:]:
    f = line.split()
    rows.append((ip(f[3]), int(f[4],16), int(f[2],16), ip(f[1]), ip(f[5])))
rows.sort(key=lambda r: (r[1], r[2]))
for r in rows:
    print("RESULT %s:%d %s:%d -> %s" % (r[0], r[1], r[3], r[2], r[4]))
PY
echo "### ipvsadm -Ln"; ipvsadm -Ln
