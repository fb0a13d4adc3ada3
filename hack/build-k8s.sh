#!/usr/bin/env bash
# Builds the upstream Kubernetes programs (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, and the kubelet of the real node) from the Go modules pinned in
# hack/kube-testenv/go.mod, plus Helm, into .cache/k8s/<key>/bin, and prints that directory as
# its last line. The key covers go.sum, the Go version and this script, so a second run reuses
# the binaries and a version bump rebuilds them.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
mod="$root/hack/kube-testenv"

SCRIPT_VERSION=1
KUBE_VERSION=v1.35.4
HELM_VERSION=v3.22.0

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-trimpath
go_version="$(go env GOVERSION)"
key="$( { cat "$mod/go.sum"; echo "$go_version $SCRIPT_VERSION $KUBE_VERSION $HELM_VERSION"; } | sha256sum | cut -c1-16)"
out="$root/.cache/k8s/$key"
bin="$out/bin"
tools=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet helm)

complete=1
for t in "${tools[@]}"; do [[ -x "$bin/$t" ]] || complete=0; done
if [[ $complete == 1 ]]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$out"
# One build at a time per cache key, even across concurrent test runs.
exec 9>"$out/.lock"
flock 9
complete=1
for t in "${tools[@]}"; do [[ -x "$bin/$t" ]] || complete=0; done
if [[ $complete == 1 ]]; then
  echo "$bin"
  exit 0
fi

started=$SECONDS
tmp="$out/bin.partial"
rm -rf "$tmp" && mkdir -p "$tmp"
minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
X="-X k8s.io/component-base/version.gitVersion=$KUBE_VERSION -X k8s.io/component-base/version.gitMajor=1"
X="$X -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
X="$X -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z"
X="$X -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1"
X="$X -X k8s.io/client-go/pkg/version.gitMinor=$minor"

echo "building Kubernetes $KUBE_VERSION programs with $go_version (first run only; takes a while)" >&2
(
  cd "$mod"
  go build -ldflags "-s -w $X" -o "$tmp/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler \
    k8s.io/kubernetes/cmd/kubectl \
    k8s.io/kubernetes/cmd/kubelet >&2
  go build -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3 >&2
)
echo "building Helm $HELM_VERSION" >&2
GOBIN="$tmp" GOFLAGS="-trimpath" go install -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" >&2
rm -rf "$bin" && mv "$tmp" "$bin"
echo "built in $((SECONDS - started))s" >&2
echo "$bin"
