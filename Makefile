# Sluice developer entry points. `make help` lists them.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO        ?= go
GOBIN     ?= $(shell $(GO) env GOPATH)/bin
export PATH := $(GOBIN):$(PATH)
MODULES   := $(shell $(GO) work edit -json | sed -n 's/.*"DiskPath": "\(.*\)".*/\1/p')
SERVICES  := ingest-gateway schema-registry s3-sink search-sink kafka-exporter
BIN       := $(CURDIR)/bin
TEST_FLAGS ?= -race -shuffle=on -timeout 20m
BENCH     ?= .
BENCHTIME ?= 1x
MICRO_BENCH ?= BinaryFromJSON|ParseBatch

PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.5.1
HELM_VERSION               := v3.19.0

VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS   := -X github.com/sluicehq/sluice/pkg/version.Version=$(VERSION) -X github.com/sluicehq/sluice/pkg/version.Revision=$(REVISION)

include deployments/docker.mk

.PHONY: help
help: ## show this help
	@grep -hE '^[a-zA-Z0-9_%-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

.PHONY: tools
tools: ## install what builds and tests need (idempotent: only what is missing)
	@scripts/tools.sh

.PHONY: build
build: ## build every service binary into bin/
	@mkdir -p $(BIN)
	@for s in $(SERVICES); do echo "build $$s"; (cd services/$$s && CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o $(BIN)/$$s .); done
	@(cd scripts/devstack && $(GO) build -o $(BIN)/devstack .)

.PHONY: run
run: build ## run the whole pipeline locally on embedded Kafka, S3 and Elasticsearch (Ctrl-C stops it)
	@$(BIN)/devstack -bin $(BIN) -data $(CURDIR)/.devstack

.PHONY: test
test: tools ## run every module's tests with -race -shuffle=on (installs test tools first)
	@fail=0; for m in $(MODULES); do echo "== go test $$m"; (cd $$m && $(GO) test $(TEST_FLAGS) ./...) || fail=1; done; exit $$fail

.PHONY: fresh-check
fresh-check: ## make test from a clean copy of this tree with empty Go module/build caches and tools (slow; run it before calling a change done)
	@scripts/fresh-check.sh

.PHONY: bench
bench: tools ## run every benchmark (services, registry, sinks, exporter, whole pipeline) and print one table
	@mkdir -p $(BIN); : > $(BIN)/bench.txt
	@# System benchmarks size their own work per iteration (-benchtime 1x);
	@# micro-benchmarks ($(MICRO_BENCH)) need the usual 1s of iterations.
	@for m in $(MODULES); do (cd $$m && $(GO) test -run '^$$' -bench '$(BENCH)' -skip '$(MICRO_BENCH)' -benchtime $(BENCHTIME) -timeout 30m ./... 2>&1 | grep -v '^{' ) | tee -a $(BIN)/bench.txt; done
	@for m in $(MODULES); do (cd $$m && $(GO) test -run '^$$' -bench '$(MICRO_BENCH)' -benchmem ./... 2>&1 | grep -v '^{' | { grep -E '^(pkg:|Benchmark)' || true; } ) | tee -a $(BIN)/bench.txt; done
	@echo; echo "Machine: $$(nproc) cores, $$(free -g | awk '/Mem:/{print $$2}') GiB, $$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
	@cd scripts/e2e && $(GO) run ./cmd/benchtable < $(BIN)/bench.txt | tee $(BIN)/bench-table.md

.PHONY: lint
lint: ## gofmt and go vet over every module
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^pkg/gen/')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@for m in $(MODULES); do (cd $$m && $(GO) vet ./...); done
	@if command -v golangci-lint >/dev/null; then for m in $(MODULES); do (cd $$m && golangci-lint run --enable-only=errcheck,govet,staticcheck,ineffassign,unused ./...); done; fi

.PHONY: tidy-check
tidy-check: ## fail when any go.mod/go.sum is not tidy
	@for m in $(MODULES); do (cd $$m && $(GO) mod tidy -diff) || { echo "go.mod not tidy in $$m (run: cd $$m && go mod tidy)"; exit 1; }; done

.PHONY: proto
proto: tools ## regenerate pkg/gen from proto/
	@protoc -I proto --go_out=pkg/gen --go_opt=paths=source_relative \
		--go-grpc_out=pkg/gen --go-grpc_opt=paths=source_relative \
		$$(find proto -name '*.proto' | sort)

.PHONY: proto-check
proto-check: proto ## fail when generated code differs from proto/
	@git diff --exit-code -- pkg/gen || { echo "pkg/gen is stale: run make proto and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- pkg/gen)" || { echo "untracked generated files in pkg/gen"; exit 1; }

.PHONY: ci
ci: lint tidy-check proto-check test ## everything CI runs

.PHONY: release-snapshot
release-snapshot: ## binaries for linux/amd64+arm64, one OCI archive per service, the packaged chart, all in dist/ (buildah, no Docker engine; BASE_IMAGE= pulls a base instead of building the offline one)
	@rm -rf dist/bin dist/images dist/chart
	@VERSION=$(VERSION) REVISION=$(REVISION) scripts/release.sh binaries $$([ -n "$${BASE_IMAGE:-}" ] || echo base) images chart

.PHONY: clean
clean: ## remove build output and local dev-stack data
	rm -rf $(BIN) .devstack dist
