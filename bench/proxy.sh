#!/usr/bin/env bash
# Proxy-engine benchmark: HTTP load from wrk through gvsd's proxy engine,
# and in the same run through HAProxy (TCP mode), nginx (stream module) and
# straight to the real server (nginx serving a small body on loopback).
# Prints a markdown table of requests/s, p99 latency and the proxy's own
# CPU time per request (user + system, all its threads; less noisy than the
# rates on a shared machine) with ratios against HAProxy, for kept-alive
# connections and for one connection per request (Connection: close). Run as root on Debian (it apt-installs wrk, haproxy,
# nginx).
#
# Each path is measured in several interleaved rounds and the median kept,
# so a noisy neighbour hurts all paths alike. The proxies get the same
# number of threads, PROCS (default 1): gvsd's GOMAXPROCS, HAProxy's
# nbthread and the nginx stream proxy's worker_processes. The real server
# is a separate nginx with one worker.
#   bash bench/proxy.sh [seconds] [connections] [rounds]
# Environment: PROCS (threads per proxy, default 1), TARGETS (paths to
# measure, default "direct gvsd haproxy nginx"), MODES (default
# "keepalive close"), GVSD (the gvsd binary, default bin/gvsd built here),
# GVSD_B (a second gvsd binary to compare, measured as the path gvsd-b)
# and GVSD_B_ENV (environment settings for it, "NAME=value ...").
set -euo pipefail
secs=${1:-10}
conns=${2:-64}
rounds=${3:-3}
procs=${PROCS:-1}
targets=${TARGETS:-direct gvsd haproxy nginx}
modes=${MODES:-keepalive close}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v haproxy >/dev/null || need+=(haproxy)
command -v nginx >/dev/null || need+=(nginx-light libnginx-mod-stream)
[ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || need+=(libnginx-mod-stream)
if [ ${#need[@]} -gt 0 ]; then
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
go build -o bin/ ./cmd/...
gvsd=${GVSD:-bin/gvsd}

work=$(mktemp -d /tmp/gvs-bench.XXXXXX)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

rs=127.0.0.1:18080
mkdir -p "$work/www" && printf 'RS1\n' >"$work/www/index.html"
cat >"$work/rs.conf" <<EOC
worker_processes 1;
daemon off;
pid $work/rs.pid;
error_log $work/rs.err;
events { worker_connections 8192; }
http {
	access_log off;
	server { listen $rs reuseport; root $work/www; keepalive_requests 1000000; }
}
EOC
nginx -c "$work/rs.conf" & pids+=($!)
cat >"$work/stream.conf" <<EOC
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes $procs;
daemon off;
pid $work/stream.pid;
error_log $work/stream.err;
events { worker_connections 8192; }
stream {
	server { listen 127.0.0.1:18083; proxy_pass $rs; }
}
EOC
nginx -c "$work/stream.conf" & pids+=($!)
stream_pid=$!
cat >"$work/haproxy.cfg" <<EOC
global
	nbthread $procs
	maxconn 8000
defaults
	mode tcp
	timeout connect 5s
	timeout client 30s
	timeout server 30s
frontend fe
	bind 127.0.0.1:18082
	default_backend be
backend be
	server rs1 $rs
EOC
haproxy -f "$work/haproxy.cfg" -db & pids+=($!)
haproxy_pid=$!
export GVS_SOCKET=$work/gvsd.sock
GOMAXPROCS=$procs "$gvsd" --engine proxy --socket "$GVS_SOCKET" 2>"$work/gvsd.log" & pids+=($!)
gvsd_pid=$!
gvsdb_pid=
if [ -n "${GVSD_B:-}" ]; then
	# A second gvsd (path gvsd-b, port 18084) for A/B runs in one go.
	env GOMAXPROCS=$procs ${GVSD_B_ENV:-} "$GVSD_B" --engine proxy --socket "$work/gvsd-b.sock" 2>"$work/gvsd-b.log" & pids+=($!)
	gvsdb_pid=$!
	targets="$targets gvsd-b"
fi
sleep 1
bin/gvsadm -A -t 127.0.0.1:18081 -s rr
bin/gvsadm -a -t 127.0.0.1:18081 -r $rs -m
if [ -n "$gvsdb_pid" ]; then
	GVS_SOCKET=$work/gvsd-b.sock bin/gvsadm -A -t 127.0.0.1:18084 -s rr
	GVS_SOCKET=$work/gvsd-b.sock bin/gvsadm -a -t 127.0.0.1:18084 -r $rs -m
fi

declare -A PORT=([direct]=18080 [gvsd]=18081 [haproxy]=18082 [nginx]=18083 [gvsd-b]=18084)
# cputicks name: CPU clock ticks used so far by the proxy's processes.
cputicks() {
	local ps=()
	case $1 in
	gvsd) ps=("$gvsd_pid") ;;
	gvsd-b) ps=("$gvsdb_pid") ;;
	haproxy) ps=("$haproxy_pid") ;;
	nginx) ps=("$stream_pid" $(pgrep -P "$stream_pid")) ;;
	*) echo 0; return ;;
	esac
	local t=0 p
	for p in "${ps[@]}"; do t=$((t + $(awk '{print $14+$15}' "/proc/$p/stat"))); done
	echo "$t"
}
hz=$(getconf CLK_TCK)
run() { # name mode -> "rps p99ms cpu-us-per-request"
	local out hdr=() c0 c1
	[ "$2" = close ] && hdr=(-H 'Connection: close')
	c0=$(cputicks "$1")
	out=$(wrk -t1 -c"$conns" -d"${secs}s" --latency "${hdr[@]}" "http://127.0.0.1:${PORT[$1]}/")
	c1=$(cputicks "$1")
	if grep -q 'Socket errors' <<<"$out"; then
		echo "$out" | grep 'Socket errors' >&2
	fi
	local rps p99
	rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
	p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub("us","",v); v/=1000} else if (v ~ /ms$/) {sub("ms","",v)} else if (v ~ /s$/) {sub("s","",v); v*=1000}; print v}' <<<"$out")
	local n
	n=$(awk '/requests in/ {print $1}' <<<"$out")
	echo "$rps $p99 $(awk -v t=$((c1 - c0)) -v hz="$hz" -v n="$n" 'BEGIN { printf "%.2f", t * 1e6 / hz / n }')"
}
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
declare -A RPS P99 CPU
for _ in $(seq "$rounds"); do
	for mode in $modes; do
		for name in $targets; do
			read -r rps p99 cpu <<<"$(run "$name" "$mode")"
			RPS[$name/$mode]+="$rps "
			P99[$name/$mode]+="$p99 "
			CPU[$name/$mode]+="$cpu "
		done
		# Let the TIME_WAIT sockets of a connection-per-request run go.
		[ "$mode" = close ] && sleep 2
	done
done
echo "wrk -t1 -c$conns -d${secs}s, median of $rounds rounds, $procs thread(s) per proxy, $(nproc) CPUs, $(date -u +%F)"
echo
echo "| path | connections | requests/s | p99 ms | proxy CPU µs/request | req/s vs HAProxy | p99 vs HAProxy | CPU vs HAProxy |"
echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
for mode in $modes; do
	label="kept alive"
	[ "$mode" = close ] && label="one per request"
	med() { tr ' ' '\n' <<<"$1" | grep . | median; }
	hrps=0 hp99=0 hcpu=0
	if [ -n "${RPS[haproxy/$mode]:-}" ]; then
		hrps=$(med "${RPS[haproxy/$mode]}")
		hp99=$(med "${P99[haproxy/$mode]}")
		hcpu=$(med "${CPU[haproxy/$mode]}")
	fi
	for name in $targets; do
		rps=$(med "${RPS[$name/$mode]}")
		p99=$(med "${P99[$name/$mode]}")
		cpu=$(med "${CPU[$name/$mode]}")
		awk -v n="$name" -v m="$label" -v r="$rps" -v p="$p99" -v c="$cpu" -v hr="$hrps" -v hp="$hp99" -v hc="$hcpu" \
			'BEGIN {
				printf "| %s | %s | %.0f | %.2f | %s | ", n, m, r, p, (n == "direct" ? "–" : sprintf("%.2f", c))
				if (hr > 0) printf "%.2f | %.2f | %s |\n", r/hr, p/hp, (n == "direct" || hc == 0 ? "–" : sprintf("%.2f", c/hc))
				else printf "| | |\n"
			}'
	done
done
