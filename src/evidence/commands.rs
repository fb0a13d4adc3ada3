//! Ready-to-run kubectl commands for the object of an alert: its logs, its description, its
//! events, and `rollout undo` where a rollout is the change that broke it.

use super::Evidence;
use crate::alert::Alert;

/// `-n shop ` for a namespaced object, empty for a cluster-scoped one.
fn ns(alert: &Alert) -> String {
    match alert.key.namespace.as_str() {
        "" => String::new(),
        n => format!("-n {n} "),
    }
}

/// The commands for `alert`, the most useful first.
pub fn commands(alert: &Alert, evidence: &Evidence) -> Vec<String> {
    let k = &alert.key;
    let n = ns(alert);
    let name = &k.name;
    let events = format!(
        "kubectl {n}get events --field-selector involvedObject.name={name} --sort-by=.lastTimestamp"
    );
    match k.kind.as_str() {
        "Pod" => {
            let mut out = Vec::new();
            if let Some(c) = &evidence.container {
                if c.restarts > 0 || c.exit_code.is_some() {
                    out.push(format!("kubectl {n}logs {name} -c {} --previous", c.name));
                } else {
                    out.push(format!("kubectl {n}logs {name} -c {}", c.name));
                }
            }
            out.push(format!("kubectl {n}describe pod {name}"));
            out.push(events);
            out
        }
        "Deployment" | "StatefulSet" | "DaemonSet" => {
            let kind = k.kind.to_ascii_lowercase();
            let mut out = vec![
                format!("kubectl {n}rollout status {kind}/{name}"),
                format!("kubectl {n}describe {kind} {name}"),
            ];
            if k.monitor == "rollout_stuck" {
                out.push(format!("kubectl {n}rollout undo {kind}/{name}"));
            }
            out.push(events);
            out
        }
        "Job" => vec![
            format!("kubectl {n}describe job {name}"),
            format!("kubectl {n}logs job/{name} --all-containers"),
            format!("kubectl {n}get pods -l job-name={name}"),
        ],
        "CronJob" => vec![
            format!("kubectl {n}describe cronjob {name}"),
            format!("kubectl {n}get jobs --sort-by=.metadata.creationTimestamp"),
        ],
        "Node" => vec![
            format!("kubectl describe node {name}"),
            format!("kubectl get pods -A --field-selector spec.nodeName={name}"),
        ],
        "PersistentVolumeClaim" => vec![format!("kubectl {n}describe pvc {name}"), events],
        "HorizontalPodAutoscaler" => vec![format!("kubectl {n}describe hpa {name}")],
        "Secret" => vec![format!(
            "kubectl {n}get secret {name} -o jsonpath='{{.data.tls\\.crt}}' | base64 -d | openssl x509 -noout -issuer -dates"
        )],
        "" => Vec::new(),
        kind => vec![format!(
            "kubectl {n}describe {} {name}",
            kind.to_ascii_lowercase()
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{AlertKey, Severity};
    use crate::evidence::Container;

    fn alert(monitor: &str, ns: &str, kind: &str, name: &str) -> Alert {
        Alert::new(
            AlertKey::new(monitor, ns, kind, name, "R"),
            Severity::Warning,
            "t",
            jiff::Timestamp::UNIX_EPOCH,
        )
    }

    #[test]
    fn a_crashed_container_gets_its_previous_log_first() {
        let e = Evidence {
            container: Some(Container {
                name: "server".into(),
                restarts: 3,
                exit_code: Some(1),
                ..Container::default()
            }),
            ..Evidence::default()
        };
        let c = commands(&alert("pod_crashes", "shop", "Pod", "api-1"), &e);
        assert_eq!(c[0], "kubectl -n shop logs api-1 -c server --previous");
        assert_eq!(c[1], "kubectl -n shop describe pod api-1");
        assert!(
            c[2].starts_with(
                "kubectl -n shop get events --field-selector involvedObject.name=api-1"
            )
        );
    }

    #[test]
    fn only_a_stuck_rollout_offers_undo() {
        let stuck = commands(
            &alert("rollout_stuck", "shop", "Deployment", "api"),
            &Evidence::default(),
        );
        assert!(stuck.contains(&"kubectl -n shop rollout undo deployment/api".to_string()));
        let short = commands(
            &alert("replicas_unavailable", "shop", "Deployment", "api"),
            &Evidence::default(),
        );
        assert!(!short.iter().any(|c| c.contains("undo")), "{short:?}");
    }

    #[test]
    fn cluster_scoped_objects_have_no_namespace_flag() {
        let c = commands(
            &alert("node_conditions", "", "Node", "n1"),
            &Evidence::default(),
        );
        assert_eq!(c[0], "kubectl describe node n1");
    }
}
