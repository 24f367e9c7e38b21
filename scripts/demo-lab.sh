#!/usr/bin/env bash
# The seeds' lab in network namespaces (root): a client, two directors
# running gvsd from a keepalived.conf (VRRP MASTER and BACKUP sharing the VIP,
# TCP health checks) and two real servers, all on one LAN. It shows the
# three experiments: curl alternating between RS1 and RS2, a stopped real
# server skipped and restored, and the VIP moving from the MASTER to the
# BACKUP with requests still answered.
#
# The directors run the xdp engine in DR mode (the seeds' setup: real
# servers with the VIP on lo answer the client directly) when XDP can attach
# here, and otherwise the proxy engine in NAT mode; GVS_DEMO_ENGINE=xdp or
# proxy forces one.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
go build -o bin/ ./cmd/... ./test/rs

engine=${GVS_DEMO_ENGINE:-auto}
p=gvsdemo                      # namespace prefix
vip=198.18.0.100
work=$(mktemp -d /tmp/gvs-lab.XXXXXX)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	for n in 1 2; do ip netns exec "$p-rs$n" "$top/bin/gvsadm" realserver teardown >/dev/null 2>&1 || true; done
	for ns in client dir1 dir2 rs1 rs2 lan; do ip netns del "$p-$ns" 2>/dev/null || true; done
	rm -rf "$work"
}
trap cleanup EXIT
say() { printf '\n### %s\n' "$*"; }
# inns NS CMD... runs CMD in the lab's namespace NS. (Background processes
# are started with ip netns exec directly, so that $! is their own pid.)
inns() { local ns=$1; shift; ip netns exec "$p-$ns" "$@"; }

say "building the lab: client 198.18.0.2, directors 198.18.0.3 and .4 (VIP $vip), RS1 .11, RS2 .12"
ip netns add "$p-lan"
inns lan ip link add br0 type bridge
inns lan ip link set br0 up
i=0
for host in client:198.18.0.2 dir1:198.18.0.3 dir2:198.18.0.4 rs1:198.18.0.11 rs2:198.18.0.12; do
	ns=${host%%:*} addr=${host#*:}
	ip netns add "$p-$ns"
	ip link add "veth$i" netns "$p-lan" type veth peer name eth0 netns "$p-$ns"
	inns lan ip link set "veth$i" master br0 up
	inns "$ns" ip addr add "$addr/24" dev eth0
	inns "$ns" ip link set eth0 up
	inns "$ns" ip link set lo up
	i=$((i + 1))
done

if [ "$engine" = auto ]; then
	# Can XDP attach here? Start a bare gvsd with the xdp engine and see.
	engine=proxy
	ip netns exec "$p-dir1" "$top/bin/gvsd" --engine xdp --interface eth0 --socket "$work/probe.sock" 2>"$work/probe.log" & probe=$!
	for _ in $(seq 30); do [ -S "$work/probe.sock" ] && { engine=xdp; break; }; kill -0 "$probe" 2>/dev/null || break; sleep 0.1; done
	kill "$probe" 2>/dev/null || true
	wait "$probe" 2>/dev/null || true
	[ "$engine" = xdp ] || echo "demo: the xdp engine cannot attach here ($(tail -1 "$work/probe.log")); using the proxy engine"
fi
case $engine in
xdp) kind=DR listen=0.0.0.0:80 engine_args=(--engine xdp --interface eth0) ;;
proxy) kind=NAT listen= engine_args=(--engine proxy) ;;
*) echo "GVS_DEMO_ENGINE=$engine: want auto, xdp or proxy" >&2; exit 2 ;;
esac
say "engine: $engine ($kind: $([ "$kind" = DR ] && echo "real servers answer the client directly" || echo "the director proxies both ways"))"

rs_listen() { echo "${listen:-198.18.0.1$1:80}"; }
for n in 1 2; do
	if [ "$kind" = DR ]; then
		echo "rs$n: gvsadm realserver setup --vip $vip --mode dr"
		inns "rs$n" "$top/bin/gvsadm" realserver setup --vip "$vip" --mode dr >/dev/null
	fi
	ip netns exec "$p-rs$n" "$top/bin/rs" --name "RS$n" --listen "$(rs_listen $n)" 2>/dev/null & pids+=($!)
done

conf() { # state priority
	cat <<EOC
global_defs {
	router_id LVS_$1
}
vrrp_instance VI_1 {
	state $1
	interface eth0
	virtual_router_id 51
	priority $2
	advert_int 1
	authentication {
		auth_type PASS
		auth_pass 1111
	}
	virtual_ipaddress {
		$vip/24 dev eth0
	}
}
virtual_server $vip 80 {
	delay_loop 1
	lb_algo rr
	lb_kind $kind
	protocol TCP
	real_server 198.18.0.11 80 {
		weight 1
		TCP_CHECK {
			connect_timeout 1
			retry 1
			delay_before_retry 1
		}
	}
	real_server 198.18.0.12 80 {
		weight 1
		TCP_CHECK {
			connect_timeout 1
			retry 1
			delay_before_retry 1
		}
	}
}
EOC
}
conf MASTER 100 >"$work/dir1.conf"
conf BACKUP 90 >"$work/dir2.conf"
say "director 1: gvsd -f keepalived.conf (state MASTER, priority 100)"
sed 's/^/    /' "$work/dir1.conf" | head -20
echo "    ..."
for n in 1 2; do
	ip netns exec "$p-dir$n" "$top/bin/gvsd" "${engine_args[@]}" -f "$work/dir$n.conf" --socket "$work/dir$n.sock" 2>"$work/dir$n.log" & pids+=($!)
done
dir1_pid=${pids[-2]}

has_vip() { inns "$1" ip -4 addr show dev eth0 | grep -q "inet $vip/"; }
wait_vip() { # ns seconds
	local end=$((SECONDS + $2))
	while [ $SECONDS -lt "$end" ]; do has_vip "$1" && return 0; sleep 0.1; done
	return 1
}
curls() {
	for k in $(seq "$1"); do
		printf 'curl #%d -> %s\n' "$k" "$(inns client curl -s --max-time 2 "http://$vip/" || echo '(no answer)')"
	done
}
adm() { GVS_SOCKET=$work/$1.sock "$top/bin/gvsadm" "${@:2}"; }

wait_vip dir1 10 || { echo "the VIP never came up on director 1"; cat "$work/dir1.log"; exit 1; }
sleep 1
say "director 1 holds the VIP:"
inns dir1 ip -4 -brief addr show dev eth0
say "gvsadm -Ln on director 1"
adm dir1 -Ln

say "experiment 1: 6 x curl http://$vip/ from the client"
curls 6
sleep 2.5 # the rate estimator's period
say "gvsadm -Ln --stats on director 1$([ "$kind" = DR ] && echo ' (DR: the replies bypass the director, OutPkts 0)')"
adm dir1 -Ln --stats

say "experiment 2: stop RS1 (its health check fails within ~4 s)"
kill "${pids[0]}"
sleep 4
adm dir1 -Ln
curls 4
say "start RS1 again"
ip netns exec "$p-rs1" "$top/bin/rs" --name RS1 --listen "$(rs_listen 1)" 2>/dev/null & pids+=($!)
sleep 3
adm dir1 -Ln
curls 4

say "experiment 3: stop the MASTER director (SIGTERM); the BACKUP takes the VIP"
kill -TERM "$dir1_pid"
start=$(date +%s.%N)
wait_vip dir2 5 || { echo "the VIP did not move to director 2"; cat "$work/dir2.log"; exit 1; }
awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "VIP on director 2 after %.2f s:\n", b - a }'
inns dir2 ip -4 -brief addr show dev eth0
has_vip dir1 && echo "(director 1 still has it!)" || echo "director 1 no longer has the VIP"
curls 4
say "done"
