#!/usr/bin/env bash
# A real Kubernetes control plane on 127.0.0.1, for tests and the demo.
#
#   hack/cluster.sh up        start etcd, kube-apiserver, kube-controller-manager and kube-scheduler
#                             as separate processes on free ports, create fake Ready nodes and the
#                             real node, and print `export KUBECONFIG=<dir>/admin.kubeconfig` as
#                             the last line
#   hack/cluster.sh down DIR  stop the cluster whose work dir is DIR (default: the latest), its
#                             real node and its containers, and remove DIR
#
# Environment: KPULSE_CLUSTER_DIR (work dir; default .cache/clusters/<unique id>),
# KPULSE_FAKE_NODES (default 3), KPULSE_REAL_NODE (default 1; 0: no real node),
# K8S_BIN (binaries; default: built by hack/build-k8s.sh).
# The fake nodes run nothing: tests patch the status of pods scheduled onto them the way a kubelet
# would. The real node `kpulse-real-1` (hack/node.sh) runs containerd and a kubelet; it is tainted
# so only pods that tolerate `kpulse.io/real-node` land there. The node-lifecycle controller is
# off so the fake nodes stay Ready.
set -euo pipefail
# The cluster's processes outlive this script: close inherited descriptors above stderr (a lock
# held by whoever started it, a pipe of a test runner) so they never keep those open.
for fd in /proc/$$/fd/*; do
  fd="${fd##*/}"
  if [[ "$fd" =~ ^[0-9]+$ ]] && ((fd > 2)) && [[ -e "/proc/$$/fd/$fd" ]]; then
    eval "exec $fd>&-" 2>/dev/null || true
  fi
done
root="$(cd "$(dirname "$0")/.." && pwd)"
clusters="$root/.cache/clusters"
# shellcheck source=hack/node.sh
source "$root/hack/node.sh"

log() { echo "cluster: $*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

stop_dir() {
  local dir="$1"
  [[ -d "$dir" ]] || return 0
  # The kubelet and containerd first: their containers are stopped through containerd.
  node_down "$dir"
  if [[ -d "$dir/pids" ]]; then
    for f in "$dir"/pids/*; do
      [[ -f "$f" ]] || continue
      local pid; pid="$(cat "$f")"
      # Each component runs in its own session: kill the whole group.
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    done
    for _ in $(seq 1 50); do
      local alive=0
      for f in "$dir"/pids/*; do
        [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null && alive=1
      done
      [[ $alive == 0 ]] && break
      sleep 0.1
    done
    for f in "$dir"/pids/*; do
      [[ -f "$f" ]] && kill -KILL -- "-$(cat "$f")" 2>/dev/null || true
    done
  fi
  rm -rf "$dir"
}

start() { # name, then the command
  local name="$1"; shift
  setsid "$@" >"$dir/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$dir/pids/$name"
  disown $!
}

cert() { # name, subject, [extfile]
  local name="$1" subj="$2" ext="${3:-}"
  openssl genrsa -out "$pki/$name.key" 2048 2>/dev/null
  openssl req -new -key "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr" 2>/dev/null
  if [[ -n "$ext" ]]; then
    openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
      -days 30 -extfile "$ext" -out "$pki/$name.crt" 2>/dev/null
  else
    openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
      -days 30 -out "$pki/$name.crt" 2>/dev/null
  fi
}

kubeconfig() { # file, user cert name
  local file="$1" user="$2"
  cat > "$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: kpulse-e2e
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $pki/ca.crt
users:
- name: $user
  user:
    client-certificate: $pki/$user.crt
    client-key: $pki/$user.key
contexts:
- name: kpulse-e2e
  context: {cluster: kpulse-e2e, user: $user}
current-context: kpulse-e2e
EOF
}

up() {
  local bin="${K8S_BIN:-}"
  if [[ -z "$bin" ]]; then bin="$("$root/hack/build-k8s.sh" | tail -n1)"; fi
  mkdir -p "$clusters"
  dir="${KPULSE_CLUSTER_DIR:-$(mktemp -d "$clusters/c-XXXXXX")}"
  mkdir -p "$dir/logs" "$dir/pids" "$dir/pki" "$dir/etcd"
  chmod 700 "$dir/etcd"
  pki="$dir/pki"
  # A failed start (anywhere, functions included) stops what was started.
  up_ok=0
  trap '[[ $up_ok == 1 ]] || { log "start failed; logs in $dir/logs"; tail -n 20 "$dir"/logs/*.log >&2 || true; stop_dir "$dir"; }' EXIT
  trap 'log "interrupted; stopping $dir"; exit 130' INT TERM
  local started=$SECONDS

  openssl genrsa -out "$pki/ca.key" 2048 2>/dev/null
  openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=kpulse-e2e-ca" -days 30 -out "$pki/ca.crt" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,IP:10.96.0.1\nextendedKeyUsage=serverAuth\n' > "$pki/server.ext"
  printf 'extendedKeyUsage=clientAuth\n' > "$pki/client.ext"
  cert apiserver "/CN=kube-apiserver" "$pki/server.ext"
  cert admin "/O=system:masters/CN=e2e-admin" "$pki/client.ext"
  cert kcm "/CN=system:kube-controller-manager" "$pki/client.ext"
  cert scheduler "/CN=system:kube-scheduler" "$pki/client.ext"
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$pki/client.ext"
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null

  local k=("$bin/kubectl" --kubeconfig="$dir/admin.kubeconfig")

  # Ports are picked free and then bound by another process: if something took one in between,
  # start etcd and the apiserver again on new ports.
  local etcd_port peer_port ready=0
  for attempt in 1 2 3; do
    etcd_port="$(free_port)"; peer_port="$(free_port)"; api_port="$(free_port)"
    rm -rf "$dir/etcd"
    start etcd "$bin/etcd" --name=e2e --data-dir="$dir/etcd" \
      --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
      --listen-peer-urls="http://127.0.0.1:$peer_port" --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
      --initial-cluster="e2e=http://127.0.0.1:$peer_port" --unsafe-no-fsync=true --log-level=warn
    start kube-apiserver "$bin/kube-apiserver" \
      --etcd-servers="http://127.0.0.1:$etcd_port" \
      --bind-address=127.0.0.1 --secure-port="$api_port" \
      --advertise-address=127.0.0.1 --endpoint-reconciler-type=none \
      --cert-dir="$dir/apiserver" \
      --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
      --client-ca-file="$pki/ca.crt" \
      --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
      --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
      --kubelet-preferred-address-types=InternalIP \
      --authorization-mode=Node,RBAC \
      --service-account-issuer=https://kubernetes.default.svc.cluster.local \
      --service-account-key-file="$pki/sa.pub" \
      --service-account-signing-key-file="$pki/sa.key" \
      --service-cluster-ip-range=10.96.0.0/16 \
      --allow-privileged=true --profiling=false --v=1
    kubeconfig "$dir/admin.kubeconfig" admin
    kubeconfig "$dir/kcm.kubeconfig" kcm
    kubeconfig "$dir/scheduler.kubeconfig" scheduler

    for _ in $(seq 1 240); do
      if "${k[@]}" get --raw /readyz >/dev/null 2>&1; then ready=1; break; fi
      kill -0 "$(cat "$dir/pids/kube-apiserver")" 2>/dev/null || break
      kill -0 "$(cat "$dir/pids/etcd")" 2>/dev/null || break
      sleep 0.5
    done
    [[ $ready == 1 ]] && break
    if grep -qi "address already in use" "$dir/logs/etcd.log" "$dir/logs/kube-apiserver.log"; then
      log "a port was taken before etcd or kube-apiserver bound it (attempt $attempt); retrying"
      for name in kube-apiserver etcd; do
        kill -KILL -- "-$(cat "$dir/pids/$name")" 2>/dev/null || true
      done
      sleep 0.5
      continue
    fi
    break
  done
  [[ $ready == 1 ]] || { log "kube-apiserver did not become ready"; false; }

  start kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig="$dir/kcm.kubeconfig" --secure-port=0 --leader-elect=false \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
    --controllers='*,-node-lifecycle-controller' \
    --horizontal-pod-autoscaler-sync-period=5s --concurrent-cron-job-syncs=5 \
    --kube-api-qps=100 --kube-api-burst=200 --v=1
  start kube-scheduler "$bin/kube-scheduler" \
    --kubeconfig="$dir/scheduler.kubeconfig" --authentication-kubeconfig="$dir/scheduler.kubeconfig" \
    --authorization-kubeconfig="$dir/scheduler.kubeconfig" \
    --secure-port=0 --leader-elect=false --v=1

  # The serviceaccount controller creates `default` in each namespace; pods need it.
  for _ in $(seq 1 120); do
    "${k[@]}" -n default get serviceaccount default >/dev/null 2>&1 && break
    sleep 0.5
  done
  "${k[@]}" -n default get serviceaccount default >/dev/null

  local nodes="${KPULSE_FAKE_NODES:-3}"
  for i in $(seq 1 "$nodes"); do
    local n="kpulse-node-$i"
    "${k[@]}" apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $n
  labels: {kubernetes.io/hostname: $n, kubernetes.io/os: linux, kubernetes.io/arch: amd64, kpulse.io/fake-node: "true"}
EOF
    # Admission adds a not-ready taint on creation; the node-lifecycle controller that would lift it is off.
    "${k[@]}" patch node "$n" --type=json -p '[{"op":"replace","path":"/spec/taints","value":[]}]' >/dev/null
    local now; now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    "${k[@]}" patch node "$n" --subresource=status --type=merge -p "{\"status\":{
      \"capacity\":{\"cpu\":\"8\",\"memory\":\"32Gi\",\"pods\":\"110\",\"ephemeral-storage\":\"100Gi\"},
      \"allocatable\":{\"cpu\":\"8\",\"memory\":\"32Gi\",\"pods\":\"110\",\"ephemeral-storage\":\"100Gi\"},
      \"conditions\":[
        {\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"KubeletReady\",\"message\":\"fake node\",\"lastHeartbeatTime\":\"$now\",\"lastTransitionTime\":\"$now\"},
        {\"type\":\"MemoryPressure\",\"status\":\"False\",\"reason\":\"KubeletHasSufficientMemory\",\"lastHeartbeatTime\":\"$now\",\"lastTransitionTime\":\"$now\"},
        {\"type\":\"DiskPressure\",\"status\":\"False\",\"reason\":\"KubeletHasNoDiskPressure\",\"lastHeartbeatTime\":\"$now\",\"lastTransitionTime\":\"$now\"},
        {\"type\":\"PIDPressure\",\"status\":\"False\",\"reason\":\"KubeletHasSufficientPID\",\"lastHeartbeatTime\":\"$now\",\"lastTransitionTime\":\"$now\"}],
      \"addresses\":[{\"type\":\"InternalIP\",\"address\":\"127.0.0.1\"},{\"type\":\"Hostname\",\"address\":\"$n\"}],
      \"nodeInfo\":{\"kubeletVersion\":\"v1.35.4\",\"architecture\":\"amd64\",\"operatingSystem\":\"linux\",\"containerRuntimeVersion\":\"fake://1\",\"kernelVersion\":\"\",\"osImage\":\"fake\",\"kubeProxyVersion\":\"\",\"machineID\":\"\",\"systemUUID\":\"\",\"bootID\":\"\"}}}" >/dev/null
  done

  if [[ "${KPULSE_REAL_NODE:-1}" != 0 ]]; then
    log "starting the real node $NODE_NAME (KPULSE_REAL_NODE=0 starts none)"
    node_up
  fi

  up_ok=1
  trap - EXIT INT TERM
  ln -sfn "$dir" "$clusters/current"
  echo "$bin" > "$dir/bin"
  log "ready in $((SECONDS - started))s: $dir (apiserver https://127.0.0.1:$api_port)"
  echo "export KUBECONFIG=$dir/admin.kubeconfig"
}

down() {
  local dir="${1:-}"
  if [[ -z "$dir" ]]; then
    [[ -L "$clusters/current" ]] || { log "no cluster to stop"; return 0; }
    dir="$(readlink -f "$clusters/current")"
  fi
  stop_dir "$dir"
  if [[ -L "$clusters/current" && ! -e "$clusters/current" ]]; then rm -f "$clusters/current"; fi
  log "stopped $dir"
}

case "${1:-}" in
  up) up ;;
  down) down "${2:-}" ;;
  *) echo "usage: hack/cluster.sh up | down [DIR]" >&2; exit 2 ;;
esac
