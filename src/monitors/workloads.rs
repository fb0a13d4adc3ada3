//! Watches for workload controllers: Deployments, StatefulSets, DaemonSets, Jobs and HPAs.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::Api;
use kube::runtime::watcher;
use tokio::task::JoinSet;

use super::Context;
use super::feeds::{self, Wiring, fed};
use super::watch::{Keep, WatchSpec, trim_meta};

/// Workload specs are pod templates kpulse never reads: drop them.
fn trim_deployment(d: &mut Deployment) {
    trim_meta(d);
    if let Some(s) = d.spec.as_mut() {
        s.template = Default::default();
    }
}
fn trim_statefulset(s: &mut StatefulSet) {
    trim_meta(s);
    if let Some(spec) = s.spec.as_mut() {
        spec.template = Default::default();
        spec.volume_claim_templates = None;
    }
}
fn trim_daemonset(d: &mut DaemonSet) {
    trim_meta(d);
    if let Some(s) = d.spec.as_mut() {
        s.template = Default::default();
    }
}
fn trim_cronjob(c: &mut CronJob) {
    trim_meta(c);
    if let Some(s) = c.spec.as_mut() {
        s.job_template = Default::default();
    }
}
fn trim_job(j: &mut Job) {
    trim_meta(j);
    if let Some(s) = j.spec.as_mut() {
        s.template = Default::default();
    }
}

/// The workload watches, each with the monitors it feeds.
pub(super) struct Watches {
    pub deployments: WatchSpec<Deployment>,
    pub statefulsets: WatchSpec<StatefulSet>,
    pub daemonsets: WatchSpec<DaemonSet>,
    pub jobs: WatchSpec<Job>,
    pub cronjobs: WatchSpec<CronJob>,
    pub hpas: WatchSpec<HorizontalPodAutoscaler>,
}

pub(super) fn watches(client: kube::Client, wiring: &Wiring) -> Watches {
    let deployments = WatchSpec {
        resource: "deployments",
        kind: "Deployment",
        api: Api::<Deployment>::all(client.clone()),
        config: watcher::Config::default(),
        trim: trim_deployment,
        monitors: fed(&feeds::DEPLOYMENTS, wiring),
        index: None,
        keep: Keep::Packed,
    };
    let statefulsets = WatchSpec {
        resource: "statefulsets",
        kind: "StatefulSet",
        api: Api::<StatefulSet>::all(client.clone()),
        config: watcher::Config::default(),
        trim: trim_statefulset,
        monitors: fed(&feeds::STATEFULSETS, wiring),
        index: None,
        keep: Keep::Packed,
    };
    let daemonsets = WatchSpec {
        resource: "daemonsets",
        kind: "DaemonSet",
        api: Api::<DaemonSet>::all(client.clone()),
        config: watcher::Config::default(),
        trim: trim_daemonset,
        monitors: fed(&feeds::DAEMONSETS, wiring),
        index: None,
        keep: Keep::Packed,
    };
    let jobs = WatchSpec {
        resource: "jobs",
        kind: "Job",
        api: Api::<Job>::all(client.clone()),
        config: watcher::Config::default(),
        trim: trim_job,
        monitors: fed(&feeds::JOBS, wiring),
        index: None,
        keep: Keep::Packed,
    };
    let cronjobs = WatchSpec {
        resource: "cronjobs",
        kind: "CronJob",
        api: Api::<CronJob>::all(client.clone()),
        config: watcher::Config::default(),
        trim: trim_cronjob,
        monitors: fed(&feeds::CRONJOBS, wiring),
        index: None,
        keep: Keep::Packed,
    };
    let hpas = WatchSpec {
        resource: "horizontalpodautoscalers",
        kind: "HorizontalPodAutoscaler",
        api: Api::<HorizontalPodAutoscaler>::all(client),
        config: watcher::Config::default(),
        trim: trim_meta,
        monitors: fed(&feeds::HPAS, wiring),
        index: None,
        keep: Keep::Packed,
    };
    Watches {
        deployments,
        statefulsets,
        daemonsets,
        jobs,
        cronjobs,
        hpas,
    }
}

/// Starts the workload watches once the ignored namespaces are known.
pub fn start(client: kube::Client, ctx: &Context, tasks: &mut JoinSet<()>, wiring: &Wiring) {
    let w = watches(client, wiring);
    ctx.watch(tasks, w.deployments);
    ctx.watch(tasks, w.statefulsets);
    ctx.watch(tasks, w.daemonsets);
    ctx.watch(tasks, w.jobs);
    ctx.watch(tasks, w.hpas);
    ctx.watch(tasks, w.cronjobs);
}
