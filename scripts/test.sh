#!/usr/bin/env bash
# make test: builds the pinned Temporal CLI and the Kubernetes control plane
# binaries (both cached outside the repo), makes sure a Docker
# engine runs (installing and starting one as root if needed), builds the
# demo images, then runs vet and every test: unit, replay, and integration
# against a real Temporal dev server, the real Docker engine and a real
# Kubernetes control plane (started and stopped by the tests themselves;
# internal/realnode's with the real node: kubelet + containerd, real pods),
# then the fault suite's bounded form on its own (it restarts dockerd, so
# nothing else may run beside it). Stops the Docker engine again if it
# started it.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

engines all
say "go vet and gofmt"
go vet ./... && go vet -tags integration ./... && go vet -tags faults ./internal/faults && go vet -tags failpoints ./worker
unformatted=$(gofmt -l $(git ls-files '*.go'))
[ -z "$unformatted" ] || die "gofmt needed: $unformatted"

say "tests: unit, replay and integration (real dev server, Docker engine, Kubernetes control plane)"
run_flag=()
[ -n "${STAGECRAFT_TEST_RUN:-}" ] && run_flag=(-run "$STAGECRAFT_TEST_RUN")
# The pipeline's statuses are read before anything else runs: go test's is
# the one that counts (grep finding nothing must not hide it, nor may a
# "|| true" replace it). Packages run side by side; the longest is the
# end-to-end suite of the whole system (internal/e2e, about 15 minutes).
set +e
STAGECRAFT_TEMPORAL_BIN="$TEMPORAL" go test -tags integration -count=1 -timeout 30m "${run_flag[@]}" ./... 2>&1 \
  | tee "$DATA/test.log" | grep -E '^(ok|FAIL|---|panic|\s+--- FAIL|.*_test.go:[0-9]+:)'
status=${PIPESTATUS[0]}
set -e
if [ "$status" != 0 ]; then
  say "FAILED (full log: .data/test.log)"
  grep -E -A30 -- '--- FAIL' "$DATA/test.log" | head -200
  exit "$status"
fi

if [ -z "${STAGECRAFT_TEST_RUN:-}" ]; then
  say "fault suite, bounded form (worker kills, dev server restart, PostgreSQL and dockerd outages, apiserver faults; make faults runs the whole matrix)"
  set +e
  STAGECRAFT_TEMPORAL_BIN="$TEMPORAL" go test -tags faults -count=1 -timeout 30m -v ./internal/faults 2>&1 \
    | tee "$DATA/faults.log" | grep -E '^(ok|FAIL|---|panic|\s+--- FAIL|.*_test.go:[0-9]+:)'
  status=${PIPESTATUS[0]}
  set -e
  if [ "$status" != 0 ]; then
    say "FAILED (full log: .data/faults.log)"
    grep -E -A30 -- '--- FAIL' "$DATA/faults.log" | head -200
    exit "$status"
  fi
fi
say "all tests passed (full logs: .data/test.log, .data/faults.log)"
