#!/usr/bin/env bash
# deps.sh installs everything ferry's tests and demo need on a fresh machine, and is quick when it
# has run before:
#   - Java 17+, Maven, Node and npm through apt-get when missing (root on Debian only);
#   - the npm packages pinned in package.json / package-lock.json (kinesis-local = kinesis-mock,
#     kinesalite, aws-kinesis-agg) with `npm ci`, skipped when node_modules matches the lock file;
#   - the Apache Kafka jars (scripts/kafka.sh install, into $FERRY_TEST_CACHE/kafka/libs);
#   - Apicurio Registry 2.6.13.Final, the schema registry of the decode tests (Maven Central,
#     about 140 MB; scripts/registry.sh install, into $FERRY_TEST_CACHE/apicurio);
#   - prometheus and promtool from Debian's prometheus package (2.42 on bookworm), unpacked with
#     `apt-get download` + `dpkg -x` into $FERRY_TEST_CACHE/prometheus/bin, so no service is
#     installed or started (integration/observability_test.go runs them);
#   - moto[server] 5.2.5 (PyPI) in a virtualenv, $FERRY_TEST_CACHE/venv-moto: the STS, IAM and
#     Kinesis emulator of integration/credentials_test.go (scripts/moto.sh runs it);
#   - the Go modules (go mod download);
#   - what the chart test needs (scripts/chart-test.sh install, into $FERRY_TEST_CACHE/chart):
#     helm built once from the Go module proxy, a virtualenv with kubernetes-validate and
#     jsonschema from PyPI, the KEDA and Prometheus Operator CRDs from their Go module zips.
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
command -v python3 >/dev/null || need+=(python3)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
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

# Prometheus: `apt-get install prometheus` would also enable and start a system service, so only
# the two binaries are taken out of the .deb (they are static apart from libc).
prom_bin=${FERRY_TEST_CACHE:-$REPO/.cache}/prometheus/bin
if [ ! -x "$prom_bin/prometheus" ] || [ ! -x "$prom_bin/promtool" ]; then
	if ! command -v apt-get >/dev/null || ! command -v dpkg >/dev/null; then
		echo "deps.sh: no apt-get/dpkg; put prometheus and promtool (2.42+) into $prom_bin" >&2
		exit 1
	fi
	if ! apt-cache show prometheus >/dev/null 2>&1; then
		[ "$(id -u)" = 0 ] || { echo "deps.sh: apt has no prometheus package; run apt-get update as root" >&2; exit 1; }
		DEBIAN_FRONTEND=noninteractive apt-get update -qq
	fi
	echo "deps.sh: prometheus into $prom_bin" >&2
	prom_tmp=$(mktemp -d)
	# As root, apt downloads as the _apt user, which cannot write to the private temp folder.
	(cd "$prom_tmp" && apt-get download -qq -o APT::Sandbox::User="$(id -un)" prometheus)
	dpkg -x "$prom_tmp"/prometheus_*.deb "$prom_tmp/root"
	mkdir -p "$prom_bin"
	cp "$prom_tmp/root/usr/bin/prometheus" "$prom_tmp/root/usr/bin/promtool" "$prom_bin/"
	rm -rf "$prom_tmp"
fi

# moto (PyPI moto[server]), the STS, IAM and Kinesis emulator of the credential tests, in a virtualenv
# of its own; rebuilt only when the pinned version or the Python changed.
moto_pin="moto[server]==5.2.5"
moto_venv=${FERRY_TEST_CACHE:-$REPO/.cache}/venv-moto
command -v python3 >/dev/null || apt_install python3 python3-venv
moto_want="$moto_pin $(python3 --version 2>&1)"
if [ ! -x "$moto_venv/bin/moto_server" ] || [ "$(cat "$moto_venv/.ferry-deps" 2>/dev/null)" != "$moto_want" ]; then
	echo "deps.sh: pip install $moto_pin into $moto_venv" >&2
	rm -rf "$moto_venv"
	if ! python3 -m venv "$moto_venv" 2>/dev/null; then
		rm -rf "$moto_venv"
		apt_install python3-venv
		python3 -m venv "$moto_venv"
	fi
	"$moto_venv/bin/pip" install -q --disable-pip-version-check "$moto_pin"
	echo "$moto_want" >"$moto_venv/.ferry-deps"
fi

scripts/kafka.sh install
scripts/registry.sh install
go mod download
scripts/chart-test.sh install
echo "deps.sh: ok" >&2
