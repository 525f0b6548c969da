#!/usr/bin/env bash
# make run: the embedded default. Builds what it needs, starts a Temporal dev
# server with its Web UI (state in .data/temporal.db), a Docker engine if none
# runs, a Prometheus scraping the demo containers (installed from Debian if
# missing), and the worker; builds the demo images, puts v1 of the demo app
# in place, then runs a canary to v2 checked by HTTP and by a Prometheus
# error-rate query, printing its progress. A throwaway PostgreSQL
# (.data/postgres) keeps the audit trail: bin/starter history / list. Keeps everything up until Ctrl-C,
# then stops what it started.
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

PORT=${TEMPORAL_PORT:-7233}
UI_PORT=${TEMPORAL_UI_PORT:-8233}
PROM_PORT=${PROMETHEUS_PORT:-9090}
PG_PORT=${POSTGRES_PORT:-5433}
export TEMPORAL_ADDRESS="127.0.0.1:$PORT" TEMPORAL_UI="http://127.0.0.1:$UI_PORT"
STARTED_DOCKER=0

stop_all() {
  trap - INT TERM EXIT
  echo
  say "stopping what make run started"
  if [ -x bin/starter ] && [ -f "$DATA/worker.pid" ]; then
    docker ps -aq --filter label=stagecraft.service=hello | xargs -r docker rm -f >/dev/null 2>&1 || true
    say "removed the demo app's containers"
  fi
  stop_pidfile "$DATA/worker.pid"
  stop_pidfile "$DATA/temporal.pid"
  if [ -f "$DATA/prometheus/prometheus.pid" ]; then bash scripts/prometheus.sh stop "$DATA/prometheus"; fi
  if [ -f "$DATA/postgres/postgres.pid" ]; then bash scripts/postgres.sh stop "$DATA/postgres"; fi
  if [ $STARTED_DOCKER = 1 ]; then bash scripts/docker.sh stop; fi
  say "stopped"
  exit 0
}
trap stop_all INT TERM EXIT

say "1/8 Temporal CLI (pinned v$TEMPORAL_CLI_VERSION, built once into $CACHE)"
TEMPORAL=$(bash scripts/temporal.sh)

say "2/8 Docker engine"
[ -f "$DATA/dockerd.pid" ] || STARTED_DOCKER=1
bash scripts/docker.sh
[ -f "$DATA/dockerd.pid" ] || STARTED_DOCKER=0

say "3/8 building bin/worker, bin/starter and the demo images"
go build -o bin/worker ./worker
go build -o bin/starter ./starter
bash scripts/build-demo.sh

say "4/8 Temporal dev server on $TEMPORAL_ADDRESS, Web UI on $TEMPORAL_UI (log: .data/temporal.log)"
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  die "something already listens on 127.0.0.1:$PORT; stop it or set TEMPORAL_PORT"
fi
"$TEMPORAL" server start-dev --ip 127.0.0.1 --port "$PORT" --ui-port "$UI_PORT" \
  --db-filename "$DATA/temporal.db" --log-level warn \
  --search-attribute StagecraftExecutionId=Keyword --search-attribute StagecraftService=Keyword \
  --search-attribute StagecraftEnvironment=Keyword --search-attribute StagecraftStrategy=Keyword \
  --search-attribute StagecraftPlatform=Keyword --search-attribute StagecraftStatus=Keyword \
  --search-attribute StagecraftImage=Keyword >"$DATA/temporal.log" 2>&1 &
echo $! >"$DATA/temporal.pid"
wait_for "the Temporal dev server (see .data/temporal.log)" 60 "$TEMPORAL" operator cluster health --address "$TEMPORAL_ADDRESS"

say "5/8 Prometheus on 127.0.0.1:$PROM_PORT, scraping the demo containers (log: .data/prometheus/prometheus.log)"
[ "$PROM_PORT" = 9090 ] || say "note: the example specs query http://127.0.0.1:9090; edit them for port $PROM_PORT"
bash scripts/prometheus.sh install
bash scripts/prometheus.sh start "$DATA/prometheus" "$PROM_PORT" >/dev/null

say "6/8 PostgreSQL for the audit trail on 127.0.0.1:$PG_PORT (data and log: .data/postgres)"
bash scripts/postgres.sh install
DATABASE_URL=$(bash scripts/postgres.sh start "$DATA/postgres" "$PG_PORT")
export DATABASE_URL

say "7/8 worker, audit trail in PostgreSQL (log: .data/worker.log)"
STAGECRAFT_LOG_CONSOLE=1 bin/worker >"$DATA/worker.log" 2>&1 &
echo $! >"$DATA/worker.pid"
sleep 1
kill -0 "$(cat "$DATA/worker.pid")" 2>/dev/null || { tail -20 "$DATA/worker.log"; die "the worker exited"; }

say "8/8 demo: v1 in place, then a canary to v2 (deployments/examples/canary.yaml)"
bin/starter deploy -f deployments/examples/demo-v1.yaml --wait
bin/starter deploy -f deployments/examples/canary.yaml --wait || true

echo
say "the stack is up"
cat <<TXT
  Web UI         $TEMPORAL_UI/namespaces/default/workflows
  Prometheus     http://127.0.0.1:$PROM_PORT/graph?g0.expr=demo_http_requests_total
  demo app       $(docker ps --filter label=stagecraft.service=hello --format '{{.Ports}}' | sed -E 's/->.*//' | head -1)/  (one of $(docker ps -q --filter label=stagecraft.service=hello | wc -l) instances)
  try            bin/starter deploy -f deployments/examples/canary-bad.yaml --wait   (rolls back)
                 bin/starter deploy -f deployments/examples/blue-green.yaml; bin/starter pause deploy:docker:hello
                 bin/starter status deploy:docker:hello
                 DATABASE_URL=$DATABASE_URL bin/starter history deploy:docker:hello   (or: list)
  logs           .data/worker.log, .data/temporal.log

Press Ctrl-C to stop everything make run started.
TXT
while kill -0 "$(cat "$DATA/temporal.pid")" 2>/dev/null && kill -0 "$(cat "$DATA/worker.pid")" 2>/dev/null; do
  sleep 1
done
say "the dev server or the worker exited; see .data/"
