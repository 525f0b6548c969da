#!/usr/bin/env bash
# scripts/kube/smoke.sh [DIR]: brings a plane up (scripts/kube/up.sh, state in
# DIR, default .data/kube-smoke), creates a 2-replica Deployment with curl and
# the admin token, waits for readyReplicas == 2 with
# observedGeneration >= generation, prints timings and RSS, then tears down.
# With STAGECRAFT_KUBE_REAL_NODE=1 the pods run for real on the real node:
# stagecraft-demo:v1 (imported from the local Docker engine; scripts/build-demo.sh)
# with an exec readiness probe (demo-app probe).
source "$(dirname "$0")/common.sh"
here=$(cd "$(dirname "$0")" && pwd)

dir=$(kube_dir "${1:-$DATA/kube-smoke}")
"$here/build.sh" >/dev/null
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

on_exit() {
  # On failure, show the end of each log before down.sh removes $dir.
  local f
  for f in "$dir"/logs/*.log; do
    [ -f "$f" ] || continue
    printf -- '--- %s (last 15 lines)\n' "$f" >&2; tail -n 15 "$f" >&2
  done
  "$here/down.sh" "$dir" >/dev/null 2>&1 || true
}
trap on_exit EXIT
t=$(now)
"$here/up.sh" "$dir" >/dev/null
up_s=$(since "$t")

container='{"name": "app", "image": "stagecraft.invalid/smoke:1"}'
if [ "${STAGECRAFT_KUBE_REAL_NODE:-}" = 1 ]; then
  container='{"name": "app", "image": "stagecraft-demo:v1", "imagePullPolicy": "IfNotPresent",
    "readinessProbe": {"exec": {"command": ["/demo-app", "probe"]}, "periodSeconds": 1}}'
fi
deploy='{
  "apiVersion": "apps/v1", "kind": "Deployment",
  "metadata": {"name": "smoke", "namespace": "default", "labels": {"app": "smoke"}},
  "spec": {
    "replicas": 2,
    "progressDeadlineSeconds": 60,
    "selector": {"matchLabels": {"app": "smoke"}},
    "template": {
      "metadata": {"labels": {"app": "smoke"}},
      "spec": {"containers": ['"$container"']}
    }
  }
}'
t=$(now)
gen=$(kube_api "$dir" POST /apis/apps/v1/namespaces/default/deployments "$deploy" | jq -r .metadata.generation)
say "created deployment default/smoke (generation $gen)"
rolled_out() {
  kube_api "$dir" GET /apis/apps/v1/namespaces/default/deployments/smoke | jq -e --argjson g "$gen" '
    .status.observedGeneration >= $g and .metadata.generation >= $g
    and (.status.readyReplicas // 0) == 2 and (.status.updatedReplicas // 0) == 2'
}
wait_for "deployment default/smoke to have 2 ready replicas" 90 rolled_out
rollout_s=$(since "$t")
pods=$(kube_api "$dir" GET '/api/v1/namespaces/default/pods?labelSelector=app%3Dsmoke' |
  jq -r '.items[] | "\(.metadata.name) \(.status.phase) node=\(.spec.nodeName) ip=\(.status.podIP)"')
printf '%s\n' "$pods" | sed 's/^/    /' >&2
rss=$(kube_rss_mib "$dir")

t=$(now)
"$here/down.sh" "$dir" >/dev/null 2>&1
trap - EXIT
down_s=$(since "$t")
[ ! -e "$dir" ] || die "down.sh left $dir behind"
say "smoke OK: plane up in ${up_s}s, deployment ready in ${rollout_s}s, down in ${down_s}s, plane RSS ${rss} MiB"
