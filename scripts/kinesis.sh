#!/usr/bin/env bash
# kinesis.sh runs a local Kinesis emulator from the npm packages pinned in package.json
# (run `npm ci` or scripts/deps.sh first).
#
#   scripts/kinesis.sh start mock|kinesis-mock|kinesalite DIR [PORT]
#                           start the emulator on plain HTTP, wait until it answers, print its URL
#   scripts/kinesis.sh stop DIR
#
# kinesis-mock (npm kinesis-local) runs from its package folder because it reads server.json (its
# TLS certificate) from the working directory. Its TLS port gets another free port, and every
# *_DURATION is 0 so CreateStream and friends finish at once. It binds 0.0.0.0 (hard-coded).
# kinesalite runs through scripts/kinesis/kinesalite.js, bound to 127.0.0.1, with an in-memory
# store and 0 ms create/delete/update delays.
#
# DIR receives pid, port, kind and kinesis.log.
#
# Environment:
#   FERRY_TEST_KINESIS_LOG_LEVEL   kinesis-mock LOG_LEVEL (default: WARN; TRACE logs request bodies)
#   FERRY_TEST_KINESIS_START_TIMEOUT seconds to wait for the emulator (default: 30)
#   FERRY_TEST_KINESIS_STOP_TIMEOUT  seconds between SIGTERM and SIGKILL (default: 1)
#   FERRY_TEST_WATCH_PID, FERRY_TEST_PID_REGISTRY: see spawn in scripts/lib.sh
#   NODE                      node binary (default: node on PATH)
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NODE=${NODE:-node}
MODULES=$REPO/node_modules

usage() {
	sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

start() {
	local kind=$1 dir=$2 port=${3:-} pid t0
	command -v "$NODE" >/dev/null || die "node not found (Node 20 or newer)"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	if [ -f "$dir/pid" ] && pid_alive "$(cat "$dir/pid")"; then
		die "an emulator already runs from $dir (pid $(cat "$dir/pid"))"
	fi
	t0=$(date +%s%N)
	[ -n "$port" ] || port=$(free_port)
	wait_port_free "$port" 10 || die "port $port is already in use"
	case "$kind" in
	mock | kinesis-mock)
		kind=kinesis-mock
		[ -f "$MODULES/kinesis-local/main.js" ] || die "$MODULES/kinesis-local missing: run npm ci"
		local tls
		tls=$(free_port)
		while [ "$tls" = "$port" ]; do tls=$(free_port); done
		pid=$(
			cd "$MODULES/kinesis-local"
			export KINESIS_MOCK_PLAIN_PORT=$port KINESIS_MOCK_TLS_PORT=$tls
			export LOG_LEVEL=${FERRY_TEST_KINESIS_LOG_LEVEL:-WARN} ROOT_LOG_LEVEL=ERROR
			export AWS_REGION=us-east-1 SHOULD_PERSIST_DATA=false SHARD_LIMIT=1000
			local d
			for d in CREATE_STREAM DELETE_STREAM REGISTER_STREAM_CONSUMER DEREGISTER_STREAM_CONSUMER \
				START_STREAM_ENCRYPTION STOP_STREAM_ENCRYPTION MERGE_SHARDS SPLIT_SHARD \
				UPDATE_SHARD_COUNT UPDATE_STREAM_MODE; do
				export "${d}_DURATION=0ms"
			done
			spawn "$dir/kinesis.log" "$NODE" main.js
		)
		;;
	kinesalite)
		[ -f "$MODULES/kinesalite/index.js" ] || die "$MODULES/kinesalite missing: run npm ci"
		pid=$(spawn "$dir/kinesis.log" "$NODE" "$REPO/scripts/kinesis/kinesalite.js" "$port")
		;;
	*) die "unknown emulator '$kind' (want mock, kinesis-mock or kinesalite)" ;;
	esac
	echo "$pid" >"$dir/pid"
	echo "$port" >"$dir/port"
	echo "$kind" >"$dir/kind"
	wait_ready "$pid" "$dir" "$dir/kinesis.log" "${FERRY_TEST_KINESIS_START_TIMEOUT:-30}" "$kind on port $port" http_ok "$port"
	echo "kinesis.sh: $kind pid $pid ready on 127.0.0.1:$port in $((($(date +%s%N) - t0) / 1000000)) ms" >&2
	echo "http://127.0.0.1:$port"
}

case "${1:-}" in
start)
	[ $# -ge 3 ] || usage
	start "$2" "$3" "${4:-}"
	;;
stop)
	[ $# -ge 2 ] || usage
	# Both keep their data in memory, and kinesis-mock's graceful shutdown waits for idle
	# keep-alive client connections, so do not wait long before SIGKILL.
	stop_pidfile "$2" "${FERRY_TEST_KINESIS_STOP_TIMEOUT:-1}"
	;;
*) usage ;;
esac
