#!/usr/bin/env bash
# The seeds' experiments on loopback, no root needed: gvsd's proxy engine in
# front of two real servers, an rr service configured with gvsadm, curl
# alternating between RS1 and RS2, a stopped server skipped and restored.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
go build -o bin/ ./cmd/... ./test/rs

work=$(mktemp -d /tmp/gvs-demo.XXXXXX)
export GVS_SOCKET=$work/gvsd.sock
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

say() { printf '\n### %s\n' "$*"; }
start_rs() { # name port
	bin/rs --name "$1" --listen "127.0.0.1:$2" & rs_pid=$!
	pids+=("$rs_pid")
	for _ in $(seq 50); do curl -s -o /dev/null "http://127.0.0.1:$2/" && return; sleep 0.1; done
	echo "real server $1 did not start" >&2; exit 1
}
curls() { # count
	for i in $(seq "$1"); do
		printf 'curl #%d -> %s\n' "$i" "$(curl -s --max-time 2 http://127.0.0.1:8080/ || echo '(no answer)')"
	done
}

say "starting gvsd (proxy engine) and two real servers on loopback"
bin/gvsd --engine proxy --socket "$GVS_SOCKET" 2>"$work/gvsd.log" & pids+=($!)
start_rs RS1 9001; rs1=$rs_pid
start_rs RS2 9002
for _ in $(seq 50); do [ -S "$GVS_SOCKET" ] && break; sleep 0.1; done

say "gvsadm -A -t 127.0.0.1:8080 -s rr; gvsadm -a ... -r RS1/RS2 -m"
bin/gvsadm -A -t 127.0.0.1:8080 -s rr
bin/gvsadm -a -t 127.0.0.1:8080 -r 127.0.0.1:9001 -m
bin/gvsadm -a -t 127.0.0.1:8080 -r 127.0.0.1:9002 -m
bin/gvsadm -Ln

say "experiment 1: 6 x curl http://127.0.0.1:8080/ (rr alternates, the last-added server first)"
curls 6
bin/gvsadm -Ln --stats

say "experiment 2: stop RS1; new connections skip it"
kill "$rs1"; wait "$rs1" 2>/dev/null || true
curls 4
say "start RS1 again; alternation returns"
start_rs RS1 9001
sleep 2.5 # the proxy retries a refused server after its back-off
curls 4

say "gvsadm -Lnc"
bin/gvsadm -Lnc
say "experiment 3 (VRRP failover) needs root and network namespaces: run this demo as root"
