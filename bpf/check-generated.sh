#!/bin/sh
# Regenerates the bpf2go output (Go bindings and BPF objects) from
# bpf/*.c and fails when it differs from what is committed.
# Needs: clang and llvm (llvm-strip). Run from anywhere in the repo:
#   bpf/check-generated.sh
set -eu
cd "$(dirname "$0")/.."
go generate ./internal/engine/xdp/... ./internal/realserver/... ./internal/toa/... ./bench/xdp/...
if ! git diff --exit-code --stat -- internal/engine/xdp/ internal/realserver/ internal/toa/ bench/xdp/ ; then
	echo "bpf/check-generated.sh: the generated BPF files are stale; run 'go generate ./internal/engine/xdp/... ./internal/realserver/... ./internal/toa/... ./bench/xdp/...' and commit them" >&2
	exit 1
fi
echo "bpf/check-generated.sh: generated BPF files are up to date"
