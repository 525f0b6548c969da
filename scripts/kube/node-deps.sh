#!/usr/bin/env bash
# scripts/kube/node-deps.sh: makes sure the host has what the real node
# (STAGECRAFT_KUBE_REAL_NODE=1, scripts/kube/node.sh) runs on besides the
# kubelet that build.sh builds: Debian's containerd and runc (they come with
# docker.io) and containernetworking-plugins (/usr/lib/cni). As root,
# installs whichever is missing with apt-get; otherwise says what is.
source "$(dirname "$0")/common.sh"

missing=()
command -v containerd >/dev/null && command -v containerd-shim-runc-v2 >/dev/null && command -v ctr >/dev/null || missing+=(containerd)
command -v runc >/dev/null || missing+=(runc)
[ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] || missing+=(containernetworking-plugins)
[ ${#missing[@]} -eq 0 ] && exit 0
[ "$(id -u)" = 0 ] || die "the real node needs Debian's ${missing[*]}: apt-get install -y ${missing[*]} (as root)"
say "installing Debian's ${missing[*]} for the real node"
if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
