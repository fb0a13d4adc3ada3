#!/usr/bin/env bash
# End-to-end tests with kpulse running in-cluster: the chart installed with kpulse's own image on
# the real node of the running local control plane (KUBECONFIG), and a subset of e2e/ in the
# harness's in-cluster mode against it (each test replaces the release's ConfigMap and starts a
# new kpulse Pod, whose log is the test's output). `make test` runs it after the host-mode suite;
# the kind workflow runs the whole suite this way. Skips without the real node.
set -euo pipefail
cd "$(dirname "$0")/.."
ns=kpulse-e2e
if ! kubectl get node kpulse-real-1 >/dev/null 2>&1; then
  echo "SKIP in-cluster e2e: no real node (KPULSE_REAL_NODE=0)"
  exit 0
fi
binary="${KPULSE_IMAGE_BINARY:-$PWD/target/debug/kpulse}"
work="$(mktemp -d)"
cleanup() {
  status=$?
  if [[ $status != 0 ]]; then
    kubectl -n "$ns" get pods -o wide >&2 || true
    kubectl -n "$ns" logs -l app.kubernetes.io/name=kpulse --tail=50 >&2 || true
  fi
  helm uninstall kpulse -n "$ns" --wait --timeout 60s >/dev/null 2>&1 || true
  kubectl delete namespace "$ns" --wait=false >/dev/null 2>&1 || true
  rm -rf "$work"
  exit $status
}
trap cleanup EXIT
image="$(hack/kpulse-image.sh "$work/kpulse.tar" "$binary" | tail -n1)"
(source hack/node.sh && root="$PWD" node_push "$(dirname "$KUBECONFIG")" "$work/kpulse.tar") >/dev/null
kubectl create namespace "$ns" >/dev/null
kubectl label namespace "$ns" pod-security.kubernetes.io/enforce=restricted >/dev/null
# The host-mode harness runs kpulse at debug level; some tests read those lines.
helm install kpulse charts/kpulse -n "$ns" --wait --timeout 180s \
  --set image.repository="${image%:*}" --set image.tag="${image##*:}" --set logLevel='info\,kpulse=debug' \
  --set-json 'nodeSelector={"kpulse.io/real-node":"true"}' \
  --set-json 'tolerations=[{"key":"kpulse.io/real-node","operator":"Exists","effect":"NoSchedule"}]' >/dev/null
# One release, so one test at a time. The subset covers start-up and shutdown, detection and
# resolution, incidents, workloads, and state across Pod restarts.
KPULSE_E2E_MODE=in-cluster KPULSE_E2E_RELEASE_NAMESPACE="$ns" \
  cargo test --features e2e --test e2e -- --test-threads=1 \
  smoke:: pod_crashes:: incidents:: state:: workloads::workloads_deployment_past_its_deadline
