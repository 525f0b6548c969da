#!/usr/bin/env bash
# make faults: the fault suite's whole matrix (STAGECRAFT_FAULTS=full)
# against the real engines, set up as make test does: every strategy on
# Docker and Kubernetes with the worker SIGKILLed at each activity boundary
# and mid-bake, a file-backed dev server restarted mid-bake, a 60 s
# PostgreSQL outage, a 10-minute PostgreSQL outage through which a second
# rollout of the same target starts and succeeds (its trails written once
# the database is back), dockerd restarted mid-stage, apiserver faults through a
# proxy, a missing image and a rollback that fails. Prints one line per
# case; the full log is .data/faults-full.log. See docs/RELIABILITY.md.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
engines all
say "fault suite, whole matrix (about 40 minutes; STAGECRAFT_FAULTS_RUN narrows it, a go test -run regexp)"
run_flag=()
[ -n "${STAGECRAFT_FAULTS_RUN:-}" ] && run_flag=(-run "$STAGECRAFT_FAULTS_RUN")
set +e
STAGECRAFT_FAULTS=full STAGECRAFT_TEMPORAL_BIN="$TEMPORAL" go test -tags faults -count=1 -timeout 120m -v \
  "${run_flag[@]}" ./internal/faults 2>&1 \
  | tee "$DATA/faults-full.log" | grep --line-buffered -E '^(ok|FAIL|---|panic|\s+--- (FAIL|PASS)|.*_test.go:[0-9]+:)'
status=${PIPESTATUS[0]}
set -e
[ "$status" = 0 ] && say "fault suite passed (full log: .data/faults-full.log)" || say "FAILED (full log: .data/faults-full.log)"
exit "$status"
