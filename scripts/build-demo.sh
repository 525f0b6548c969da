#!/usr/bin/env bash
# Builds the demo app's images stagecraft-demo:v1, :v2, :v2-bad and :v2-hang
# from a static Go binary in FROM scratch images (no registry needed).
source "$(dirname "$0")/lib.sh"

build_image() { # TAG VERSION FAIL_AFTER [HANG_AFTER]
  local tag=$1 version=$2 fail=$3 hang=${4:-} ctx
  ctx=$(mktemp -d)
  CGO_ENABLED=0 go build -C "$ROOT" -trimpath \
    -ldflags "-s -w -X main.version=$version -X main.failAfter=$fail -X main.hangAfter=$hang" \
    -o "$ctx/demo-app" ./deployments/demo-app
  cp "$ROOT/deployments/demo-app/Dockerfile" "$ctx/"
  if ! DOCKER_BUILDKIT=0 docker build -q -t "stagecraft-demo:$tag" "$ctx" >"$ctx/build.log" 2>&1; then
    cat "$ctx/build.log" >&2
    die "building stagecraft-demo:$tag failed"
  fi
  rm -rf "$ctx"
}

build_image v1 v1 ""
build_image v2 v2 ""
# v2-bad answers /healthz with 500 three seconds after it starts.
build_image v2-bad v2-bad 3
# v2-hang accepts connections and never answers, five seconds after it starts.
build_image v2-hang v2-hang "" 5
say "built images stagecraft-demo:v1, :v2, :v2-bad, :v2-hang"
