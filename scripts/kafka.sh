#!/usr/bin/env bash
# kafka.sh runs a real single-node Apache Kafka broker (KRaft, broker+controller in one JVM) from the
# Maven Central jars listed in scripts/kafka/pom.xml. No Docker, no tarball download.
#
#   scripts/kafka.sh install            copy the jars into $FERRY_TEST_CACHE/kafka/libs (idempotent)
#   scripts/kafka.sh start DIR [PORT]   format DIR (first time only), start the broker, wait until it
#                                       answers ApiVersions, print 127.0.0.1:PORT
#   scripts/kafka.sh stop DIR           SIGTERM, then SIGKILL after FERRY_TEST_KAFKA_STOP_TIMEOUT seconds
#
# Starting a DIR that was started before reuses its data, cluster id, controller port and (unless a
# PORT is given) its broker port: that is how the harness restarts a broker in place.
#
# Environment:
#   FERRY_TEST_CACHE               cache root (default: REPO/.cache)
#   FERRY_TEST_MAVEN_REPO          Maven local repository for install (default: Maven's, ~/.m2/repository)
#   FERRY_TEST_KAFKA_HEAP          JVM heap flags (default: -Xms256m -Xmx512m)
#   FERRY_TEST_KAFKA_PROPERTIES    extra server.properties lines (key=value, newline-separated; they win)
#   FERRY_TEST_KAFKA_LISTENERS     extra listeners beside PLAINTEXT and CONTROLLER, comma-separated
#                                  NAME:PROTOCOL:PORT (e.g. SASL_SSL:SASL_SSL:9094,MTLS:SSL:9095), all
#                                  on 127.0.0.1 and advertised; their TLS and SASL settings go in
#                                  FERRY_TEST_KAFKA_PROPERTIES
#   FERRY_TEST_KAFKA_START_TIMEOUT seconds to wait for the broker (default: 60)
#   FERRY_TEST_KAFKA_STOP_TIMEOUT  seconds between SIGTERM and SIGKILL (default: 20)
#   FERRY_TEST_WATCH_PID, FERRY_TEST_PID_REGISTRY: see spawn in scripts/lib.sh
#   JAVA                      java binary (default: java on PATH)
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LIBS=$FERRY_TEST_CACHE/kafka/libs
POM=$REPO/scripts/kafka/pom.xml
JAVA=${JAVA:-java}

usage() {
	sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

install() {
	local stamp=$LIBS/.pom.sha256 want
	want=$(sha256sum "$POM" | cut -d' ' -f1)
	if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
		return 0
	fi
	command -v mvn >/dev/null || die "mvn not found: install Maven 3 (Debian: apt-get install maven)"
	rm -rf "$LIBS.tmp"
	mkdir -p "$LIBS.tmp"
	echo "kafka.sh: copying Kafka jars into $LIBS" >&2
	local repo=()
	[ -z "${FERRY_TEST_MAVEN_REPO:-}" ] || repo=(-Dmaven.repo.local="$FERRY_TEST_MAVEN_REPO")
	mvn -q -B -Dstyle.color=never "${repo[@]}" -f "$POM" dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="$LIBS.tmp" 2>&1 |
		sed 's/\x1b\[[0-9;]*m//g' | { grep -v '^[[:space:]]*$' || true; } >&2
	rm -rf "$LIBS"
	mv "$LIBS.tmp" "$LIBS"
	echo "$want" >"$stamp"
}

# api_versions_ok PORT: send an ApiVersions v0 request (api key 18, correlation id 1, null client
# id) and check the response carries correlation id 1 and error code 0.
api_versions_ok() {
	local port=$1 reply
	reply=$({
		exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
		printf '\x00\x00\x00\x0a\x00\x12\x00\x00\x00\x00\x00\x01\xff\xff' >&3
		timeout 2 head -c 10 <&3 | od -An -tx1 | tr -d ' \n'
	} 2>/dev/null) || return 1
	# 4-byte size, then correlation id 00000001, then error code 0000.
	[ "${reply:8:12}" = "000000010000" ]
}

write_config() {
	local dir=$1 port=$2 cport=$3 extra l name proto lport
	local listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
	local advertised="PLAINTEXT://127.0.0.1:$port"
	local protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
	if [ -n "${FERRY_TEST_KAFKA_LISTENERS:-}" ]; then
		IFS=, read -r -a extra <<<"$FERRY_TEST_KAFKA_LISTENERS"
		for l in "${extra[@]}"; do
			IFS=: read -r name proto lport <<<"$l"
			[ -n "$name" ] && [ -n "$proto" ] && [ -n "$lport" ] || die "FERRY_TEST_KAFKA_LISTENERS: bad entry $l (want NAME:PROTOCOL:PORT)"
			listeners+=",$name://127.0.0.1:$lport"
			advertised+=",$name://127.0.0.1:$lport"
			protocols+=",$name:$proto"
		done
	fi
	cat >"$dir/server.properties" <<EOF
# Written by scripts/kafka.sh: a single-node KRaft broker for tests.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=$listeners
advertised.listeners=$advertised
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=$protocols
log.dirs=$dir/data
num.partitions=1
default.replication.factor=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.check.interval.ms=10000
# After a crash the controller keeps the old broker registration until its session expires, and the
# restarted broker cannot register before that (default 9 s).
broker.session.timeout.ms=4000
broker.heartbeat.interval.ms=500
EOF
	if [ -n "${FERRY_TEST_KAFKA_PROPERTIES:-}" ]; then
		printf '# FERRY_TEST_KAFKA_PROPERTIES\n%s\n' "$FERRY_TEST_KAFKA_PROPERTIES" >>"$dir/server.properties"
	fi
	cat >"$dir/log4j2.properties" <<'EOF'
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.out.ref = out
logger.state.name = state.change.logger
logger.state.level = warn
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.log.name = kafka.log
logger.log.level = warn
logger.logcleaner.name = kafka.log.LogCleaner
logger.logcleaner.level = warn
logger.coord.name = org.apache.kafka.storage
logger.coord.level = warn
EOF
}

start() {
	local dir=$1 port=${2:-} cport cid pid t0
	if ! compgen -G "$LIBS/kafka_2.13-*.jar" >/dev/null; then
		die "Kafka jars missing in $LIBS: run scripts/kafka.sh install (or scripts/deps.sh)"
	fi
	command -v "$JAVA" >/dev/null || die "java not found (Kafka 4 needs Java 17+)"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	if [ -f "$dir/pid" ] && pid_alive "$(cat "$dir/pid")"; then
		die "a broker already runs from $dir (pid $(cat "$dir/pid"))"
	fi
	t0=$(date +%s%N)
	if [ -z "$port" ] && [ -f "$dir/port" ]; then port=$(cat "$dir/port"); fi
	[ -n "$port" ] || port=$(free_port)
	if [ -f "$dir/controller.port" ]; then cport=$(cat "$dir/controller.port"); else
		cport=$(free_port)
		while [ "$cport" = "$port" ]; do cport=$(free_port); done
	fi
	# A restart right after a crash may find the old JVM still releasing its ports.
	wait_port_free "$port" 10 || die "port $port is already in use"
	wait_port_free "$cport" 10 || die "controller port $cport is already in use"
	echo "$port" >"$dir/port"
	echo "$cport" >"$dir/controller.port"
	write_config "$dir" "$port" "$cport"

	local heap jvm
	read -r -a heap <<<"${FERRY_TEST_KAFKA_HEAP:--Xms256m -Xmx512m}"
	jvm=(-server "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20
		-Djava.awt.headless=true -Dlog4j2.configurationFile="$dir/log4j2.properties"
		-cp "$LIBS/*")
	if [ ! -f "$dir/data/meta.properties" ]; then
		# A cluster id is 16 random bytes in URL-safe base64. One starting with "-" would be read
		# as an option by the storage tool, so draw again (1 time in 64).
		cid=-
		while [ "${cid:0:1}" = - ]; do
			cid=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
		done
		echo "$cid" >"$dir/cluster.id"
		"$JAVA" "${jvm[@]}" kafka.tools.StorageTool format -t "$cid" -c "$dir/server.properties" \
			>>"$dir/kafka.log" 2>&1 || {
			tail -n 30 "$dir/kafka.log" >&2
			die "formatting $dir failed"
		}
	fi

	pid=$(spawn "$dir/kafka.log" "$JAVA" "${jvm[@]}" kafka.Kafka "$dir/server.properties")
	echo "$pid" >"$dir/pid"
	wait_ready "$pid" "$dir" "$dir/kafka.log" "${FERRY_TEST_KAFKA_START_TIMEOUT:-60}" "broker on port $port" api_versions_ok "$port"
	echo "kafka.sh: broker pid $pid ready on 127.0.0.1:$port in $((($(date +%s%N) - t0) / 1000000)) ms" >&2
	echo "127.0.0.1:$port"
}

cmd=${1:-}
case "$cmd" in
install) install ;;
start)
	[ $# -ge 2 ] || usage
	start "$2" "${3:-}"
	;;
stop)
	[ $# -ge 2 ] || usage
	stop_pidfile "$2" "${FERRY_TEST_KAFKA_STOP_TIMEOUT:-20}"
	;;
*) usage ;;
esac
