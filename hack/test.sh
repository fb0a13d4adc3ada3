#!/usr/bin/env bash
# Every test kpulse has. `hack/test.sh [all|unit|e2e]`.
#   unit: lint, unit tests, sink tests against local receivers and SMTP.
#   e2e:  builds (or reuses) the Kubernetes binaries, runs the scale check (hack/bench-scale.sh
#         check, on a control plane of its own), starts one local control plane with its real
#         node, shared by every end-to-end test and the chart tests, runs them, and tears it down
#         even when they fail.
# KPULSE_REAL_NODE=0: no real node (its tests skip). The chart tests run kpulse's image on the
# real node, made from the debug build (the release build would add a quarter of an hour to a
# cold run); KPULSE_IMAGE_BINARY=target/release/kpulse, after `make release`, uses that instead.
set -euo pipefail
cd "$(dirname "$0")/.."
phase="${1:-all}"
started=$SECONDS

if [[ "$phase" == all || "$phase" == unit ]]; then
  hack/lint.sh
  hack/test-deps.sh
  echo "== unit and sink tests"
  cargo test --lib --bins --tests
fi

if [[ "$phase" == all || "$phase" == e2e ]]; then
  bin="$(hack/build-k8s.sh | tail -n1)"
  export PATH="$bin:$PATH"
  echo "== building kpulse and the e2e tests"
  cargo build --bin kpulse
  cargo test --features e2e --test e2e --no-run
  export KPULSE_IMAGE_BINARY="${KPULSE_IMAGE_BINARY:-$PWD/target/debug/kpulse}"
  echo "== scale check (500 pods on a control plane of its own: memory per pod, crash bursts)"
  KPULSE_BIN="$PWD/target/debug/kpulse" hack/bench-scale.sh check
  echo "== starting the local control plane"
  up="$(hack/cluster.sh up | tail -n1)"
  eval "$up"
  cluster_dir="$(dirname "$KUBECONFIG")"
  trap 'hack/cluster.sh down "$cluster_dir" >&2 || true' EXIT
  echo "== end-to-end tests"
  KPULSE_BIN="$PWD/target/debug/kpulse" cargo test --features e2e --test e2e -- --test-threads="${E2E_THREADS:-4}"
  echo "== end-to-end tests with kpulse in-cluster (the chart on the real node)"
  hack/in-cluster-e2e.sh
  if [[ -x hack/chart-test.sh ]]; then
    echo "== chart tests"
    hack/chart-test.sh
  fi
fi
echo "== all tests passed in $((SECONDS - started))s"
