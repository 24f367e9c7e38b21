#!/usr/bin/env bash
# Control-plane benchmark (see bench/README.md, "Control plane").
# Builds bench/control (which builds gvsd and gvsadm from the tree), times
# gvsadm -R, one gvsadm -e and one health-check flap on tables of 10,
# 100, 1,000 and 10,000 services, prints a markdown table and draws
# bench/control.png with gnuplot (or PLOT=path), from the figures it
# keeps in bench/control.dat (beside the plot).
# The proxy engine needs no root; the xdp engine (network namespaces, BPF)
# does, and is left out without it. Arguments go to the benchmark:
# bash bench/control/run.sh [-engines proxy,xdp] [-scheds rr,mh]
# [-sizes 10,100,1000,10000] [-limit 60s] [-repeat 5] [-gvsd BIN -gvsadm BIN]
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top"
args=()
if [ "$(id -u)" -ne 0 ]; then
	echo "bench/control/run.sh: not root: the proxy engine only (run with sudo for xdp too)" >&2
	args+=(-engines proxy)
	if ! command -v gnuplot >/dev/null; then
		echo "bench/control/run.sh: gnuplot is not installed: no plot (apt-get install gnuplot-nox)" >&2
	fi
else
	need=()
	command -v gnuplot >/dev/null || need+=(gnuplot-nox)
	command -v ip >/dev/null || need+=(iproute2)
	if [ ${#need[@]} -gt 0 ]; then
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
	fi
fi

work=$(mktemp -d /tmp/gvs-ctlbench-run.XXXXXX)
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		# The benchmark removes its namespaces itself; these are left only
		# if it was killed outright.
		for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^gvsc-$pid-" || true); do
			ip netns del "$ns" || true
		done
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

go build -o "$work/control" ./bench/control
plot=${PLOT:-bench/control.png}
dat=${plot%.png}.dat
"$work/control" -dat "$work/control.dat" "${args[@]}" "$@" >"$work/table.md" &
pid=$!
wait "$pid"
cat "$work/table.md"
cp "$work/control.dat" "$dat"
if command -v gnuplot >/dev/null; then
	gnuplot -e "dat='$dat'; out='$plot'" bench/control/plot.gp
	echo "plot: $plot (data: $dat)" >&2
fi
