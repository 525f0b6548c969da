#!/usr/bin/env bash
# scripts/kube/up.sh [DIR]: starts a real Kubernetes control plane on 127.0.0.1
# (etcd, kube-apiserver, kube-controller-manager, kube-scheduler) plus KWOK,
# which fakes one node (`kwok-node-0`) and the pods scheduled onto it.
# State, certs, logs and PID files live in DIR (default .data/kube).
# Prints the admin kubeconfig path (DIR/kubeconfig) on stdout.
# DIR/env holds KUBECONFIG, KUBE_API and KUBE_TOKEN for shell use.
# Stop it with scripts/kube/down.sh [DIR].
#
# STAGECRAFT_KUBE_REAL_NODE=1 adds a real node (scripts/kube/node.sh): a
# kubelet named `localhost` on 127.0.0.1 with a containerd instance of its
# own, the demo images imported from the local Docker engine (nothing is
# pulled), the apiserver authenticating to the kubelet with a client
# certificate; the KWOK node is then tainted (kwok.x-k8s.io/node=fake:NoSchedule)
# so plain pods run for real. Needs root, containerd, runc, Debian's
# containernetworking-plugins and the Docker engine. Unset: KWOK only.
#
# STAGECRAFT_KUBE_API_QPS (unset: the components' defaults, 20 requests/s
# for the controller-manager and 50 for the scheduler): the request rate the
# controller-manager and the scheduler may use against the apiserver, with
# twice that as burst and more concurrent Deployment/ReplicaSet syncs. Only
# the P4 benchmark at thousands of Deployments sets it, so that setting
# them up and rolling them is not paced by the controllers' client.
source "$(dirname "$0")/common.sh"
real_node=0
if [ "${STAGECRAFT_KUBE_REAL_NODE:-}" = 1 ]; then
  real_node=1
  source "$(dirname "$0")/node.sh"
fi

dir=$(kube_dir "${1:-}")
# DIR must be empty or a previous up.sh directory: down.sh removes it whole.
if [ -n "$(ls -A "$dir")" ] && [ ! -f "$dir/tokens.csv" ] && [ ! -f "$dir/apiserver.url" ]; then
  die "$dir is not empty and not a scripts/kube/up.sh state directory (down.sh would delete it); pick another DIR"
fi
for p in "${KUBE_PROCS[@]}"; do
  if [ -f "$dir/$p.pid" ] && pid_alive "$(cat "$dir/$p.pid")"; then
    die "$p is already running for $dir (pid $(cat "$dir/$p.pid")); run scripts/kube/down.sh $dir first"
  fi
done
for b in "${KUBE_BINARIES[@]}"; do
  [ "$b" != kubelet ] || [ "${STAGECRAFT_KUBE_REAL_NODE:-}" = 1 ] || continue
  [ -x "$KUBE_BIN/$b" ] || die "$KUBE_BIN/$b is missing; run scripts/kube/build.sh first"
done
if [ $real_node = 1 ]; then
  node_check
  node_pause_image
fi

t0=$(date +%s.%N)
elapsed() { awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# On any failure, stop whatever was started (logs stay in $dir/logs).
up_ok=0
cleanup() {
  [ "$up_ok" = 1 ] && return
  local p
  [ $real_node = 0 ] || node_down "$dir"
  for ((i = ${#KUBE_PROCS[@]} - 1; i >= 0; i--)); do
    p=${KUBE_PROCS[$i]}
    stop_pidfile "$dir/$p.pid"
  done
  printf 'error: control plane did not come up; logs are in %s/logs\n' "$dir" >&2
}
trap cleanup EXIT

# A previous plane in $dir is dead (checked above): drop its state and stale PID files.
[ ! -d "$dir/node" ] || { STAGECRAFT_KUBE_REAL_NODE=1 source "$(dirname "$0")/node.sh"; node_down "$dir"; }
rm -rf "$dir/etcd-data" "$dir/logs" "$dir/pki" "$dir/kwok" "$dir/node"
for p in "${KUBE_PROCS[@]}"; do rm -f "$dir/$p.pid"; done
mkdir -p "$dir/pki" "$dir/logs" "$dir/etcd-data"
chmod 700 "$dir/etcd-data"

# --- ports: ask the kernel for free 127.0.0.1 ports (held together, so distinct)
read -r etcd_port etcd_peer_port api_port kubelet_port < <(python3 - <<'PY'
import socket
ss = [socket.socket() for _ in range(4)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])
PY
)
api_url="https://127.0.0.1:$api_port"
echo "$api_url" > "$dir/apiserver.url"

# --- certs and keys
say "generating certificates in $dir/pki (ECDSA P-256: instant, unlike RSA keygen)"
pki=$dir/pki
(
  cd "$pki"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.crt -days 3650 \
    -subj "/CN=stagecraft-kube-ca" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature"
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout apiserver.key -out apiserver.csr -subj "/CN=kube-apiserver"
  printf '%s\n' \
    "basicConstraints=CA:FALSE" \
    "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth" \
    "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.96.0.1" \
    > apiserver.ext
  openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
    -out apiserver.crt -days 3650 -sha256 -extfile apiserver.ext
  openssl ecparam -name prime256v1 -genkey -noout -out sa.key   # service accounts sign with ES256
  openssl ec -in sa.key -pubout -out sa.pub
) >"$dir/logs/openssl.log" 2>&1 || die "openssl failed; see $dir/logs/openssl.log"

# --- static tokens: every component is a member of system:masters
users=(admin kube-controller-manager kube-scheduler kwok)
[ $real_node = 0 ] || users+=(kubelet)
: > "$dir/tokens.csv"
for user in "${users[@]}"; do
  tok=$(openssl rand -hex 32)
  echo "$tok" > "$dir/$user.token"
  echo "$tok,$user,uid-$user,\"system:masters\"" >> "$dir/tokens.csv"
done
chmod 600 "$dir"/*.token "$dir/tokens.csv" "$pki"/*.key

kubeconfig() { # kubeconfig USER FILE
  cat > "$2" <<KC
apiVersion: v1
kind: Config
clusters:
- name: stagecraft
  cluster:
    server: $api_url
    certificate-authority-data: $(base64 -w0 < "$pki/ca.crt")
users:
- name: $1
  user:
    token: $(cat "$dir/$1.token")
contexts:
- name: stagecraft
  context:
    cluster: stagecraft
    user: $1
    namespace: default
current-context: stagecraft
KC
  chmod 600 "$2"
}
for user in admin kube-controller-manager kube-scheduler kwok; do
  kubeconfig "$user" "$dir/$user.kubeconfig"
done
cp "$dir/admin.kubeconfig" "$dir/kubeconfig"
{
  echo "KUBECONFIG=$dir/kubeconfig"
  echo "KUBE_API=$api_url"
  echo "KUBE_TOKEN=$(cat "$dir/admin.token")"
  echo "KUBE_CA=$pki/ca.crt"
} > "$dir/env"
chmod 600 "$dir/env"

# start NAME ARGS...: run $KUBE_BIN/NAME (containerd: Debian's) in the
# background, log and PID in $dir.
start() {
  local name=$1 bin=$KUBE_BIN/$1; shift
  [ "$name" != containerd ] || bin=$(command -v containerd)
  nohup "$bin" "$@" >"$dir/logs/$name.log" 2>&1 </dev/null &
  echo $! > "$dir/$name.pid"
  say "started $name (pid $!, log $dir/logs/$name.log)"
}
alive() { pid_alive "$(cat "$dir/$1.pid")" || die "$1 exited; see $dir/logs/$1.log"; }
# wait_alive DESC TIMEOUT CMD...: like wait_for, but fails fast when a process dies.
wait_alive() {
  local desc=$1 timeout=$2; shift 2
  local deadline=$((SECONDS + timeout)) p
  until "$@" >/dev/null 2>&1; do
    for p in "${KUBE_PROCS[@]}"; do [ ! -f "$dir/$p.pid" ] || alive "$p"; done
    [ $SECONDS -lt $deadline ] || die "timed out after ${timeout}s waiting for $desc"
    sleep 0.2
  done
}

# --- the real node's containerd first: it starts and takes the images
# while etcd and the apiserver come up.
if [ $real_node = 1 ]; then
  node_configure "$dir" "$api_url" "$kubelet_port"
  node_cgroup_root
  start containerd --config "$dir/node/containerd.toml"
  containerd_up() { ctr -a "$dir/node/containerd.sock" version; }
  wait_alive "containerd" 30 containerd_up
  say "containerd up ($(elapsed)s); importing images beside etcd and the apiserver"
  node_import_images "$dir" &
  import_pid=$!
fi

# --- etcd
start etcd --name stagecraft --data-dir "$dir/etcd-data" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
  --initial-cluster "stagecraft=http://127.0.0.1:$etcd_peer_port" \
  --heartbeat-interval=20 --election-timeout=200 \
  --unsafe-no-fsync --log-level warn
# (single member: a short election timeout only makes it leader sooner, ~0.5 s saved;
#  --unsafe-no-fsync: throwaway state, no fsync cost.)
etcd_healthy() { curl -sf --max-time 2 "http://127.0.0.1:$etcd_port/health" | grep -q '"health":"true"'; }
wait_alive "etcd health" 30 etcd_healthy
say "etcd healthy on 127.0.0.1:$etcd_port ($(elapsed)s)"

# --- kube-apiserver (with the real node: the client certificate it shows
# the kubelet, which it dials by the node's Hostname address, `localhost`)
kubelet_client=()
[ $real_node = 0 ] || kubelet_client=(--kubelet-client-certificate="$pki/kubelet-client.crt"
  --kubelet-client-key="$pki/kubelet-client.key" --kubelet-preferred-address-types=Hostname)
start kube-apiserver \
  --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$api_port" \
  --etcd-servers="http://127.0.0.1:$etcd_port" \
  --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
  --client-ca-file="$pki/ca.crt" \
  --token-auth-file="$dir/tokens.csv" \
  --authorization-mode=RBAC \
  --service-account-key-file="$pki/sa.pub" \
  --service-account-signing-key-file="$pki/sa.key" \
  --service-account-issuer=https://kubernetes.default.svc.cluster.local \
  --service-cluster-ip-range=10.96.0.0/16 \
  --endpoint-reconciler-type=none \
  --allow-privileged=true \
  "${kubelet_client[@]}" \
  --profiling=false
apiserver_ready() { kube_api "$dir" GET /readyz; }
wait_alive "kube-apiserver /readyz" 60 apiserver_ready
say "kube-apiserver ready at $api_url ($(elapsed)s)"

# --- controller-manager, scheduler, KWOK
cm_tuning=() sched_tuning=()
if [ -n "${STAGECRAFT_KUBE_API_QPS:-}" ]; then
  qps=$STAGECRAFT_KUBE_API_QPS
  [[ $qps =~ ^[1-9][0-9]*$ ]] || die "STAGECRAFT_KUBE_API_QPS: want a positive whole number of requests/s, got '$qps'"
  cm_tuning=(--kube-api-qps="$qps" --kube-api-burst=$((qps * 2))
    --concurrent-deployment-syncs=20 --concurrent-replicaset-syncs=20 --concurrent-gc-syncs=40)
  sched_tuning=(--kube-api-qps="$qps" --kube-api-burst=$((qps * 2)))
  say "controller-manager and scheduler at $qps requests/s (STAGECRAFT_KUBE_API_QPS)"
fi
start kube-controller-manager "${cm_tuning[@]}" \
  --kubeconfig="$dir/kube-controller-manager.kubeconfig" \
  --leader-elect=false --secure-port=0 \
  --service-account-private-key-file="$pki/sa.key" \
  --root-ca-file="$pki/ca.crt" \
  --cluster-name=stagecraft \
  --profiling=false
start kube-scheduler "${sched_tuning[@]}" \
  --kubeconfig="$dir/kube-scheduler.kubeconfig" \
  --leader-elect=false --secure-port=0 \
  --profiling=false

# KWOK stages, taken from the kwok module's kustomize/stage directory.
# (go mod download runs outside any module, so the project's go.mod/go.sum are untouched.)
kwok_mod="$(go env GOMODCACHE)/sigs.k8s.io/kwok@v$KWOK_VERSION"
[ -d "$kwok_mod/kustomize/stage" ] ||
  kwok_mod=$(cd /tmp && GOWORK=off GOFLAGS= go mod download -json "sigs.k8s.io/kwok@v$KWOK_VERSION" | jq -r .Dir)
[ -d "$kwok_mod/kustomize/stage" ] || die "kwok module source not found (go mod download sigs.k8s.io/kwok@v$KWOK_VERSION)"
{
  for stage in node/fast node/heartbeat-with-lease pod/fast; do
    for f in $(awk '/^resources:/ {r=1; next} r && /^- / {print $2} r && !/^- / {r=0}' "$kwok_mod/kustomize/stage/$stage/kustomization.yaml"); do
      echo "---"
      cat "$kwok_mod/kustomize/stage/$stage/$f"
    done
  done
} > "$dir/kwok-stages.yaml"
grep -q '^kind: Stage' "$dir/kwok-stages.yaml" || die "no stages found in $kwok_mod/kustomize/stage"
KWOK_WORKDIR="$dir/kwok" start kwok \
  --config="$dir/kwok-stages.yaml" \
  --kubeconfig="$dir/kwok.kubeconfig" \
  --manage-all-nodes=false \
  --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
  --cidr=10.244.0.0/16 \
  --node-ip=10.255.0.1 \
  --node-lease-duration-seconds=40

# --- the fake node (tainted beside a real node, so that plain pods run for real)
kwok_taints='[]'
[ $real_node = 0 ] || kwok_taints='[{"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}]'
node='{
  "apiVersion": "v1", "kind": "Node",
  "metadata": {
    "name": "kwok-node-0",
    "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
    "labels": {"type": "kwok", "kubernetes.io/hostname": "kwok-node-0", "kubernetes.io/os": "linux",
               "kubernetes.io/arch": "amd64", "kubernetes.io/role": "agent", "node-role.kubernetes.io/agent": ""}
  },
  "spec": {"taints": '"$kwok_taints"'},
  "status": {
    "capacity":    {"cpu": "64", "memory": "256Gi", "pods": "10000", "ephemeral-storage": "1Ti"},
    "allocatable": {"cpu": "64", "memory": "256Gi", "pods": "10000", "ephemeral-storage": "1Ti"}
  }
}'
kube_api "$dir" POST /api/v1/nodes "$node" >/dev/null || die "could not create the fake node"
node_ready() {
  kube_api "$dir" GET /api/v1/nodes/kwok-node-0 \
    | jq -e '.status.conditions // [] | any(.type == "Ready" and .status == "True")'
}
wait_alive "node kwok-node-0 Ready" 60 node_ready
say "node kwok-node-0 Ready ($(elapsed)s)"
if [ $real_node = 1 ]; then
  wait "$import_pid" || die "importing images into the node's containerd failed; see $dir/logs/images-import.log"
  say "images imported ($(elapsed)s)"
  start kubelet --config="$dir/node/kubelet.yaml" --kubeconfig="$dir/kubelet.kubeconfig" \
    --hostname-override=localhost --root-dir="$dir/node/kubelet" --cert-dir="$dir/node/kubelet/pki" --v=1
  real_node_ready() {
    kube_api "$dir" GET /api/v1/nodes/localhost \
      | jq -e '.status.conditions // [] | any(.type == "Ready" and .status == "True")'
  }
  wait_alive "node localhost (kubelet) Ready" 120 real_node_ready
  say "node localhost Ready ($(elapsed)s)"
fi
default_sa() { kube_api "$dir" GET /api/v1/namespaces/default/serviceaccounts/default; }
wait_alive "service account default/default" 60 default_sa
for p in "${KUBE_PROCS[@]}"; do [ ! -f "$dir/$p.pid" ] || alive "$p"; done

up_ok=1
say "control plane up in $(elapsed)s, RSS $(kube_rss_mib "$dir") MiB; stop with scripts/kube/down.sh $dir"
echo "$dir/kubeconfig"
