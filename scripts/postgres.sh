#!/usr/bin/env bash
# A throwaway PostgreSQL (Debian's server binaries) for the audit store: its
# own cluster in a directory of ours, on 127.0.0.1 only, trust auth, no fsync.
# Never the package's cluster or service.
#
#   scripts/postgres.sh install           Debian's postgresql, without starting its cluster
#   scripts/postgres.sh start [DIR PORT]  initdb DIR/data if needed, run it on 127.0.0.1:PORT,
#                                         create role and database stagecraft; prints the DSN
#   scripts/postgres.sh stop [DIR]        stop the one started in DIR (its data stays)
#
# DIR defaults to .data/postgres, PORT to 5433 (5432 is left to the package's
# cluster). PostgreSQL refuses to run as root: as root, the cluster runs as
# the package's postgres user and DIR is handed to it; otherwise it runs as
# the current user.
source "$(dirname "$0")/lib.sh"

usage() { die "usage: $0 install | start [DIR [PORT]] | stop [DIR]"; }

# listening PORT: whether something accepts connections on 127.0.0.1:PORT.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# bindir: the newest Debian PostgreSQL server binary directory that has
# everything we run, e.g. /usr/lib/postgresql/15/bin; empty if none.
bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
    if [ -x "$d/initdb" ] && [ -x "$d/postgres" ] && [ -x "$d/pg_isready" ] && [ -x "$d/psql" ]; then
      echo "$d"
      return
    fi
  done
}

# alive PID: whether PID runs. A zombie does not: whoever adopted the
# postmaster after our shell exited may reap it late.
alive() { [ -e "/proc/$1" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

# is_postgres PID [DATADIR]: whether PID is a running postgres process (and,
# when we may look, one whose working directory is DATADIR: a postmaster
# chdirs to its data directory), so a stale pidfile whose PID was reused never
# gets someone else killed.
is_postgres() {
  alive "$1" && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = postgres ] || return 1
  [ -n "${2:-}" ] || return 0
  local cwd
  cwd=$(readlink "/proc/$1/cwd" 2>/dev/null) || return 0
  [ "$cwd" = "$2" ]
}

# package_postmasters: PIDs of the postmasters of the package's clusters
# (/var/lib/postgresql/VERSION/NAME), as their lock files name them.
package_postmasters() {
  local f pid
  for f in /var/lib/postgresql/*/*/postmaster.pid; do
    [ -f "$f" ] || continue
    pid=$(head -1 "$f")
    if [[ $pid =~ ^[0-9]+$ ]] && is_postgres "$pid"; then echo "$pid"; fi
  done
}

# port_owners PORT: PIDs of the processes listening on PORT.
port_owners() { ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u || true; }

# stop_pid PID: SIGINT (PostgreSQL's fast shutdown: abort sessions, write a
# checkpoint, exit), a bounded wait, then KILL.
stop_pid() {
  local pid=$1
  kill -INT "$pid" 2>/dev/null || return 0
  for _ in $(seq 300); do alive "$pid" || return 0; sleep 0.1; done
  say "postgres (pid $pid) did not stop within 30s; killing it"
  kill -9 "$pid" 2>/dev/null || true
  for _ in $(seq 50); do alive "$pid" || return 0; sleep 0.1; done
}

install() {
  if [ -n "$(bindir)" ]; then
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    die "PostgreSQL's server binaries (/usr/lib/postgresql/*/bin/initdb, postgres) are not installed. Install Debian's package (apt-get install --no-install-recommends postgresql, and stop the cluster it starts), or run this as root and it does that for you."
  fi
  local before=0 postmasters
  listening 5432 && before=1
  postmasters=$(package_postmasters)
  # Keep the package's own cluster from starting: invoke-rc.d asks
  # policy-rc.d, and 101 means "not allowed". Docker-built systems often have
  # one that says so already; otherwise put ours in place for the install.
  local policy=/usr/sbin/policy-rc.d backup=""
  if ! { [ -x $policy ] && { $policy postgresql start >/dev/null 2>&1; [ $? = 101 ]; }; }; then
    if [ -e $policy ]; then
      backup=$(mktemp "$policy.stagecraft.XXXXXX")
      mv $policy "$backup"
    fi
    printf '#!/bin/sh\n# Put here by stagecraft scripts/postgres.sh for one apt-get install.\nexit 101\n' >$policy
    chmod 755 $policy
    trap "rm -f $policy; ${backup:+mv '$backup' $policy}" EXIT
  fi
  say "installing Debian's postgresql (without starting its cluster)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive NEEDRESTART_SUSPEND=1 apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  [ -n "$(bindir)" ] || die "apt-get installed postgresql, but /usr/lib/postgresql/*/bin has no initdb, postgres, pg_isready and psql"
  # The package creates a default cluster (VERSION/main on :5432). Make sure
  # it did not start it after all; if it did, stop its postmaster by PID.
  sleep 1
  local pid candidates
  candidates=$(package_postmasters)
  if [ $before = 0 ]; then candidates+=" $(port_owners 5432)"; fi
  for pid in $candidates; do
    if is_postgres "$pid" && ! grep -qx "$pid" <<<"$postmasters"; then
      say "the package started a postgres cluster (pid $pid); stopping it"
      stop_pid "$pid"
    fi
  done
  if [ $before = 0 ] && listening 5432; then
    die "something listens on 127.0.0.1:5432 after installing postgresql: $(ss -Hltnp 'sport = :5432' 2>/dev/null)"
  fi
  say "PostgreSQL $("$(bindir)/postgres" --version | awk '{print $3}') installed ($(bindir))"
}

start() { # DIR PORT
  local dir=$1 port=$2 bin pid as=() deadline
  bin=$(bindir)
  [ -n "$bin" ] || die "PostgreSQL's server binaries are not installed: run scripts/postgres.sh install"
  [[ $port =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$port'"
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || die "no postgres user (Debian's postgresql package creates it): run scripts/postgres.sh install"
    # setpriv execs (runuser forks and waits), so $! below is the postmaster.
    as=(setpriv --reuid=postgres --regid=postgres --init-groups --)
    chown postgres: "$dir"
    "${as[@]}" test -x "$dir" -a -w "$dir" ||
      die "user postgres cannot use $dir: every directory above it must be traversable (chmod o+x)"
  fi
  if [ -f "$dir/postgres.pid" ]; then
    pid=$(cat "$dir/postgres.pid")
    if is_postgres "$pid" "$dir/data"; then
      die "postgres already runs from $dir (pid $pid); stop it with: scripts/postgres.sh stop $dir"
    fi
    rm -f "$dir/postgres.pid"
  fi
  listening "$port" && die "something already listens on 127.0.0.1:$port"
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    say "initdb $dir/data"
    "${as[@]}" "$bin/initdb" --pgdata="$dir/data" --username=postgres --encoding=UTF8 --locale=C \
      --auth=trust --no-sync --no-instructions >"$dir/initdb.log" 2>&1 ||
      { tail -20 "$dir/initdb.log" >&2; die "initdb failed (log: $dir/initdb.log)"; }
    # Trust, but only over TCP from 127.0.0.1 (the only address it listens on).
    printf '# Written by scripts/postgres.sh: a throwaway test cluster.\nhost all all 127.0.0.1/32 trust\n' >"$dir/data/pg_hba.conf"
    # A throwaway cluster: speed over durability.
    cat >>"$dir/data/postgresql.conf" <<CONF

# Written by scripts/postgres.sh: a throwaway test cluster.
listen_addresses = '127.0.0.1'
unix_socket_directories = '$dir'
fsync = off
synchronous_commit = off
full_page_writes = off
CONF
  fi
  # Port and socket directory on the command line too, so a cluster reused
  # from DIR listens where this start was asked to.
  nohup "${as[@]}" "$bin/postgres" -D "$dir/data" -p "$port" -k "$dir" -c listen_addresses=127.0.0.1 \
    </dev/null >>"$dir/postgres.log" 2>&1 &
  pid=$!
  echo "$pid" >"$dir/postgres.pid"
  deadline=$((SECONDS + 30))
  until "$bin/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -t 1; do
    if ! alive "$pid"; then
      rm -f "$dir/postgres.pid"
      tail -20 "$dir/postgres.log" >&2
      die "postgres exited (log: $dir/postgres.log)"
    fi
    if [ $SECONDS -ge $deadline ]; then
      tail -20 "$dir/postgres.log" >&2
      stop_pid "$pid"
      rm -f "$dir/postgres.pid"
      die "postgres did not accept connections on 127.0.0.1:$port within 30s (log: $dir/postgres.log)"
    fi
    sleep 0.1
  done
  "$bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres -d postgres >/dev/null <<'SQL' ||
SELECT 'CREATE ROLE stagecraft LOGIN'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'stagecraft') \gexec
SELECT 'CREATE DATABASE stagecraft OWNER stagecraft'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'stagecraft') \gexec
SQL
    die "could not create role and database stagecraft on 127.0.0.1:$port"
  say "postgres (pid $pid) is ready on 127.0.0.1:$port (log: $dir/postgres.log)"
  echo "postgres://stagecraft@127.0.0.1:$port/stagecraft?sslmode=disable"
}

stop() { # DIR
  local dir=$1 f pid
  [ -d "$dir" ] || return 0
  dir=$(cd "$dir" && pwd)
  f=$dir/postgres.pid
  if [ -f "$f" ]; then
    pid=$(cat "$f")
  elif [ -f "$dir/data/postmaster.pid" ]; then
    # A start that died before writing our pidfile: postgres' own lock file.
    pid=$(head -1 "$dir/data/postmaster.pid")
  else
    return 0
  fi
  if [[ $pid =~ ^[0-9]+$ ]] && is_postgres "$pid" "$dir/data"; then
    say "stopping postgres (pid $pid)"
    stop_pid "$pid"
  fi
  rm -f "$f"
}

case "${1:-}" in
install) [ $# = 1 ] || usage; install ;;
start) [ $# -le 3 ] || usage; start "${2:-$DATA/postgres}" "${3:-5433}" ;;
stop) [ $# -le 2 ] || usage; stop "${2:-$DATA/postgres}" ;;
*) usage ;;
esac
