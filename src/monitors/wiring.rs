//! The monitor registry and the watches agree: every watch kpulse starts for a monitor is one the
//! registry (and so the chart's ClusterRole) grants it, every resource a monitor declares is one
//! whose watch feeds it, and every registered monitor is fed by a watch or a periodic scan.

use std::collections::BTreeSet;

use kube::Resource;
use serde_json::{Map, Value, json};

use super::feeds::Wiring;
use super::stats::{self, node_disk, node_resources, pvc_usage};
use super::watch::WatchSpec;
use super::workloads;
use super::{canary, cluster, pods, tls_cert_expiry};
use crate::config::{Config, Monitors};

/// A configuration with only the monitor `name` switched on.
fn only(name: &str) -> Config {
    let monitors: Map<String, Value> = Monitors::NAMES
        .iter()
        .map(|m| (m.to_string(), json!({"enabled": *m == name})))
        .collect();
    Config {
        monitors: serde_json::from_value(Value::Object(monitors)).expect("valid monitor switches"),
        ..Config::default()
    }
}

/// One watch as the monitors see it: its resource, and the registered monitors whose switch
/// starts it.
#[derive(Debug)]
struct Watch {
    group: String,
    resource: String,
    started_by: BTreeSet<&'static str>,
}

/// Which registered monitors start `spec`'s watch; each monitor on it must answer to its own
/// name and no other.
fn watch<K: Resource<DynamicType = ()>>(spec: &WatchSpec<K>) -> Watch {
    let resource = K::plural(&()).to_string();
    for m in &spec.monitors {
        let switches: Vec<&str> = Monitors::NAMES
            .into_iter()
            .filter(|n| m.enabled(&only(n)))
            .collect();
        assert_eq!(
            switches,
            [m.name()],
            "the {resource} monitor {:?} must be switched by monitors.{0}.enabled alone",
            m.name()
        );
    }
    let started_by = Monitors::NAMES
        .into_iter()
        .filter(|n| {
            let config = only(n);
            spec.monitors.iter().any(|m| m.enabled(&config))
                || spec.index.as_ref().is_some_and(|i| i.enabled(&config))
        })
        .collect();
    Watch {
        group: K::group(&()).to_string(),
        resource,
        started_by,
    }
}

/// Every watch `monitors::start` runs for monitors (the Namespace watch, needed by all, aside).
fn watches() -> Vec<Watch> {
    let client = kube::Client::try_from(kube::Config::new(
        "http://127.0.0.1:1".parse().expect("a valid URL"),
    ))
    .expect("a client that never connects");
    let wiring = Wiring::detached();
    let workloads = workloads::watches(client.clone(), &wiring);
    vec![
        watch(&cluster::events(client.clone(), &wiring)),
        watch(&cluster::nodes(client.clone(), &wiring)),
        watch(&cluster::pvcs(client.clone(), &wiring)),
        watch(&tls_cert_expiry::spec(client.clone(), &wiring)),
        watch(&pods::spec(client.clone(), &wiring)),
        watch(&pods::image_pulls::spec(
            client.clone(),
            &wiring,
            "Pulling",
            Default::default(),
        )),
        watch(&pods::image_pulls::spec(
            client,
            &wiring,
            "Pulled",
            Default::default(),
        )),
        watch(&workloads.deployments),
        watch(&workloads.statefulsets),
        watch(&workloads.daemonsets),
        watch(&workloads.jobs),
        watch(&workloads.cronjobs),
        watch(&workloads.hpas),
    ]
}

/// Monitors fed by the kubelet stats scan, which lists Nodes and claims itself.
fn scanned(name: &str) -> bool {
    stats::due(&only(name)).is_some()
}

fn entry(name: &str) -> crate::config::monitors::Entry {
    *Monitors::REGISTRY
        .iter()
        .find(|e| e.name == name)
        .expect("a registered monitor")
}

#[tokio::test]
async fn every_watch_is_granted_to_the_monitors_that_start_it() {
    for w in watches() {
        assert!(
            !w.started_by.is_empty(),
            "no monitor starts the {} watch",
            w.resource
        );
        for name in &w.started_by {
            assert!(
                entry(name)
                    .needs
                    .iter()
                    .any(|a| a.watches(&w.group, &w.resource)),
                "{name} starts the {} watch but its registry entry grants no list/watch on it",
                w.resource
            );
        }
    }
}

#[tokio::test]
async fn every_watched_resource_a_monitor_declares_feeds_it() {
    let watches = watches();
    for e in Monitors::REGISTRY {
        for access in e.needs {
            // A resource may have several watches (Events: Warning ones, image pulls): one of
            // them must feed the monitor.
            let of_it: Vec<&Watch> = watches
                .iter()
                .filter(|w| access.watches(&w.group, &w.resource))
                .collect();
            if let Some(w) = of_it.first() {
                assert!(
                    of_it.iter().any(|w| w.started_by.contains(e.name)) || scanned(e.name),
                    "{} declares {} but no {} watch feeds it",
                    e.name,
                    w.resource,
                    w.resource
                );
            }
        }
    }
}

#[tokio::test]
async fn every_registered_monitor_runs_somewhere() {
    let watches = watches();
    for name in Monitors::NAMES {
        let watched = watches.iter().any(|w| w.started_by.contains(name));
        assert!(
            watched || scanned(name) || name == canary::NAME,
            "{name} is in the registry but no watch or scan runs it"
        );
    }
    for name in [pvc_usage::NAME, node_disk::NAME, node_resources::NAME] {
        assert!(scanned(name), "the stats scan does not run {name}");
    }
}
