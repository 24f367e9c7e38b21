#!/usr/bin/env bash
# The ipvs engine's control-plane benchmark (see bench/README.md, "IPVS
# engine"). The host's kernel may have no ip_vs, so it runs in the IPVS VM
# of test/ipvsvm (Debian 12's kernel with ip_vs, ipvsadm and keepalived,
# under QEMU): it builds bench/control, gvsd and gvsadm static on this
# host, boots the VM once and runs `control -engines ipvs` there, which
# measures gvsd and its references (ipvsadm, keepalived) in the same run.
# Progress goes to stderr, the markdown tables to stdout. Needs root (the
# VM image is built with debootstrap). The VM takes both CPUs: run it alone,
#   flock /tmp/gvs.lock bash bench/control/run-ipvs.sh
# Arguments go to the benchmark after the defaults below, so that they
# override them: bash bench/control/run-ipvs.sh -sizes 10,100 -repeat 3
# IPVS_VM_TIMEOUT (seconds, default 3600) bounds the whole VM run.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
[ "$(id -u)" = 0 ] || { echo "bench/control/run-ipvs.sh: needs root (test/ipvsvm builds its image with debootstrap)" >&2; exit 1; }

share=$(mktemp -d /tmp/gvs-ipvsbench.XXXXXX)
trap 'rm -rf "$share"' EXIT
echo "building bench/control, gvsd and gvsadm (static) …" >&2
CGO_ENABLED=0 go build -o "$share/" ./bench/control ./cmd/gvsd ./cmd/gvsadm
cat >"$share/bench.sh" <<'GUEST'
#!/bin/sh
# Runs in the VM as root: the benchmark, then its tables between markers.
modprobe ip_vs || { echo "modprobe ip_vs failed"; exit 1; }
cd /guest/share
echo "guest: kernel $(uname -r), $(ipvsadm --version 2>&1), $(keepalived --version 2>&1 | head -n1), $(nproc) vCPUs"
./control -gvsd ./gvsd -gvsadm ./gvsadm "$@" >/tmp/table.md || exit $?
echo "@@@ tables"
cat /tmp/table.md
echo "@@@ end"
GUEST
chmod +x "$share/bench.sh"

defaults=(-engines ipvs -ipvs-reload -scheds rr -sizes 10,100,1000,10000 -limit 300s -repeat 5)
# The VM's output: progress to stderr as it comes, the tables kept for stdout.
set +e
IPVS_VM_SHARE="$share" IPVS_VM_TIMEOUT=${IPVS_VM_TIMEOUT:-3600} \
	bash test/ipvsvm/run.sh "$share/bench.sh" "${defaults[@]}" "$@" | sed -u 's/\r$//' | tee "$share/out" |
	awk '/^@@@ tables/ {skip = 1} !skip {print; fflush()} /^@@@ end/ {skip = 0}' >&2
status=${PIPESTATUS[0]}
set -e
[ "$status" = 0 ] || { echo "bench/control/run-ipvs.sh: the VM run failed (status $status)" >&2; exit "$status"; }
echo "host: commit $(git describe --always --dirty 2>/dev/null || echo unknown), $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo
sed -n '/^@@@ tables/,/^@@@ end/p' "$share/out" | sed '1d;$d'
