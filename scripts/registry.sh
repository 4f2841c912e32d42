#!/usr/bin/env bash
# registry.sh runs Apicurio Registry, a real schema registry with a Confluent-compatible API, for
# the decode tests: the Quarkus app io.apicurio:apicurio-registry-app:2.6.13.Final (classifier
# all, a tar.gz of about 140 MB) from Maven Central, on Java 17, with in-memory storage.
#
#   scripts/registry.sh install            fetch and unpack it into $FERRY_TEST_CACHE/apicurio (idempotent)
#   scripts/registry.sh start DIR [PORT]   start it on 127.0.0.1, wait until it answers, print the
#                                          Confluent-compatible base URL, http://127.0.0.1:PORT/apis/ccompat/v7
#   scripts/registry.sh stop DIR
#
# DIR receives pid, port and registry.log. Its data is in memory: a restart starts empty.
#
# Environment:
#   FERRY_TEST_CACHE                    cache root (default: REPO/.cache)
#   FERRY_TEST_MAVEN_REPO               Maven local repository for install (default: Maven's)
#   FERRY_TEST_REGISTRY_HEAP            JVM heap flags (default: -Xms128m -Xmx512m)
#   FERRY_TEST_REGISTRY_START_TIMEOUT   seconds to wait for it (default: 90)
#   FERRY_TEST_WATCH_PID, FERRY_TEST_PID_REGISTRY: see spawn in scripts/lib.sh
#   JAVA                                java binary (default: java on PATH)
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VERSION=2.6.13.Final
ARTIFACT=io.apicurio:apicurio-registry-app:$VERSION:tar.gz:all
HOME_DIR=$FERRY_TEST_CACHE/apicurio
RUNNER=$HOME_DIR/apicurio-registry-app-$VERSION-runner.jar
JAVA=${JAVA:-java}

usage() {
	sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

install() {
	if [ -f "$RUNNER" ] && [ "$(cat "$HOME_DIR/.version" 2>/dev/null)" = "$VERSION" ]; then
		return 0
	fi
	command -v mvn >/dev/null || die "mvn not found: install Maven 3 (Debian: apt-get install maven)"
	local tmp repo=()
	[ -z "${FERRY_TEST_MAVEN_REPO:-}" ] || repo=(-Dmaven.repo.local="$FERRY_TEST_MAVEN_REPO")
	tmp=$(mktemp -d)
	echo "registry.sh: fetching $ARTIFACT into $HOME_DIR" >&2
	mvn -q -B -Dstyle.color=never "${repo[@]}" dependency:copy -Dartifact="$ARTIFACT" \
		-DoutputDirectory="$tmp" 2>&1 | sed 's/\x1b\[[0-9;]*m//g' | { grep -v '^[[:space:]]*$' || true; } >&2
	rm -rf "$HOME_DIR.tmp"
	mkdir -p "$HOME_DIR.tmp"
	tar -xzf "$tmp"/apicurio-registry-app-"$VERSION"-all.tar.gz -C "$HOME_DIR.tmp"
	rm -rf "$tmp"
	[ -f "$HOME_DIR.tmp/apicurio-registry-app-$VERSION-runner.jar" ] || die "the archive has no runner jar"
	echo "$VERSION" >"$HOME_DIR.tmp/.version"
	rm -rf "$HOME_DIR"
	mv "$HOME_DIR.tmp" "$HOME_DIR"
}

start() {
	local dir=$1 port=${2:-} pid t0 heap
	[ -f "$RUNNER" ] || die "$RUNNER missing: run scripts/registry.sh install (or scripts/deps.sh)"
	command -v "$JAVA" >/dev/null || die "java not found (Apicurio Registry 2.6 needs Java 17+)"
	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	if [ -f "$dir/pid" ] && pid_alive "$(cat "$dir/pid")"; then
		die "a registry already runs from $dir (pid $(cat "$dir/pid"))"
	fi
	t0=$(date +%s%N)
	[ -n "$port" ] || port=$(free_port)
	wait_port_free "$port" 10 || die "port $port is already in use"
	read -r -a heap <<<"${FERRY_TEST_REGISTRY_HEAP:--Xms128m -Xmx512m}"
	# Quarkus reads its working files relative to the current folder: run from DIR.
	pid=$(cd "$dir" && spawn "$dir/registry.log" "$JAVA" "${heap[@]}" -XX:+UseSerialGC -Djava.awt.headless=true \
		-Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$port" \
		-jar "$RUNNER")
	echo "$pid" >"$dir/pid"
	echo "$port" >"$dir/port"
	wait_ready "$pid" "$dir" "$dir/registry.log" "${FERRY_TEST_REGISTRY_START_TIMEOUT:-90}" "registry on port $port" http_ok "$port" /apis/ccompat/v7/schemas/types
	echo "registry.sh: Apicurio Registry pid $pid ready on 127.0.0.1:$port in $((($(date +%s%N) - t0) / 1000000)) ms" >&2
	echo "http://127.0.0.1:$port/apis/ccompat/v7"
}

case "${1:-}" in
install) install ;;
start)
	[ $# -ge 2 ] || usage
	start "$2" "${3:-}"
	;;
stop)
	[ $# -ge 2 ] || usage
	stop_pidfile "$2" 10
	;;
*) usage ;;
esac
