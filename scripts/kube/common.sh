# Shared settings for scripts/kube/*.sh. Source it; do not run it.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

KUBE_VERSION=1.33.13          # k8s.io/kubernetes (staging modules are v0.33.13)
ETCD_VERSION=3.5.21           # go.etcd.io/etcd/server/v3
KWOK_VERSION=0.8.0            # sigs.k8s.io/kwok
KUBE_BIN="$CACHE/kube-v$KUBE_VERSION"
KUBE_BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok kubelet)

# Order in which up.sh starts the processes (down.sh stops them in reverse).
# containerd and kubelet run only with the real node (STAGECRAFT_KUBE_REAL_NODE=1).
KUBE_PROCS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok containerd kubelet)

# kube_dir [DIR]: absolute state directory (default $DATA/kube).
kube_dir() {
  local d=${1:-$DATA/kube}
  mkdir -p "$d" && (cd "$d" && pwd)
}

# kube_api DIR METHOD PATH [JSON_BODY]: call the apiserver of the plane in DIR
# with its admin token; prints the response body, fails on an HTTP error.
kube_api() {
  local dir=$1 method=$2 path=$3 body=${4:-}
  local args=(-sS --fail-with-body --max-time 10 -X "$method"
    --cacert "$dir/pki/ca.crt" -H "Authorization: Bearer $(cat "$dir/admin.token")")
  [ -z "$body" ] || args+=(-H 'Content-Type: application/json' --data-binary "$body")
  curl "${args[@]}" "$(cat "$dir/apiserver.url")$path"
}

# kube_rss_mib DIR: total resident memory (MiB) of the plane's processes.
kube_rss_mib() {
  local dir=$1 p pid kb=0 v
  for p in "${KUBE_PROCS[@]}"; do
    [ -f "$dir/$p.pid" ] || continue
    pid=$(cat "$dir/$p.pid")
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
    kb=$((kb + ${v:-0}))
  done
  echo $((kb / 1024))
}

# pid_alive PID: true if PID runs and is not a zombie waiting to be reaped.
pid_alive() {
  kill -0 "$1" 2>/dev/null || return 1
  [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]
}
