#!/usr/bin/env bash
# The real node of the local control plane: containerd, runc and a kubelet on this machine,
# registered as `kpulse-real-1` beside the fake nodes, so pods pinned to it run real containers.
#
#   hack/node.sh install   install containerd, runc, the CNI plugins and iptables with apt-get
#                          (idempotent)
#
# hack/cluster.sh sources this file: `node_up` starts the node of the cluster in $dir and
# `node_down DIR` stops it and removes everything it made (containers, sandboxes, network
# namespaces, mounts, cgroups, the pod bridge, CNI state, log links, kernel settings).
#
# Everything belongs to one cluster: containerd's socket and state under /run/kpulse-<id>, its
# images and snapshots under DIR/node, its own cgroup root, bridge and pod subnet, so several
# clusters (and a system containerd) never meet. Safety rules:
#   - pods get two routes: their own /24 on the bridge, and the `kubernetes` Service address via
#     the bridge, where it is rewritten to the API server on 127.0.0.1; no default route, and the
#     host does not forward packets arriving on the bridge: nothing in a pod reaches an address
#     outside this machine (node_up checks both with a pod before declaring the node ready);
#   - images come from the cluster's own OCI registry on 127.0.0.1 (hack/build-registry.sh), which
#     containerd's hosts.toml names for `kpulse.local`; every other registry is reached only through
#     a proxy address on 127.0.0.1 that refuses every connection, so such a pull fails without
#     leaving the machine (loopback is never proxied);
#   - the kubelet makes no iptables rules (`makeIPTablesUtilChains: false`); the node's own two
#     rules are removed by node_down; the kernel settings the kubelet changes are restored when
#     the last real node on the machine stops.

NODE_NAME=kpulse-real-1
NODE_TAINT=kpulse.io/real-node
# The kernel settings the kubelet sets (protectKernelDefaults: false).
NODE_SYSCTLS=(vm/overcommit_memory vm/panic_on_oom kernel/panic kernel/panic_on_oops
  kernel/keys/root_maxkeys kernel/keys/root_maxbytes)
NODE_SYSCTLS_SAVED=/run/kpulse-kernel-settings
# The `kubernetes` Service's ClusterIP (the first address of cluster.sh's service range).
NODE_API_SERVICE_IP=10.96.0.1

node_log() { echo "node: $*" >&2; }

node_install() {
  local missing=0
  for tool in containerd containerd-shim-runc-v2 ctr runc iptables; do
    command -v "$tool" >/dev/null || missing=1
  done
  for plugin in bridge host-local loopback; do
    [[ -x /usr/lib/cni/$plugin ]] || missing=1
  done
  [[ $missing == 0 ]] && return 0
  node_log "installing containerd, runc and the CNI plugins (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends containerd runc containernetworking-plugins iptables >&2 ||
    { apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends containerd runc containernetworking-plugins iptables >&2; }
}

# This machine's own address: the kubelet refuses a loopback node IP. A route lookup; no packet
# is sent.
node_host_ip() {
  ip -4 -o route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p'
}

# Names of one cluster's node, from its work dir.
node_names() { # dir
  # Resolved, so that paths in mount points and log links compare as text.
  node_dir="$(readlink -f "$1")/node"
  node_id="$(printf %s "$node_dir" | sha256sum | cut -c1-8)"
  node_run="/run/kpulse-$node_id"
  node_sock="$node_run/containerd.sock"
  node_bridge="kp-$node_id"
  node_cgroup="kpulse-$node_id"
  node_net="kpulse-$node_id"
  node_registry_file="$node_dir/registry.addr"
}

# The cluster's OCI registry on a free 127.0.0.1 port, storage under DIR/node/registry, and
# containerd's hosts.toml that makes it `kpulse.local` (plain HTTP, pull and resolve only).
node_registry_up() { # registry binary
  local port; port="$(free_port)"
  mkdir -p "$node_dir/registry" "$node_dir/certs.d/kpulse.local"
  cat > "$node_dir/registry.yml" <<EOF
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $node_dir/registry}}
http: {addr: "127.0.0.1:$port", secret: "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')"}
EOF
  start registry env OTEL_TRACES_EXPORTER=none "$1" serve "$node_dir/registry.yml"
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" 2>/dev/null && break
    kill -0 "$(cat "$dir/pids/registry")" 2>/dev/null || break
    sleep 0.1
  done
  curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/" ||
    { node_log "the registry did not start: $(tail -n 5 "$dir/logs/registry.log")"; return 1; }
  echo "127.0.0.1:$port" > "$node_registry_file"
  cat > "$node_dir/certs.d/kpulse.local/hosts.toml" <<EOF
server = "http://127.0.0.1:$port"
[host."http://127.0.0.1:$port"]
  capabilities = ["pull", "resolve"]
EOF
}

# Pushes OCI archives to the registry of the cluster in DIR, as `kpulse.local/<repo>:<tag>`.
node_push() { # dir, archive...
  node_names "$1"; shift
  [[ -f "$node_registry_file" ]] || { node_log "no registry: the cluster has no real node"; return 1; }
  python3 "$root/hack/oci-push.py" "$(cat "$node_registry_file")" "$@"
}

# Mount points of the cgroup hierarchies (v1 controllers and v2).
node_cgroup_mounts() {
  awk '$3 == "cgroup" || $3 == "cgroup2" {print $2}' /proc/mounts
}

# A /24 in 10.244.0.0/16 that no address or route of this machine uses; creates the bridge with
# the first address of it. Serialised across clusters.
node_bridge_up() {
  exec 8>/run/kpulse-node.lock
  flock 8
  local n subnet=""
  for n in $(seq 1 254); do
    if ! ip -4 -o addr show | grep -q " 10\.244\.$n\." && [[ -z "$(ip -4 route show 10.244.$n.0/24)" ]]; then
      subnet="10.244.$n"
      break
    fi
  done
  [[ -n "$subnet" ]] || { node_log "no free /24 in 10.244.0.0/16 for the pod bridge"; return 1; }
  ip link add "$node_bridge" type bridge
  ip addr add "$subnet.1/24" dev "$node_bridge"
  sysctl -qw "net.ipv4.conf.$node_bridge.forwarding=0"
  sysctl -qw "net.ipv4.conf.$node_bridge.route_localnet=1"
  sysctl -qw "net.ipv6.conf.$node_bridge.disable_ipv6=1"
  ip link set "$node_bridge" up
  flock -u 8
  exec 8>&-
  node_subnet="$subnet.0/24"
  node_gateway="$subnet.1"
}

# The `kubernetes` Service for pods, as kube-proxy would make it: this node's pods send
# $NODE_API_SERVICE_IP:443 to the bridge, where it becomes the API server on 127.0.0.1 (hence
# route_localnet on the bridge); any other packet from the bridge to 127.0.0.0/8 is dropped. Each
# rule carries the comment $node_net, by which node_down finds it.
node_iptables_up() {
  iptables -w -t nat -A PREROUTING -i "$node_bridge" -d "$NODE_API_SERVICE_IP/32" -p tcp --dport 443 \
    -m comment --comment "$node_net" -j DNAT --to-destination "127.0.0.1:$api_port"
  iptables -w -t filter -A INPUT -i "$node_bridge" -d 127.0.0.0/8 -m conntrack ! --ctstate DNAT \
    -m comment --comment "$node_net" -j DROP
}

node_iptables_down() {
  command -v iptables >/dev/null || return 0
  local table rule
  for table in nat filter; do
    { iptables -w -t "$table" -S || true; } | { grep -F -- "--comment $node_net " || true; } |
      sed 's/^-A /-D /' | while read -r rule; do eval "iptables -w -t $table $rule" || true; done
  done
}

node_write_configs() {
  mkdir -p "$node_dir/cni/net.d" "$node_dir/cni/ipam" "$node_dir/certs.d" "$node_dir/kubelet" "$node_dir/pod-logs"
  cat > "$node_dir/cni/net.d/10-kpulse.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$node_net",
  "plugins": [{
    "type": "bridge", "bridge": "$node_bridge", "isGateway": false, "ipMasq": false,
    "ipam": {"type": "host-local", "ranges": [[{"subnet": "$node_subnet"}]], "dataDir": "$node_dir/cni/ipam",
             "routes": [{"dst": "$NODE_API_SERVICE_IP/32", "gw": "$node_gateway"}]}
  }]
}
EOF
  cat > "$node_dir/containerd.toml" <<EOF
version = 2
root = "$node_dir/containerd"
state = "$node_run/containerd"
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = "$node_sock"
[ttrpc]
  address = "$node_sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$node_dir/containerd-opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "kpulse.local/pause:1"
  # Without CAP_SYS_RESOURCE (a VM like this one) every sandbox fails otherwise.
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        Root = "$node_run/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$node_dir/cni/net.d"
    max_conf_num = 1
  [plugins."io.containerd.grpc.v1.cri".registry]
    config_path = "$node_dir/certs.d"
EOF
  cat > "$node_dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# This machine class mounts cgroup v1 hierarchies, which v1.35 refuses unless told otherwise.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$node_cgroup
containerRuntimeEndpoint: unix://$node_sock
address: $node_ip
port: $node_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $node_healthz_port
tlsCertFile: $pki/kubelet-serving.crt
tlsPrivateKeyFile: $pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
registerWithTaints:
- {key: $NODE_TAINT, value: "true", effect: NoSchedule}
# No DNS leaves a pod: the cluster DNS server is the pod's own loopback, and pods with
# dnsPolicy Default get the same (the kubelet's answer to an empty resolvConf).
resolvConf: ""
clusterDNS: [127.0.0.1]
clusterDomain: cluster.local
podLogsDir: $node_dir/pod-logs
makeIPTablesUtilChains: false
serializeImagePulls: false
# Never collect the pulled images, and evict only when memory runs out, whatever the disk holds.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: "0%", nodefs.inodesFree: "0%", imagefs.available: "0%"}
EOF
}

# Every cgroup this node made, deepest first.
node_cgroup_dirs() {
  local m
  for m in $(node_cgroup_mounts); do
    [[ -d "$m/$node_cgroup" ]] && find "$m/$node_cgroup" -depth -type d
  done
  return 0
}

node_cgroups_up() {
  local m
  for m in $(node_cgroup_mounts); do
    mkdir -p "$m/$node_cgroup"
    if [[ -f "$m/cpuset.cpus" && -f "$m/$node_cgroup/cpuset.cpus" ]]; then
      cat "$m/cpuset.cpus" > "$m/$node_cgroup/cpuset.cpus"
      cat "$m/cpuset.mems" > "$m/$node_cgroup/cpuset.mems"
    fi
  done
}

node_save_kernel_settings() {
  exec 8>/run/kpulse-node.lock
  flock 8
  if [[ ! -f "$NODE_SYSCTLS_SAVED" ]]; then
    local s
    for s in "${NODE_SYSCTLS[@]}"; do echo "$s $(cat "/proc/sys/$s")"; done > "$NODE_SYSCTLS_SAVED"
  fi
  flock -u 8
  exec 8>&-
}

# Once no real node of any cluster runs on this machine: puts back the kernel settings, and
# removes the shim socket directory that containerd does not let one configure (if empty).
node_last_one_out() {
  local f
  for f in /run/kpulse-*/kubelet.pid; do
    [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null && return 0
  done
  rmdir /run/containerd/s 2>/dev/null && rmdir /run/containerd 2>/dev/null || true
  [[ -f "$NODE_SYSCTLS_SAVED" ]] || return 0
  local s v
  while read -r s v; do echo "$v" > "/proc/sys/$s" || true; done < "$NODE_SYSCTLS_SAVED"
  rm -f "$NODE_SYSCTLS_SAVED"
}

node_ctr() { ctr --address "$node_sock" --namespace k8s.io "$@"; }

# Runs a pod on the node that prints its routes, and checks that they are its own subnet and the
# `kubernetes` Service address, both on the bridge, and that the host does not forward what
# arrives on the bridge.
node_check_network() {
  local k=("$bin/kubectl" --kubeconfig="$dir/admin.kubeconfig")
  "${k[@]}" -n default apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Pod
metadata: {name: kpulse-node-check}
spec:
  nodeName: $NODE_NAME
  restartPolicy: Never
  tolerations: [{key: $NODE_TAINT, operator: Exists}]
  containers:
  - {name: check, image: kpulse.local/busybox:1, command: [ip, "-4", route]}
EOF
  local phase=""
  for _ in $(seq 1 120); do
    phase="$("${k[@]}" -n default get pod kpulse-node-check -o 'jsonpath={.status.phase}' || true)"
    [[ "$phase" == Succeeded || "$phase" == Failed ]] && break
    sleep 0.5
  done
  [[ "$phase" == Succeeded ]] || { node_log "the check pod did not succeed (phase: ${phase:-none})"; "${k[@]}" -n default describe pod kpulse-node-check >&2; return 1; }
  local routes; routes="$("${k[@]}" -n default logs kpulse-node-check)"
  "${k[@]}" -n default delete pod kpulse-node-check --wait=false >/dev/null
  if [[ "$(wc -l <<<"$routes")" != 2 ]] || ! grep -q "^$node_subnet dev eth0 " <<<"$routes" ||
     ! grep -q "^$NODE_API_SERVICE_IP via $node_gateway dev eth0 *$" <<<"$routes"; then
    node_log "a pod's routes are not just its subnet $node_subnet and $NODE_API_SERVICE_IP:"; echo "$routes" >&2; return 1
  fi
  [[ "$(cat "/proc/sys/net/ipv4/conf/$node_bridge/forwarding")" == 0 ]] ||
    { node_log "the host forwards packets from the pod bridge $node_bridge"; return 1; }
}

node_up() { # uses dir, pki, bin, api_port, start, cert, kubeconfig, free_port from hack/cluster.sh
  local started=$SECONDS
  node_install
  [[ -x "$bin/kubelet" ]] || { node_log "no kubelet in $bin (hack/build-k8s.sh builds it)"; return 1; }
  local images; images="$("$root/hack/images.sh" | tail -n1)"
  local registry; registry="$("$root/hack/build-registry.sh" | tail -n1)"
  node_names "$dir"
  node_ip="$(node_host_ip)"
  [[ -n "$node_ip" ]] || { node_log "this machine has no non-loopback IPv4 address for the kubelet"; return 1; }
  node_port="$(free_port)"; node_healthz_port="$(free_port)"
  mkdir -p "$node_dir" "$node_run"
  printf 'subjectAltName=IP:%s,DNS:%s\nextendedKeyUsage=serverAuth\n' "$node_ip" "$NODE_NAME" > "$pki/kubelet-serving.ext"
  cert kubelet-serving "/CN=$NODE_NAME" "$pki/kubelet-serving.ext"
  cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "$pki/client.ext"
  kubeconfig "$dir/kubelet.kubeconfig" kubelet
  node_bridge_up
  node_iptables_up
  node_write_configs
  node_registry_up "$registry"
  node_push "$dir" "$images/pause.tar" "$images/busybox.tar" >/dev/null
  node_cgroups_up
  node_save_kernel_settings

  # The proxy on 127.0.0.1:1 refuses every connection: a pull from any registry but the local one
  # (on loopback, which is never proxied) fails at once instead of reaching a registry (or a DNS
  # server) outside this machine.
  start containerd env HTTP_PROXY=http://127.0.0.1:1 HTTPS_PROXY=http://127.0.0.1:1 NO_PROXY= \
    containerd --config "$node_dir/containerd.toml" --log-level warn
  for _ in $(seq 1 100); do
    node_ctr version >/dev/null 2>&1 && break
    kill -0 "$(cat "$dir/pids/containerd")" 2>/dev/null || break
    sleep 0.1
  done
  node_ctr version >/dev/null || { node_log "containerd did not start"; return 1; }

  start kubelet "$bin/kubelet" --config="$node_dir/kubelet.yaml" --kubeconfig="$dir/kubelet.kubeconfig" \
    --root-dir="$node_dir/kubelet" --cert-dir="$node_dir/kubelet/pki" \
    --hostname-override="$NODE_NAME" --node-ip="$node_ip" --node-labels="$NODE_TAINT=true" --v=1
  cp "$dir/pids/kubelet" "$node_run/kubelet.pid"
  local k=("$bin/kubectl" --kubeconfig="$dir/admin.kubeconfig") ready=""
  for _ in $(seq 1 240); do
    ready="$("${k[@]}" get node "$NODE_NAME" -o 'jsonpath={.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null || true)"
    [[ "$ready" == True ]] && break
    kill -0 "$(cat "$dir/pids/kubelet")" 2>/dev/null || break
    sleep 0.5
  done
  [[ "$ready" == True ]] || { node_log "the kubelet did not make $NODE_NAME Ready"; return 1; }
  # Admission added the not-ready taint; the node-lifecycle controller that would lift it is off.
  "${k[@]}" patch node "$NODE_NAME" --type=json -p "[{\"op\":\"replace\",\"path\":\"/spec/taints\",\"value\":[{\"key\":\"$NODE_TAINT\",\"value\":\"true\",\"effect\":\"NoSchedule\"}]}]" >/dev/null
  node_check_network
  node_log "$NODE_NAME ready in $((SECONDS - started))s (kubelet https://$node_ip:$node_port, pods $node_subnet on $node_bridge)"
}

# Kills the processes of a pid file's process group, then waits for them.
node_stop() { # pid file
  [[ -f "$1" ]] || return 0
  local pid; pid="$(cat "$1")"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL -- "-$pid" 2>/dev/null || true
  rm -f "$1"
}

node_down() { # dir
  node_names "$1"
  [[ -d "$node_dir" || -d "$node_run" ]] || return 0
  local dir="$1"
  node_stop "$dir/pids/kubelet"
  rm -f "$node_run/kubelet.pid"
  local ids=() c
  if [[ -S "$node_sock" ]] && node_ctr version >/dev/null 2>&1; then
    mapfile -t ids < <(node_ctr containers ls -q 2>/dev/null)
    for c in $(node_ctr tasks ls -q 2>/dev/null); do
      node_ctr tasks kill --all --signal SIGKILL "$c" >/dev/null 2>&1 || true
    done
    for c in $(node_ctr tasks ls -q 2>/dev/null); do
      node_ctr tasks delete --force "$c" >/dev/null 2>&1 || true
    done
    for c in $(node_ctr containers ls -q 2>/dev/null); do
      node_ctr containers delete "$c" >/dev/null 2>&1 || true
    done
  fi
  node_stop "$dir/pids/containerd"
  # Whatever is left in the node's cgroups (a container whose shim died), and the shims of this
  # containerd (they outlive it by design).
  local cg pid
  for cg in $(node_cgroup_dirs); do
    [[ -f "$cg/cgroup.procs" ]] || continue
    while read -r pid; do kill -KILL "$pid" 2>/dev/null || true; done < "$cg/cgroup.procs"
  done
  for pid in $(grep -lsa -- "-address.$node_sock" /proc/[0-9]*/cmdline | cut -d/ -f3); do
    if [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == containerd-shim* ]]; then kill -KILL "$pid" 2>/dev/null || true; fi
  done
  # Network namespaces, container root filesystems, sandbox /dev/shm, volumes: deepest first.
  local mnt
  for mnt in $(awk -v a="$node_run/" -v b="$node_dir/" \
      'index($5, a) == 1 || index($5, b) == 1 {print $5}' /proc/self/mountinfo | sort -r); do
    umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
  done
  for cg in $(node_cgroup_dirs); do
    for _ in 1 2 3 4 5 6 7 8 9 10; do rmdir "$cg" 2>/dev/null && break; sleep 0.1; done
  done
  ip link del "$node_bridge" 2>/dev/null || true
  node_iptables_down
  # libcni's result cache and the kubelet's log links are machine-wide; remove this node's.
  rm -f /var/lib/cni/results/"$node_net"-*
  for c in "${ids[@]}"; do rm -f /var/lib/cni/results/*-"$c"-*; done
  local link
  for link in /var/log/containers/*.log; do
    if [[ -L "$link" && "$(readlink "$link")" == "$node_dir"/* ]]; then rm -f "$link"; fi
  done
  rm -rf "$node_run" "$node_dir"
  node_last_one_out
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  case "${1:-}" in
    install) node_install ;;
    *) echo "usage: hack/node.sh install (hack/cluster.sh starts and stops the node)" >&2; exit 2 ;;
  esac
fi
