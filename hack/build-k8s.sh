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

# One line per step on stderr; what go prints (module downloads, compiler output) goes to the log,
# whose end is shown when a step fails.
log="$out/build.log"
: >"$log"
cores="$(nproc 2>/dev/null || echo 2)"
# About 26 CPU-minutes, most of it compiling kube-apiserver and its dependencies.
echo "first run: building etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubectl," >&2
echo "  the kubelet (Kubernetes $KUBE_VERSION) and Helm $HELM_VERSION from source with $go_version; roughly" >&2
echo "  $((26 / cores + 1)) minutes on this machine's $cores cores, once: later runs reuse them. Log: $log" >&2
step() { # WHAT COMMAND...
  local what="$1" t=$SECONDS rc=0
  shift
  printf '  %-32s' "$what" >&2
  "$@" >"$log.step" 2>&1 || rc=$?
  cat "$log.step" >>"$log"
  if [[ $rc == 0 ]]; then
    echo "done in $((SECONDS - t))s" >&2
  else
    echo "FAILED:" >&2
    grep -v '^go: downloading' "$log.step" | tail -n 30 >&2
    exit 1
  fi
}
k8s() { # NAME: builds k8s.io/kubernetes/cmd/NAME
  (cd "$mod" && go build -ldflags "-s -w $X" -o "$tmp/$1" "k8s.io/kubernetes/cmd/$1")
}
step "downloading Go modules" sh -c "cd '$mod' && go mod download -x"
for program in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet; do
  step "$program" k8s "$program"
done
step etcd sh -c "cd '$mod' && go build -ldflags '-s -w' -o '$tmp/etcd' go.etcd.io/etcd/server/v3"
step "helm" env GOBIN="$tmp" GOFLAGS="-trimpath" go install -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
rm -rf "$bin" && mv "$tmp" "$bin"
echo "built in $((SECONDS - started))s" >&2
echo "$bin"
