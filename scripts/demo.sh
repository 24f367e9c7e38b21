#!/usr/bin/env bash
# The README's main job: reproduce the seeds' experiments. As root it builds
# the seeds' lab in network namespaces; otherwise it runs on loopback.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
if [ "$(id -u)" -eq 0 ] && [ -x "$here/demo-lab.sh" ] && command -v ip >/dev/null; then
	exec "$here/demo-lab.sh"
fi
echo "demo: not root (or no iproute2): running the loopback demo instead of the network-namespace lab"
exec "$here/demo-loopback.sh"
