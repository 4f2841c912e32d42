# ferry: make demo (see it work) and make test (prove it works).
SHELL := /bin/bash
GO ?= go
GOLANGCI_LINT_VERSION ?= v2.15.0
INTEGRATION_TIMEOUT ?= 30m
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)

.PHONY: all build deps demo test test-unit test-chart test-integration chaos soak bench bench-micro bench-e2e lint fmt vet clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o bin/ferry ./cmd/ferry

# Installs what the tests and the demo need: Kafka broker jars (Maven), the
# Kinesis emulators (npm), Go modules, helm and the chart test's validators
# (Go module proxy, PyPI). Idempotent.
deps:
	scripts/deps.sh

# Starts a real Kafka broker and kinesis-mock, produces sample events, runs
# ferry, reads the stream back and prints a summary, then stops everything.
demo: deps build
	scripts/demo.sh

# Unit tests with the race detector, the Helm chart and Dockerfile checks, then
# the end-to-end suite on real Kafka and the Kinesis emulators (started by the
# tests themselves).
test: deps test-unit test-chart test-integration

test-unit:
	$(GO) vet ./...
	$(GO) test -race -count=1 ./...

# deploy/helm/ferry and the Dockerfile without a cluster or Docker: helm lint
# and template per value set, offline schema validation, ferry loading each
# rendered config (scripts/chart-test.sh; its tools come from scripts/deps.sh).
test-chart:
	scripts/chart-test.sh

test-integration:
	$(GO) test -tags integration -count=1 -timeout $(INTEGRATION_TIMEOUT) -v ./integration/ 2>&1 | tee .cache/integration.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic|\s+\S+_test.go)' ; rc=$${PIPESTATUS[0]}; [ $$rc = 0 ] || scripts/failures.sh .cache/integration.log; exit $$rc

# The fault matrix at full size (RELIABILITY.md section (c)): more records,
# longer outages and throttling, more bounce rounds.
chaos: deps
	FERRY_TEST_CHAOS=1 $(GO) test -tags integration -count=1 -timeout 120m -v -run 'TestScenario' ./integration/ 2>&1 | tee .cache/chaos.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|violations|_test.go' ; rc=$${PIPESTATUS[0]}; [ $$rc = 0 ] || scripts/failures.sh .cache/chaos.log; exit $$rc

# Scenario 24, the randomized nemesis mix, for as long as asked:
#   make soak DURATION=30m
DURATION ?= 30m
soak: deps
	FERRY_TEST_SOAK_DURATION=$(DURATION) $(GO) test -tags integration -count=1 -timeout 0 -v -run 'TestScenario24' ./integration/ 2>&1 | tee .cache/soak.log | grep -E '^(=== RUN|--- |PASS|FAIL|ok|panic)|violations|P[1-6]|_test.go' ; exit $${PIPESTATUS[0]}

# End-to-end benchmark on this machine: real Kafka, ferry into the fast sink
# and into kinesalite, against a consume-only and an SDK-only ceiling, 3 runs
# of each variant; writes docs/benchmarks.md.
bench:
	scripts/bench.sh -write-doc

# Micro-benchmarks of the packages.
bench-micro:
	$(GO) test -run '^$$' -bench . -benchmem ./mapping ./offsets ./connector ./aggregation ./shardmap ./ratelimit

fmt:
	gofmt -w $$(git ls-files '*.go')

vet:
	$(GO) vet ./...
	$(GO) vet -tags integration ./...

lint: vet
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION) run --build-tags integration ./...

clean:
	rm -rf bin

# End-to-end throughput into kinesalite only, as a Go benchmark:
# FERRY_TEST_BENCH_RECORDS (default 100000) records of 256 bytes, 12 partitions, 4 shards.
bench-e2e: deps
	$(GO) test -tags integration -run '^$$' -bench EndToEndKinesalite -benchtime 3x -timeout 30m ./integration/
