# Stagecraft. `make run` brings up the embedded default stack and a demo
# rollout; `make test` runs the whole suite against real engines.
SHELL := /bin/bash
GO    ?= go
BIN   := bin

.PHONY: run test unit build vet fmt images image record-histories fuzz bench faults clean help

help: ## list targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

run: ## dev server + Web UI (127.0.0.1:8233), worker, Docker, demo canary v1 -> v2; Ctrl-C stops it all
	@bash scripts/run.sh

test: ## whole suite: vet, unit, replay, integration on the real dev server, Docker engine and Kubernetes control plane, bounded fault suite
	@bash scripts/test.sh

unit: ## unit and replay tests only (no engines)
	$(GO) test -count=1 ./...

build: ## build bin/worker and bin/starter
	$(GO) build -o $(BIN)/worker ./worker
	$(GO) build -o $(BIN)/starter ./starter

vet: ## go vet (with and without the integration tag) and gofmt
	$(GO) vet ./... && $(GO) vet -tags integration ./... && $(GO) vet -tags faults ./internal/faults && $(GO) vet -tags failpoints ./worker
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

images: ## build the demo app images stagecraft-demo:v1, :v2, :v2-bad, :v2-hang
	@bash scripts/docker.sh && bash scripts/build-demo.sh

image: ## build the worker image stagecraft-worker:dev (static binaries, FROM scratch, no registry)
	@bash scripts/docker.sh && bash scripts/image.sh

record-histories: ## re-record the replay histories in workflows/testdata from the real dev server
	@STAGECRAFT_RECORD_HISTORIES=1 bash scripts/test.sh

FUZZTIME ?= 30s
FUZZ_TARGETS := internal/spec:FuzzParseSpec internal/spec:FuzzParseRelease internal/spec:FuzzValidate internal/spec:FuzzDuration internal/plan:FuzzBuild

fuzz: ## run each fuzz target in turn for FUZZTIME (default 30s; the figures in docs/BENCHMARKS.md used 10m)
	@set -e; for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; \
	  echo "==> $$fn ($$pkg, $(FUZZTIME))"; \
	  $(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) -parallel 1 ./$$pkg; done

bench: ## benchmarks against the real engines (set up as make test does); prints a table (docs/BENCHMARKS.md)
	@bash scripts/bench.sh

faults: ## the fault suite's whole matrix against the real engines (set up as make test does; docs/RELIABILITY.md)
	@bash scripts/faults.sh

clean: ## remove built binaries and local state (.data)
	rm -rf $(BIN) .data
