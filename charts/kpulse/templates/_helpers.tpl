{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "kpulse.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: the release name when it already contains the chart name (`kpulse` for
`helm install kpulse`), else <release>-<chart>. Also the name of the configuration ConfigMap. */}}
{{- define "kpulse.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "kpulse.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: name and instance only, because a Deployment's selector is immutable. */}}
{{- define "kpulse.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kpulse.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "kpulse.labels" -}}
helm.sh/chart: {{ include "kpulse.chart" . }}
{{ include "kpulse.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: kpulse
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "kpulse.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kpulse.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kpulse.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The Secret whose keys fill `$NAME` references: existingSecret, else the chart's own when
`secrets` is not empty, else none (empty string). */}}
{{- define "kpulse.secretName" -}}
{{- if .Values.existingSecret -}}
{{- .Values.existingSecret -}}
{{- else if .Values.secrets -}}
{{- include "kpulse.fullname" . -}}
{{- end -}}
{{- end -}}

{{/* kpulse's configuration as the ConfigMap holds it: values.config, without the chart's default
`log` channel when other channels are defined and no route (nor welcome.channels) names `log`.
Helm merges maps, so without this a values file with its own channels would keep `log` unless it
said `log: null`. */}}
{{- define "kpulse.config" -}}
{{- $config := deepCopy (.Values.config | default dict) -}}
{{- $channels := $config.channels | default dict -}}
{{- if and (hasKey $channels "log") (gt (len $channels) 1) -}}
{{- $routing := $config.routing | default dict -}}
{{- $welcome := $config.welcome | default dict -}}
{{- $named := concat ($routing.default | default list) ($welcome.channels | default list) -}}
{{- range ($routing.rules | default list) -}}
{{- $named = concat $named (.channels | default list) -}}
{{- end -}}
{{- if not (has "log" $named) -}}
{{- $_ := unset $channels "log" -}}
{{- end -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/* kpulse writes its state to this ConfigMap itself; the chart never templates it. */}}
{{- define "kpulse.stateConfigMap" -}}kpulse-state{{- end -}}

{{/* "true" when the monitor named by the argument's `name` is enabled in `root.Values.config`,
with kpulse's own default (files/monitors.yaml, generated from the code) when the values do not
say; "" otherwise.
Usage: include "kpulse.monitorEnabled" (dict "root" $ "name" "pod_crashes") */}}
{{- define "kpulse.monitorEnabled" -}}
{{- $config := .root.Values.config | default dict -}}
{{- $monitors := $config.monitors | default dict -}}
{{- $m := index $monitors .name | default dict -}}
{{- if hasKey $m "enabled" -}}
{{- if $m.enabled -}}true{{- end -}}
{{- else if index (.root.Files.Get "files/monitors.yaml" | fromYaml).defaults .name -}}
true
{{- end -}}
{{- end -}}

{{/* "true" when any monitor in `names` is enabled.
Usage: include "kpulse.anyEnabled" (dict "root" $ "names" (list "hpa_at_max" "hpa_unhealthy")) */}}
{{- define "kpulse.anyEnabled" -}}
{{- $root := .root -}}
{{- $any := false -}}
{{- range .names -}}
{{- if include "kpulse.monitorEnabled" (dict "root" $root "name" .) -}}{{- $any = true -}}{{- end -}}
{{- end -}}
{{- if $any -}}true{{- end -}}
{{- end -}}

{{/* The namespace the canary creates its pods in: the config's, else kpulse's default. */}}
{{- define "kpulse.canaryNamespace" -}}
{{- $config := .Values.config | default dict -}}
{{- $monitors := $config.monitors | default dict -}}
{{- $canary := $monitors.canary | default dict -}}
{{- $canary.namespace | default "kpulse" -}}
{{- end -}}

{{/* Leader election (and its Lease) is on with more than one replica. */}}
{{- define "kpulse.ha" -}}
{{- if gt (int .Values.replicas) 1 -}}true{{- end -}}
{{- end -}}

{{/* Name of the cluster-scoped objects (ClusterRole, ClusterRoleBinding): includes the release
namespace, so releases in two namespaces never collide. */}}
{{- define "kpulse.clusterName" -}}
{{- printf "%s-%s" (include "kpulse.fullname" .) .Release.Namespace | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* NOTES: channel names with their types, e.g. "ops (slack), oncall (pagerduty)"; "nowhere
(muted)" for none. Usage: include "kpulse.notesChannels" (dict "names" $list "channels" $map) */}}
{{- define "kpulse.notesChannels" -}}
{{- $channels := .channels -}}
{{- $out := list -}}
{{- range .names -}}
{{- $out = append $out (printf "%s (%s)" . ((index $channels . | default dict).type | default "?")) -}}
{{- end -}}
{{- if $out }}{{ join ", " $out }}{{ else }}nowhere (muted){{ end -}}
{{- end -}}

{{/* Labels of the check-config hook objects: not the selector labels, so nothing that selects
the kpulse pods selects the check's pod. */}}
{{- define "kpulse.checkConfigLabels" -}}
helm.sh/chart: {{ include "kpulse.chart" . }}
app.kubernetes.io/name: {{ include "kpulse.name" . }}-check-config
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: check-config
app.kubernetes.io/part-of: kpulse
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Hook annotations of the check-config objects; the argument is the hook weight (the
ConfigMap and Secret copies before the Job). Deleted before the next check and when it succeeds;
a failed Job stays for its log. */}}
{{- define "kpulse.checkConfigHook" -}}
helm.sh/hook: pre-install,pre-upgrade
helm.sh/hook-weight: {{ . | quote }}
helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
{{- end -}}
