# The real node of the test plane (STAGECRAFT_KUBE_REAL_NODE=1): a kubelet
# named `localhost` on a containerd instance of its own. Sourced by up.sh and
# down.sh (after common.sh); do not run it.
#
# Everything lives under DIR/node: containerd's root, state, socket and
# config, its CNI config (a bridge of its own, no gateway, no masquerade:
# pods are reached only through the API server's port-forward), the
# kubelet's root dir, pod logs and config. Nothing is pulled: the sandbox
# ("pause") image is built here from scripts/kube/pause, and it and the demo
# images are imported from the local Docker engine into containerd's k8s.io
# namespace. Pulls of registry.invalid/* go to a closed 127.0.0.1 port
# (hosts.toml), so a missing image fails without any traffic off this machine.

NODE_PAUSE_IMAGE=stagecraft-pause:v1   # docker.io/library/stagecraft-pause:v1 in containerd
# Images imported into the node (from the local Docker engine), space-separated.
NODE_IMAGES=${STAGECRAFT_KUBE_NODE_IMAGES:-stagecraft-demo:v1 stagecraft-demo:v2 stagecraft-demo:v2-bad stagecraft-demo:v2-hang}

# node_names DIR: sets NODE_ID (from DIR's path), NODE_BRIDGE, NODE_SUBNET,
# NODE_CGROUP (the kubelet's cgroupRoot), so that planes in different DIRs
# never share a bridge or a cgroup.
node_names() {
  local h
  h=$(printf '%s' "$1" | sha1sum | cut -c1-8)
  NODE_ID=$h
  NODE_BRIDGE="scbr-$h"
  NODE_SUBNET="10.201.$((16#${h:0:2})).0/24"
  NODE_CGROUP="/stagecraft-node-$h"
}

# node_check: the host has what the real node needs.
node_check() {
  [ "$(id -u)" = 0 ] || die "the real node needs root (containerd, runc, CNI)"
  local b
  for b in containerd containerd-shim-runc-v2 runc ctr docker ip; do
    command -v "$b" >/dev/null || die "the real node needs $b (Debian: apt-get install -y containerd runc docker.io iproute2)"
  done
  for b in bridge host-local loopback; do
    [ -x "/usr/lib/cni/$b" ] || die "the real node needs /usr/lib/cni/$b (Debian: apt-get install -y containernetworking-plugins)"
  done
  docker info >/dev/null 2>&1 || die "the real node imports its images from the local Docker engine: start it (scripts/docker.sh)"
}

# node_pause_image: builds stagecraft-pause:v1 into the local Docker engine
# unless it is there with the same source (label stagecraft.source).
node_pause_image() {
  local src="$ROOT/scripts/kube/pause" sum ctx
  sum=$(cat "$src/main.go" "$src/go.mod" "$src/Dockerfile" | sha256sum | cut -c1-16)
  if [ "$(docker image inspect -f '{{index .Config.Labels "stagecraft.source"}}' "$NODE_PAUSE_IMAGE" 2>/dev/null)" = "$sum" ]; then
    return 0
  fi
  say "building the sandbox image $NODE_PAUSE_IMAGE (scripts/kube/pause, FROM scratch)"
  ctx=$(mktemp -d)
  (cd "$src" && CGO_ENABLED=0 GOWORK=off GOFLAGS=-buildvcs=false go build -trimpath -ldflags "-s -w" -o "$ctx/pause" .) ||
    { rm -rf "$ctx"; die "building scripts/kube/pause failed"; }
  cp "$src/Dockerfile" "$ctx/"
  if ! DOCKER_BUILDKIT=0 docker build -q --label "stagecraft.source=$sum" -t "$NODE_PAUSE_IMAGE" "$ctx" >"$ctx/build.log" 2>&1; then
    cat "$ctx/build.log" >&2; rm -rf "$ctx"
    die "building $NODE_PAUSE_IMAGE failed"
  fi
  rm -rf "$ctx"
}

# node_configure DIR API_URL KUBELET_PORT: writes containerd's, CNI's and the
# kubelet's configs, the certificate the apiserver shows the kubelet, and
# the kubelet's kubeconfig (token user `kubelet`, created by up.sh).
node_configure() {
  local dir=$1 api_url=$2 kubelet_port=$3 n=$1/node
  node_names "$dir"
  mkdir -p "$n/containerd-root" "$n/containerd-state" "$n/cni" "$n/ipam" "$n/kubelet" "$n/pod-logs" \
    "$n/certs.d/registry.invalid" "$n/runc"
  {
    echo "NODE_BRIDGE=$NODE_BRIDGE"
    echo "NODE_CGROUP=$NODE_CGROUP"
  } > "$n/names"

  cat > "$n/containerd.toml" <<TOML
version = 2
root = "$n/containerd-root"
state = "$n/containerd-state"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$n/containerd.sock"
[ttrpc]
  address = "$n/containerd.sock.ttrpc"
[debug]
  level = "info"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/library/$NODE_PAUSE_IMAGE"
  # Without it every sandbox fails here: runc may not lower oom_score_adj in
  # this VM ("can't get final child's PID from pipe: EOF").
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  disable_apparmor = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$n/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$n/cni"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$n/certs.d"
TOML
  # A missing image is named under registry.invalid/: its pulls go to a
  # closed port on 127.0.0.1 (no DNS lookup, nothing leaves the machine).
  cat > "$n/certs.d/registry.invalid/hosts.toml" <<TOML
server = "http://127.0.0.1:9"
[host."http://127.0.0.1:9"]
  capabilities = ["pull", "resolve"]
TOML
  cat > "$n/cni/10-stagecraft.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "stagecraft-$NODE_ID",
  "plugins": [{
    "type": "bridge", "bridge": "$NODE_BRIDGE",
    "isGateway": false, "ipMasq": false, "hairpinMode": false,
    "ipam": {"type": "host-local", "ranges": [[{"subnet": "$NODE_SUBNET"}]], "dataDir": "$n/ipam"}
  }]
}
JSON

  # The client certificate the apiserver shows the kubelet (system:masters).
  (
    cd "$dir/pki"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout kubelet-client.key \
      -out kubelet-client.csr -subj "/O=system:masters/CN=kube-apiserver-kubelet-client"
    printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" "extendedKeyUsage=clientAuth" \
      > kubelet-client.ext
    openssl x509 -req -in kubelet-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
      -out kubelet-client.crt -days 3650 -sha256 -extfile kubelet-client.ext
    chmod 600 kubelet-client.key
  ) >>"$dir/logs/openssl.log" 2>&1 || die "openssl failed; see $dir/logs/openssl.log"

  cat > "$n/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# 127.0.0.1 only; the apiserver authenticates with its client certificate
# (signed by the plane's CA) and is authorized by a SubjectAccessReview.
address: 127.0.0.1
port: $kubelet_port
readOnlyPort: 0
healthzPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $dir/pki/ca.crt}
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://$n/containerd.sock
imageServiceEndpoint: unix://$n/containerd.sock
cgroupDriver: cgroupfs
cgroupRoot: $NODE_CGROUP
failCgroupV1: false
failSwapOn: false
podLogsDir: $n/pod-logs
# A small or busy disk must not evict the test's pods or collect its images.
evictionHard: {}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
kubeAPIQPS: 50
kubeAPIBurst: 100
syncFrequency: 10s
nodeStatusUpdateFrequency: 5s
maxPods: 110
YAML
  cat > "$dir/kubelet.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: stagecraft
  cluster:
    server: $api_url
    certificate-authority-data: $(base64 -w0 < "$dir/pki/ca.crt")
users:
- name: kubelet
  user:
    token: $(cat "$dir/kubelet.token")
contexts:
- name: stagecraft
  context: {cluster: stagecraft, user: kubelet}
current-context: stagecraft
KC
  chmod 600 "$dir/kubelet.kubeconfig"
}

# node_cgroup_root: creates the kubelet's cgroupRoot in every cgroup v1
# hierarchy (the kubelet requires it to exist), cpuset initialised from its
# parent. On cgroup v2, one directory with the parent's controllers.
node_cgroup_root() {
  local h
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    mkdir -p "/sys/fs/cgroup$NODE_CGROUP"
    return
  fi
  for h in /sys/fs/cgroup/*/; do
    h=${h%/}
    [ -L "$h" ] || [ "$(basename "$h")" = unified ] && continue
    mkdir -p "$h$NODE_CGROUP"
    if [ -f "$h/cpuset.cpus" ]; then
      cat "$h/cpuset.cpus" > "$h$NODE_CGROUP/cpuset.cpus"
      cat "$h/cpuset.mems" > "$h$NODE_CGROUP/cpuset.mems"
    fi
  done
}

# node_import_images DIR: the sandbox image and NODE_IMAGES (those the local
# Docker engine has) into containerd's k8s.io namespace.
node_import_images() {
  local dir=$1 img have=() missing=()
  for img in $NODE_IMAGES; do
    if docker image inspect "$img" >/dev/null 2>&1; then have+=("$img"); else missing+=("$img"); fi
  done
  [ ${#missing[@]} -eq 0 ] || say "not in the local Docker engine, so not on the node: ${missing[*]} (scripts/build-demo.sh builds the demo images)"
  docker save "$NODE_PAUSE_IMAGE" "${have[@]}" |
    ctr -a "$dir/node/containerd.sock" -n k8s.io images import - >"$dir/logs/images-import.log" 2>&1 ||
    die "importing images into the node's containerd failed; see $dir/logs/images-import.log"
}

# node_down DIR: stops the node of the plane in DIR: the kubelet (so it
# restarts nothing), every task in the node's containerd, containerd, then
# removes the sandboxes' network namespaces, the bridge and the cgroups.
node_down() {
  local dir=$1 n=$1/node sock=$1/node/containerd.sock c
  [ -d "$n" ] || return 0
  stop_pidfile "$dir/kubelet.pid"
  if [ -f "$dir/containerd.pid" ] && pid_alive "$(cat "$dir/containerd.pid")" && [ -S "$sock" ]; then
    for c in $(ctr -a "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr -a "$sock" -n k8s.io tasks kill -s SIGKILL "$c" >/dev/null 2>&1 || true
    done
    # containerd's CRI deletes the tasks it sees exit; delete what it has not.
    local left
    for _ in $(seq 50); do
      left=$(ctr -a "$sock" -n k8s.io tasks ls -q 2>/dev/null || true)
      [ -n "$left" ] || break
      for c in $left; do ctr -a "$sock" -n k8s.io tasks delete "$c" >/dev/null 2>&1 || true; done
      sleep 0.1
    done
  fi
  stop_pidfile "$dir/containerd.pid"
  # Shims still running (their containerd is gone), by the PIDs they wrote.
  local f
  for f in "$n"/containerd-state/io.containerd.runtime.v2.task/*/*/shim.pid; do
    [ -f "$f" ] && pid_alive "$(cat "$f")" && kill -9 "$(cat "$f")" 2>/dev/null || true
  done
  # Mounts left under the node's dirs (sandboxes' netns, rootfs, token volumes).
  grep -F " $n/" /proc/self/mounts | awk '{print $2}' | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  if [ -f "$n/names" ]; then
    # shellcheck disable=SC1091
    source "$n/names"
    ip link del "$NODE_BRIDGE" 2>/dev/null || true
    local h
    for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
      [ -d "${h%/}$NODE_CGROUP" ] || continue
      find "${h%/}$NODE_CGROUP" -depth -type d -exec rmdir {} \; 2>/dev/null || true
    done
  fi
}
