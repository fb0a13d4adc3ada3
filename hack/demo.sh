#!/usr/bin/env bash
# `make demo`: kpulse end to end on a local control plane.
# Builds what is missing, starts the control plane, installs the chart (kpulse runs on this
# machine with the chart's ServiceAccount identity), makes a pod get OOMKilled, shows the alert,
# brings the pod back, shows the [RESOLVED], and tears everything down on exit or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Building kpulse and the control-plane programs"
if [[ ! -x target/debug/kpulse ]]; then
  echo "first run: building kpulse and its dependencies with cargo; a few minutes" >&2
fi
cargo build --quiet --bin kpulse
echo "  kpulse                          ready" >&2
bin="$(hack/build-k8s.sh | tail -n1)"
export PATH="$bin:$PATH"

say "Starting a local control plane (etcd, kube-apiserver, controller-manager, scheduler)"
up="$(hack/cluster.sh up | tail -n1)"
eval "$up"
cluster_dir="$(dirname "$KUBECONFIG")"
work="$(mktemp -d)"
kpulse_pid=""
cleanup() {
  [[ -n "$kpulse_pid" ]] && kill "$kpulse_pid" 2>/dev/null && wait "$kpulse_pid" 2>/dev/null
  hack/cluster.sh down "$cluster_dir" >/dev/null 2>&1 || true
  rm -rf "$work"
  echo "demo: cleaned up"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

kubectl create namespace kpulse >/dev/null
kubectl create namespace shop >/dev/null
cat > "$work/values.yaml" <<'YAML'
config:
  cluster: demo
  channels:
    console: {type: log}
  routing:
    default: [console]
  monitors:
    pod_crashes: {resolve_after: 0s}
YAML

kubeconfig="$KUBECONFIG"
if [[ -f charts/kpulse/Chart.yaml ]]; then
  say "Installing the chart (helm install kpulse charts/kpulse -n kpulse -f values.yaml)"
  # The chart's check-config hook Job runs before anything is installed. Its pod lands on a fake
  # node (the real node takes only what tolerates its taint), so hack/run-pod.py runs it with the
  # kpulse just built.
  python3 hack/run-pod.py kubectl kpulse app.kubernetes.io/component=check-config \
    "$PWD/target/debug/kpulse" "$work/check-config" >"$work/check-config.log" 2>&1 &
  helm install kpulse charts/kpulse -n kpulse -f "$work/values.yaml" >/dev/null
  wait $!
  sed 's/^/   /' "$work/check-config.log"
  # Run on this machine with the chart's ServiceAccount, so its RBAC is what kpulse gets.
  sa="$(kubectl -n kpulse get serviceaccount -l app.kubernetes.io/name=kpulse -o jsonpath='{.items[0].metadata.name}' 2>/dev/null || echo kpulse)"
  token="$(kubectl -n kpulse create token "$sa" --duration=1h)"
  server="$(kubectl config view --raw -o jsonpath='{.clusters[0].cluster.server}')"
  ca="$(kubectl config view --raw -o jsonpath='{.clusters[0].cluster.certificate-authority}')"
  kubeconfig="$work/kpulse.kubeconfig"
  kubectl config --kubeconfig="$kubeconfig" set-cluster demo --server="$server" --certificate-authority="$ca" >/dev/null
  kubectl config --kubeconfig="$kubeconfig" set-credentials kpulse --token="$token" >/dev/null
  kubectl config --kubeconfig="$kubeconfig" set-context demo --cluster=demo --user=kpulse >/dev/null
  kubectl config --kubeconfig="$kubeconfig" use-context demo >/dev/null
else
  say "Applying the kpulse ConfigMap"
  python3 - "$work/values.yaml" > "$work/config.yaml" <<'PY'
import sys
lines = open(sys.argv[1]).read().splitlines()[1:]
print("\n".join(l[2:] for l in lines))
PY
  kubectl -n kpulse create configmap kpulse --from-file=config.yaml="$work/config.yaml" >/dev/null
fi

say "Starting kpulse"
RUST_LOG=warn,kpulse=info "$PWD/target/debug/kpulse" run --kubeconfig "$kubeconfig" --namespace kpulse \
  --http-addr 127.0.0.1:0 --metrics-addr 127.0.0.1:0 --log-format text > "$work/notifications.jsonl" 2> "$work/kpulse.log" &
kpulse_pid=$!

# Prints each new notification's headline and message in plain words, until one of kind `want`
# came: welcome (kpulse's welcome message), firing or resolved (an alert).
shown=0
show() {
  local want="$1" deadline=$((SECONDS + 60))
  while (( SECONDS < deadline )); do
    if out="$(python3 - "$work/notifications.jsonl" "$shown" "$want" <<'PY'
import json, sys
path, shown, want = sys.argv[1], int(sys.argv[2]), sys.argv[3]
lines = [json.loads(l) for l in open(path) if l.startswith("{")]
new = lines[shown:]
def kind(n):
    return "welcome" if n["alert"]["key"]["monitor"] == "welcome" else n["state"]
for n in new:
    print(n["text"])
    print("   " + n["message"])
    if kind(n) == "welcome":
        for k, v in n["alert"].get("fields", {}).items():
            print(f"   {k}: {v}")
print(f"#count={len(lines)}")
sys.exit(0 if any(kind(n) == want for n in new) else 1)
PY
)"; then
      echo "$out" | grep -v '^#count='
      shown="$(echo "$out" | sed -n 's/^#count=//p')"
      return 0
    fi
    kill -0 "$kpulse_pid" 2>/dev/null || { echo "kpulse exited:"; cat "$work/kpulse.log"; return 1; }
    sleep 0.5
  done
  echo "no $want notification within 60s; kpulse log:"; cat "$work/kpulse.log"; return 1
}

say "kpulse's welcome message: it can deliver (sent once per configuration)"
show welcome
# Watches listed once: from here on, what happens to pods is seen.
for _ in $(seq 1 120); do
  grep -q "kpulse is ready" "$work/kpulse.log" && break
  kill -0 "$kpulse_pid" 2>/dev/null || { echo "kpulse exited:"; cat "$work/kpulse.log"; exit 1; }
  sleep 0.5
done

say "Creating pod shop/api and making its container run out of memory (as a kubelet would report)"
kubectl -n shop run api --image=registry.k8s.io/pause:3.10 --restart=Always >/dev/null
kubectl -n shop wait --for=jsonpath='{.spec.nodeName}' pod/api --timeout=30s >/dev/null 2>&1 || true
now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
kubectl -n shop patch pod api --subresource=status --type=merge -p "{\"status\":{\"phase\":\"Running\",\"containerStatuses\":[{\"name\":\"api\",\"image\":\"registry.k8s.io/pause:3.10\",\"imageID\":\"\",\"ready\":false,\"restartCount\":0,\"state\":{\"terminated\":{\"reason\":\"OOMKilled\",\"exitCode\":137,\"startedAt\":\"$now\",\"finishedAt\":\"$now\"}}}]}}" >/dev/null
show firing

say "The container restarts and runs again (a few seconds later, as a kubelet would restart it)"
sleep 5
now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
kubectl -n shop patch pod api --subresource=status --type=merge -p "{\"status\":{\"phase\":\"Running\",\"containerStatuses\":[{\"name\":\"api\",\"image\":\"registry.k8s.io/pause:3.10\",\"imageID\":\"\",\"ready\":true,\"restartCount\":1,\"state\":{\"running\":{\"startedAt\":\"$now\"}},\"lastState\":{\"terminated\":{\"reason\":\"OOMKilled\",\"exitCode\":137,\"startedAt\":\"$now\",\"finishedAt\":\"$now\"}}}]}}" >/dev/null
show resolved

say "Done: one alert, one resolution. Tearing down."
