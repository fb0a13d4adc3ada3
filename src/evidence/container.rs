//! The container part of an alert's evidence, from a pod's spec and one container's status.
//! Pod monitors attach it to their alerts; collection fills it for a workload's alert from its
//! first failing pod.

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};

use super::{Container, exit};

/// The evidence of one container of `pod`: its image and memory settings (from the spec), its
/// current wait or last termination (reason, exit code decoded, message, how long it ran) and
/// restarts.
pub fn of(pod: &Pod, status: &ContainerStatus, init: bool) -> Container {
    let spec = pod.spec.as_ref().and_then(|s| {
        let list = if init {
            s.init_containers.as_ref()
        } else {
            Some(&s.containers)
        };
        list?.iter().find(|c| c.name == status.name)
    });
    let memory = |pick: fn(
        &k8s_openapi::api::core::v1::ResourceRequirements,
    ) -> Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >| {
        spec.and_then(|c| c.resources.as_ref())
            .and_then(pick)
            .and_then(|m| m.get("memory"))
            .map(|q| q.0.clone())
            .unwrap_or_default()
    };
    let mut c = Container {
        name: status.name.clone(),
        image: spec
            .and_then(|c| c.image.clone())
            .unwrap_or_else(|| status.image.clone()),
        init,
        restarts: status.restart_count,
        memory_limit: memory(|r| r.limits.as_ref()),
        memory_request: memory(|r| r.requests.as_ref()),
        ..Container::default()
    };
    let state = status.state.as_ref();
    let terminated = state.and_then(|s| s.terminated.as_ref()).or(status
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref()));
    if let Some(w) = state.and_then(|s| s.waiting.as_ref()) {
        c.reason = w.reason.clone().unwrap_or_default();
        c.message = w.message.clone().unwrap_or_default();
    }
    if let Some(t) = terminated {
        let reason = t.reason.as_deref();
        if c.reason.is_empty() || c.reason == "CrashLoopBackOff" && reason == Some("OOMKilled") {
            c.reason = reason.unwrap_or_default().to_string();
        }
        c.exit_code = Some(t.exit_code);
        c.exit_meaning = exit::meaning(t.exit_code, reason);
        c.signal = t
            .signal
            .or(exit::signal(t.exit_code))
            .and_then(exit::signal_name)
            .unwrap_or_default()
            .to_string();
        if c.message.is_empty() || c.message.starts_with("back-off") {
            c.message = t.message.clone().unwrap_or_default().trim().to_string();
        }
        if let (Some(start), Some(end)) = (&t.started_at, &t.finished_at) {
            let secs = end.0.as_second() - start.0.as_second();
            if secs >= 0 {
                c.ran_for = humantime::format_duration(std::time::Duration::from_secs(secs as u64))
                    .to_string();
            }
        }
    }
    c
}
