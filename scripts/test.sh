#!/usr/bin/env bash
# make test: builds the pinned Temporal CLI and the Kubernetes control plane
# binaries (both cached outside the repo), makes sure a Docker
# engine runs (installing and starting one as root if needed), builds the
# demo images, then runs vet and every test: unit, replay, and integration
# against a real Temporal dev server, the real Docker engine and a real
# Kubernetes control plane (started and stopped by the tests themselves). Stops the
# Docker engine again if it started it.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

say "Temporal CLI"
TEMPORAL=$(bash scripts/temporal.sh)
say "Docker engine"
started_docker=0
[ -f "$DATA/dockerd.pid" ] || started_docker=1
bash scripts/docker.sh
if [ $started_docker = 1 ] && [ -f "$DATA/dockerd.pid" ]; then
  trap 'bash scripts/docker.sh stop' EXIT
fi
say "Prometheus (Debian's package; the tests start their own instances)"
bash scripts/prometheus.sh install
say "PostgreSQL server binaries (Debian's postgresql, for the audit store tests)"
bash scripts/postgres.sh install
say "Kubernetes control plane binaries v1.33.13 + KWOK (built once into the cache, about 9 minutes cold)"
bash scripts/kube/build.sh
say "demo images"
bash scripts/build-demo.sh
say "go vet and gofmt"
go vet ./... && go vet -tags integration ./...
unformatted=$(gofmt -l $(git ls-files '*.go'))
[ -z "$unformatted" ] || die "gofmt needed: $unformatted"

say "tests: unit, replay and integration (real dev server, Docker engine, Kubernetes control plane)"
run_flag=()
[ -n "${STAGECRAFT_TEST_RUN:-}" ] && run_flag=(-run "$STAGECRAFT_TEST_RUN")
# The pipeline's statuses are read before anything else runs: go test's is
# the one that counts (grep finding nothing must not hide it, nor may a
# "|| true" replace it).
set +e
STAGECRAFT_TEMPORAL_BIN="$TEMPORAL" go test -tags integration -count=1 -timeout 30m "${run_flag[@]}" ./... 2>&1 \
  | tee "$DATA/test.log" | grep -E '^(ok|FAIL|---|panic|\s+--- FAIL|.*_test.go:[0-9]+:)'
status=${PIPESTATUS[0]}
set -e
summary=$(grep -cE '^\s*--- PASS' "$DATA/test.log" || true)
failed=$(grep -cE '^\s*--- FAIL' "$DATA/test.log" || true)
if [ "$status" != 0 ]; then
  say "FAILED (full log: .data/test.log)"
  grep -E -A30 -- '--- FAIL' "$DATA/test.log" | head -200
  exit "$status"
fi
say "all tests passed (full log: .data/test.log)"
