#!/usr/bin/env bash
# Chart tests for charts/kpulse. Part of `make test` (hack/test.sh calls it with KUBECONFIG set).
#
#   hack/chart-test.sh
#
# 1. helm lint --strict (which also validates values against values.schema.json).
# 2. Template tests: render the chart with key value combinations and assert on the output
#    (RBAC per monitor, existingSecret, HA, ServiceMonitor, PDB, NetworkPolicy, pod security).
# 3. With KUBECONFIG pointing at a running control plane (hack/cluster.sh up): server-side dry-run
#    of the rendered manifests, helm install into a namespace that enforces the `restricted` Pod
#    Security Standard, RBAC proven with `kubectl auth can-i --as=<the ServiceAccount>` and with
#    real requests made with a TokenRequest token, helm upgrade with other values, helm uninstall.
# 4. On the real node of that control plane (hack/node.sh): kpulse's own image, built without
#    Docker (hack/kpulse-image.sh from $KPULSE_IMAGE_BINARY; unset: the release build), helm
#    install with 2 replicas into a `restricted` namespace: both Pods Running and Ready, one holds
#    the Lease, the log shows synced watches and no 403, uninstall stops the containers.
#
# Each check prints PASS or FAIL; the last line is `N passed, M failed`; exit status 1 on any
# failure. Helm and kubectl come from hack/build-k8s.sh (or $K8S_BIN).
set -uo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
chart="$root/charts/kpulse"

bin="${K8S_BIN:-$(hack/build-k8s.sh | tail -n1)}"
helm="$bin/helm"
kubectl="$bin/kubectl"
for tool in "$helm" "$kubectl"; do
  [[ -x "$tool" ]] || { echo "chart-test: $tool not found (run hack/build-k8s.sh)" >&2; exit 2; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export HELM_CACHE_HOME="$work/helm/cache" HELM_CONFIG_HOME="$work/helm/config" HELM_DATA_HOME="$work/helm/data"

passed=0
failed=0
pass() { echo "PASS $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }

# `helm template` without a cluster assumes the Kubernetes version Helm was built against, which
# a source build of Helm leaves at v1.20; use the version of the kubectl built alongside it.
kube_version="$("$kubectl" version --client -o json 2>/dev/null | sed -n 's/.*"gitVersion": *"\(v[0-9.]*\)".*/\1/p' | head -n1)"
kube_version="${kube_version:-v1.35.0}"

render() { # [helm template flags...] -> stdout; stderr to $work/render.err
  "$helm" template kpulse "$chart" --namespace kpulse --kube-version "$kube_version" "$@" 2>"$work/render.err"
}

# has NAME TEXT FIXED-STRING: TEXT contains the line fragment.
has() {
  if grep -qF -- "$3" <<<"$2"; then pass "$1"; else fail "$1: expected to find '$3'"; fi
}
lacks() {
  if grep -qF -- "$3" <<<"$2"; then fail "$1: did not expect '$3'"; else pass "$1"; fi
}

# ---------------------------------------------------------------------------------------------
echo "== helm lint --strict"
if out="$("$helm" lint --strict "$chart" 2>&1)"; then pass "helm lint --strict"; else echo "$out"; fail "helm lint --strict"; fi
for case in "replicas=2" "config.monitors.tls_cert_expiry.enabled=true,config.monitors.pvc_usage.enabled=true" "existingSecret=creds" "serviceMonitor.enabled=true,podDisruptionBudget.enabled=true,networkPolicy.enabled=true,networkPolicy.egress.enabled=true"; do
  if out="$("$helm" lint --strict "$chart" --set "$case" 2>&1)"; then pass "helm lint --strict --set $case"; else echo "$out"; fail "helm lint --strict --set $case"; fi
done

# ---------------------------------------------------------------------------------------------
echo "== template: values.schema.json rejects what kpulse would reject"
reject() { # NAME EXPECTED-MESSAGE FLAGS...
  local name="$1" msg="$2"; shift 2
  if render "$@" >/dev/null; then
    fail "$name: helm template accepted it"
  elif grep -qF -- "$msg" "$work/render.err"; then
    pass "$name"
  else
    fail "$name: error did not mention '$msg': $(cat "$work/render.err")"
  fi
}
reject "schema: unknown monitor setting" "additional properties 'bogus' not allowed" --set config.monitors.pod_crashes.bogus=1
reject "schema: unknown monitor" "additional properties 'pod_crash' not allowed" --set config.monitors.pod_crash.enabled=true
reject "schema: bad duration" "/config/dedupe/window" --set config.dedupe.window=soon
reject "schema: unknown channel type" "/config/channels/ops" --set config.channels.ops.type=fax
reject "schema: unknown chart value" "additional properties 'imag' not allowed" --set imag.tag=x
reject "schema: replicas must be >= 1" "/replicas" --set replicas=0

# ---------------------------------------------------------------------------------------------
echo "== template: ClusterRole follows the enabled monitors"
# Every monitor, the opt-in ones, and which monitors need each ClusterRole rule: generated from
# the monitor registry in the code (`make generate`), like the chart's files/monitors.yaml. The
# checks below prove the template grants exactly those rules for each combination of switches.
# shellcheck source=hack/monitors.sh
source "$root/hack/monitors.sh"

# has_rule TEXT APIGROUPS-LINE RESOURCES-LINE VERBS-LINE: the rule's three lines, in order.
has_rule() {
  awk -v g="$2" -v r="$3" -v v="$4" '
    { sub(/^ *(- )?/, "") }
    $0 == g { state = 1; next }
    state == 1 && $0 == r { state = 2; next }
    state == 2 && $0 == v { found = 1 }
    { state = 0 }
    END { exit !found }' <<<"$1"
}

# check_rules CASE "enabled monitors..." [helm flags...]
check_rules() {
  local case="$1" enabled=" $2 "; shift 2
  local out
  if ! out="$(render --show-only templates/clusterrole.yaml "$@")"; then
    fail "$case: helm template failed: $(cat "$work/render.err")"
    return
  fi
  local problems=()
  for entry in "${rules[@]}"; do
    local groups resources verbs needed_by want=0 got=0
    IFS='|' read -r groups resources verbs needed_by <<<"$entry"
    for m in $needed_by; do [[ "$enabled" == *" $m "* ]] && want=1; done
    has_rule "$out" "$groups" "$resources" "$verbs" && got=1
    if [[ $want == 1 && $got == 0 ]]; then problems+=("missing '$groups $resources $verbs'"); fi
    if [[ $want == 0 && $got == 1 ]]; then problems+=("unexpected '$groups $resources $verbs'"); fi
  done
  grep -qF -- "resources: [namespaces]" <<<"$out" || problems+=("missing 'resources: [namespaces]'")
  if grep -qE 'verbs: \[.*(create|update|patch|delete).*\]|"\*"|\[\*\]' <<<"$out"; then
    problems+=("a write verb or wildcard in the ClusterRole")
  fi
  if ((${#problems[@]})); then fail "$case: ${problems[*]}"; else pass "$case"; fi
}

defaults=""
for m in "${monitors[@]}"; do [[ "$opt_in" == *" $m "* ]] || defaults+="$m "; done
check_rules "clusterrole: defaults" "$defaults"
for m in "${monitors[@]}"; do
  if [[ "$opt_in" == *" $m "* ]]; then
    check_rules "clusterrole: $m enabled" "$defaults $m" --set "config.monitors.$m.enabled=true"
  else
    check_rules "clusterrole: $m disabled" "${defaults/$m /}" --set "config.monitors.$m.enabled=false"
  fi
done
all_off=()
all_on=()
for m in "${monitors[@]}"; do
  all_off+=(--set "config.monitors.$m.enabled=false")
  all_on+=(--set "config.monitors.$m.enabled=true")
done
check_rules "clusterrole: every monitor off (namespaces only)" "" "${all_off[@]}"
check_rules "clusterrole: every monitor on" "${monitors[*]}" "${all_on[@]}"
# A monitor left out of values (e.g. values.config.monitors replaced) falls back to kpulse's default.
check_rules "clusterrole: monitors absent from values use the code defaults" "$defaults" --set config.monitors.warning_events=null --set config.monitors.tls_cert_expiry=null

# The log excerpt of evidence is opt-in, and so is the access it needs.
logs_role="$(render --show-only templates/clusterrole.yaml --set config.evidence.logs.enabled=true)"
if has_rule "$logs_role" 'apiGroups: [""]' 'resources: [pods/log]' 'verbs: [get]'; then pass "clusterrole: evidence.logs.enabled grants pods/log get"; else fail "clusterrole: evidence.logs.enabled grants no pods/log get"; fi
lacks "clusterrole: no pods/log by default" "$(render --show-only templates/clusterrole.yaml)" "pods/log"
check_rules "clusterrole: evidence.logs leaves the monitors' rules alone" "$defaults" --set config.evidence.logs.enabled=true
reject "schema: evidence.logs.lines above 200" "/config/evidence/logs/lines" --set config.evidence.logs.lines=500

# Every RBAC rule carries a comment saying why it exists.
out="$(render "${all_on[@]}" --set replicas=2 --set existingSecret=creds --set config.monitors.canary.namespace=kpulse --set config.evidence.logs.enabled=true)"
uncommented="$(awk '/^ *- apiGroups:/ { if (prev !~ /^ *#/) print FILENAME": "$0 } { prev = $0 }' <<<"$out")"
if [[ -z "$uncommented" ]]; then pass "rbac: every rule has a comment"; else fail "rbac: rules without a comment: $uncommented"; fi

# ---------------------------------------------------------------------------------------------
echo "== template: Role in the release namespace"
role="$(render --show-only templates/role.yaml)"
has "role: config ConfigMap get/list/watch by name" "$role" 'resourceNames: ["kpulse"]'
has "role: kpulse-state by name" "$role" 'resourceNames: ["kpulse-state"]'
has "role: kpulse-silences by name" "$role" 'resourceNames: ["kpulse-silences"]'
has "role: Events (events.k8s.io)" "$role" 'apiGroups: [events.k8s.io]'
lacks "role: no Secret without a secret" "$role" "resources: [secrets]"
lacks "role: no Lease with one replica" "$role" "leases"
role="$(render --show-only templates/role.yaml --set replicas=2)"
has "role: HA grants the Lease by name" "$role" 'resourceNames: ["kpulse-leader"]'
has "role: HA grants Lease create" "$role" "resources: [leases]"
role="$(render --show-only templates/role.yaml --set existingSecret=creds)"
has "role: existingSecret readable by name" "$role" 'resourceNames: ["creds"]'
canary="$(render --show-only templates/canary-role.yaml --set config.monitors.canary.enabled=true)"
has "canary: Role in the canary namespace (kpulse's default)" "$canary" "namespace: kpulse"
has "canary: create/delete pods" "$canary" "verbs: [create, delete]"
if grep -q "deployments" <<<"$canary"; then fail "canary: no Deployment access without the Deployment routine"; else pass "canary: no Deployment access without the Deployment routine"; fi
canary="$(render --show-only templates/canary-role.yaml --set config.monitors.canary.enabled=true --set config.monitors.canary.deployment=true)"
has "canary: the Deployment routine may create/delete/list Deployments" "$canary" "resources: [deployments]"
canary="$(render --show-only templates/canary-role.yaml --set config.monitors.canary.enabled=true --set config.monitors.canary.namespace=probes)"
has "canary: Role follows monitors.canary.namespace" "$canary" "namespace: probes"
if render --show-only templates/canary-role.yaml >/dev/null; then fail "canary: no Role when the canary is off"; else pass "canary: no Role when the canary is off"; fi

# ---------------------------------------------------------------------------------------------
echo "== template: Deployment, Secret, ConfigMap"
dep="$(render --show-only templates/deployment.yaml)"
for want in "type: Recreate" "replicas: 1" "runAsNonRoot: true" "readOnlyRootFilesystem: true" \
  "allowPrivilegeEscalation: false" "- ALL" "type: RuntimeDefault" "path: /healthz" "path: /readyz" \
  "fieldPath: metadata.namespace" "fieldPath: metadata.name" "name: POD_NAMESPACE" "name: POD_NAME" \
  "cpu: 50m" "memory: 64Mi" "memory: 256Mi" 'value: "0.0.0.0:9090"' "automountServiceAccountToken: true" \
  "args: [run]" 'image: "ghcr.io/kpulse/kpulse:'; do
  has "deployment: $want" "$dep" "$want"
done
lacks "deployment: no checksum annotation (config applies live)" "$dep" "checksum/"
lacks "deployment: no KPULSE_SECRET without a secret" "$dep" "KPULSE_SECRET"
dep="$(render --show-only templates/deployment.yaml --set replicas=3)"
has "deployment: HA rolls (Lease decides the leader)" "$dep" "type: RollingUpdate"
has "deployment: HA replicas" "$dep" "replicas: 3"
has "deployment: HA lease name" "$dep" "KPULSE_LEASE_NAME"
dep="$(render --show-only templates/deployment.yaml --set image.digest=sha256:abc)"
has "deployment: digest wins over tag" "$dep" 'image: "ghcr.io/kpulse/kpulse@sha256:abc"'
dep="$(render --show-only templates/deployment.yaml --set otel.endpoint=http://otel:4318)"
has "deployment: otel endpoint" "$dep" "OTEL_EXPORTER_OTLP_ENDPOINT"

out="$(render --set existingSecret=creds)"
has "existingSecret: KPULSE_SECRET" "$out" 'value: "creds"'
lacks "existingSecret: the chart creates no Secret" "$out" "kind: Secret"
out="$(render --set secrets.SLACK_WEBHOOK=https://hooks.example.com/x)"
has "secrets: chart Secret created" "$out" "kind: Secret"
has "secrets: key in stringData" "$out" '"SLACK_WEBHOOK": "https://hooks.example.com/x"'
has "secrets: KPULSE_SECRET names it" "$out" 'value: "kpulse"'
out="$(render --set existingSecret=creds --set secrets.X=y)"
lacks "existingSecret wins over secrets" "$out" "kind: Secret"

cm="$(render --show-only templates/configmap.yaml --set config.cluster=prod-eks-1 --set-json 'config.routing.rules=[{"match":{"severity":["critical"]},"channels":["log"]}]')"
has "configmap: key config.yaml" "$cm" "config.yaml: |"
has "configmap: values.config rendered" "$cm" "cluster: prod-eks-1"
has "configmap: nested values rendered" "$cm" "- critical"
out="$(render "${all_on[@]}" --set replicas=2 --set secrets.X=y --set serviceMonitor.enabled=true --set podDisruptionBudget.enabled=true --set networkPolicy.enabled=true --api-versions monitoring.coreos.com/v1)"
n_cm="$(grep -c '^kind: ConfigMap' <<<"$out")"
if [[ "$n_cm" == 2 ]] && ! grep -qE '^  name: "?kpulse-state"?$' <<<"$out"; then
  pass "kpulse-state is never templated (two ConfigMaps: the config and the check's copy)"
else
  fail "kpulse-state is never templated: found $n_cm ConfigMaps"
fi

# The rendered configuration is one kpulse accepts (when the binary is built).
kpulse_bin="${KPULSE_BIN:-$root/target/debug/kpulse}"
rendered_config() { # [helm flags...] -> the config.yaml of the rendered ConfigMap
  render --show-only templates/configmap.yaml "$@" | awk 'f { sub(/^    /, ""); print } /config.yaml: \|/ { f = 1 }'
}
if [[ -x "$kpulse_bin" ]]; then
  for case in "" "--set config.monitors.pvc_usage.enabled=true --set config.cluster=c1"; do
    # shellcheck disable=SC2086
    rendered_config $case >"$work/config.yaml"
    if msg="$("$kpulse_bin" check-config --config "$work/config.yaml" 2>&1)"; then
      pass "kpulse check-config accepts the rendered config ${case:-(defaults)}"
    else
      fail "kpulse check-config rejects the rendered config ${case:-(defaults)}: $msg"
    fi
  done
else
  echo "SKIP kpulse check-config on the rendered config ($kpulse_bin not built)"
fi

# ---------------------------------------------------------------------------------------------
echo "== examples/: values files that install as they are"
# NAME=value lines from the `kubectl create secret ... --from-literal=NAME=value` command a file
# shows (an example's header, the README), quotes removed.
secret_literals() {
  sed -n 's/.*--from-literal=\([A-Za-z_][A-Za-z0-9_]*\)=\(.*\)$/\1=\2/p' "$1" |
    sed -e 's/ *\\$//' -e "s/=[\"']\(.*\)[\"']$/=\1/"
}
# check_example NAME FILE SECRETS-ENV: kpulse accepts the configuration FILE renders, with the
# secret values SECRETS-ENV gives.
check_example() {
  if [[ ! -x "$kpulse_bin" ]]; then
    echo "SKIP $1: kpulse check-config ($kpulse_bin not built)"
    return
  fi
  local msg
  rendered_config -f "$2" >"$work/example-config.yaml"
  if msg="$("$kpulse_bin" check-config --config "$work/example-config.yaml" --secrets "$3" 2>&1)"; then
    pass "$1: kpulse check-config accepts the rendered configuration"
  else
    fail "$1: kpulse check-config: $msg"
  fi
}
examples=("$root"/examples/*.yaml)
if ((${#examples[@]} >= 4)); then pass "examples: ${#examples[@]} values files"; else fail "examples: only ${#examples[@]} values files"; fi
for example in "${examples[@]}"; do
  name="examples/$(basename "$example")"
  if out="$("$helm" lint --strict "$chart" -f "$example" 2>&1)"; then pass "$name: helm lint --strict"; else echo "$out"; fail "$name: helm lint --strict"; fi
  if out="$(render -f "$example")"; then
    pass "$name: helm template"
    has "$name: uses the Secret its header creates" "$out" 'value: "kpulse-secrets"'
  else
    fail "$name: helm template: $(cat "$work/render.err")"
  fi
  has "$name: its header shows the helm install command" "$(cat "$example")" "helm install kpulse charts/kpulse -n kpulse -f $name"
  modeline="$(sed -n '1s/^# yaml-language-server: \$schema=//p' "$example")"
  if [[ -n "$modeline" && -f "$(dirname "$example")/$modeline" ]]; then
    pass "$name: its first line points editors at the chart's schema"
  else
    fail "$name: no yaml-language-server modeline naming an existing schema on its first line"
  fi
  secret_literals "$example" >"$work/example.env"
  check_example "$name (with the Secret its header creates)" "$example" "$work/example.env"
done
# The chart's default `log` channel goes once other channels take over the routes (Helm merges
# maps, so it would otherwise stay unless the values said `log: null`), and stays while named.
out="$(rendered_config)"
has "log channel: in the default configuration" "$out" "    type: log"
out="$(rendered_config -f "$root/examples/slack.yaml")"
lacks "log channel: left out when routes name only your channels" "$out" "log:"
out="$(rendered_config --set config.channels.ops.type=log --set config.channels.ops.delivery.retries=1)"
has "log channel: kept while routing.default still names it" "$out" "  log:"
out="$(rendered_config -f "$root/examples/slack.yaml" --set-json 'config.routing.rules=[{"match":{"severity":["info"]},"channels":["log"]}]')"
has "log channel: kept while a rule names it" "$out" "  log:"
out="$(rendered_config -f "$root/examples/slack.yaml" --set-json 'config.welcome={"channels":["log","slack"]}')"
has "log channel: kept while welcome.channels names it" "$out" "  log:"

# The README's install section, taken literally: the example it installs exists, and the Secret
# its command creates fills every $NAME of that example.
readme_example="$(sed -n 's/^helm install kpulse charts\/kpulse .*-f \(examples\/[a-z0-9-]*\.yaml\).*/\1/p' "$root/README.md" | head -n1)"
if [[ -n "$readme_example" && -f "$root/$readme_example" ]]; then
  pass "README: installs $readme_example, which exists"
  secret_literals "$root/README.md" >"$work/readme.env"
  check_example "README: $readme_example with the README's Secret" "$root/$readme_example" "$work/readme.env"
else
  fail "README: no 'helm install kpulse charts/kpulse ... -f examples/<file>.yaml' line naming an existing file"
fi

# ---------------------------------------------------------------------------------------------
echo "== template: the check-config hook (kpulse check-config before install and upgrade)"
hook="$(render --show-only templates/check-config.yaml -f "$root/examples/slack.yaml")"
has "hook: runs before install and upgrade" "$hook" "helm.sh/hook: pre-install,pre-upgrade"
has "hook: copies before the Job" "$hook" 'helm.sh/hook-weight: "-10"'
has "hook: a failed Job stays for its log" "$hook" "helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded"
has "hook: the chart's image" "$hook" 'image: "ghcr.io/kpulse/kpulse:'
has "hook: kpulse check-config on the configuration" "$hook" "- /etc/kpulse/config/config.yaml"
has "hook: with the Secret, whose name the path carries" "$hook" "- /etc/kpulse/secret/kpulse-secrets"
has "hook: the existing Secret itself" "$hook" "secretName: kpulse-secrets"
has "hook: a missing Secret is check-config's to report" "$hook" "optional: true"
has "hook: one attempt" "$hook" "backoffLimit: 0"
has "hook: no API access" "$hook" "automountServiceAccountToken: false"
has "hook: restricted security context" "$hook" "allowPrivilegeEscalation: false"
has "hook: the problems in the pod status" "$hook" "terminationMessagePolicy: FallbackToLogsOnError"
lacks "hook: no copy of an existing Secret" "$hook" "kind: Secret"
if grep -qE 'app.kubernetes.io/name: kpulse$' <<<"$hook"; then
  fail "hook: its pod carries the selector label of the kpulse pods"
else
  pass "hook: the Service and policies do not select its pod"
fi
cm_config="$(awk '/^kind: ConfigMap/ { f = 1 } f && /config.yaml: \|/ { c = 1; next } c && /^---/ { exit } c { sub(/^    /, ""); print }' <<<"$hook")"
if [[ "$cm_config" == "$(rendered_config -f "$root/examples/slack.yaml")" ]]; then
  pass "hook: checks the configuration the ConfigMap gets"
else
  fail "hook: its configuration differs from the ConfigMap's"
fi
hook="$(render --show-only templates/check-config.yaml --set secrets.SLACK_WEBHOOK=https://hooks.example.com/x)"
has "hook: a copy of the chart's own Secret (created after the hook)" "$hook" "kind: Secret"
has "hook: the copy is used" "$hook" "secretName: kpulse-check-config"
hook="$(render --show-only templates/check-config.yaml)"
lacks "hook: no Secret volume without a Secret" "$hook" "secret:"
has "hook: without a Secret no \$NAME resolves, as in kpulse" "$hook" "- /dev/null"
if render --show-only templates/check-config.yaml --set configCheck.enabled=false >/dev/null; then
  fail "hook: configCheck.enabled=false renders no check"
else
  pass "hook: configCheck.enabled=false renders no check"
fi

# ---------------------------------------------------------------------------------------------
echo "== template: optional objects"
sm="$(render --set serviceMonitor.enabled=true --api-versions monitoring.coreos.com/v1 --show-only templates/servicemonitor.yaml)"
has "servicemonitor: rendered when the API exists" "$sm" "kind: ServiceMonitor"
has "servicemonitor: scrapes the metrics port" "$sm" "port: http-metrics"
if render --set serviceMonitor.enabled=true --show-only templates/servicemonitor.yaml >/dev/null; then
  fail "servicemonitor: skipped when monitoring.coreos.com/v1 is absent"
else
  pass "servicemonitor: skipped when monitoring.coreos.com/v1 is absent"
fi
out="$(render)"
lacks "defaults: no ServiceMonitor" "$out" "kind: ServiceMonitor"
lacks "defaults: no PodDisruptionBudget" "$out" "kind: PodDisruptionBudget"
lacks "defaults: no NetworkPolicy" "$out" "kind: NetworkPolicy"
lacks "defaults: no Secret" "$out" "kind: Secret"
has "defaults: metrics Service" "$out" "targetPort: http-metrics"
pdb="$(render --set podDisruptionBudget.enabled=true --show-only templates/poddisruptionbudget.yaml)"
has "pdb: maxUnavailable (never blocks a drain)" "$pdb" "maxUnavailable: 1"
has "pdb: unhealthy pods may be evicted" "$pdb" "unhealthyPodEvictionPolicy: AlwaysAllow"
np="$(render --set networkPolicy.enabled=true --show-only templates/networkpolicy.yaml)"
has "networkpolicy: ingress closed by default" "$np" "ingress: []"
lacks "networkpolicy: egress open by default" "$np" "- Egress"
np="$(render --set networkPolicy.enabled=true --set networkPolicy.egress.enabled=true \
  --set-json 'networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]' \
  --set-json 'networkPolicy.egress.apiServer=[{"ipBlock":{"cidr":"10.0.0.1/32"}}]' \
  --set-json 'networkPolicy.egress.extra=[{"ports":[{"port":443,"protocol":"TCP"}]}]' \
  --show-only templates/networkpolicy.yaml)"
has "networkpolicy: metrics from the given peers" "$np" "kubernetes.io/metadata.name: monitoring"
has "networkpolicy: egress restricted" "$np" "- Egress"
has "networkpolicy: egress to the API server" "$np" "cidr: 10.0.0.1/32"
has "networkpolicy: egress to DNS" "$np" "port: 53"

# ---------------------------------------------------------------------------------------------
if [[ -z "${KUBECONFIG:-}" ]] || ! "$kubectl" get --raw /readyz >/dev/null 2>&1; then
  echo "SKIP server-side tests: no reachable control plane (set KUBECONFIG; hack/cluster.sh up)"
else
  echo "== server side: Kubernetes at $("$kubectl" config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
  suffix="$(head -c 64 /dev/urandom | tr -dc 'a-z0-9' | head -c 6)"
  ns="kpulse-chart-$suffix"
  other="kpulse-chart-$suffix-other"
  real_ns="kpulse-chart-$suffix-real"
  hns="kpulse-chart-$suffix-hook"
  sa="system:serviceaccount:$ns:kpulse"
  kpulse_pid=""
  cleanup_server() {
    [[ -n "$kpulse_pid" ]] && kill "$kpulse_pid" 2>/dev/null && wait "$kpulse_pid" 2>/dev/null
    "$helm" uninstall kpulse -n "$ns" >/dev/null 2>&1 || true
    "$helm" uninstall kpulse -n "$real_ns" >/dev/null 2>&1 || true
    "$helm" uninstall kpulse -n "$hns" >/dev/null 2>&1 || true
    # No kubelet confirms pod deletion on the fake nodes: force it.
    "$kubectl" delete pods --all -n "$ns" --force --grace-period=0 >/dev/null 2>&1 || true
    "$kubectl" delete pods --all -n "$hns" --force --grace-period=0 >/dev/null 2>&1 || true
    "$helm" uninstall kpulse -n "$real_ns-bad" >/dev/null 2>&1 || true
    "$kubectl" delete namespace "$ns" "$other" "$real_ns" "$real_ns-bad" "$hns" --wait=false >/dev/null 2>&1 || true
    "$kubectl" delete clusterrole,clusterrolebinding "kpulse-$hns" --ignore-not-found >/dev/null 2>&1 || true
    "$kubectl" delete clusterrole,clusterrolebinding "kpulse-$ns" --ignore-not-found >/dev/null 2>&1 || true
  }
  trap 'cleanup_server; rm -rf "$work"' EXIT
  "$kubectl" create namespace "$ns" >/dev/null
  "$kubectl" create namespace "$other" >/dev/null
  "$kubectl" label namespace "$ns" pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/enforce-version=latest >/dev/null

  # The check-config hook Job needs a kubelet to run its pod; the local control plane has none, so
  # hack/run-pod.py plays one with this build of kpulse while helm waits (its output goes to
  # $work/hook.out). Without the binary the check is switched off.
  helm_hooked() { # NAMESPACE install|upgrade ARGS...
    local hns="$1"; shift
    if [[ ! -x "$kpulse_bin" ]]; then
      "$helm" "$@" --set configCheck.enabled=false
      return
    fi
    python3 "$root/hack/run-pod.py" "$kubectl" "$hns" app.kubernetes.io/component=check-config \
      "$kpulse_bin" "$(mktemp -d "$work/pod.XXXXXX")" >"$work/hook.out" 2>&1 &
    local runner=$! rc=0
    "$helm" "$@" || rc=$?
    wait "$runner" 2>/dev/null
    return $rc
  }

  server_version="$("$kubectl" version -o json 2>/dev/null | sed -n 's/.*"gitVersion": *"\(v[^"]*\)".*/\1/p' | tail -n1)"
  srender() { "$helm" template kpulse "$chart" --namespace "$ns" --kube-version "${server_version:-$kube_version}" "$@" 2>"$work/render.err"; }

  echo "== server side: dry-run of the rendered manifests"
  dry_run() { # NAME [helm flags...]
    local name="$1" manifest msg=""; shift
    if manifest="$(srender "$@")" && msg="$("$kubectl" apply --dry-run=server -f - <<<"$manifest" 2>&1)"; then
      pass "dry-run=server: $name"
    else
      fail "dry-run=server: $name: ${msg:-$(cat "$work/render.err")}"
    fi
  }
  dry_run "defaults"
  dry_run "HA" --set replicas=2
  dry_run "existingSecret" --set existingSecret=creds
  dry_run "chart Secret" --set secrets.TOKEN=x
  dry_run "PDB and NetworkPolicy" --set podDisruptionBudget.enabled=true --set networkPolicy.enabled=true \
    --set networkPolicy.egress.enabled=true --set-json 'networkPolicy.egress.apiServer=[{"ipBlock":{"cidr":"10.0.0.1/32"}}]'
  dry_run "every monitor on, canary in the release namespace" "${all_on[@]}" --set config.monitors.canary.namespace="$ns"
  for example in "${examples[@]}"; do
    dry_run "examples/$(basename "$example")" -f "$example"
  done
  notes="$("$helm" install kpulse "$chart" -n "$ns" --dry-run=server -f "$root/examples/slack-pagerduty.yaml" 2>&1)"
  has "notes (examples/slack-pagerduty.yaml): the rule" "$notes" "rule 1 -> pagerduty (pagerduty), slack (slack)"
  has "notes (examples/slack-pagerduty.yaml): the default route" "$notes" "otherwise -> slack (slack)"
  lacks "notes (examples/slack-pagerduty.yaml): not only the pod's log" "$notes" "nowhere else"

  echo "== server side: helm install into a namespace enforcing the restricted Pod Security Standard"
  if msg="$(helm_hooked "$ns" install kpulse "$chart" -n "$ns" 2>&1)"; then
    pass "helm install"
  else
    fail "helm install: $msg"
  fi
  has "notes: how to turn on and send a test message" "$msg" "test_channel_token: \$TEST_CHANNEL_TOKEN"
  has "notes: with the default values alerts reach only the pod's log" "$msg" "alerts are written to the pod's log and nowhere else"
  has "notes: where alerts go" "$msg" "every alert -> log (log)"
  has "notes: the welcome message" "$msg" "kpulse sends each channel a welcome message"
  has "notes: where to look" "$msg" "curl -s localhost:8080/status"
  has "notes: kpulse-state is left on uninstall" "$msg" "delete configmap kpulse-state"
  # The ReplicaSet controller creates the pod; PodSecurity admission would refuse it (FailedCreate).
  pod=""
  for _ in $(seq 1 60); do
    pod="$("$kubectl" get pods -n "$ns" -l app.kubernetes.io/instance=kpulse -o name 2>/dev/null | head -n1)"
    [[ -n "$pod" ]] && break
    sleep 0.5
  done
  if [[ -n "$pod" ]]; then
    pass "restricted namespace: the Deployment's pod was admitted ($pod)"
  else
    fail "restricted namespace: no pod admitted: $("$kubectl" get events -n "$ns" --field-selector reason=FailedCreate -o jsonpath='{.items[*].message}' 2>&1)"
  fi
  # The same pod template as a bare Pod, and a control pod that must be refused (PSA is enforcing).
  spec="$("$kubectl" get deployment kpulse -n "$ns" -o jsonpath='{.spec.template.spec}')"
  if msg="$(printf '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"kpulse-psa"},"spec":%s}' "$spec" | "$kubectl" create -n "$ns" --dry-run=server -f - 2>&1)"; then
    pass "restricted namespace: pod template admitted as a bare Pod"
  else
    fail "restricted namespace: pod template refused: $msg"
  fi
  if msg="$("$kubectl" run psa-control -n "$ns" --image=registry.k8s.io/pause:3.10 --dry-run=server 2>&1)"; then
    fail "restricted namespace: a pod without securityContext was admitted (PodSecurity not enforcing?)"
  elif grep -q 'violates PodSecurity' <<<"$msg"; then
    pass "restricted namespace: a non-compliant pod is refused (the check above means something)"
  else
    fail "restricted namespace: control pod failed for another reason: $msg"
  fi

  can() { # EXPECT(yes|no) VERB RESOURCE [flags...]
    local expect="$1" verb="$2" resource="$3"; shift 3
    local got
    got="$("$kubectl" auth can-i "$verb" "$resource" --as="$sa" "$@" 2>/dev/null | head -n1)"
    if [[ "$got" == "$expect" ]]; then
      pass "can-i $verb $resource $* = $expect"
    else
      fail "can-i $verb $resource $*: expected $expect, got '${got:-error}'"
    fi
  }

  echo "== server side: RBAC with the default values"
  for r in pods events events.events.k8s.io nodes namespaces persistentvolumeclaims persistentvolumes \
    storageclasses.storage.k8s.io deployments.apps replicasets.apps statefulsets.apps daemonsets.apps \
    jobs.batch cronjobs.batch horizontalpodautoscalers.autoscaling; do
    can yes list "$r" -A
    can yes watch "$r" -A
  done
  can no list secrets -A
  can no get secrets -n "$ns"
  can no get nodes --subresource=proxy
  can no create deployments.apps -n "$other"
  can no delete pods -n "$other"
  can no create pods -n "$ns"
  can no patch nodes
  can no update pods --subresource=status -n "$other"
  can yes get configmaps/kpulse -n "$ns"
  can yes watch configmaps/kpulse -n "$ns"
  can no update configmaps/kpulse -n "$ns"
  can no get configmaps/other -n "$ns"
  can no get configmaps -n "$other"
  can yes create configmaps -n "$ns"
  can no create configmaps -n "$other"
  can yes patch configmaps/kpulse-state -n "$ns"
  can yes update configmaps/kpulse-state -n "$ns"
  can yes watch configmaps/kpulse-silences -n "$ns"
  can yes update configmaps/kpulse-silences -n "$ns"
  can yes create events.events.k8s.io -n "$ns"
  can yes create events -n "$ns"
  can no create events -n "$other"
  can no create leases.coordination.k8s.io -n "$ns"

  echo "== server side: real requests with the ServiceAccount's TokenRequest token"
  token="$("$kubectl" create token kpulse -n "$ns" --duration=10m 2>&1)" || fail "kubectl create token: $token"
  server="$("$kubectl" config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')"
  ca="$("$kubectl" config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority}')"
  ca_data="$("$kubectl" config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')"
  if [[ -z "$ca" && -n "$ca_data" ]]; then ca="$work/ca.crt"; base64 -d <<<"$ca_data" >"$ca"; fi
  skc="$work/sa.kubeconfig"
  "$kubectl" config --kubeconfig="$skc" set-cluster c --server="$server" --certificate-authority="$ca" >/dev/null
  "$kubectl" config --kubeconfig="$skc" set-credentials sa --token="$token" >/dev/null
  "$kubectl" config --kubeconfig="$skc" set-context c --cluster=c --user=sa --namespace="$ns" >/dev/null
  "$kubectl" config --kubeconfig="$skc" use-context c >/dev/null
  as_sa() { KUBECONFIG="$skc" "$kubectl" "$@"; }
  who="$(as_sa auth whoami -o jsonpath='{.status.userInfo.username}' 2>&1)"
  if [[ "$who" == "$sa" ]]; then pass "token authenticates as $sa"; else fail "token authenticates as '$who', not $sa"; fi
  forbidden() { # NAME COMMAND...
    local name="$1"; shift
    local msg
    if msg="$(as_sa "$@" 2>&1)"; then
      fail "$name: succeeded, expected 403 Forbidden"
    elif grep -q 'Forbidden\|forbidden' <<<"$msg"; then
      pass "$name: 403 Forbidden"
    else
      fail "$name: failed without 403: $msg"
    fi
  }
  allowed() { # NAME COMMAND...
    local name="$1"; shift
    local msg
    if msg="$(as_sa "$@" 2>&1)"; then pass "$name: allowed"; else fail "$name: $msg"; fi
  }
  allowed "list pods in every namespace" get pods -A
  allowed "list Warning events in every namespace" get events -A --field-selector type=Warning
  allowed "read its configuration ConfigMap" get configmap kpulse
  allowed "watch-style list of its ConfigMap (name field selector)" get configmaps --field-selector metadata.name=kpulse
  forbidden "list secrets in every namespace" get secrets -A
  forbidden "create a deployment" create deployment x -n "$other" --image=registry.k8s.io/pause:3.10
  forbidden "list all ConfigMaps of its namespace" get configmaps
  forbidden "edit its own configuration" label configmap kpulse x=y
  # What kpulse does with kpulse-state: create it, then write it.
  allowed "create kpulse-state" create configmap kpulse-state --from-literal=state={}
  allowed "patch kpulse-state" patch configmap kpulse-state --type=merge -p '{"data":{"state":"{\"v\":1}"}}'
  # Run-time silences: watched by name, written by the HTTP API.
  allowed "watch-style list of kpulse-silences (name field selector)" get configmaps --field-selector metadata.name=kpulse-silences

  # The RBAC is enough for what kpulse actually does: run the current build with this token (as
  # make demo does) until it is ready, stop it (it writes kpulse-state on the way out), and look
  # for any 403 in its log.
  free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
  start_kpulse() { # [extra kpulse run flags...]; sets kpulse_pid and hport
    hport="$(free_port)"
    local mport; mport="$(free_port)"
    RUST_LOG=info "$kpulse_bin" run --kubeconfig "$skc" --namespace "$ns" --http-addr "127.0.0.1:$hport" \
      --metrics-addr "127.0.0.1:$mport" --log-format text "$@" >"$work/kpulse.out" 2>"$work/kpulse.log" &
    kpulse_pid=$!
    local ready=0
    for _ in $(seq 1 120); do
      if curl -fsS "http://127.0.0.1:$hport/readyz" >/dev/null 2>&1; then ready=1; break; fi
      kill -0 "$kpulse_pid" 2>/dev/null || break
      sleep 0.5
    done
    [[ $ready == 1 ]]
  }
  denied() { # what kpulse was refused, one line
    grep -oE 'cannot [a-z]+ resource "[^"]+" in API group "[^"]*"( in the namespace "[^"]+"| at the cluster scope)?' "$work/kpulse.log" |
      sort -u | paste -sd ';' -
  }
  stop_kpulse() { # CASE: SIGTERM, then fail on any 403 in the log
    kill -TERM "$kpulse_pid" 2>/dev/null
    wait "$kpulse_pid" 2>/dev/null
    kpulse_pid=""
    if grep -qi 'forbidden' "$work/kpulse.log"; then
      fail "$1: kpulse hit a 403 with the chart's RBAC: $(denied)"
    else
      pass "$1: kpulse logged no 403 from start to shutdown"
    fi
  }
  if [[ -x "$kpulse_bin" ]]; then
    if start_kpulse; then
      pass "kpulse (this build) becomes ready with the chart's ServiceAccount and default values"
    else
      fail "kpulse did not become ready with the chart's ServiceAccount: $(tail -n 20 "$work/kpulse.log")"
    fi
    stop_kpulse "defaults"
  else
    echo "SKIP kpulse run with the chart's ServiceAccount ($kpulse_bin not built)"
  fi

  echo "== server side: helm upgrade with opt-in monitors, HA and an existing Secret"
  # The check reads the existing Secret, so it exists before the upgrade that names it.
  "$kubectl" create secret generic kpulse-creds -n "$ns" --from-literal=TEST_CHANNEL_TOKEN=t0ken >/dev/null
  if msg="$(helm_hooked "$ns" upgrade kpulse "$chart" -n "$ns" --reuse-values \
    --set config.monitors.tls_cert_expiry.enabled=true --set config.monitors.pvc_usage.enabled=true \
    --set config.monitors.canary.enabled=true --set config.monitors.canary.namespace="$ns" \
    --set replicas=2 --set existingSecret=kpulse-creds --set config.http.test_channel_token='$TEST_CHANNEL_TOKEN' 2>&1)"; then
    pass "helm upgrade (opt-in monitors on)"
  else
    fail "helm upgrade (opt-in monitors on): $msg"
  fi
  has "notes: the test-message command" "$msg" "/test-channel?channel=log"
  has "notes: the token's Secret" "$msg" "get secret kpulse-creds"
  has "notes: opt-in monitors widen RBAC" "$msg" "Opt-in monitors enabled: pvc_usage, tls_cert_expiry, canary"
  can yes list secrets -A
  can yes watch secrets -A
  can yes get nodes --subresource=proxy
  can yes get secrets/kpulse-creds -n "$ns"
  can yes create leases.coordination.k8s.io -n "$ns"
  can yes patch leases.coordination.k8s.io/kpulse-leader -n "$ns"
  can yes watch leases.coordination.k8s.io/kpulse-leader -n "$ns"
  can no patch leases.coordination.k8s.io/other -n "$ns"
  can yes create pods -n "$ns"
  can yes delete pods -n "$ns"
  can no create pods -n "$other"
  can no delete pods -n "$other"
  can no create deployments.apps -n "$other"
  allowed "list secrets in every namespace after the upgrade" get secrets -A
  # kpulse with the existing Secret (read and watched by name) and a rejected configuration edit,
  # which it reports as a Warning Event on the ConfigMap.
  if [[ -x "$kpulse_bin" ]]; then
    if start_kpulse --secret-name kpulse-creds; then
      pass "kpulse becomes ready with the existing Secret and the opt-in monitors' RBAC"
    else
      fail "kpulse did not become ready with the existing Secret: $(tail -n 20 "$work/kpulse.log")"
    fi
    "$kubectl" patch configmap kpulse -n "$ns" --type=merge -p '{"data":{"config.yaml":"no_such_key: 1\n"}}' >/dev/null
    event=""
    for _ in $(seq 1 40); do
      event="$("$kubectl" get events -n "$ns" --field-selector reason=InvalidConfig -o name 2>/dev/null)"
      [[ -n "$event" ]] && break
      sleep 0.5
    done
    if [[ -n "$event" ]]; then
      pass "kpulse reports a rejected configuration as an Event (events create)"
    else
      fail "no InvalidConfig Event from kpulse: $(grep -i 'event' "$work/kpulse.log" | tail -n 3)"
    fi
    # pvc_usage is on: its scan reads kubelet stats through nodes/proxy (the fake nodes have no
    # kubelet, so the reads fail, but not with a 403, which stop_kpulse would catch).
    for _ in $(seq 1 30); do
      grep -q 'kubelet stats scan' "$work/kpulse.log" && break
      sleep 0.5
    done
    if grep -q 'kubelet stats scan' "$work/kpulse.log"; then
      pass "pvc_usage scans kubelet stats with the chart's RBAC"
    else
      fail "no kubelet stats scan with pvc_usage on: $(tail -n 5 "$work/kpulse.log")"
    fi
    stop_kpulse "existing Secret, invalid edit"
  fi
  strategy="$("$kubectl" get deployment kpulse -n "$ns" -o jsonpath='{.spec.strategy.type}/{.spec.replicas}')"
  if [[ "$strategy" == "RollingUpdate/2" ]]; then pass "upgrade: HA Deployment rolls with 2 replicas"; else fail "upgrade: strategy/replicas is $strategy"; fi

  if msg="$(helm_hooked "$ns" upgrade kpulse "$chart" -n "$ns" --reset-values 2>&1)"; then
    pass "helm upgrade back to the defaults"
  else
    fail "helm upgrade back to the defaults: $msg"
  fi
  can no list secrets -A
  can no get nodes --subresource=proxy
  can no create pods -n "$ns"
  can no create leases.coordination.k8s.io -n "$ns"
  can no get secrets/kpulse-creds -n "$ns"
  forbidden "list secrets in every namespace after the downgrade" get secrets -A
  strategy="$("$kubectl" get deployment kpulse -n "$ns" -o jsonpath='{.spec.strategy.type}/{.spec.replicas}')"
  if [[ "$strategy" == "Recreate/1" ]]; then pass "upgrade: back to Recreate with 1 replica"; else fail "upgrade: strategy/replicas is $strategy"; fi
  gen="$("$kubectl" get deployment kpulse -n "$ns" -o jsonpath='{.metadata.generation}')"
  if helm_hooked "$ns" upgrade kpulse "$chart" -n "$ns" --reuse-values --set config.cluster=upgraded >/dev/null 2>&1 &&
    [[ "$("$kubectl" get configmap kpulse -n "$ns" -o jsonpath='{.data.config\.yaml}')" == *"cluster: upgraded"* ]]; then
    pass "upgrade: changed values reach the config ConfigMap"
  else
    fail "upgrade: config ConfigMap not updated"
  fi
  # No checksum annotation: a configuration change leaves the Deployment (and its pods) alone;
  # kpulse applies it live.
  gen2="$("$kubectl" get deployment kpulse -n "$ns" -o jsonpath='{.metadata.generation}')"
  if [[ -n "$gen" && "$gen" == "$gen2" ]]; then pass "upgrade: a config change does not roll the Deployment"; else fail "upgrade: Deployment generation $gen -> $gen2 on a config change"; fi

  # With monitors switched off the chart drops their rules, so kpulse must not start the watches
  # they need (set CHART_TEST_TRIMMED_RBAC=0 to skip this case while debugging).
  if [[ "${CHART_TEST_TRIMMED_RBAC:-1}" == 1 && -x "$kpulse_bin" ]]; then
    if msg="$(helm_hooked "$ns" upgrade kpulse "$chart" -n "$ns" --reuse-values "${all_off[@]}" 2>&1)"; then
      pass "helm upgrade with every monitor off"
    else
      fail "helm upgrade with every monitor off: $msg"
    fi
    if start_kpulse; then
      pass "kpulse becomes ready with every monitor off (ClusterRole: namespaces only)"
    else
      fail "kpulse not ready with every monitor off: $(denied)"
    fi
    stop_kpulse "every monitor off"
  fi

  echo "== server side: helm uninstall"
  if msg="$("$helm" uninstall kpulse -n "$ns" 2>&1)"; then pass "helm uninstall"; else fail "helm uninstall: $msg"; fi
  # ReplicaSets go by garbage collection, a moment after their Deployment. (Pods would too; with
  # no kubelet here they stay Terminating, so they are not checked.)
  for _ in $(seq 1 60); do
    left="$("$kubectl" get deployments,replicasets,services,configmaps,secrets,serviceaccounts,roles,rolebindings,poddisruptionbudgets,networkpolicies \
      -n "$ns" -l app.kubernetes.io/instance=kpulse -o name 2>&1)"
    [[ -z "$left" ]] && break
    sleep 0.5
  done
  if [[ -z "$left" ]]; then pass "uninstall: no chart object left in the namespace"; else fail "uninstall: left behind: $left"; fi
  left="$("$kubectl" get clusterroles,clusterrolebindings -o name 2>&1 | grep -F "kpulse-$ns" || true)"
  if [[ -z "$left" ]]; then pass "uninstall: ClusterRole and ClusterRoleBinding removed"; else fail "uninstall: left behind: $left"; fi
  if "$kubectl" get configmap kpulse -n "$ns" >/dev/null 2>&1; then fail "uninstall: config ConfigMap left"; else pass "uninstall: config ConfigMap removed"; fi
  if "$kubectl" get configmap kpulse-state -n "$ns" >/dev/null 2>&1; then
    pass "uninstall: kpulse-state (written by kpulse, not chart-owned) stays, as docs/install.md says"
  else
    fail "uninstall: kpulse-state is gone; docs/install.md says it stays"
  fi

  # -------------------------------------------------------------------------------------------
  if ! "$kubectl" get node kpulse-real-1 >/dev/null 2>&1; then
    if [[ "${KPULSE_REAL_NODE:-1}" == 0 ]]; then
      echo "SKIP real node: KPULSE_REAL_NODE=0"
    else
      fail "real node: no node kpulse-real-1 (hack/cluster.sh up starts it; KPULSE_REAL_NODE=0 skips this)"
    fi
  else
    echo "== real node: helm install with kpulse's own image, 2 replicas, restricted Pod Security"
    # The check-config hook runs here for real: the kubelet mounts its volumes and runs the image.
    if image="$(hack/kpulse-image.sh "$work/kpulse.tar" "${KPULSE_IMAGE_BINARY:-}" 2>"$work/image.err" | tail -n1)" &&
       msg="$(source hack/node.sh && root="$PWD" node_push "$(dirname "$KUBECONFIG")" "$work/kpulse.tar" 2>&1)"; then
      pass "real node: image $image built without Docker and pushed to the cluster's registry"
    else
      fail "real node: image: $(cat "$work/image.err") ${msg:-}"
    fi
    "$kubectl" create namespace "$real_ns" >/dev/null
    "$kubectl" label namespace "$real_ns" pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/enforce-version=latest >/dev/null
    if msg="$("$helm" install kpulse "$chart" -n "$real_ns" --set image.repository="${image%:*}" --set image.tag="${image##*:}" \
        --set replicas=2 --set-json 'nodeSelector={"kpulse.io/real-node":"true"}' \
        --set-json 'tolerations=[{"key":"kpulse.io/real-node","operator":"Exists","effect":"NoSchedule"}]' 2>&1)"; then
      pass "real node: helm install (its check-config hook Job ran kpulse's image and passed)"
    else
      fail "real node: helm install: $msg $("$kubectl" logs -n "$real_ns" job/kpulse-check-config 2>&1)"
    fi
    # The Deployment's pods (the check's pod carries the release label too).
    selector=app.kubernetes.io/instance=kpulse,app.kubernetes.io/component=operator
    # The ReplicaSet's pods exist a moment after the install; then the kubelet starts them.
    for _ in $(seq 1 60); do
      [[ "$("$kubectl" get pods -n "$real_ns" -l "$selector" -o name | wc -l)" == 2 ]] && break
      sleep 0.5
    done
    if msg="$("$kubectl" wait pods -n "$real_ns" -l "$selector" --for=condition=Ready --timeout=120s 2>&1)"; then
      pass "real node: both kpulse Pods Running and Ready (readiness probe on /readyz)"
    else
      fail "real node: kpulse Pods not Ready: $msg $("$kubectl" get pods -n "$real_ns" -o wide 2>&1) $("$kubectl" logs -n "$real_ns" -l "$selector" --tail=20 2>&1)"
    fi
    pods="$("$kubectl" get pods -n "$real_ns" -l "$selector" -o jsonpath='{range .items[*]}{.metadata.name} {.spec.nodeName} {.status.containerStatuses[0].restartCount} {.status.containerStatuses[0].imageID}{"\n"}{end}')"
    if [[ "$(awk '$2 == "kpulse-real-1" && $3 == 0 && $4 != "" {n++} END {print n+0}' <<<"$pods")" == 2 ]]; then
      pass "real node: both Pods run on kpulse-real-1, never restarted"
    else
      fail "real node: Pods: $pods"
    fi
    holder="$("$kubectl" get lease kpulse-leader -n "$real_ns" -o jsonpath='{.spec.holderIdentity}' 2>&1)"
    if [[ -n "$holder" ]] && grep -q "^$holder " <<<"$pods"; then
      pass "real node: one replica holds the Lease ($holder)"
    else
      fail "real node: Lease holder '$holder' is not one of the Pods: $pods"
    fi
    logs="$("$kubectl" logs -n "$real_ns" -l "$selector" --tail=-1 2>&1)"
    has "real node: kpulse reached the API server through the kubernetes Service with its token" "$logs" "watches synced"
    if grep -qi forbidden <<<"$logs"; then
      fail "real node: a Pod hit a 403 with the chart's RBAC: $(grep -i forbidden <<<"$logs" | head -n3)"
    else
      pass "real node: no 403 in the Pods' logs (RBAC allows what the monitors need)"
    fi
    # The default `log` channel is the Pods' stdout: the leader's welcome message is there, once.
    welcomes=0
    for _ in $(seq 1 60); do
      welcomes="$("$kubectl" logs -n "$real_ns" -l "$selector" --tail=-1 2>/dev/null | grep -c '"text":"🚨 \[kubernetes\] channel/log kpulse is watching cluster kubernetes"')"
      [[ "$welcomes" -ge 1 ]] && break
      sleep 0.5
    done
    if [[ "$welcomes" == 1 ]]; then
      pass "real node: one welcome message in the log channel, from the leader only"
    else
      fail "real node: $welcomes welcome messages in the Pods' logs (want 1)"
    fi
    if msg="$("$helm" uninstall kpulse -n "$real_ns" --wait --timeout 60s 2>&1)"; then pass "real node: helm uninstall"; else fail "real node: helm uninstall: $msg"; fi
    for _ in $(seq 1 120); do
      [[ -z "$("$kubectl" get pods -n "$real_ns" -l "$selector" -o name 2>&1)" ]] && break
      sleep 0.5
    done
    left="$("$kubectl" get pods -n "$real_ns" -l "$selector" -o name 2>&1)"
    if [[ -z "$left" ]]; then pass "real node: the kubelet stopped both Pods"; else fail "real node: Pods left: $left"; fi

    echo "== real node: helm install stops on what kpulse check-config finds"
    bad_ns="$real_ns-bad"
    "$kubectl" create namespace "$bad_ns" >/dev/null
    "$kubectl" label namespace "$bad_ns" pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/enforce-version=latest >/dev/null
    # examples/slack.yaml without its Secret, and a rule routing to a channel nobody defined.
    if msg="$("$helm" install kpulse "$chart" -n "$bad_ns" -f "$root/examples/slack.yaml" --set image.repository="${image%:*}" \
        --set image.tag="${image##*:}" --set-json 'nodeSelector={"kpulse.io/real-node":"true"}' \
        --set-json 'tolerations=[{"key":"kpulse.io/real-node","operator":"Exists","effect":"NoSchedule"}]' \
        --set-json 'config.routing.rules=[{"match":{"severity":["critical"]},"channels":["pager"]}]' 2>&1)"; then
      fail "real node: helm install of a configuration kpulse refuses succeeded"
    else
      has "real node: helm install fails on the check" "$msg" "job kpulse-check-config failed"
      log="$("$kubectl" logs -n "$bad_ns" job/kpulse-check-config 2>&1)"
      has "real node: the Job's log names the unknown channel" "$log" 'routing.rules[0].channels[0]: unknown channel "pager"'
      has "real node: the Job's log names the missing \$NAME" "$log" 'channels.slack.webhook_url: unresolved secret reference $SLACK_WEBHOOK'
      has "real node: the Job's log names the missing Secret" "$log" "/etc/kpulse/secret/kpulse-secrets: no secret values: the Secret does not exist or has no keys"
      lacks "real node: nothing else was installed" "$("$kubectl" get deployments -n "$bad_ns" -o name 2>&1)" "deployment"
    fi
    "$helm" uninstall kpulse -n "$bad_ns" >/dev/null 2>&1
    "$kubectl" delete namespace "$bad_ns" --wait=false >/dev/null 2>&1

    echo "== real node: the README's install commands, literally, deliver the welcome message"
    # The README's three install commands are run as they are written, with two substitutions a
    # test needs: the Slack webhook URL in the Secret points at a receiver on this machine's end
    # of the pod bridge (plain http, hence delivery.allow_http), and the image and node placement
    # are the local ones. The receiver checks what Slack's incoming webhooks document: a POST of
    # JSON with a `text` field to the webhook's path.
    readme_cmds="$(awk '/^## Install/ {on=1} on && /^```sh/ {grab=1; next} grab && /^```/ {exit} grab' "$root/README.md" |
      sed -e ':a' -e '/\\$/N; s/\\\n//; ta')"
    slack_url="$(sed -n 's/.*--from-literal=SLACK_WEBHOOK=\([^ ]*\).*/\1/p' <<<"$readme_cmds")"
    node_bridge="$(source hack/node.sh && node_names "$(dirname "$KUBECONFIG")" && echo "$node_bridge")"
    bridge_ip="$(ip -4 -o addr show dev "$node_bridge" 2>/dev/null | awk '{print $4}' | cut -d/ -f1)"
    # The README creates the namespace: it must not be there yet.
    "$kubectl" delete namespace kpulse --ignore-not-found --wait=true --timeout=60s >/dev/null 2>&1 || true
    if [[ "$(grep -c . <<<"$readme_cmds")" != 3 || -z "$slack_url" || -z "$bridge_ip" ]]; then
      fail "README: expected 3 install commands with a SLACK_WEBHOOK literal (got: $readme_cmds; bridge ${bridge_ip:-none})"
    else
      python3 - "$bridge_ip" "$work/slack.port" "$work/slack.posts" >"$work/slack.log" 2>&1 <<'PY' &
import http.server, json, sys
host, port_file, posts = sys.argv[1:4]
class Slack(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        ok = self.headers.get("Content-Type", "").startswith("application/json")
        try:
            text = json.loads(body).get("text")
        except ValueError:
            text = None
        with open(posts, "a") as f:
            f.write(json.dumps({"path": self.path, "json": ok, "text": text}) + "\n")
        self.send_response(200 if ok and isinstance(text, str) else 400)
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
server = http.server.HTTPServer((host, 0), Slack)
open(port_file, "w").write(str(server.server_address[1]))
server.serve_forever()
PY
      receiver_pid=$!
      for _ in $(seq 1 50); do [[ -s "$work/slack.port" ]] && break; sleep 0.1; done
      receiver_url="http://$bridge_ip:$(cat "$work/slack.port")/services/T000/B000/XXXX"
      ran=0
      while IFS= read -r cmd; do
        cmd="${cmd//"$slack_url"/"$receiver_url"}"
        if [[ "$cmd" == "helm install "* ]]; then
          cmd="$cmd --set image.repository=${image%:*} --set image.tag=${image##*:}"
          cmd="$cmd --set config.channels.slack.delivery.allow_http=true"
          cmd="$cmd --set-json 'nodeSelector={\"kpulse.io/real-node\":\"true\"}'"
          cmd="$cmd --set-json 'tolerations=[{\"key\":\"kpulse.io/real-node\",\"operator\":\"Exists\",\"effect\":\"NoSchedule\"}]'"
        fi
        if msg="$(cd "$root" && PATH="$(dirname "$helm"):$(dirname "$kubectl"):$PATH" bash -c "$cmd" 2>&1)"; then
          ran=$((ran + 1))
        else
          fail "README: '${cmd:0:60}...' failed: $msg"
        fi
      done <<<"$readme_cmds"
      [[ "$ran" == 3 ]] && pass "README: its three install commands ran (namespace, Secret, helm install)"
      # The welcome message comes once the leader is ready.
      for _ in $(seq 1 240); do
        grep -q 'kpulse is watching cluster my-cluster' "$work/slack.posts" 2>/dev/null && break
        sleep 0.5
      done
      posts="$(cat "$work/slack.posts" 2>/dev/null)"
      has "README: the Slack channel received the welcome message" "$posts" 'kpulse is watching cluster my-cluster'
      has "README: posted as JSON to the webhook's path" "$posts" '{"path": "/services/T000/B000/XXXX", "json": true'
      if [[ "$(grep -c 'kpulse is watching cluster' <<<"$posts")" == 1 ]]; then
        pass "README: one welcome message"
      else
        fail "README: $(grep -c 'kpulse is watching cluster' <<<"$posts") welcome messages: $posts"
      fi
      "$helm" uninstall kpulse -n kpulse --wait --timeout 60s >/dev/null 2>&1 || true
      "$kubectl" delete namespace kpulse --wait=false >/dev/null 2>&1 || true
      kill "$receiver_pid" 2>/dev/null || true
      wait "$receiver_pid" 2>/dev/null || true
    fi
  fi
fi

if [[ -n "${hns:-}" && -x "$kpulse_bin" ]]; then
  echo "== server side: helm install stops on what kpulse check-config finds (pre-install hook)"
  # hack/run-pod.py runs the hook's pod with this build of kpulse: what is verified here is the
  # hook's wiring (its ConfigMap and Secret, volumes, args, Pod Security admission of its pod) and
  # Helm's handling of its outcome; not the image itself nor a real kubelet mounting the volumes.
  "$kubectl" create namespace "$hns" >/dev/null
  "$kubectl" label namespace "$hns" pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/enforce-version=latest >/dev/null
  # The termination message of the newest check pod: what `kubectl describe pod` shows.
  check_message() {
    "$kubectl" get pods -n "$hns" -l app.kubernetes.io/component=check-config --sort-by=.metadata.creationTimestamp \
      -o jsonpath='{.items[-1:].status.containerStatuses[0].state.terminated.message}' 2>/dev/null
  }
  rejected() { # NAME EXPECTED-PROBLEM helm-flags...
    local name="$1" want="$2" msg; shift 2
    if msg="$(helm_hooked "$hns" install kpulse "$chart" -n "$hns" "$@" 2>&1)"; then
      fail "$name: helm install succeeded"
    else
      has "$name: helm install fails on the check" "$msg" "job kpulse-check-config failed"
      has "$name: the check names the problem" "$(check_message)" "$want"
      lacks "$name: no Deployment was created" "$("$kubectl" get deployments -n "$hns" -o name 2>&1)" "deployment"
    fi
    "$helm" uninstall kpulse -n "$hns" >/dev/null 2>&1
  }
  rejected "a route to an unknown channel" 'routing.default[0]: unknown channel "pager"' --set-json 'config.routing.default=["pager"]'
  rejected "a \$NAME and no Secret at all" 'channels.slack.webhook_url: unresolved secret reference $SLACK_WEBHOOK' -f "$root/examples/slack.yaml" --set existingSecret=
  "$kubectl" create secret generic kpulse-secrets -n "$hns" --from-literal=OTHER=x >/dev/null
  rejected "a \$NAME missing from the Secret" 'channels.slack.webhook_url: unresolved secret reference $SLACK_WEBHOOK: the Secret has no key "SLACK_WEBHOOK"' -f "$root/examples/slack.yaml"
  "$kubectl" delete secret kpulse-secrets -n "$hns" >/dev/null
  rejected "a missing Secret" "/etc/kpulse/secret/kpulse-secrets: no secret values: the Secret does not exist or has no keys" -f "$root/examples/slack.yaml"

  # With the Secret its header creates, the example installs; the check's objects are gone after.
  secret_literals "$root/examples/slack.yaml" | sed 's/^/--from-literal=/' | xargs "$kubectl" create secret generic kpulse-secrets -n "$hns" >/dev/null
  if msg="$(helm_hooked "$hns" install kpulse "$chart" -n "$hns" -f "$root/examples/slack.yaml" 2>&1)"; then
    pass "examples/slack.yaml with its Secret passes the check and installs"
  else
    fail "examples/slack.yaml with its Secret: $msg $(cat "$work/hook.out")"
  fi
  has "the check ran kpulse check-config" "$(cat "$work/hook.out")" "valid: cluster \"my-cluster\""
  left="$("$kubectl" get jobs,configmaps,secrets -n "$hns" -l app.kubernetes.io/component=check-config -o name 2>&1)"
  if [[ -z "$left" ]]; then pass "a passed check leaves nothing behind"; else fail "a passed check left: $left"; fi
  # The chart's own Secret (from `secrets`) is checked through a copy: the Secret itself is only
  # created after the hook.
  if msg="$(helm_hooked "$hns" upgrade kpulse "$chart" -n "$hns" -f "$root/examples/slack.yaml" --set existingSecret= \
    --set secrets.SLACK_WEBHOOK=https://hooks.slack.example/T0/B0/x 2>&1)"; then
    pass "an upgrade to the chart's own Secret passes the check (through its copy)"
  else
    fail "an upgrade to the chart's own Secret: $msg $(cat "$work/hook.out")"
  fi
  if msg="$(helm_hooked "$hns" upgrade kpulse "$chart" -n "$hns" --reuse-values --set-json 'config.routing.rules=[{"match":{"severity":["critical"]},"channels":["oncall"]}]' 2>&1)"; then
    fail "an upgrade routing to an unknown channel succeeded"
  else
    has "helm upgrade fails on the check too" "$msg" "job kpulse-check-config failed"
    has "the upgrade's check names the problem" "$(check_message)" 'routing.rules[0].channels[0]: unknown channel "oncall"'
    cluster="$("$kubectl" get configmap kpulse -n "$hns" -o jsonpath='{.data.config\.yaml}')"
    lacks "a rejected upgrade leaves the configuration in use alone" "$cluster" "oncall"
  fi
fi

echo "$passed passed, $failed failed"
[[ $failed == 0 ]]
