#!/usr/bin/env bash
# `make demo`: kpulse end to end on a local control plane.
# Builds what is missing, starts the control plane with its real node, builds kpulse's image
# without Docker and pushes it to the cluster's registry, installs the chart (kpulse runs as a Pod
# on the real node, under the restricted Pod Security level), runs a container that the kernel
# OOM-kills once, shows the alert and its [RESOLVED] from kpulse's log channel, and tears
# everything down on exit or Ctrl-C.
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

say "Starting a local control plane (etcd, kube-apiserver, controller-manager, scheduler) and a real node (kubelet, containerd, runc)"
up="$(KPULSE_REAL_NODE=1 hack/cluster.sh up | tail -n1)"
eval "$up"
cluster_dir="$(dirname "$KUBECONFIG")"
work="$(mktemp -d)"
cleanup() {
  hack/cluster.sh down "$cluster_dir" >/dev/null 2>&1 || true
  rm -rf "$work"
  echo "demo: cleaned up"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

kubectl create namespace kpulse >/dev/null
kubectl label namespace kpulse pod-security.kubernetes.io/enforce=restricted >/dev/null
kubectl create namespace shop >/dev/null

say "Building kpulse's image without Docker and pushing it to the cluster's registry"
image="$(hack/kpulse-image.sh "$work/kpulse.tar" "$PWD/target/debug/kpulse" | tail -n1)"
(source hack/node.sh && root="$PWD" node_push "$cluster_dir" "$work/kpulse.tar") | sed 's/^/   /'

cat > "$work/values.yaml" <<YAML
config:
  cluster: demo
  channels:
    console: {type: log}
  routing:
    default: [console]
  namespaces: {include: [shop]}
  monitors:
    pod_crashes: {resolve_after: 10s}
image: {repository: ${image%:*}, tag: "${image##*:}"}
# The real node carries a taint that keeps the fake nodes' pods off it.
nodeSelector: {kpulse.io/real-node: "true"}
tolerations: [{key: kpulse.io/real-node, operator: Exists, effect: NoSchedule}]
YAML
say "Installing the chart: helm install kpulse charts/kpulse -n kpulse -f values.yaml"
sed 's/^/   /' "$work/values.yaml"
helm install kpulse charts/kpulse -n kpulse -f "$work/values.yaml" --wait --timeout 180s >/dev/null
selector=app.kubernetes.io/instance=kpulse,app.kubernetes.io/component=operator
kubectl -n kpulse get pods -l "$selector" -o wide | sed 's/^/   /'
kpulse_pod="$(kubectl -n kpulse get pods -l "$selector" -o jsonpath='{.items[0].metadata.name}')"

# Prints each new notification's headline and message in plain words, until one of kind `want`
# came: welcome (kpulse's welcome message), firing or resolved (an alert).
shown=0
show() {
  local want="$1" deadline=$((SECONDS + 120))
  while (( SECONDS < deadline )); do
    kubectl -n kpulse logs "$kpulse_pod" --tail=-1 > "$work/pod.log" 2>/dev/null || true
    if out="$(python3 - "$work/pod.log" "$shown" "$want" <<'PY'
import json, sys
path, shown, want = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def parse(line):
    try:
        n = json.loads(line)
    except ValueError:
        return None
    # The log channel's notifications; kpulse's own log lines have no alert.
    return n if isinstance(n, dict) and "alert" in n and "state" in n else None
lines = [n for n in map(parse, open(path)) if n]
new = lines[shown:]
def kind(n):
    return "welcome" if n["alert"]["key"]["monitor"] == "welcome" else n["state"]
for n in new:
    print(n["text"])
    print("   " + n["message"])
    for h in n["alert"].get("evidence", {}).get("hints", [])[:1]:
        print("   likely cause: " + h["cause"] + "; next: " + h["next"])
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
    sleep 1
  done
  echo "no $want notification within 120s; kpulse's log:"; tail -n 40 "$work/pod.log"; return 1
}

say "kpulse's welcome message: it can deliver (sent once per configuration)"
show welcome
# Watches listed once: from here on, what happens to pods is seen.
for _ in $(seq 1 120); do
  kubectl -n kpulse logs "$kpulse_pod" --tail=-1 2>/dev/null | grep -q "kpulse is ready" && break
  sleep 0.5
done

say "Creating pod shop/api: a 16Mi memory limit, and on its first start it allocates 64Mi"
cat <<'YAML' | tee "$work/api.yaml" | sed 's/^/   /'
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: shop}
spec:
  nodeSelector: {kpulse.io/real-node: "true"}
  tolerations: [{key: kpulse.io/real-node, operator: Exists, effect: NoSchedule}]
  terminationGracePeriodSeconds: 1
  containers:
  - name: api
    image: kpulse.local/busybox:1
    command: [sh, -c, 'if [ ! -e /data/started ]; then touch /data/started; echo loading the cache; exec dd if=/dev/zero of=/dev/null bs=64M count=1; fi; echo serving; exec sleep 3600']
    resources: {limits: {memory: 16Mi}}
    volumeMounts: [{name: data, mountPath: /data}]
  volumes: [{name: data, emptyDir: {}}]
YAML
kubectl apply -f "$work/api.yaml" >/dev/null
say "The kernel OOM-kills the container; kpulse tells the console channel"
show firing
echo "   the kubelet's own words: $(kubectl -n shop get pod api -o jsonpath='{.status.containerStatuses[0].lastState.terminated.reason} (exit code {.status.containerStatuses[0].lastState.terminated.exitCode})' 2>/dev/null)"

say "The kubelet restarts it; this time it runs. After pod_crashes.resolve_after (10s here):"
show resolved
echo "   restarts: $(kubectl -n shop get pod api -o jsonpath='{.status.containerStatuses[0].restartCount}'), now: $(kubectl -n shop get pod api -o jsonpath='{.status.phase}')"

say "Done: one alert, one resolution, from a real container on a real kubelet. Tearing down."
