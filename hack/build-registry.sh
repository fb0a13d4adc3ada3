#!/usr/bin/env bash
# Builds the local OCI registry (CNCF distribution's `registry`, pinned in hack/registry/go.mod)
# into .cache/registry/<key>/registry and prints that path as its last line. The key covers
# go.sum, the Go version and this script, so a second run reuses the binary.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
mod="$root/hack/registry"

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS=-trimpath
key="$( { cat "$mod/go.sum" "$0"; go env GOVERSION; } | sha256sum | cut -c1-16)"
out="$root/.cache/registry/$key"
if [[ -x "$out/registry" ]]; then
  echo "$out/registry"
  exit 0
fi
mkdir -p "$out"
exec 9>"$out/.lock"
flock 9
if [[ ! -x "$out/registry" ]]; then
  started=$SECONDS
  echo "first run: building the local OCI registry (distribution) from source; about 3 CPU-minutes. Log: $out/build.log" >&2
  if ! (cd "$mod" && go build -ldflags '-s -w' -o "$out/registry.partial" \
      github.com/distribution/distribution/v3/cmd/registry) >"$out/build.log" 2>&1; then
    echo "building the registry FAILED:" >&2
    grep -v '^go: downloading' "$out/build.log" | tail -n 30 >&2
    exit 1
  fi
  mv "$out/registry.partial" "$out/registry"
  echo "  registry                        done in $((SECONDS - started))s" >&2
fi
echo "$out/registry"
