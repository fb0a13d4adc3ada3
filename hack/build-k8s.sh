#!/usr/bin/env bash
# Builds the upstream Kubernetes control-plane programs (etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kubectl) from the Go modules pinned in
# hack/kube-testenv/go.mod, plus Helm, into .cache/k8s/<key>/bin, and prints that directory as
# its last line (all other output goes to stderr). The key hashes go.sum, `go version` and this
# script's version, so a second run reuses the binaries and any bump rebuilds them.
#
# Environment: the usual Go variables (GOCACHE, GOMODCACHE, GOPROXY, ...) are honoured.
# GOTOOLCHAIN is forced to `local` (fail fast instead of fetching another toolchain).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
mod="$root/hack/kube-testenv"

# Bump when this script's build recipe changes (it is part of the cache key).
SCRIPT_VERSION=2
HELM_VERSION=v3.22.0

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"
go_version="$(go version)"
key="$( { cat "$mod/go.sum"; echo "$go_version"; echo "script=$SCRIPT_VERSION helm=$HELM_VERSION"; } \
  | sha256sum | cut -c1-16)"
out="$root/.cache/k8s/$key"
bin="$out/bin"
tools=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl helm)

complete() { local t; for t in "${tools[@]}"; do [[ -x "$bin/$t" ]] || return 1; done; }
if complete; then echo "$bin"; exit 0; fi

mkdir -p "$out"
# One build at a time per cache key, even across concurrent test runs.
exec 9>"$out/.lock"
flock 9
if complete; then echo "$bin"; exit 0; fi

started=$SECONDS
tmp="$out/bin.partial"
rm -rf "$tmp" && mkdir -p "$tmp"
kube_version="$(cd "$mod" && go list -m -f '{{.Version}}' k8s.io/kubernetes)"   # e.g. v1.35.4
minor="${kube_version#v1.}"; minor="${minor%%.*}"
# The variables upstream's hack/lib/version.sh stamps; without them /version says v0.0.0-master.
X="-X k8s.io/component-base/version.gitVersion=$kube_version -X k8s.io/component-base/version.gitMajor=1"
X="$X -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
X="$X -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z"
X="$X -X k8s.io/client-go/pkg/version.gitVersion=$kube_version -X k8s.io/client-go/pkg/version.gitMajor=1"
X="$X -X k8s.io/client-go/pkg/version.gitMinor=$minor"

echo "build-k8s: building Kubernetes $kube_version with $go_version into $bin (first run only; slow)" >&2
(
  cd "$mod"
  go build -ldflags "-s -w $X" -o "$tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl >&2
  go build -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3 >&2
)
echo "build-k8s: building Helm $HELM_VERSION" >&2
# Helm's go.mod has no replace directives, so `go install pkg@version` works outside any module.
(
  cd "$out"
  GOBIN="$tmp" go install \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
)
rm -rf "$bin" && mv "$tmp" "$bin"
echo "build-k8s: built in $((SECONDS - started))s" >&2
echo "$bin"
