#!/usr/bin/env bash
# Formatting, clippy, and (when the chart and helm exist) helm lint --strict.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --features e2e -- -D warnings
if [[ -d charts/kpulse ]]; then
  bin="$(hack/build-k8s.sh | tail -n1)"
  echo "== helm lint --strict"
  "$bin/helm" lint --strict charts/kpulse
fi
actionlint="$PWD/.cache/tools/actionlint-v1.7.12"
if [[ ! -x "$actionlint" ]]; then
  mkdir -p .cache/tools
  GOTOOLCHAIN=local GOBIN="$PWD/.cache/tools" CGO_ENABLED=0 go install github.com/rhysd/actionlint/cmd/actionlint@v1.7.12
  mv .cache/tools/actionlint "$actionlint"
fi
echo "== actionlint"
"$actionlint" -shellcheck= .github/workflows/*.yml
