//! The Helm chart's `values.schema.json`, generated from the configuration types.
//!
//! The chart-level keys (image, resources, RBAC, ...) are described here by hand; `config` is the
//! schema of [`super::Config`] itself, so `helm install`, `helm upgrade`, `helm lint` and
//! `helm template` reject a configuration kpulse would reject (unknown keys, wrong types, bad
//! durations) before anything reaches the cluster. `kpulse generate` writes the file; a test fails
//! when the checked-in copy is stale.

use serde_json::{Map, Value, json};

/// Where the file lives, relative to the repository root.
pub const PATH: &str = "charts/kpulse/values.schema.json";

/// An object whose content Kubernetes validates (resources, affinity, ...): passed through as is.
fn passthrough(description: &str) -> Value {
    json!({"type": "object", "description": description})
}

fn list(description: &str) -> Value {
    json!({"type": "array", "description": description})
}

fn string(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

fn boolean(description: &str) -> Value {
    json!({"type": "boolean", "description": description})
}

fn string_map(description: &str) -> Value {
    json!({
        "type": "object",
        "description": description,
        "additionalProperties": {"type": "string"}
    })
}

/// A closed object: unknown keys are typos.
fn object(description: &str, properties: Value) -> Value {
    json!({
        "type": "object",
        "description": description,
        "additionalProperties": false,
        "properties": properties
    })
}

/// The chart's values, everything except `config`.
fn chart_properties() -> Map<String, Value> {
    let v = json!({
        "global": passthrough("Values shared with parent charts; not read by kpulse."),
        "nameOverride": string("Replaces the chart name in resource names."),
        "fullnameOverride": string("Replaces the full resource name prefix."),
        "image": object("The kpulse container image.", json!({
            "repository": string("Image repository."),
            "tag": string("Image tag; empty means the chart's appVersion."),
            "digest": string("Image digest (sha256:...); when set it wins over the tag."),
            "pullPolicy": {"type": "string", "enum": ["Always", "IfNotPresent", "Never"]}
        })),
        "imagePullSecrets": list("Pull secrets for the image, as in a Pod spec."),
        "configCheck": object("The pre-install/pre-upgrade Job that runs `kpulse check-config` on the configuration and the Secret.", json!({
            "enabled": boolean("Run the check; a failure stops `helm install` / `helm upgrade`."),
            "activeDeadlineSeconds": {"type": "integer", "minimum": 30, "description": "How long the Job may take before it fails."}
        })),
        "replicas": {
            "type": "integer",
            "minimum": 1,
            "description": "Pods. 1 (Recreate strategy) or more with a leader-election Lease; only the leader notifies."
        },
        "leaderElection": object("The Lease used when replicas > 1.", json!({
            "leaseName": string("Name of the coordination.k8s.io Lease in the release namespace.")
        })),
        "serviceAccount": object("The ServiceAccount kpulse runs as.", json!({
            "create": boolean("Create the ServiceAccount."),
            "name": string("Its name; empty means the release's full name."),
            "annotations": string_map("Annotations, e.g. for a cloud IAM binding.")
        })),
        "rbac": object("ClusterRole, Role and their bindings.", json!({
            "create": boolean("Create the RBAC objects the enabled monitors need.")
        })),
        "secrets": string_map(
            "Values for `$NAME` references in `config`, stored in a Secret the chart creates. Prefer existingSecret in production."
        ),
        "existingSecret": string(
            "Name of an existing Secret in the release namespace whose keys fill `$NAME` references. Wins over `secrets`."
        ),
        "logLevel": string("RUST_LOG filter, e.g. info or kpulse=debug,info."),
        "logFormat": {"type": "string", "enum": ["json", "text"], "description": "Log line format."},
        "otel": object("OpenTelemetry trace export (off unless endpoint is set).", json!({
            "endpoint": string("OTLP/HTTP endpoint, sets OTEL_EXPORTER_OTLP_ENDPOINT."),
            "extraEnv": list("More OTEL_* variables (headers, protocol), as container env entries.")
        })),
        "extraEnv": list("Extra container environment variables."),
        "httpPort": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "Port of /healthz, /readyz and /status."},
        "metricsPort": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "Port of /metrics and /test-channel."},
        "service": object("The Service in front of the metrics port.", json!({
            "enabled": boolean("Create the Service."),
            "type": {"type": "string", "enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
            "annotations": string_map("Service annotations.")
        })),
        "serviceMonitor": object("A Prometheus Operator ServiceMonitor (rendered only when its CRD exists).", json!({
            "enabled": boolean("Create the ServiceMonitor."),
            "interval": string("Scrape interval, e.g. 30s."),
            "scrapeTimeout": string("Scrape timeout, e.g. 10s."),
            "labels": string_map("Extra labels, e.g. the one your Prometheus selects on."),
            "relabelings": list("Relabelings for the endpoint."),
            "metricRelabelings": list("Metric relabelings for the endpoint.")
        })),
        "podDisruptionBudget": object("A PodDisruptionBudget (off by default: with one replica it would block node drains).", json!({
            "enabled": boolean("Create the PodDisruptionBudget."),
            "maxUnavailable": {"type": ["integer", "string"], "description": "Pods that may be down at once."}
        })),
        "networkPolicy": object("A NetworkPolicy for the kpulse pods.", json!({
            "enabled": boolean("Create the NetworkPolicy."),
            "metricsFrom": list("Peers (NetworkPolicyPeer) allowed to reach the metrics port; empty: none."),
            "egress": object("Restrict egress too (off: egress is not restricted).", json!({
                "enabled": boolean("Restrict egress."),
                "apiServer": list("Rules (NetworkPolicyPeer) for the Kubernetes API server, usually ipBlock CIDRs."),
                "apiServerPorts": {"type": "array", "items": {"type": "integer"}, "description": "API server ports."},
                "extra": list("More egress rules (NetworkPolicyEgressRule) for your notification channels.")
            }))
        })),
        "podAnnotations": string_map("Pod annotations."),
        "podLabels": string_map("Extra pod labels."),
        "podSecurityContext": passthrough("Pod securityContext."),
        "securityContext": passthrough("Container securityContext."),
        "resources": passthrough("Container resources (requests and limits)."),
        "nodeSelector": string_map("Pod nodeSelector."),
        "tolerations": list("Pod tolerations."),
        "affinity": passthrough("Pod affinity."),
        "topologySpreadConstraints": list("Pod topologySpreadConstraints."),
        "priorityClassName": string("Pod priorityClassName."),
        "terminationGracePeriodSeconds": {
            "type": "integer",
            "minimum": 0,
            "description": "Time to flush digests and state on shutdown."
        },
        "startupProbe": passthrough("Optional startupProbe for very large clusters; empty: none.")
    });
    match v {
        Value::Object(m) => m,
        _ => unreachable!("the literal above is an object"),
    }
}

/// The whole `values.schema.json`: the chart keys plus `config`, whose definitions are lifted to
/// the top so that its `#/$defs/...` references still resolve.
pub fn values_schema() -> Value {
    let mut config = match super::json_schema() {
        Value::Object(m) => m,
        _ => unreachable!("schemars writes an object schema"),
    };
    let dialect = config
        .remove("$schema")
        .unwrap_or_else(|| json!("https://json-schema.org/draft/2020-12/schema"));
    let defs = config.remove("$defs").unwrap_or_else(|| json!({}));
    config.remove("title");
    config.insert(
        "description".into(),
        json!("The kpulse configuration, rendered into the key config.yaml of the ConfigMap (see docs/configuration.md)."),
    );
    let mut properties = chart_properties();
    properties.insert("config".into(), Value::Object(config));
    json!({
        "$schema": dialect,
        "title": "kpulse Helm chart values",
        "description": "Generated by `kpulse generate` from src/config/. Do not edit by hand.",
        "type": "object",
        "additionalProperties": false,
        "properties": properties,
        "$defs": defs
    })
}

/// The file's content: pretty JSON with a trailing newline.
pub fn values_schema_json() -> String {
    let mut s = serde_json::to_string_pretty(&values_schema()).expect("a schema serializes");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_values_schema_is_fresh() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/charts/kpulse/values.schema.json"
        );
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == values_schema_json(),
            "{PATH} is stale: run `make generate`"
        );
    }

    /// The chart decides RBAC from `values.config.monitors.<name>.enabled`, falling back to the
    /// defaults in `files/monitors.yaml`: both must say what the code does.
    #[test]
    fn chart_monitor_defaults_match_the_code() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/kpulse");
        let text = std::fs::read_to_string(format!("{dir}/values.yaml")).unwrap();
        let values: Value = serde_saphyr::from_str(&text).unwrap();
        let config = serde_saphyr::to_string(&values["config"]).unwrap();
        if let Err(e) = crate::config::load(&config, &crate::config::SecretMap::new()) {
            panic!("values.yaml: config is not a valid kpulse configuration:\n{e}");
        }
        let text = std::fs::read_to_string(format!("{dir}/files/monitors.yaml")).unwrap();
        let registry: Value = serde_saphyr::from_str(&text).unwrap();
        let defaults = crate::config::Monitors::default();
        for name in crate::config::Monitors::NAMES {
            assert_eq!(
                values["config"]["monitors"][name]["enabled"],
                Value::Bool(defaults.enabled(name)),
                "values.yaml: config.monitors.{name}.enabled differs from the code's default"
            );
            assert_eq!(
                registry["defaults"][name],
                Value::Bool(defaults.enabled(name)),
                "files/monitors.yaml: defaults.{name} differs from the code's default"
            );
        }
        assert_eq!(
            registry["defaults"].as_object().map(|d| d.len()),
            Some(crate::config::Monitors::NAMES.len()),
            "files/monitors.yaml: defaults names a monitor the code does not have"
        );
    }

    #[test]
    fn config_definitions_resolve_from_the_root() {
        let schema = values_schema();
        let text = schema.to_string();
        let defs = schema["$defs"].as_object().unwrap();
        for r in text.split("\"$ref\":\"#/$defs/").skip(1) {
            let name = r.split('"').next().unwrap();
            assert!(defs.contains_key(name), "dangling $ref to {name}");
        }
        assert_eq!(
            schema["properties"]["config"]["properties"]["monitors"]["$ref"],
            "#/$defs/Monitors"
        );
    }
}
