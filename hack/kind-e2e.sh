#!/usr/bin/env bash
# The end-to-end suite on a kind cluster, with kpulse running in-cluster from the chart.
# Used by the project's GitHub workflow (needs Docker and kind; not available on every machine).
#   create cluster → build image → kind load → helm upgrade --install --wait → run e2e/ in
#   in-cluster mode → dump logs on failure → delete cluster
set -euo pipefail
cd "$(dirname "$0")/.."
name="${KIND_CLUSTER:-kpulse-e2e}"
image="kpulse:e2e"
for tool in docker kind helm kubectl; do
  command -v "$tool" >/dev/null || { echo "kind-e2e: $tool is required" >&2; exit 2; }
done

kind create cluster --name "$name" --wait 120s
cleanup() {
  status=$?
  if [[ $status != 0 ]]; then
    echo "== kpulse logs" >&2
    kubectl -n kpulse logs deploy/kpulse --tail=300 >&2 || true
    kubectl get events -A --sort-by=.lastTimestamp | tail -50 >&2 || true
  fi
  kind delete cluster --name "$name" || true
  exit $status
}
trap cleanup EXIT

docker build -t "$image" .
kind load docker-image "$image" --name "$name"
helm upgrade --install kpulse charts/kpulse --namespace kpulse --create-namespace --wait --timeout 180s --set logLevel='info\,kpulse=debug' \
  --set image.repository=kpulse --set image.tag=e2e --set image.pullPolicy=Never

export KUBECONFIG="${KUBECONFIG:-$HOME/.kube/config}"
KPULSE_E2E_MODE=in-cluster KPULSE_E2E_RELEASE_NAMESPACE=kpulse \
  cargo test --features e2e --test e2e -- --test-threads=1
