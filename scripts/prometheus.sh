#!/usr/bin/env bash
# A real Prometheus for health checks that query it, scraping every container
# Stagecraft manages (label stagecraft.service) through its port published on
# 127.0.0.1, as found by Docker service discovery.
#
#   scripts/prometheus.sh install           Debian's prometheus, without starting its service
#   scripts/prometheus.sh start [DIR PORT]  run it on 127.0.0.1:PORT, state in DIR; prints its URL
#   scripts/prometheus.sh stop [DIR]        stop the one started in DIR
#
# DIR defaults to .data/prometheus, PORT to 9090.
source "$(dirname "$0")/lib.sh"

usage() { die "usage: $0 install | start [DIR [PORT]] | stop [DIR]"; }

# listening PORT: whether something accepts connections on 127.0.0.1:PORT.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# ready PORT: whether Prometheus on 127.0.0.1:PORT answers /-/ready with 200
# (plain bash, so no curl is needed).
ready() {
  timeout 2 bash -c '
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf "GET /-/ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3
    IFS= read -r status <&3
    [[ $status == "HTTP/1."?" 200"* ]]' _ "$1" 2>/dev/null
}

# is_prometheus PID: whether PID is a running prometheus process, so a stale
# pidfile whose PID was reused never gets someone else killed.
is_prometheus() { [ "$(cat "/proc/$1/comm" 2>/dev/null)" = prometheus ]; }

# package_daemons: PIDs of prometheus processes run by the package's user.
package_daemons() { ps -u prometheus -o pid=,comm= 2>/dev/null | awk '$2 == "prometheus" {print $1}' || true; }

# port_owners PORT: PIDs of the processes listening on PORT.
port_owners() { ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u || true; }

# stop_pid PID: TERM, a bounded wait, then KILL.
stop_pid() {
  local pid=$1
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.2; done
  kill -9 "$pid" 2>/dev/null || true
}

install() {
  if command -v prometheus >/dev/null; then
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    die "prometheus is not installed. Install Debian's package (apt-get install --no-install-recommends prometheus, and stop the service it starts), or run this as root and it does that for you."
  fi
  local before=0 daemons
  listening 9090 && before=1
  daemons=$(package_daemons)
  # Keep the package's own service from starting: invoke-rc.d asks
  # policy-rc.d, and 101 means "not allowed". Docker-built systems often have
  # one that says so already; otherwise put ours in place for the install.
  local policy=/usr/sbin/policy-rc.d backup=""
  if ! { [ -x $policy ] && { $policy prometheus start >/dev/null 2>&1; [ $? = 101 ]; }; }; then
    if [ -e $policy ]; then
      backup=$(mktemp "$policy.stagecraft.XXXXXX")
      mv $policy "$backup"
    fi
    printf '#!/bin/sh\n# Put here by stagecraft scripts/prometheus.sh for one apt-get install.\nexit 101\n' >$policy
    chmod 755 $policy
    trap "rm -f $policy; ${backup:+mv '$backup' $policy}" EXIT
  fi
  say "installing Debian's prometheus (without starting its service)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  command -v prometheus >/dev/null || die "apt-get installed prometheus, but no prometheus binary is on PATH"
  # Make sure the package did not start its daemon after all (it runs as
  # user prometheus and listens on :9090); if it did, stop that one by PID.
  sleep 1
  local pid candidates
  candidates=$(package_daemons)
  if [ $before = 0 ]; then candidates+=" $(port_owners 9090)"; fi
  for pid in $candidates; do
    if is_prometheus "$pid" && ! grep -qx "$pid" <<<"$daemons"; then
      say "the package started prometheus (pid $pid); stopping it"
      stop_pid "$pid"
    fi
  done
  if [ $before = 0 ] && listening 9090; then
    die "something listens on 127.0.0.1:9090 after installing prometheus: $(ss -Hltnp 'sport = :9090' 2>/dev/null)"
  fi
  say "prometheus $(prometheus --version 2>&1 | awk 'NR==1 {print $3}') installed"
}

# docker_host is the engine's socket as Prometheus' Docker discovery wants it.
docker_host() {
  case "${DOCKER_HOST:-}" in
  "") echo unix:///var/run/docker.sock ;;
  unix://*) echo "$DOCKER_HOST" ;;
  *) die "DOCKER_HOST=$DOCKER_HOST: only a unix socket is supported for Prometheus' Docker discovery" ;;
  esac
}

write_config() { # FILE DOCKER_HOST
  cat >"$1" <<YAML
# Written by scripts/prometheus.sh. Scrapes every container that carries the
# label stagecraft.service, through its port published on the host.
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: stagecraft-docker
    metrics_path: /metrics
    docker_sd_configs:
      - host: $2
        refresh_interval: 1s
        filters:
          - name: label
            values: [stagecraft.service]
    relabel_configs:
      # Docker discovery yields one target per port and network of a container
      # (and one per network with no port at all). Keep only TCP ports published
      # on the loopback or on every address, and scrape them on 127.0.0.1: never
      # a bridge IP. Targets of one port on several networks end up with the same
      # labels, and Prometheus scrapes identical targets once.
      - source_labels: [__meta_docker_port_public]
        regex: "[0-9]+"
        action: keep
      - source_labels: [__meta_docker_port_public_ip]
        regex: '127\.0\.0\.1|0\.0\.0\.0|::'
        action: keep
      - source_labels: [__meta_docker_port_public]
        target_label: __address__
        replacement: "127.0.0.1:\$1"
      - source_labels: [__meta_docker_container_label_stagecraft_service]
        target_label: service
      - source_labels: [__meta_docker_container_label_stagecraft_version]
        target_label: version
      - source_labels: [__meta_docker_container_label_stagecraft_role]
        target_label: role
      - source_labels: [__meta_docker_container_name]
        regex: "/?(.*)"
        target_label: container
YAML
}

start() { # DIR PORT
  local dir=$1 port=$2 pid host
  command -v prometheus >/dev/null || die "prometheus is not installed: run scripts/prometheus.sh install"
  [[ $port =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$port'"
  mkdir -p "$dir/data"
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/prometheus.pid" ]; then
    pid=$(cat "$dir/prometheus.pid")
    if is_prometheus "$pid"; then
      die "prometheus already runs from $dir (pid $pid); stop it with: scripts/prometheus.sh stop $dir"
    fi
    rm -f "$dir/prometheus.pid"
  fi
  listening "$port" && die "something already listens on 127.0.0.1:$port"
  host=$(docker_host)
  write_config "$dir/prometheus.yml" "$host"
  nohup prometheus \
    --config.file="$dir/prometheus.yml" \
    --storage.tsdb.path="$dir/data" \
    --storage.tsdb.retention.time=1d \
    --web.listen-address="127.0.0.1:$port" \
    </dev/null >"$dir/prometheus.log" 2>&1 &
  pid=$!
  echo "$pid" >"$dir/prometheus.pid"
  local deadline=$((SECONDS + 30))
  until ready "$port"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$dir/prometheus.pid"
      tail -20 "$dir/prometheus.log" >&2
      die "prometheus exited (log: $dir/prometheus.log)"
    fi
    if [ $SECONDS -ge $deadline ]; then
      tail -20 "$dir/prometheus.log" >&2
      stop_pid "$pid"
      rm -f "$dir/prometheus.pid"
      die "prometheus was not ready on 127.0.0.1:$port within 30s (log: $dir/prometheus.log)"
    fi
    sleep 0.2
  done
  say "prometheus (pid $pid) is ready on http://127.0.0.1:$port (log: $dir/prometheus.log)"
  echo "http://127.0.0.1:$port"
}

stop() { # DIR
  local f=$1/prometheus.pid pid
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if is_prometheus "$pid"; then
    say "stopping prometheus (pid $pid)"
    stop_pid "$pid"
  fi
  rm -f "$f"
}

case "${1:-}" in
install) [ $# = 1 ] || usage; install ;;
start) [ $# -le 3 ] || usage; start "${2:-$DATA/prometheus}" "${3:-9090}" ;;
stop) [ $# -le 2 ] || usage; stop "${2:-$DATA/prometheus}" ;;
*) usage ;;
esac
