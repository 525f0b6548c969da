#!/usr/bin/env bash
# Prints the path of the pinned Temporal CLI, building it with `go install`
# into a cache outside the repo (keyed by version) the first time.
source "$(dirname "$0")/lib.sh"

if [ ! -x "$TEMPORAL_BIN" ]; then
  say "building the Temporal CLI v$TEMPORAL_CLI_VERSION into $(dirname "$TEMPORAL_BIN") (first time only, about 4 minutes)"
  tmp="$(dirname "$TEMPORAL_BIN").tmp.$$"
  mkdir -p "$tmp"
  (cd /tmp && GOBIN="$tmp" CGO_ENABLED=0 go install \
    -ldflags "-s -w -X github.com/temporalio/cli/temporalcli.Version=$TEMPORAL_CLI_VERSION" \
    "github.com/temporalio/cli/cmd/temporal@v$TEMPORAL_CLI_VERSION")
  rm -rf "$(dirname "$TEMPORAL_BIN")"
  mv "$tmp" "$(dirname "$TEMPORAL_BIN")"
fi
echo "$TEMPORAL_BIN"
