//! tls_cert_expiry end to end: a TLS Secret whose certificate expires in 3 days fires critical;
//! renewed (replaced with a 90-day certificate), it resolves.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;

use crate::harness::{Kpulse, TestNamespace, certificate, client, log_config};

async fn apply_tls(api: &Api<Secret>, days: u32) {
    let (crt, key) = certificate(days);
    let s = json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "web-tls"}, "type": "kubernetes.io/tls",
                   "stringData": {"tls.crt": crt, "tls.key": key}});
    api.patch(
        "web-tls",
        &PatchParams::apply("e2e").force(),
        &Patch::Apply(&s),
    )
    .await
    .expect("apply TLS Secret");
}

#[tokio::test]
async fn tls_certificate_expiring_fires_critical_and_resolves_when_renewed() {
    let client = client().await;
    let ns = TestNamespace::new(&client, "tls").await;
    let kpulse = Kpulse::start(
        &log_config(
            &ns.name,
            "monitors: {tls_cert_expiry: {enabled: true, warn_days: 28, crit_days: 14}}\n",
        ),
        &ns.name,
    )
    .await;
    kpulse
        .wait_log("watches synced", Duration::from_secs(30))
        .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &ns.name);
    apply_tls(&secrets, 3).await;
    let key = format!("tls_cert_expiry/{}/Secret/web-tls/Expiring", ns.name);
    let n = kpulse
        .wait_notification("expiring", Duration::from_secs(20), |n| {
            n["key"] == key.as_str() && n["state"] == "firing"
        })
        .await;
    assert_eq!(n["severity"], "critical");
    // Three days from the certificate's making, less the moments since: rounded down, never up.
    let title = n["alert"]["title"].as_str().unwrap();
    assert!(
        title == "certificate in web-tls expires in 2d 23h"
            || title == "certificate in web-tls expires in 3d 0h",
        "{n}"
    );
    apply_tls(&secrets, 90).await;
    kpulse
        .wait_notification("renewed", Duration::from_secs(20), |n| {
            n["key"] == key.as_str() && n["state"] == "resolved"
        })
        .await;
    assert!(
        !kpulse.logs().contains("PRIVATE KEY"),
        "the key reached the log"
    );
    assert!(kpulse.terminate(Duration::from_secs(15)).await.success());
    ns.delete().await;
}
