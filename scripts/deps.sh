#!/usr/bin/env bash
# deps.sh installs everything ferry's tests and demo need on a fresh machine, and is quick when it
# has run before:
#   - Java 17+, Maven, Node and npm through apt-get when missing (root on Debian only);
#   - the npm packages pinned in package.json / package-lock.json (kinesis-local = kinesis-mock,
#     kinesalite, aws-kinesis-agg) with `npm ci`, skipped when node_modules matches the lock file;
#   - the Apache Kafka jars (scripts/kafka.sh install, into $FERRY_TEST_CACHE/kafka/libs);
#   - the Go modules (go mod download).
# Environment: FERRY_TEST_CACHE, FERRY_TEST_MAVEN_REPO (see scripts/kafka.sh).
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"

apt_install() {
	if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
		echo "deps.sh: apt-get install $*" >&2
		DEBIAN_FRONTEND=noninteractive apt-get update -qq
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
	else
		echo "deps.sh: missing $*; install it (need root and apt-get to do it here)" >&2
		exit 1
	fi
}
need=()
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
command -v go >/dev/null || { echo "deps.sh: go is not installed" >&2; exit 1; }

# npm ci wipes node_modules, so run it only when the lock file or node changed.
stamp=node_modules/.ferry-deps
want="$(sha256sum package-lock.json | cut -d' ' -f1) node-$(node --version)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
	echo "deps.sh: npm ci" >&2
	npm ci --no-audit --no-fund --loglevel=error
	echo "$want" >"$stamp"
fi

scripts/kafka.sh install
go mod download
echo "deps.sh: ok" >&2
