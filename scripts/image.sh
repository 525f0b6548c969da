#!/usr/bin/env bash
# Builds the image stagecraft-worker:dev (override with IMAGE=name:tag) from
# the repo's Dockerfile: static worker and starter binaries (CGO_ENABLED=0)
# in a FROM scratch image, so no base image is pulled. The build stages a
# root filesystem under bin/image/ — the only thing .dockerignore lets into
# the build context — with the host's CA certificates when it has them
# (Temporal Cloud, an HTTPS webhook or a TLS PostgreSQL need them).
# `docker compose build` uses the same Dockerfile: run this first.
source "$(dirname "$0")/lib.sh"

IMAGE=${IMAGE:-stagecraft-worker:dev}
GOARCH=${GOARCH:-$(go env GOARCH)}
STAGE="$ROOT/bin/image"
CA=/etc/ssl/certs/ca-certificates.crt

say "building static worker and starter (linux/$GOARCH) into $STAGE"
rm -rf "$STAGE"
mkdir -p "$STAGE/usr/local/bin" "$STAGE/etc/ssl/certs"
for cmd in worker starter; do
  CGO_ENABLED=0 GOOS=linux GOARCH=$GOARCH go build -C "$ROOT" -trimpath -ldflags "-s -w" \
    -o "$STAGE/usr/local/bin/$cmd" "./$cmd"
done
if [ -f "$CA" ]; then
  cp "$CA" "$STAGE/etc/ssl/certs/ca-certificates.crt"
else
  say "no $CA on this host: the image has no CA certificates (TLS to public endpoints will fail)"
fi

# The classic builder (DOCKER_BUILDKIT=0) needs nothing beyond the engine.
say "building image $IMAGE"
log=$(mktemp)
if ! DOCKER_BUILDKIT=0 docker build -t "$IMAGE" -f "$ROOT/Dockerfile" "$ROOT" >"$log" 2>&1; then
  cat "$log" >&2
  rm -f "$log"
  die "building $IMAGE failed"
fi
rm -f "$log"
say "built $IMAGE ($(docker image inspect -f '{{.Size}}' "$IMAGE" | awk '{printf "%.1f MB", $1/1e6}')); run: docker run --rm $IMAGE --help"
