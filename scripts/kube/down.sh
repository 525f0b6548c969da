#!/usr/bin/env bash
# scripts/kube/down.sh [DIR]: stops every process scripts/kube/up.sh started
# for the plane in DIR (default .data/kube), by the PIDs in DIR/*.pid (the
# real node first: kubelet, containerd's tasks, containerd, its bridge), then
# removes DIR.
source "$(dirname "$0")/common.sh"

dir=${1:-$DATA/kube}
[ -d "$dir" ] || { say "nothing to stop: $dir does not exist"; exit 0; }
dir=$(cd "$dir" && pwd)
# Refuse to rm -rf a directory up.sh did not make (e.g. a mistyped `down.sh .data`).
if [ ! -f "$dir/tokens.csv" ] && [ ! -f "$dir/apiserver.url" ] && ! compgen -G "$dir/*.pid" >/dev/null; then
  die "$dir does not look like a scripts/kube/up.sh state directory; not touching it"
fi
# The real node, in its own order (scripts/kube/node.sh): kubelet,
# containerd's tasks, containerd, then its network namespaces, bridge and
# cgroups; beside the control plane's processes.
if [ -d "$dir/node" ]; then
  source "$(dirname "$0")/node.sh"
  say "stopping the real node (kubelet, containerd tasks, containerd)"
  node_down "$dir" &
fi
# TERM them all at once (each takes about 2-3 s to shut down gracefully;
# stop_pidfile escalates to KILL after 10 s), then wait for all of them.
for f in "$dir"/*.pid; do
  [ -e "$f" ] || continue
  case $(basename "$f") in kubelet.pid | containerd.pid) [ ! -d "$dir/node" ] || continue ;; esac
  say "stopping $(basename "$f" .pid) (pid $(cat "$f"))"
  stop_pidfile "$f" &
done
wait
rm -rf "$dir"
say "removed $dir"
