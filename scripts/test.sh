#!/usr/bin/env bash
# The project's tests: vet, then every package's tests (unit, fuzz seeds,
# loopback end-to-end, and as root the network-namespace end-to-end tests).
set -euo pipefail
cd "$(dirname "$0")/.."
go vet ./...
go test -count=1 -timeout 40m ./...
