#!/usr/bin/env bash
# bench.sh runs ferry's end-to-end benchmark (make bench): it installs what is needed
# (scripts/deps.sh), then runs integration/cmd/benchrun with the arguments given, e.g.
#   scripts/bench.sh -write-doc              # the full run; writes docs/benchmarks.md
#   scripts/bench.sh -records 100000 -runs 1 # a quick one
#   scripts/bench.sh -variants 'ferry/*' -skip-kinesalite
# benchrun starts Kafka, kinesalite, fast sinks and ferry itself and stops all of them on exit and
# on Ctrl-C. See `go run ./integration/cmd/benchrun -h` for the flags.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
scripts/deps.sh
FERRY_BENCH_COMMAND="scripts/bench.sh${*:+ $*}" exec go run ./integration/cmd/benchrun "$@"
