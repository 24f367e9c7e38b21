#!/usr/bin/env bash
# XDP engine forwarding benchmark (see bench/README.md, "XDP engine").
# Builds bench/xdp, runs every path in fresh network namespaces and prints
# a markdown table; draws bench/xdp.png with gnuplot (or PLOT=path).
# Run as root on Debian (it apt-installs nftables and gnuplot if missing).
# Arguments go to the benchmark: bash bench/xdp/run.sh [-duration 2s]
# [-rounds 3] [-flows 4096] [-threads 1] [-mode native|generic] [-source auto|live|packet] [-targets ...]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
if [ "$(id -u)" -ne 0 ]; then
	echo "bench/xdp/run.sh: needs root (network namespaces and BPF); run it with sudo" >&2
	exit 1
fi
need=()
command -v nft >/dev/null || need+=(nftables)
command -v gnuplot >/dev/null || need+=(gnuplot-nox)
command -v sysctl >/dev/null || need+=(procps)
if [ ${#need[@]} -gt 0 ]; then
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

work=$(mktemp -d /tmp/gvs-xdpbench.XXXXXX)
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		# The benchmark removes its namespaces itself; these are left only
		# if it was killed outright.
		for ns in $(ip netns list | awk '{print $1}' | grep "^gvsb-$pid-" || true); do
			ip netns del "$ns" || true
		done
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

go build -o "$work/xdpbench" ./bench/xdp
"$work/xdpbench" -dat "$work/xdp.dat" "$@" >"$work/table.md" &
pid=$!
wait "$pid"
cat "$work/table.md"
plot=${PLOT:-bench/xdp.png}
gnuplot -e "dat='$work/xdp.dat'; out='$plot'" bench/xdp/plot.gp
echo "plot: $plot" >&2
