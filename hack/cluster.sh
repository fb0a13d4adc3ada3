#!/usr/bin/env bash
# A real Kubernetes control plane on 127.0.0.1, for tests and the demo. No Docker, no kubelet.
#
#   hack/cluster.sh up          start etcd, kube-apiserver, kube-controller-manager and kube-scheduler
#                               as separate processes on free ports, create fake Ready nodes, and
#                               print `export KUBECONFIG=<dir>/admin.kubeconfig` as the LAST line of
#                               stdout (everything else goes to stderr)
#   hack/cluster.sh down [DIR]  stop the cluster whose work dir is DIR (default: the latest one
#                               started, .cache/clusters/current) and remove DIR
#   hack/cluster.sh env [DIR]   print `export ...` lines for that cluster (KUBECONFIG last), for eval
#
# Environment:
#   KPULSE_CLUSTER_DIR   work dir for `up` (default: a fresh .cache/clusters/c-XXXXXX); must be
#                        absent or empty
#   KPULSE_FAKE_NODES    number of fake nodes kpulse-node-1..N (default 3)
#   K8S_BIN              directory with etcd, kube-* and kubectl (default: hack/build-k8s.sh's output)
#   KPULSE_KEEP_FAILED=1 keep the work dir (logs) when `up` fails
#
# No kubelet runs: the real scheduler binds pods to the fake nodes and tests write pod status the
# way a kubelet would (pods/status). The node-lifecycle controller is off, so nothing marks the
# fake nodes NotReady, taints them or evicts their pods.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
clusters="$root/.cache/clusters"
marker=".kpulse-cluster"

log() { echo "cluster: $*" >&2; }
die() { log "$*"; exit 1; }

# Debian packages this script needs, installed when missing (CI images are bookworm).
need() { # command, package
  command -v "$1" >/dev/null 2>&1 && return 0
  [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null || die "$1 is missing (apt-get install $2)"
  log "installing $2"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2"; } >&2 \
    || die "could not install $2"
}

# N distinct free ports on 127.0.0.1 (all held open while picking, so they differ from each other).
# Another process can still grab one before the component binds it; `up` retries on EADDRINUSE.
free_ports() {
  python3 - "$1" <<'EOF'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket(); s.bind(("127.0.0.1", 0)); socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
EOF
}

is_cluster_dir() { [[ -f "$1/$marker" || ( -d "$1/pids" && -d "$1/pki" ) ]]; }

# Is $pid a process of the cluster in $dir (guards against pid reuse)?
ours() { # pid dir
  [[ -r "/proc/$1/cmdline" ]] && tr '\0' ' ' < "/proc/$1/cmdline" | grep -qF -- "$2/"
}

stop_dir() {
  local dir="$1" f pid
  [[ -d "$dir" ]] || return 0
  local pids=()
  for f in "$dir"/pids/*; do
    [[ -f "$f" ]] || continue
    pid="$(cat "$f")"
    [[ "$pid" =~ ^[0-9]+$ ]] && ours "$pid" "$dir" && pids+=("$pid")
  done
  # Each component runs in its own session (setsid): signal the whole process group.
  for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  local _ alive
  for _ in $(seq 1 100); do
    alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [[ $alive == 0 ]] && break
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; done
  rm -rf "$dir"
}

start() { # name, then the command
  local name="$1"; shift
  setsid "$@" >"$dir/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$dir/pids/$name"
}

alive() { kill -0 "$(cat "$dir/pids/$1")" 2>/dev/null; }

# 0 once `probe` succeeds, 2 if the component died because its port was taken (retry with other
# ports), 1 if it died otherwise or timed out.
wait_for() { # name, timeout seconds, probe command...
  local name="$1" timeout="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  while ((SECONDS < deadline)); do
    "$@" >/dev/null 2>&1 && return 0
    if ! alive "$name"; then
      grep -qi "address already in use" "$dir/logs/$name.log" && return 2
      log "$name exited; last log lines:"; tail -n 20 "$dir/logs/$name.log" >&2
      return 1
    fi
    sleep 0.25
  done
  log "$name not ready after ${timeout}s"
  return 1
}

cert() { # name, subject, extfile
  local name="$1" subj="$2" ext="$3"
  openssl req -new -newkey rsa:2048 -nodes -keyout "$pki/$name.key" -subj "$subj" -out "$pki/$name.csr" 2>/dev/null
  openssl x509 -req -sha256 -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
    -days 30 -extfile "$ext" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr"
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

on_exit() {
  local rc=$?
  [[ $up_ok == 1 ]] && return 0
  log "start failed (exit $rc)"
  if [[ -n "${dir:-}" ]]; then
    if [[ "${KPULSE_KEEP_FAILED:-}" == 1 ]]; then
      # Stop the processes but keep the logs.
      local f; for f in "$dir"/pids/*; do [[ -f "$f" ]] && kill -KILL -- "-$(cat "$f")" 2>/dev/null; done
      log "kept $dir"
    else
      stop_dir "$dir"
    fi
  fi
}

up() {
  need openssl openssl
  need python3 python3-minimal
  need curl curl
  local bin="${K8S_BIN:-}"
  if [[ -z "$bin" ]]; then bin="$("$root/hack/build-k8s.sh" | tail -n1)"; fi
  local t
  for t in etcd kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    [[ -x "$bin/$t" ]] || die "$bin/$t not found (run hack/build-k8s.sh)"
  done

  up_ok=0
  trap on_exit EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  if [[ -n "${KPULSE_CLUSTER_DIR:-}" ]]; then
    mkdir -p "$KPULSE_CLUSTER_DIR"
    dir="$(cd "$KPULSE_CLUSTER_DIR" && pwd -P)"
    [[ -z "$(ls -A "$dir")" ]] || { local d="$dir"; dir=""; die "$d is not empty"; }
  else
    mkdir -p "$clusters"
    dir="$(mktemp -d "$clusters/c-XXXXXX")"
  fi
  touch "$dir/$marker"
  mkdir -p "$dir/logs" "$dir/pids" "$dir/pki" "$dir/apiserver"
  echo "$bin" > "$dir/bin"
  pki="$dir/pki"
  local started=$SECONDS
  local kube_version
  kube_version="$("$bin/kube-apiserver" --version | awk '{print $2}')"

  # PKI: a CA, the apiserver's serving cert, client certs (CN = user, O = group) and the
  # ServiceAccount token signing pair.
  openssl req -x509 -new -newkey rsa:2048 -nodes -keyout "$pki/ca.key" -subj "/CN=kpulse-e2e-ca" \
    -days 30 -out "$pki/ca.crt" 2>/dev/null
  printf '%s\n' 'basicConstraints=CA:FALSE' 'keyUsage=critical,digitalSignature,keyEncipherment' \
    'extendedKeyUsage=serverAuth' \
    'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local' \
    > "$pki/server.ext"
  printf '%s\n' 'basicConstraints=CA:FALSE' 'keyUsage=critical,digitalSignature,keyEncipherment' \
    'extendedKeyUsage=clientAuth' > "$pki/client.ext"
  cert apiserver "/CN=kube-apiserver" "$pki/server.ext"
  cert admin "/O=system:masters/CN=e2e-admin" "$pki/client.ext"
  cert kcm "/CN=system:kube-controller-manager" "$pki/client.ext"
  cert scheduler "/CN=system:kube-scheduler" "$pki/client.ext"
  openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
  openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  chmod 600 "$pki"/*.key

  # etcd, then kube-apiserver; each retried with fresh ports if another process took its port.
  local etcd_port peer_port attempt rc
  for attempt in 1 2 3 4 5; do
    read -r etcd_port peer_port < <(free_ports 2)
    [[ -n "$peer_port" ]] || die "could not pick free ports"
    rm -rf "$dir/etcd" && mkdir -m 700 "$dir/etcd"
    start etcd "$bin/etcd" --name=e2e --data-dir="$dir/etcd" \
      --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
      --listen-peer-urls="http://127.0.0.1:$peer_port" --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
      --initial-cluster="e2e=http://127.0.0.1:$peer_port" --unsafe-no-fsync=true --log-level=warn
    rc=0; wait_for etcd 30 curl -fsS "http://127.0.0.1:$etcd_port/health" || rc=$?
    [[ $rc == 2 ]] && { log "etcd port taken, retrying"; continue; }
    [[ $rc == 0 ]] || die "etcd did not start"
    break
  done
  [[ $rc == 0 ]] || die "etcd: no free port after $attempt attempts"

  local k=("$bin/kubectl" --kubeconfig="$dir/admin.kubeconfig" --request-timeout=10s)
  for attempt in 1 2 3 4 5; do
    read -r api_port < <(free_ports 1)
    [[ -n "$api_port" ]] || die "could not pick a free port"
    kubeconfig "$dir/admin.kubeconfig" admin
    kubeconfig "$dir/kcm.kubeconfig" kcm
    kubeconfig "$dir/scheduler.kubeconfig" scheduler
    # Default admission plugins stay on (NamespaceLifecycle, ServiceAccount, PodSecurity,
    # TaintNodesByCondition, ResourceQuota, ...); NodeRestriction pairs with the Node authorizer.
    # --endpoint-reconciler-type=none: the `kubernetes` Endpoints may not hold a loopback address.
    start kube-apiserver "$bin/kube-apiserver" \
      --etcd-servers="http://127.0.0.1:$etcd_port" \
      --bind-address=127.0.0.1 --secure-port="$api_port" \
      --advertise-address=127.0.0.1 --endpoint-reconciler-type=none \
      --cert-dir="$dir/apiserver" \
      --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
      --client-ca-file="$pki/ca.crt" \
      --authorization-mode=Node,RBAC \
      --enable-admission-plugins=NodeRestriction \
      --service-account-issuer=https://kubernetes.default.svc.cluster.local \
      --service-account-key-file="$pki/sa.pub" \
      --service-account-signing-key-file="$pki/sa.key" \
      --service-cluster-ip-range=10.96.0.0/16 \
      --allow-privileged=true --profiling=false --v=1
    rc=0; wait_for kube-apiserver 120 "${k[@]}" get --raw /readyz || rc=$?
    [[ $rc == 2 ]] && { log "kube-apiserver port taken, retrying"; continue; }
    [[ $rc == 0 ]] || die "kube-apiserver did not become ready"
    break
  done
  [[ $rc == 0 ]] || die "kube-apiserver: no free port after $attempt attempts"

  # --secure-port=0: no HTTPS endpoints (no ports to collide, no delegated auth needed).
  # node-lifecycle-controller off: no kubelet heartbeats the fake nodes, so it would mark them
  # NotReady/unreachable, taint them and evict their pods.
  start kube-controller-manager "$bin/kube-controller-manager" \
    --kubeconfig="$dir/kcm.kubeconfig" --secure-port=0 --leader-elect=false \
    --use-service-account-credentials=true \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
    --controllers='*,-node-lifecycle-controller' \
    --horizontal-pod-autoscaler-sync-period=5s --concurrent-cron-job-syncs=5 \
    --kube-api-qps=100 --kube-api-burst=200 --v=1
  start kube-scheduler "$bin/kube-scheduler" \
    --kubeconfig="$dir/scheduler.kubeconfig" --secure-port=0 --leader-elect=false --v=1

  # Fake nodes: TaintNodesByCondition admission adds node.kubernetes.io/not-ready on create, and
  # the node-lifecycle controller that would lift it is off, so drop the taints; then write the
  # status a kubelet would (Ready, capacity) through the status subresource.
  local nodes="${KPULSE_FAKE_NODES:-3}" i n now
  now="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  for i in $(seq 1 "$nodes"); do
    n="kpulse-node-$i"
    "${k[@]}" create -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $n
  labels: {kubernetes.io/hostname: $n, kubernetes.io/os: linux, kubernetes.io/arch: amd64, kpulse.io/fake-node: "true"}
EOF
    "${k[@]}" patch node "$n" --type=json -p '[{"op":"replace","path":"/spec/taints","value":[]}]' >/dev/null
    "${k[@]}" patch node "$n" --subresource=status --type=merge -p "{\"status\":{
      \"capacity\":{\"cpu\":\"8\",\"memory\":\"32Gi\",\"pods\":\"110\",\"ephemeral-storage\":\"100Gi\"},
      \"allocatable\":{\"cpu\":\"8\",\"memory\":\"32Gi\",\"pods\":\"110\",\"ephemeral-storage\":\"100Gi\"},
      \"conditions\":[
        {\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"KubeletReady\",\"message\":\"fake node\",\"lastHeartbeatTime\":\"$now\",\"lastTransitionTime\":\"$now\"},
        {\"type\":\"MemoryPressure\",\"status\":\"False\",\"reason\":\"KubeletHasSufficientMemory\",\"lastHeartbeatTime\":\"$now\",\"lastTransitionTime\":\"$now\"},
        {\"type\":\"DiskPressure\",\"status\":\"False\",\"reason\":\"KubeletHasNoDiskPressure\",\"lastHeartbeatTime\":\"$now\",\"lastTransitionTime\":\"$now\"},
        {\"type\":\"PIDPressure\",\"status\":\"False\",\"reason\":\"KubeletHasSufficientPID\",\"lastHeartbeatTime\":\"$now\",\"lastTransitionTime\":\"$now\"}],
      \"addresses\":[{\"type\":\"InternalIP\",\"address\":\"127.0.0.1\"},{\"type\":\"Hostname\",\"address\":\"$n\"}],
      \"nodeInfo\":{\"kubeletVersion\":\"$kube_version\",\"architecture\":\"amd64\",\"operatingSystem\":\"linux\",\"containerRuntimeVersion\":\"fake://1\",\"kernelVersion\":\"\",\"osImage\":\"fake\",\"kubeProxyVersion\":\"\",\"machineID\":\"\",\"systemUUID\":\"\",\"bootID\":\"\"}}}" >/dev/null
  done

  # The serviceaccount controller creates `default` in each namespace; pods need it.
  wait_for kube-controller-manager 60 "${k[@]}" -n default get serviceaccount default \
    || die "no default ServiceAccount"
  alive kube-scheduler || { tail -n 20 "$dir/logs/kube-scheduler.log" >&2; die "kube-scheduler exited"; }

  up_ok=1
  trap - EXIT INT TERM
  mkdir -p "$clusters"
  ln -sfn "$dir" "$clusters/current.tmp.$$" && mv -T "$clusters/current.tmp.$$" "$clusters/current"
  log "ready in $((SECONDS - started))s: $dir (Kubernetes $kube_version, apiserver https://127.0.0.1:$api_port)"
  echo "export KUBECONFIG=$dir/admin.kubeconfig"
}

resolve_dir() { # [dir] -> absolute cluster dir (default: .cache/clusters/current)
  local d="${1:-}"
  if [[ -z "$d" ]]; then
    [[ -L "$clusters/current" ]] || return 1
    d="$(readlink "$clusters/current")"
  fi
  [[ -d "$d" ]] || return 1
  (cd "$d" && pwd -P)
}

down() {
  local dir
  dir="$(resolve_dir "${1:-}")" || { log "no cluster ${1:-(current)} to stop"; return 0; }
  is_cluster_dir "$dir" || die "$dir is not a cluster work dir; refusing to remove it"
  stop_dir "$dir"
  # Drop the `current` link if it pointed at this cluster (or at nothing any more).
  if [[ -L "$clusters/current" && ! -e "$clusters/current" ]]; then rm -f "$clusters/current"; fi
  log "stopped $dir"
}

env_cmd() {
  local dir
  dir="$(resolve_dir "${1:-}")" || die "no cluster ${1:-(current)}"
  is_cluster_dir "$dir" || die "$dir is not a cluster work dir"
  echo "export KPULSE_CLUSTER_DIR=$dir"
  [[ -f "$dir/bin" ]] && echo "export K8S_BIN=$(cat "$dir/bin")"
  echo "export KUBECONFIG=$dir/admin.kubeconfig"
}

case "${1:-}" in
  up) up_ok=0; up ;;
  down) down "${2:-}" ;;
  env) env_cmd "${2:-}" ;;
  *) echo "usage: hack/cluster.sh up | down [DIR] | env [DIR]" >&2; exit 2 ;;
esac
