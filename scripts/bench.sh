#!/usr/bin/env bash
# make bench: the benchmarks of internal/e2e/bench_test.go against the real
# engines (the pinned Temporal dev server, the Docker engine, a Kubernetes
# control plane with KWOK nodes), set up as `make test` sets them up, and
# those of internal/realnode/bench_test.go on a plane with a real node
# (kubelet + containerd, real pods) when the regexp names one; then one
# table of figures: median, p99 and sample count of each, beside its anchor.
# Benchmarks report; they assert no speed. docs/BENCHMARKS.md has the method.
#
#   scripts/bench.sh              set up, run every benchmark, print the table
#   scripts/bench.sh table [LOG]  print the table of an earlier run's log
#                                 (default .data/bench.log)
#
# Environment:
#   STAGECRAFT_BENCH              benchmarks to run (go test -bench regexp; default P[0-9])
#   STAGECRAFT_BENCH_N            P1 and P2 samples per platform (default 20)
#   STAGECRAFT_BENCH_P3_N         P3 runs of each canary shape (default 3)
#   STAGECRAFT_BENCH_P5_N         P5 3 × 30 s canaries per platform, ~95 s each (default 3)
#   STAGECRAFT_BENCH_P5_DIRECT_N  P5 zero-bake workflow/direct pairs per platform (default 5)
#   STAGECRAFT_BENCH_P5_ZERO_N    P5 zero-bake starter runs at 20 replicas (default 5)
#   STAGECRAFT_BENCH_PODS_N       canaries per size counted for new-version pod starts (default 3)
#   STAGECRAFT_BENCH_TRACE        set: log every Deployment and pod event of a 20-replica P5 run
#   STAGECRAFT_BENCH_P6_N         P6 timed runs of the workflow tests (default 5)
#   STAGECRAFT_BENCH_DENSITY      P4 rollouts held at once, comma-separated: 100 (one kubeconfig,
#                                 so one client), 100:own (a kubeconfig each) (default 100,100:own; 0 skips)
#   STAGECRAFT_KUBE_API_QPS       the Kubernetes plane's controller-manager and scheduler request rate
#                                 (default: theirs, 20 and 50/s); P4 at 2,000 was run with 200
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

LOG="$DATA/bench.log"

# Figures in table order: key|what|anchor.
FIGURES='p1-k8s-restored|P1 abort → restored (new gone, old ready), Kubernetes/KWOK|median < 0.09 s, p99 ≤ 0.25 s
p1-k8s-first-call|P1 abort → rollback'"'"'s first platform call, Kubernetes|—
p1-k8s20-restored|P1 abort at 25% (5 new, 15 old) → restored, 20 replicas, from `starter abort` start|median ≤ 0.15 s (Argo 0.18 s)
p1-k8s20-starter-first-call|P1 `starter abort` start → rollback'"'"'s first platform call, 20 replicas|—
p1-docker-restored|P1 abort → restored (new gone, old ready), Docker|median ≤ 0.5 s
p1-docker-first-call|P1 abort → rollback'"'"'s first platform call, Docker|—
p2-k8s-detect|P2 health fails → first failing check, Kubernetes (0.5 s interval)|≤ 1 interval (0.5 s)
p2-k8s-restored|P2 first failing check → restored, Kubernetes|—
p2-docker-detect|P2 v2-bad fails → first failing check, Docker (0.5 s interval)|≤ 1 interval (0.5 s)
p2-docker-restored|P2 first failing check → restored, Docker|—
p3-seed-canary|P3 history events, seed-shaped canary 5/25/50/100|≤ 300
p3-per-stage|P3 history events per extra stage|—
p5-docker-overhead|P5 3-step canary, 3 × 30 s bakes: total − bakes, Docker|≤ 1.5 s
p5-k8s-overhead|P5 3-step canary, 3 × 30 s bakes: total − bakes, Kubernetes|≤ 1.0 s
p5-k8s20-overhead|P5 `starter deploy --wait`, 20 replicas, 5/25/50/100, 4 × 30 s bakes: total − bakes|≤ 1.0 s (Argo 1.18 s)
p5-k8s20-starter-start|P5 of that, process start → workflow started|—
p5-k8s20-in-platform|P5 of that, inside Prepare/Converge activities|—
p5-k8s20-starter-exit|P5 of that, workflow closed → process exit|—
p5-k8s20-zero-bake-overhead|P5 the same with 1 ms bakes, no checks: total − bake timers|—
pod-starts-n4|new-version pod starts per successful canary, 4 replicas|4
pod-starts-n20|new-version pod starts per successful canary, 20 replicas|20
p5-docker-orchestration|P5 of that, outside Prepare/Converge activities, Docker|—
p5-k8s-orchestration|P5 of that, outside Prepare/Converge activities, Kubernetes|—
p5-docker-zero-bake-workflow|P5 zero-bake 4-step canary through the workflow, Docker|—
p5-docker-zero-bake-direct|P5 same platform calls made directly from Go, Docker|—
p5-docker-zero-bake-ratio|P5 workflow ÷ direct, Docker|—
p5-k8s-zero-bake-workflow|P5 zero-bake 4-step canary through the workflow, Kubernetes|—
p5-k8s-zero-bake-direct|P5 same platform calls made directly from Go, Kubernetes|—
p5-k8s-zero-bake-ratio|P5 workflow ÷ direct, Kubernetes|—
p6-workflow-tests|P6 go test -count=1 -run . ./workflows (wall)|≤ 30 s
rn-p1-restored|P1 abort → old ready, new out of Service endpoints, real node|—
rn-p2-restored|P2 first failing check → the same, real node|—
rn-p5-overhead|P5 total − bakes, canary 25/50/100 of 4 (3 × 5 s), real node|—
rn-pod-start|P5 beside it: a new pod'"'"'s own start (created → Ready), real node|—
rn-new-pod-starts|new-version pod starts per canary of 4 (25/50/100), real node|= N (4)'

table() {
  local log=$1
  [ -f "$log" ] || die "no benchmark log at $log: run scripts/bench.sh first"
  # Benchmark result lines: "BenchmarkX-2  1  v unit  v unit ...", units
  # "<figure>.med.<u>", "<figure>.p99.<u>", "<figure>.n".
  awk -v figures="$FIGURES" '
    function fmt(v, u) {
      if (u == "s") return sprintf("%.3f s", v)
      if (u == "MiB") return sprintf("%.0f MiB", v)
      if (u == "x") return sprintf("%.2f×", v)
      if (u == "events") return (v == int(v)) ? sprintf("%d", v) : sprintf("%.1f", v)
      return sprintf("%g %s", v, u)
    }
    # pad: left-aligned to w display columns (awk counts bytes; UTF-8
    # continuation bytes take no column).
    function pad(s, w,   t) {
      t = s; gsub(/[\200-\277]/, "", t)
      while (length(t) < w) { s = s " "; t = t " " }
      return s
    }
    function line(a, b, c, d, e) {
      printf "| %s | %12s | %12s | %4s | %s |\n", pad(a, 64), b, c, d, pad(e, 28)
    }
    function row(what, key, anchor) {
      line(what, fmt(med[key], unit[key]), fmt(p99[key], unit[key]), sprintf("%d", n[key]), anchor)
    }
    /^Benchmark[^ \t]+[ \t]+[0-9]+[ \t]/ {
      for (i = 3; i < NF; i += 2) {
        v = $i; u = $(i + 1)
        k = split(u, p, ".")
        if (k == 2 && p[2] == "n") { n[p[1]] = v; if (!(p[1] in order)) { order[p[1]] = ++seen; keys[seen] = p[1] } }
        else if (k == 3 && p[2] == "med") { med[p[1]] = v; unit[p[1]] = p[3] }
        else if (k == 3 && p[2] == "p99") { p99[p[1]] = v }
      }
    }
    /^--- FAIL/ || /^FAIL/ { failed = failed "\n  " $0 }
    END {
      line("figure", "median", "p99", "n", "anchor")
      printf "|%s|%s|%s|%s|%s|\n", "------------------------------------------------------------------", "--------------", "--------------", "------", "------------------------------"
      m = split(figures, lines, "\n")
      for (j = 1; j <= m; j++) {
        split(lines[j], f, "|")
        known[f[1]] = 1
        if (f[1] in n) row(f[2], f[1], f[3])
      }
      for (j = 1; j <= seen; j++) {
        key = keys[j]
        if (key in known) continue
        what = key; anchor = "—"
        if (key ~ /^p4-n[0-9]+(-own)?-(lag|rss)$/) {
          k = split(key, p, "-"); size = substr(p[2], 2)
          how = (p[3] == "own") ? ", a kubeconfig each" : ", one kubeconfig"
          what = (p[k] == "lag") ? "P4 check-schedule lag, " size " rollouts baking" how : "P4 worker RSS, " size " rollouts baking" how
          # The issue sets the anchor at 2,000 baking at once.
          if (size + 0 >= 2000) anchor = (p[k] == "lag") ? "p99 ≤ 1 s (at 2,000)" : "≤ 1 GiB (at 2,000)"
        }
        row(what, key, anchor)
      }
      if (failed != "") printf "\nfailed:%s\n", failed
    }' "$log"
}

machine() {
  local mem kube docker_v temporal_v
  mem=$(awk '/^MemTotal:/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
  kube=$("$CACHE/kube-v1.33.13/kube-apiserver" --version 2>/dev/null || echo "kube-apiserver ?")
  docker_v=$(docker version --format '{{.Server.Version}}' 2>/dev/null || echo "?")
  temporal_v=$("$TEMPORAL_BIN" --version 2>/dev/null | head -1 || echo "?")
  printf 'machine: %s cores (%s), %s, kernel %s, %s\n' "$(nproc)" \
    "$(awk -F': *' '/^model name/ { print $2; exit }' /proc/cpuinfo)" "$mem" "$(uname -r)" "$(go version | awk '{ print $3 }')"
  printf 'engines: %s (dev server), dockerd %s, %s control plane + KWOK fake nodes\n' "$temporal_v" "$docker_v" "$kube"
}

if [ "${1:-}" = table ]; then
  table "${2:-$LOG}"
  exit 0
fi

engines

say "benchmarks (about an hour; full log with every sample: .data/bench.log)"
machine | tee "$LOG.machine"
set +e
# -v prints every sample's log line (without it go test keeps 10 lines per benchmark).
STAGECRAFT_TEMPORAL_BIN="$TEMPORAL" go test -tags integration -run '^$' -bench "${STAGECRAFT_BENCH:-P[0-9]}" \
  -benchtime 1x -count 1 -timeout 150m -v ./internal/e2e 2>&1 \
  | tee "$LOG" | grep --line-buffered -E '^(Benchmark|--- FAIL|FAIL|ok|panic)|bench_test\.go:[0-9]+:'
status=${PIPESTATUS[0]}
# The real node's benchmarks (internal/realnode/bench_test.go), when the
# regexp names one: their package's TestMain brings up a plane with a real
# node, so it is not started for nothing (the names are read from the source:
# go test -list would run TestMain too).
bench_re=${STAGECRAFT_BENCH:-P[0-9]}
rn_benchmarks=$(grep -ho '^func Benchmark[A-Za-z0-9_]*' internal/realnode/*_test.go | sed 's/^func //')
if grep -qE -- "${bench_re%%/*}" <<<"$rn_benchmarks"; then
  STAGECRAFT_TEMPORAL_BIN="$TEMPORAL" go test -tags integration -run '^$' -bench "$bench_re" \
    -benchtime 1x -count 1 -timeout 60m -v ./internal/realnode 2>&1 \
    | tee -a "$LOG" | grep --line-buffered -E '^(Benchmark|--- FAIL|FAIL|ok|panic)|bench_test\.go:[0-9]+:'
  rn_status=${PIPESTATUS[0]}
  [ "$rn_status" = 0 ] || status=$rn_status
fi
set -e
say "figures (median and p99 over n runs; p99 is nearest-rank, the largest when n < 100)"
cat "$LOG.machine"
table "$LOG"
[ "$status" = 0 ] || say "FAILED (full log: .data/bench.log)"
exit "$status"
