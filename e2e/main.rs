//! End-to-end tests against a real kube-apiserver, etcd, kube-controller-manager and
//! kube-scheduler. They need only `KUBECONFIG` (and `KPULSE_BIN`, the binary under test);
//! `make test` starts a local control plane for them (`hack/cluster.sh`). Each test works in its
//! own namespace, so tests run in parallel.

mod canary;
mod ha;
mod harness;
mod hpa;
mod incidents;
mod lists;
mod many_workloads;

mod nodes_events;
mod pod_crashes;
mod pods;
mod real_node;
mod real_workloads;
mod reload;
mod scenario;
mod silences;
mod smoke;
mod state;
mod stats;
mod tls;
mod welcome;
mod workloads;
