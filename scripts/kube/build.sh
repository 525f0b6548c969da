#!/usr/bin/env bash
# Builds a Kubernetes control plane from the Go module proxy (no prebuilt
# downloads) into $CACHE/kube-v<version>/:
#   etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok,
#   kubelet (for the real node: up.sh with STAGECRAFT_KUBE_REAL_NODE=1)
# Binaries already present are skipped. Each binary is built into a temp dir
# and moved into place, so an interrupted build never leaves half a binary.
# Prints the binary directory on stdout. Cold build: about 8-9 minutes on 2 cores.
source "$(dirname "$0")/common.sh"

mkdir -p "$KUBE_BIN"
missing=()
for b in "${KUBE_BINARIES[@]}"; do [ -x "$KUBE_BIN/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -eq 0 ]; then
  say "all of ${KUBE_BINARIES[*]} already in $KUBE_BIN"
  echo "$KUBE_BIN"; exit 0
fi
say "building into $KUBE_BIN: ${missing[*]}"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOWORK=off

tmp=$(mktemp -d "$KUBE_BIN.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
need() { local b; for b in "$@"; do [[ " ${missing[*]} " == *" $b "* ]] && return 0; done; return 1; }
install_bin() { # install_bin BUILT NAME
  chmod +x "$1"; mv -f "$1" "$KUBE_BIN/$2.new.$$" && mv -f "$KUBE_BIN/$2.new.$$" "$KUBE_BIN/$2"
  say "installed $KUBE_BIN/$2"
}

if need etcd kube-apiserver kube-controller-manager kube-scheduler kubelet; then
  # A wrapper module of its own (never inside the project's module).
  wrap="$CACHE/kube-wrapper-v$KUBE_VERSION"
  mkdir -p "$wrap"
  start=$SECONDS
  say "fetching k8s.io/kubernetes@v$KUBE_VERSION's go.mod from the module proxy"
  kgomod=$(cd "$tmp" && go mod download -json "k8s.io/kubernetes@v$KUBE_VERSION" | jq -r .GoMod)
  [ -f "$kgomod" ] || die "could not download k8s.io/kubernetes@v$KUBE_VERSION"
  # The staging modules are the `k8s.io/X => ./staging/src/k8s.io/X` replaces.
  mapfile -t staging < <(grep -oE '^[[:space:]]*(replace[[:space:]]+)?k8s\.io/[A-Za-z0-9._-]+[[:space:]]+=>[[:space:]]+\./staging/' "$kgomod" \
    | grep -oE 'k8s\.io/[A-Za-z0-9._-]+' | sort -u)
  [ ${#staging[@]} -gt 0 ] || die "found no staging modules in $kgomod"
  say "k8s.io/kubernetes lists ${#staging[@]} staging modules; pinning each to v0.${KUBE_VERSION#1.}"
  {
    echo "module stagecraft.local/kubewrapper"
    echo
    echo "go $(go env GOVERSION | sed 's/^go//')"
    echo
    echo "require ("
    echo "	k8s.io/kubernetes v$KUBE_VERSION"
    echo "	go.etcd.io/etcd/server/v3 v$ETCD_VERSION"
    echo ")"
    echo
    echo "replace ("
    for m in "${staging[@]}"; do echo "	$m => $m v0.${KUBE_VERSION#1.}"; done
    echo ")"
  } > "$wrap/go.mod"
  cat > "$wrap/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
  say "go mod tidy in $wrap"
  (cd "$wrap" && go mod tidy)
  say "etcd resolved to $(cd "$wrap" && go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3)"
  ver="k8s.io/component-base/version"
  minor=${KUBE_VERSION#*.}; minor=${minor%%.*}
  ldflags="-s -w -X $ver.gitVersion=v$KUBE_VERSION -X $ver.gitMajor=${KUBE_VERSION%%.*} -X $ver.gitMinor=$minor"
  for b in kube-apiserver kube-controller-manager kube-scheduler kubelet; do
    need "$b" || continue
    say "go build $b (ldflags: $ldflags)"
    t=$SECONDS
    (cd "$wrap" && go build -trimpath -ldflags "$ldflags" -o "$tmp/$b" "k8s.io/kubernetes/cmd/$b")
    install_bin "$tmp/$b" "$b"; say "$b built in $((SECONDS - t))s"
  done
  if need etcd; then
    say "go build etcd (go.etcd.io/etcd/server/v3 v$ETCD_VERSION)"
    t=$SECONDS
    (cd "$wrap" && go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
    install_bin "$tmp/etcd" etcd; say "etcd built in $((SECONDS - t))s"
  fi
  say "control plane binaries done in $((SECONDS - start))s"
fi

if need kwok; then
  say "go install sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION"
  t=$SECONDS
  mkdir -p "$tmp/gobin"
  (cd "$tmp" && GOBIN="$tmp/gobin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@v$KWOK_VERSION")
  install_bin "$tmp/gobin/kwok" kwok; say "kwok built in $((SECONDS - t))s"
fi

echo "$KUBE_BIN"
