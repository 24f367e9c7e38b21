#!/usr/bin/env bash
# The project's tests: vet, then every package's tests (unit, fuzz seeds,
# loopback end-to-end, and as root the network-namespace end-to-end tests),
# then lists the skipped tests with their reasons.
set -euo pipefail
cd "$(dirname "$0")/.."
go vet ./...
# testreport prints a line per package, the output of failed tests, and
# every skipped test with its reason.
go test -count=1 -timeout 40m -json ./... | go run ./scripts/testreport
# The packages whose goroutines share state (schedulers called from every
# engine thread, checkers handed over on reload, the daemon's reload and
# the table) again under the race detector: 14 s measured on 2 CPUs, 44 s
# with other jobs on the machine.
go test -count=1 -race -timeout 10m ./internal/sched ./internal/check ./internal/daemon ./internal/ipvs ./internal/ipvssync
