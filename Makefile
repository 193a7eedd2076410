# centra build and test entry points. `make test` is the one test command
# (README and .ci/run call it).
GO ?= go
BIN := bin/centra
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/centra-cloud/centra/internal/cli.Version=$(VERSION)

include tools.mk

.PHONY: build test test-unit test-promql test-e2e test-faults test-faults-ci vet fmt-check bench bench-etcd clean

build:
	$(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) .

# Every test: unit and integration tests, then the end-to-end suite against
# real centra processes.
test: vet fmt-check test-unit test-promql test-e2e test-faults-ci

test-unit:
	$(GO) test -count=1 -timeout 15m ./...

# Prometheus's own PromQL test scripts over flaredb/tsdb's storage: a module
# of its own, so that promqltest's dependencies stay out of go.mod.
test-promql:
	cd flaredb/tsdb/promqlcompat && $(GO) vet ./... && $(GO) test -count=1 ./...

test-e2e: build
	$(GO) test -count=1 -timeout 50m -tags e2e ./e2e/... -centra-bin=$(CURDIR)/$(BIN)

# Fault injection with linearizability checking (e2e/faults; make test runs
# only its bounded subset, test-faults-ci): RUNS seeded runs in all, of
# DURATION each: half of them (rounded up) on a Chainfire cluster of NODES
# control-plane nodes, then the other half on FlareDB (a strong and an
# eventual namespace on four stores); with ONLY chainfire or flaredb all RUNS
# go to that store. SEED is the first run's seed of each store (default:
# from the clock), FAULTS the fault kinds drawn from (default all; each store
# takes those that apply to it); prints a summary table per store. KEEP=1
# keeps every run's directory (the nodes' data and logs; the path is logged);
# TLS=1 runs every cluster with mutual TLS on every listener.
RUNS ?= 2
DURATION ?= 20s
SEED ?= 0
NODES ?= 3
FAULTS ?= all
ONLY ?= Chainfire|FlareDB
test-faults: build
	$(GO) test -c -tags 'e2e faults' -o bin/faults.test ./e2e/faults
	cd e2e/faults && $(CURDIR)/bin/faults.test -test.run '^Test($(subst chainfire,Chainfire,$(subst flaredb,FlareDB,$(ONLY))))Faults$$' -test.timeout 0 \
		-centra-bin=$(CURDIR)/$(BIN) -runs=$(if $(findstring |,$(ONLY)),$(shell echo $$(( ($(RUNS) + 1) / 2 ))),$(RUNS)) \
		-flaredb-runs=$(if $(findstring |,$(ONLY)),$(shell echo $$(( $(RUNS) / 2 ))),$(RUNS)) -seed=$(SEED) -duration=$(DURATION) -nodes=$(NODES) -faults=$(FAULTS) \
		-out=$(CURDIR)/bin/faults $(if $(KEEP),-keep) $(if $(TLS),-tls)

# The bounded subset of the fault suite that make test runs (TestFaultsCI:
# six 15 s scenarios, about three minutes; partitions and disk-full skip
# with the reason without root).
test-faults-ci: build
	$(GO) test -count=1 -timeout 10m -tags 'e2e faults' ./e2e/faults -centra-bin=$(CURDIR)/$(BIN)

vet:
	$(GO) vet ./...
	$(GO) vet -tags e2e ./e2e/...
	$(GO) vet -tags 'e2e faults' ./e2e/faults/

fmt-check:
	@out="$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/'))"; \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Throughput benchmarks (not run by make test).
bench:
	$(GO) test -run '^$$' -bench . -benchtime 5s ./shared/raftnode/ ./chainfire/...

# Chainfire against etcd on etcd's tools/benchmark, interleaved; knobs REPS,
# CASES, SCALE, PROFILE (see bench/bench-etcd.sh and docs/performance.md).
bench-etcd: build
	bench/bench-etcd.sh

clean:
	rm -rf bin
