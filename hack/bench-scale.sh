#!/usr/bin/env bash
# The scale benchmark: kpulse's memory, start-up, idle cost and alert latency on a local control
# plane loaded with thousands of objects (hack/bench-scale.py does the work).
#
#   hack/bench-scale.sh         full: 1000, 2000, 5000 and 10000 pods (1000 fake nodes at the
#                               largest, ~20000 events), a 300 s idle window, crash bursts of 50
#                               and 500 pods; rewrites the scale section of docs/benchmarks.md
#   hack/bench-scale.sh check   500 pods, 50 nodes, a 20 s idle window, bursts of 10 and 50, no
#                               doc write; fails (naming the figure) when kpulse's VmRSS or VmHWM
#                               exceeds KPULSE_SCALE_MAX_RSS_MIB (default 120), or its memory per
#                               pod (VmRSS from the empty cluster to 500 pods, with their nodes,
#                               workloads and events) KPULSE_SCALE_MAX_KIB_PER_POD (default 16;
#                               measured about 5 with the debug build)
#
# Environment: KPULSE_BIN (the kpulse binary; default: `cargo build --release` and
# target/release/kpulse), KPULSE_SCALE_SIZES (pods per size, e.g. 500,1000),
# KPULSE_SCALE_IDLE (idle seconds), KPULSE_SCALE_SETTLE (seconds after ready before memory is
# read, default 20), KPULSE_SCALE_BURSTS (e.g. 50,500; 0: none), KPULSE_SCALE_QUIET (seconds
# messages are still counted after a burst's last alert: 30, check 15), KPULSE_SCALE_NODES_MAX
# (default 1000), KPULSE_SCALE_EVENTS_MAX (default 20000), KPULSE_SCALE_MAX_RSS_MIB (0: no
# bound), KPULSE_SCALE_DOC (the file whose scale section is rewritten in full mode; empty: none),
# KPULSE_SCALE_CONFIG (YAML appended to kpulse's configuration, e.g. `evidence: {enabled: false}`).
# The cluster has no real node and no fake nodes of cluster.sh's own (the benchmark makes its
# own); it is always torn down on exit. The figures are printed as a table and, on the last
# stdout line, as one JSON object; kpulse's logs stay in .cache/bench-scale/.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

mode="${1:-full}"
case "$mode" in
  full)
    sizes="${KPULSE_SCALE_SIZES:-1000,2000,5000,10000}" idle="${KPULSE_SCALE_IDLE:-300}"
    bursts="${KPULSE_SCALE_BURSTS:-50,500}" quiet="${KPULSE_SCALE_QUIET:-30}"
    max_rss="${KPULSE_SCALE_MAX_RSS_MIB:-0}" max_kib="${KPULSE_SCALE_MAX_KIB_PER_POD:-0}"
    doc="${KPULSE_SCALE_DOC-docs/benchmarks.md}"
    ;;
  check)
    sizes="${KPULSE_SCALE_SIZES:-500}" idle="${KPULSE_SCALE_IDLE:-20}"
    bursts="${KPULSE_SCALE_BURSTS:-10,50}" quiet="${KPULSE_SCALE_QUIET:-15}"
    max_rss="${KPULSE_SCALE_MAX_RSS_MIB:-120}" max_kib="${KPULSE_SCALE_MAX_KIB_PER_POD:-16}"
    doc=""
    ;;
  *) echo "usage: hack/bench-scale.sh [full|check]" >&2; exit 2 ;;
esac

bin="$(hack/build-k8s.sh | tail -n1)"
if [[ -n "${KPULSE_BIN:-}" ]]; then
  kpulse="$KPULSE_BIN"
else
  cargo build --release --bin kpulse
  kpulse="$root/target/release/kpulse"
fi
[[ -x "$kpulse" ]] || { echo "bench-scale: no kpulse binary at $kpulse" >&2; exit 1; }

mkdir -p .cache/clusters
dir="$(mktemp -d "$root/.cache/clusters/bench-XXXXXX")"
trap 'hack/cluster.sh down "$dir" >&2 || true' EXIT
trap 'exit 130' INT TERM
started=$SECONDS
KPULSE_CLUSTER_DIR="$dir" KPULSE_FAKE_NODES=0 KPULSE_REAL_NODE=0 K8S_BIN="$bin" hack/cluster.sh up | tail -n1 > "$dir/env"
eval "$(cat "$dir/env")"
echo "bench-scale: cluster $dir ($KUBECONFIG)" >&2

work="$root/.cache/bench-scale"  # kpulse's config and logs, kept after the run
rm -rf "$work"
rc=0
python3 hack/bench-scale.py --mode "$mode" --cluster-dir "$dir" --kpulse "$kpulse" \
  --sizes "$sizes" --idle "$idle" --bursts "$bursts" --quiet "$quiet" --max-rss-mib "$max_rss" \
  --max-kib-per-pod "$max_kib" \
  --settle "${KPULSE_SCALE_SETTLE:-20}" --nodes-max "${KPULSE_SCALE_NODES_MAX:-1000}" \
  --events-max "${KPULSE_SCALE_EVENTS_MAX:-20000}" --doc "$doc" --work "$work" || rc=$?
echo "bench-scale: $mode done in $((SECONDS - started))s" >&2
exit $rc
