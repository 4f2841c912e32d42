#!/usr/bin/env bash
# moto.sh runs moto's server (moto[server] from PyPI, installed by scripts/deps.sh into
# $FERRY_TEST_CACHE/venv-moto), the STS, IAM and Kinesis emulator of the credential tests.
#
#   scripts/moto.sh start DIR [PORT]   start moto_server on 127.0.0.1, wait until it answers, print its URL
#   scripts/moto.sh stop DIR
#
# Its signature checks are off when it starts; the harness turns them on (POST /moto-api/reset-auth)
# once it has created the IAM users and roles. DIR receives pid, port and moto.log.
#
# Environment:
#   FERRY_TEST_MOTO_VENV           the virtualenv (default: $FERRY_TEST_CACHE/venv-moto)
#   FERRY_TEST_MOTO_START_TIMEOUT  seconds to wait for the server (default: 30)
#   FERRY_TEST_WATCH_PID, FERRY_TEST_PID_REGISTRY: see spawn in scripts/lib.sh
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VENV=${FERRY_TEST_MOTO_VENV:-$FERRY_TEST_CACHE/venv-moto}

usage() {
	sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

start() {
	local dir=$1 port=${2:-} pid t0
	[ -x "$VENV/bin/moto_server" ] || die "$VENV/bin/moto_server missing: run scripts/deps.sh"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	if [ -f "$dir/pid" ] && pid_alive "$(cat "$dir/pid")"; then
		die "moto already runs from $dir (pid $(cat "$dir/pid"))"
	fi
	t0=$(date +%s%N)
	[ -n "$port" ] || port=$(free_port)
	wait_port_free "$port" 10 || die "port $port is already in use"
	pid=$(
		# Every key moto accepts is one the harness made; none comes from the environment.
		unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE
		export PYTHONUNBUFFERED=1
		spawn "$dir/moto.log" "$VENV/bin/moto_server" -H 127.0.0.1 -p "$port"
	)
	echo "$pid" >"$dir/pid"
	echo "$port" >"$dir/port"
	wait_ready "$pid" "$dir" "$dir/moto.log" "${FERRY_TEST_MOTO_START_TIMEOUT:-30}" "moto on port $port" http_ok "$port" /moto-api/
	echo "moto.sh: moto pid $pid ready on 127.0.0.1:$port in $((($(date +%s%N) - t0) / 1000000)) ms" >&2
	echo "http://127.0.0.1:$port"
}

case "${1:-}" in
start)
	[ $# -ge 2 ] || usage
	start "$2" "${3:-}"
	;;
stop)
	[ $# -ge 2 ] || usage
	# Its data is in memory: nothing to wait for.
	stop_pidfile "$2" 2
	;;
*) usage ;;
esac
