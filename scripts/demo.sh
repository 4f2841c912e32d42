#!/usr/bin/env bash
# make demo: a real Kafka broker and kinesis-mock, sample events, ferry, and
# the streams read back. Everything started is stopped at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[ -x bin/ferry ] || make build
exec go run ./integration/demo -ferry bin/ferry -config examples/demo.yaml
