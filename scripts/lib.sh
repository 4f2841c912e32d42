# shellcheck shell=bash
# Shared helpers for scripts/kafka.sh and scripts/kinesis.sh. Source it; do not run it.

# REPO is the repository root (the folder holding go.mod).
REPO=${REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
# FERRY_TEST_CACHE is the root of every download cache (Kafka jars live in $FERRY_TEST_CACHE/kafka/libs).
FERRY_TEST_CACHE=${FERRY_TEST_CACHE:-$REPO/.cache}

die() {
	echo "$(basename "$0"): $*" >&2
	exit 1
}

# port_busy PORT succeeds when something listens on 127.0.0.1:PORT.
port_busy() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port prints a TCP port that nothing listens on. Ports come from 20000-59999, away from the
# ephemeral range Linux hands out for outgoing connections (32768-60999 overlaps a little; the
# listen check covers it).
free_port() {
	local p
	for _ in $(seq 1 200); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		if ! port_busy "$p" && ! { command -v ss >/dev/null && ss -Htan "sport = :$p" 2>/dev/null | grep -q .; }; then
			echo "$p"
			return 0
		fi
	done
	die "no free port found"
}

# pid_alive PID succeeds while PID runs. A zombie does not count: where pid 1 does not reap
# orphans (as in some VMs and containers), a dead process can stay a zombie for good.
pid_alive() {
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
	stat=${stat##*) }
	[ "${stat:0:1}" != Z ]
}

# group_alive PGID succeeds while a thread of group PGID is alive (zombies do not count: an orphan
# may wait a moment for init to reap it). Threads, not processes: a killed JVM's leader thread is a
# zombie while its other threads still tear down, holding the broker's ports.
group_alive() {
	ps -e -L -o pgid=,stat= | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { found = 1 } END { exit !found }'
}

# wait_port_free PORT SECONDS succeeds once nothing listens on 127.0.0.1:PORT, failing after SECONDS.
wait_port_free() {
	local i
	for i in $(seq 1 $(($2 * 10))); do
		port_busy "$1" || return 0
		sleep 0.1
	done
	! port_busy "$1"
}

# stop_pidfile DIR [TIMEOUT_S]: SIGTERM the process group whose id is in DIR/pid, SIGKILL it after
# TIMEOUT_S (default 20), wait until no process of the group is left, then remove DIR/pid.
stop_pidfile() {
	local dir=$1 timeout=${2:-20} pid
	[ -f "$dir/pid" ] || return 0
	pid=$(cat "$dir/pid")
	if [ -n "$pid" ] && group_alive "$pid"; then
		kill -TERM -- "-$pid" 2>/dev/null || true
		for _ in $(seq 1 $((timeout * 10))); do
			group_alive "$pid" || break
			sleep 0.1
		done
		if group_alive "$pid"; then
			echo "$(basename "$0"): process group $pid still running ${timeout}s after SIGTERM, sending SIGKILL" >&2
			kill -KILL -- "-$pid" 2>/dev/null || true
			for _ in $(seq 1 50); do
				group_alive "$pid" || break
				sleep 0.1
			done
		fi
	fi
	rm -f "$dir/pid"
}

# spawn LOG CMD...: start CMD in a new session (so its pid is also its process group id) with stdout
# and stderr appended to LOG, and print the pid. A small bash supervisor runs CMD as its child:
#   - when FERRY_TEST_WATCH_PID is set (the Go harness sets it to the test process), the supervisor kills
#     CMD once that pid is gone, so a test binary that dies or times out leaves nothing behind;
#   - when FERRY_TEST_PID_REGISTRY names a file, the process group id is appended to it; .ci/run kills
#     every group listed there when it exits.
spawn() {
	local log=$1 pid
	shift
	# shellcheck disable=SC2016
	setsid bash -c '
		[ -n "${FERRY_TEST_WATCH_PID:-}" ] || exec "$@"
		watched_alive() {
			local s
			s=$(cat "/proc/$FERRY_TEST_WATCH_PID/stat" 2>/dev/null) || return 1
			s=${s##*) }
			[ "${s:0:1}" != Z ]
		}
		"$@" &
		child=$!
		trap "kill -TERM $child 2>/dev/null" TERM INT
		while :; do
			sleep 0.5 &
			tick=$!
			wait -n "$child" "$tick" 2>/dev/null
			if ! kill -0 "$child" 2>/dev/null; then
				kill "$tick" 2>/dev/null
				wait "$child"
				exit
			fi
			if ! watched_alive; then
				echo "supervisor: watched pid $FERRY_TEST_WATCH_PID is gone, stopping pid $child" >&2
				kill -TERM "$child" 2>/dev/null
				for _ in $(seq 1 100); do kill -0 "$child" 2>/dev/null || exit; sleep 0.1; done
				kill -KILL "$child" 2>/dev/null
				exit
			fi
		done
	' supervisor "$@" </dev/null >>"$log" 2>&1 &
	pid=$!
	if [ -n "${FERRY_TEST_PID_REGISTRY:-}" ]; then
		echo "$pid" >>"$FERRY_TEST_PID_REGISTRY"
	fi
	echo "$pid"
}

# check_alive PID LOG: fail with the log's tail when PID has exited.
check_alive() {
	if ! pid_alive "$1"; then
		echo "$(basename "$0"): process $1 exited during start-up; last lines of $2:" >&2
		tail -n 40 "$2" >&2 || true
		exit 1
	fi
}

# wait_ready PID DIR LOG TIMEOUT WHAT PROBE...: run PROBE until it succeeds, every 0.1 s; fail
# with LOG's tail when PID exits, or, after TIMEOUT seconds, stop the process (DIR's pidfile) and
# fail naming WHAT.
wait_ready() {
	local pid=$1 dir=$2 log=$3 timeout=$4 what=$5 deadline
	shift 5
	deadline=$(($(date +%s) + timeout))
	until "$@"; do
		check_alive "$pid" "$log"
		if [ "$(date +%s)" -ge "$deadline" ]; then
			tail -n 40 "$log" >&2
			stop_pidfile "$dir" 5
			die "$what did not answer within ${timeout}s"
		fi
		sleep 0.1
	done
}

# http_ok PORT [PATH]: succeed when 127.0.0.1:PORT answers an HTTP request for PATH (default /)
# with any status.
http_ok() {
	local line
	line=$({
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf 'GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' "${2:-/}" >&3
		timeout 2 head -n 1 <&3
	} 2>/dev/null) || return 1
	[[ $line == HTTP/1.* ]]
}
