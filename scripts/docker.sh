#!/usr/bin/env bash
# Makes sure a Docker engine answers on the local socket. When none does and
# we are root, installs Debian's docker.io if needed and starts dockerd in the
# background, writing its PID to .data/dockerd.pid (scripts/docker.sh stop
# stops it). Otherwise explains what is missing.
source "$(dirname "$0")/lib.sh"

PIDFILE="$DATA/dockerd.pid"

engine_up() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

case "${1:-start}" in
stop)
  if [ -f "$PIDFILE" ]; then
    say "stopping the Docker engine we started (pid $(cat "$PIDFILE"))"
    stop_pidfile "$PIDFILE"
  fi
  exit 0 ;;
start) ;;
*) die "usage: $0 [start|stop]" ;;
esac

if engine_up; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  die "no Docker engine answers on ${DOCKER_HOST:-/var/run/docker.sock}. Start one (or run as root, and this script installs Debian's docker.io and starts dockerd)."
fi
if ! command -v dockerd >/dev/null; then
  say "installing Debian's docker.io (dockerd is missing)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
say "starting dockerd in the background (log: .data/dockerd.log)"
# Its own session: a caller whose process group is killed (a test that
# restarted the engine, a CI step) does not take the engine with it.
setsid nohup dockerd --host unix:///var/run/docker.sock >"$DATA/dockerd.log" 2>&1 </dev/null &
echo $! >"$PIDFILE"
wait_for "the Docker engine (see .data/dockerd.log)" 60 engine_up
say "Docker engine $(docker version --format '{{.Server.Version}}') is up"
