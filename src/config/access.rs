//! The Kubernetes API access monitors need. Each constant is one rule of the chart's ClusterRole;
//! a monitor lists the ones it needs in the registry ([`super::monitors`]), and the chart grants a
//! rule while one of the monitors that list it is enabled.

/// One ClusterRole rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// The API group; `""` is the core group.
    pub group: &'static str,
    pub resources: &'static [&'static str],
    pub verbs: &'static [&'static str],
    /// Why the rule exists: the chart's comment on it and docs/install.md's table say this.
    pub why: &'static str,
    /// What the grant exposes beyond what the monitor reads: said in the chart's comment on the
    /// rule and next to the switch of every monitor that needs it.
    pub warning: Option<&'static str>,
}

const READ: &[&str] = &["get", "list", "watch"];

/// Granted whatever is enabled: every monitor honours the namespace filter.
pub const NAMESPACES: Access = Access {
    group: "",
    resources: &["namespaces"],
    verbs: READ,
    why: "every monitor honours namespaces.include/exclude and the kpulse.io/ignore label or \
          annotation on a Namespace; kpulse watches Namespace metadata to know which are silenced.",
    warning: None,
};

pub const PODS: Access = Access {
    group: "",
    resources: &["pods"],
    verbs: READ,
    why: "container states, restarts, conditions and phases come from Pod status.",
    warning: None,
};

pub const EVENTS: Access = Access {
    group: "",
    resources: &["events"],
    verbs: READ,
    why: "Kubernetes Warning Events (core/v1).",
    warning: None,
};

pub const EVENTS_V1: Access = Access {
    group: "events.k8s.io",
    resources: &["events"],
    verbs: READ,
    why: "the same Events through events.k8s.io/v1, which newer clients and kpulse's event \
          reader use.",
    warning: None,
};

pub const NODES: Access = Access {
    group: "",
    resources: &["nodes"],
    verbs: READ,
    why: "Ready, pressure and node-problem-detector conditions; which nodes are Ready (pods on a \
          node that is not are the node's trouble); the node list the kubelet stats are read from.",
    warning: None,
};

pub const NODES_PROXY: Access = Access {
    group: "",
    resources: &["nodes/proxy"],
    verbs: &["get"],
    why: "kubelet stats (GET /api/v1/nodes/NAME/proxy/stats/summary).",
    warning: Some(
        "This grant is NOT read-only: it reaches every kubelet endpoint, and kubelet \
         exec/attach can be driven over a WebSocket opened with GET, so it amounts to command \
         execution in any pod.",
    ),
};

pub const VOLUMES: Access = Access {
    group: "",
    resources: &["persistentvolumeclaims", "persistentvolumes"],
    verbs: READ,
    why: "claims Pending or Lost and the volumes they bind; which claim a kubelet volume belongs \
          to, and its capacity.",
    warning: None,
};

pub const STORAGE_CLASSES: Access = Access {
    group: "storage.k8s.io",
    resources: &["storageclasses"],
    verbs: READ,
    why: "a WaitForFirstConsumer StorageClass means Pending is normal until a pod is scheduled.",
    warning: None,
};

pub const WORKLOADS: Access = Access {
    group: "apps",
    resources: &["deployments", "replicasets", "statefulsets"],
    verbs: READ,
    why: "Progressing=False (ProgressDeadlineExceeded), stalled StatefulSet rollouts, available \
          fewer than desired; ReplicaSets link a Deployment to its pods.",
    warning: None,
};

pub const DAEMONSETS: Access = Access {
    group: "apps",
    resources: &["daemonsets"],
    verbs: READ,
    why: "unscheduled, misscheduled and unavailable pods; DaemonSet rollouts not progressing.",
    warning: None,
};

pub const JOBS: Access = Access {
    group: "batch",
    resources: &["jobs"],
    verbs: READ,
    why: "BackoffLimitExceeded, DeadlineExceeded and long-running Jobs.",
    warning: None,
};

pub const CRONJOBS: Access = Access {
    group: "batch",
    resources: &["cronjobs"],
    verbs: READ,
    why: "schedule, lastScheduleTime and startingDeadlineSeconds of each CronJob.",
    warning: None,
};

pub const HPAS: Access = Access {
    group: "autoscaling",
    resources: &["horizontalpodautoscalers"],
    verbs: READ,
    why: "HPAs pinned at maxReplicas, and ScalingActive or AbleToScale False.",
    warning: None,
};

pub const SECRETS: Access = Access {
    group: "",
    resources: &["secrets"],
    verbs: &["list", "watch"],
    why: "the NotAfter date of tls.crt in kubernetes.io/tls Secrets.",
    warning: Some(
        "This reads Secrets in every namespace (kpulse filters on type=kubernetes.io/tls and \
         drops tls.key before it is stored).",
    ),
};

impl Access {
    /// Whether the rule lets kpulse list and watch `resource` of `group`.
    pub fn watches(&self, group: &str, resource: &str) -> bool {
        self.group == group
            && self.resources.contains(&resource)
            && ["list", "watch"].iter().all(|v| self.verbs.contains(v))
    }
}
