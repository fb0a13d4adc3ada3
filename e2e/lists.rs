//! How the watches get their initial state (`--lists`): this API server serves streaming lists,
//! so `auto` picks them; `paged` lists in pages instead. Either way, what was in the cluster
//! before kpulse started fires once, and a change after the initial state fires and resolves.

use std::time::Duration;

use crate::harness::{
    Kpulse, TestNamespace, client, log_config, status_oom_killed, status_running,
};

#[tokio::test]
async fn streaming_and_paged_lists_see_the_same_cluster() {
    let client = client().await;
    for (flags, lists) in [(&[][..], "streaming"), (&["--lists", "paged"][..], "paged")] {
        let ns = TestNamespace::new(&client, lists).await;
        let config = log_config(&ns.name, "monitors: {pod_crashes: {resolve_after: 0s}}\n");
        // Crash-looping before kpulse starts: part of the initial state.
        ns.create_pod("before", Default::default()).await;
        ns.patch_pod_status("before", status_oom_killed()).await;
        let kpulse = Kpulse::start_with(&config, &ns.name, flags).await;
        kpulse
            .wait_log("watches synced", Duration::from_secs(30))
            .await;
        let chosen: Vec<_> = kpulse
            .json_logs()
            .into_iter()
            .filter_map(|l| l["lists"].as_str().map(str::to_string))
            .collect();
        assert_eq!(chosen, [lists], "{}", kpulse.logs());
        let before = format!("pod_crashes/{}/Pod/before/OOMKilled", ns.name);
        kpulse
            .wait_notification("the pod listed at start-up", Duration::from_secs(20), |n| {
                n["key"] == before && n["state"] == "firing"
            })
            .await;
        // A pod that crashes after the initial state, then recovers.
        let name = "after";
        ns.create_pod(name, Default::default()).await;
        ns.patch_pod_status(name, status_oom_killed()).await;
        let key = format!("pod_crashes/{}/Pod/{name}/OOMKilled", ns.name);
        kpulse
            .wait_notification(
                "a pod crashing after start-up",
                Duration::from_secs(20),
                |n| n["key"] == key && n["state"] == "firing",
            )
            .await;
        ns.patch_pod_status(name, status_running(1, Some(("OOMKilled", 137))))
            .await;
        kpulse
            .wait_notification("its resolution", Duration::from_secs(20), |n| {
                n["key"] == key && n["state"] == "resolved"
            })
            .await;
        kpulse.terminate(Duration::from_secs(20)).await;
        ns.delete().await;
    }
}
