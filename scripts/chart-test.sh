#!/usr/bin/env bash
# chart-test.sh checks the Helm chart in deploy/helm/ferry and the Dockerfile without a cluster or
# Docker (make test-chart; make test runs it).
#
#   scripts/chart-test.sh install   install what the check needs (idempotent; scripts/deps.sh runs it)
#   scripts/chart-test.sh           install (a no-op when done), then check: helm lint --strict and
#                                   helm template for each value set, every object validated offline
#                                   (kubernetes-validate --strict for the built-in kinds, the KEDA and
#                                   Prometheus Operator CRD schemas for the custom ones), ferry itself
#                                   loading the rendered config with the pod's environment, and the
#                                   chart's rules; prints PASS/FAIL per check and "N passed, N failed"
#                                   (the checks are in scripts/chart-test.py)
#
# What install puts under $FERRY_TEST_CACHE/chart, from the Go module proxy and PyPI only:
#   helm-$HELM_VERSION/helm  built once with go install (the Kubernetes libraries take minutes to
#                            compile on 2 cores), stamped like a release build
#   venv/                    kubernetes-validate (Kubernetes 1.25-1.37 schemas) and jsonschema
#   crds/                    the ScaledObject CRD from the keda module zip and the ServiceMonitor CRD
#                            from the prometheus-operator module zip
#
# Environment: FERRY_TEST_CACHE (default REPO/.cache), PYTHON (default python3).
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HELM_VERSION=v3.22.0
# helm v3.22.0 is built against k8s.io/client-go v0.37.0; its Makefile stamps these so that the
# default capabilities (helm install --dry-run, lint) say Kubernetes 1.37, not the fallback 1.20.
HELM_LDFLAGS="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in pkg/chartutil pkg/lint/rules; do
	HELM_LDFLAGS+=" -X helm.sh/helm/v3/$pkg.k8sVersionMajor=1 -X helm.sh/helm/v3/$pkg.k8sVersionMinor=37"
done
PIP_PINS=(kubernetes-validate==1.37.0 jsonschema==4.26.0 PyYAML==6.0.4)
KEDA_MODULE=github.com/kedacore/keda/v2@v2.21.0
KEDA_CRD=config/crd/bases/keda.sh_scaledobjects.yaml
PROM_MODULE=github.com/prometheus-operator/prometheus-operator@v0.85.0
PROM_CRD=example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml

DIR=$FERRY_TEST_CACHE/chart
HELM=$DIR/helm-$HELM_VERSION/helm
VENV=$DIR/venv
CRDS=$DIR/crds
PYTHON=${PYTHON:-python3}

# fresh DIR STAMP: DIR/.stamp holds STAMP.
fresh() { [ -f "$1/.stamp" ] && [ "$(cat "$1/.stamp")" = "$2" ]; }

install_helm() {
	local dir=${HELM%/helm} want="$HELM_VERSION $HELM_LDFLAGS"
	if [ -x "$HELM" ] && fresh "$dir" "$want"; then
		return 0
	fi
	echo "chart-test.sh: building helm $HELM_VERSION (once; a few minutes on 2 cores)" >&2
	rm -rf "$dir.tmp"
	mkdir -p "$dir.tmp"
	local start=$SECONDS
	GOBIN=$dir.tmp go install -trimpath -ldflags "$HELM_LDFLAGS" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
	echo "$want" >"$dir.tmp/.stamp"
	rm -rf "$dir"
	mv "$dir.tmp" "$dir"
	echo "chart-test.sh: helm built in $((SECONDS - start)) s" >&2
}

install_venv() {
	local want
	want="$("$PYTHON" --version 2>&1) ${PIP_PINS[*]}"
	if [ -x "$VENV/bin/kubernetes-validate" ] && fresh "$VENV" "$want"; then
		return 0
	fi
	"$PYTHON" -c 'import ensurepip, venv' 2>/dev/null ||
		die "$PYTHON has no venv module (Debian: apt-get install python3-venv; scripts/deps.sh does it)"
	echo "chart-test.sh: pip install ${PIP_PINS[*]} into $VENV" >&2
	rm -rf "$VENV"
	"$PYTHON" -m venv "$VENV"
	"$VENV/bin/pip" install --quiet --disable-pip-version-check "${PIP_PINS[@]}"
	echo "$want" >"$VENV/.stamp"
}

# module_file MODULE@VERSION PATH: the file at PATH in the module's zip, from the Go module cache
# (downloaded through the Go module proxy when missing). Run outside this module so that its go.mod
# and go.sum stay untouched.
module_file() {
	local tmp dir
	tmp=$(mktemp -d)
	dir=$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "$1" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	rmdir "$tmp"
	[ -n "$dir" ] && [ -f "$dir/$2" ] || die "$2 not found in $1 (go mod download -json $1)"
	echo "$dir/$2"
}

install_crds() {
	local want="$KEDA_MODULE $KEDA_CRD $PROM_MODULE $PROM_CRD"
	if fresh "$CRDS" "$want"; then
		return 0
	fi
	echo "chart-test.sh: CRDs from $KEDA_MODULE and $PROM_MODULE" >&2
	rm -rf "$CRDS.tmp"
	mkdir -p "$CRDS.tmp"
	cp "$(module_file "$KEDA_MODULE" "$KEDA_CRD")" "$CRDS.tmp/scaledobjects.keda.sh.yaml"
	cp "$(module_file "$PROM_MODULE" "$PROM_CRD")" "$CRDS.tmp/servicemonitors.monitoring.coreos.com.yaml"
	chmod u+w "$CRDS.tmp"/*.yaml
	echo "$want" >"$CRDS.tmp/.stamp"
	rm -rf "$CRDS"
	mv "$CRDS.tmp" "$CRDS"
}

install() {
	command -v go >/dev/null || die "go is not installed"
	mkdir -p "$DIR"
	install_helm
	install_venv
	install_crds
}

case "${1:-check}" in
install)
	install
	;;
check)
	install
	cd "$REPO"
	# ferry loads each rendered config as the pod would; build it from this tree. A failed build is
	# one failed check: the others still run.
	ferry=$DIR/ferry
	rm -f "$ferry"
	go build -o "$ferry" ./cmd/ferry || ferry=
	exec "$VENV/bin/python" "$REPO/scripts/chart-test.py" \
		--repo "$REPO" --helm "$HELM" --ferry "$ferry" --crds "$CRDS" \
		--kubernetes-validate "$VENV/bin/kubernetes-validate"
	;;
*)
	sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
	;;
esac
