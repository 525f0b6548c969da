# Shared helpers for Stagecraft's scripts. Source it; do not run it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DATA="$ROOT/.data"
CACHE="${STAGECRAFT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/stagecraft}"
TEMPORAL_CLI_VERSION=1.5.1
TEMPORAL_BIN="$CACHE/temporal-$TEMPORAL_CLI_VERSION/temporal"
mkdir -p "$DATA" "$CACHE"

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# wait_for DESC TIMEOUT_SECONDS CMD...: retry CMD until it succeeds.
wait_for() {
  local desc=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "timed out after ${timeout}s waiting for $desc"
    sleep 0.2
  done
}

# stop_pidfile FILE: stop the process whose PID is in FILE (TERM, then KILL).
stop_pidfile() {
  local f=$1 pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

# engines [all]: makes sure the engines the integration tests, benchmarks
# and fault suite run against are here: the pinned Temporal CLI (sets
# TEMPORAL), a Docker engine (stopped again when the script exits if this
# started it), the Kubernetes control plane binaries and the demo images;
# with "all", also Debian's prometheus and postgresql packages (the tests
# start their own instances).
engines() {
  say "Temporal CLI"
  TEMPORAL=$(bash "$ROOT/scripts/temporal.sh")
  say "Docker engine"
  local started_docker=0
  [ -f "$DATA/dockerd.pid" ] || started_docker=1
  bash "$ROOT/scripts/docker.sh"
  if [ $started_docker = 1 ] && [ -f "$DATA/dockerd.pid" ]; then
    trap 'bash "$ROOT/scripts/docker.sh" stop' EXIT
  fi
  if [ "${1:-}" = all ]; then
    say "Prometheus (Debian's package; the tests start their own instances)"
    bash "$ROOT/scripts/prometheus.sh" install
    say "PostgreSQL server binaries (Debian's postgresql, for the audit store tests)"
    bash "$ROOT/scripts/postgres.sh" install
  fi
  say "Kubernetes control plane binaries v1.33.13, kubelet + KWOK (built once into the cache, about 10 minutes cold)"
  bash "$ROOT/scripts/kube/build.sh" >/dev/null
  say "the real node's containerd, runc and CNI plugins (Debian's; kubelet is built above)"
  bash "$ROOT/scripts/kube/node-deps.sh"
  say "demo images"
  bash "$ROOT/scripts/build-demo.sh"
}
