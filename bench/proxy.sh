#!/usr/bin/env bash
# Proxy-engine benchmark: HTTP load from wrk through gvsd's proxy engine,
# and in the same run through HAProxy (TCP mode), nginx (stream module) and
# straight to the real server (nginx serving a small body on loopback).
# Prints a markdown table of requests/s and p99 latency with ratios against
# HAProxy. Run as root on Debian (it apt-installs wrk, haproxy, nginx).
# Each path is measured in several interleaved rounds and the median kept,
# so a noisy neighbour hurts all paths alike.
#   bash bench/proxy.sh [seconds] [connections] [rounds]
set -euo pipefail
secs=${1:-10}
conns=${2:-64}
rounds=${3:-3}
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
cat >"$work/nginx.conf" <<EOC
load_module /usr/lib/nginx/modules/ngx_stream_module.so;
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx.err;
events { worker_connections 4096; }
http {
	access_log off;
	server { listen $rs; root $work/www; keepalive_requests 100000; }
}
stream {
	server { listen 127.0.0.1:18083; proxy_pass $rs; }
}
EOC
nginx -c "$work/nginx.conf" & pids+=($!)
cat >"$work/haproxy.cfg" <<EOC
global
	nbthread 1
	maxconn 4000
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
export GVS_SOCKET=$work/gvsd.sock
bin/gvsd --engine proxy --socket "$GVS_SOCKET" 2>"$work/gvsd.log" & pids+=($!)
sleep 1
bin/gvsadm -A -t 127.0.0.1:18081 -s rr
bin/gvsadm -a -t 127.0.0.1:18081 -r $rs -m

run() { # name port -> "rps p99ms"
	local out
	out=$(wrk -t1 -c"$conns" -d"${secs}s" --latency "http://127.0.0.1:$2/")
	local rps p99
	rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
	p99=$(awk '$1=="99%" {v=$2; if (v ~ /us$/) {sub("us","",v); v/=1000} else if (v ~ /ms$/) {sub("ms","",v)} else if (v ~ /s$/) {sub("s","",v); v*=1000}; print v}' <<<"$out")
	echo "$rps $p99"
}
median() { sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
declare -A RPS P99
for _ in $(seq "$rounds"); do
	for target in "direct 18080" "gvsd 18081" "haproxy 18082" "nginx 18083"; do
		set -- $target
		read -r rps p99 <<<"$(run "$1" "$2")"
		RPS[$1]+="$rps "
		P99[$1]+="$p99 "
	done
done
declare -A R
for name in direct gvsd haproxy nginx; do
	R[$name]="$(tr ' ' '\n' <<<"${RPS[$name]}" | grep . | median) $(tr ' ' '\n' <<<"${P99[$name]}" | grep . | median)"
done
read -r hrps hp99 <<<"${R[haproxy]}"
echo "wrk -t1 -c$conns -d${secs}s, median of $rounds rounds, $(nproc) CPUs, $(date -u +%F)"
echo
echo "| path | requests/s | p99 ms | req/s vs HAProxy | p99 vs HAProxy |"
echo "| --- | ---: | ---: | ---: | ---: |"
for name in direct gvsd haproxy nginx; do
	read -r rps p99 <<<"${R[$name]}"
	awk -v n="$name" -v r="$rps" -v p="$p99" -v hr="$hrps" -v hp="$hp99" \
		'BEGIN { printf "| %s | %.0f | %.2f | %.2f | %.2f |\n", n, r, p, r/hr, p/hp }'
done
