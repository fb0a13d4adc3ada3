//! `tls_cert_expiry`: certificates in `kubernetes.io/tls` Secrets that expire soon. The leaf
//! certificate of `tls.crt` is read; fewer than `warn_days` left warns, fewer than `crit_days` (or
//! expired) is critical, and an unreadable `tls.crt` warns. Resolvable: when the certificate is
//! renewed (or the Secret deleted). The private key is dropped as the Secret enters kpulse: only
//! `tls.crt` is ever kept.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};

use super::feeds::{TLS_SECRETS, Wiring, fed};
use super::trend::roughly;
use super::watch::{Finding, Keep, ObjectMonitor, WatchSpec, trim_meta};
use crate::alert::{Alert, AlertKey, Severity, display_time};
use crate::config::Config;

pub const NAME: &str = "tls_cert_expiry";
crate::monitors::feeds::feed!(TLS_SECRETS: Secret, NAME, |_| Arc::new(TlsCertExpiry));

pub struct TlsCertExpiry;

/// Only TLS Secrets, and of them only the certificate.
pub fn spec(client: kube::Client, wiring: &Wiring) -> WatchSpec<Secret> {
    WatchSpec {
        resource: "secrets",
        kind: "Secret",
        api: Api::all(client),
        config: watcher::Config::default().fields("type=kubernetes.io/tls"),
        trim,
        monitors: fed(&TLS_SECRETS, wiring),
        index: None,
        keep: Keep::Packed,
    }
}

/// Keeps `tls.crt` and nothing else of the data: never the private key.
pub fn trim(secret: &mut Secret) {
    trim_meta(secret);
    secret.string_data = None;
    if let Some(data) = secret.data.as_mut() {
        data.retain(|k, _| k == "tls.crt");
    }
}

/// The leaf certificate's expiry and subject.
pub fn leaf_expiry(pem: &[u8]) -> Result<(Timestamp, String), String> {
    let (_, pem) =
        x509_parser::pem::parse_x509_pem(pem).map_err(|e| format!("tls.crt is not PEM: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| format!("tls.crt is not an X.509 certificate: {e}"))?;
    let not_after =
        Timestamp::from_second(cert.validity().not_after.timestamp()).map_err(|e| e.to_string())?;
    Ok((not_after, cert.subject().to_string()))
}

/// The leaf certificate's issuer and subject alternative names, for the alert's evidence.
pub fn names(pem: &[u8]) -> Option<(String, Vec<String>)> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).ok()?;
    let cert = pem.parse_x509().ok()?;
    let sans = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|ext| {
            ext.value
                .general_names
                .iter()
                .map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => d.to_string(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    Some((cert.issuer().to_string(), sans))
}

impl ObjectMonitor<Secret> for TlsCertExpiry {
    fn name(&self) -> &'static str {
        NAME
    }
    fn enabled(&self, config: &Config) -> bool {
        config.monitors.tls_cert_expiry.enabled
    }
    fn firing(&self, config: &Config, secret: &Secret, now: Timestamp) -> Vec<Finding> {
        let (ns, name) = (secret.namespace().unwrap_or_default(), secret.name_any());
        let Some(crt) = secret.data.as_ref().and_then(|d| d.get("tls.crt")) else {
            return Vec::new();
        };
        let key = |reason: &str| AlertKey::new(NAME, &ns, "Secret", &name, reason);
        let (not_after, subject) = match leaf_expiry(&crt.0) {
            Ok(v) => v,
            Err(why) => {
                let a = Alert::new(
                    key("Unreadable"),
                    Severity::Warning,
                    format!("Secret {name}: certificate unreadable"),
                    now,
                )
                .message(format!(
                    "Secret {ns}/{name} is of type kubernetes.io/tls but {why}."
                ));
                return vec![Finding::firing(a)];
            }
        };
        let s = &config.monitors.tls_cert_expiry;
        let left = not_after.duration_since(now);
        let days = |d: u32| SignedDuration::from_hours(24 * i64::from(d));
        let severity = if left < days(s.crit_days) {
            Severity::Critical
        } else if left < days(s.warn_days) {
            Severity::Warning
        } else {
            return Vec::new();
        };
        let (title, message) = if left <= SignedDuration::ZERO {
            (
                format!("certificate in {name} has expired"),
                format!(
                    "The certificate in Secret {ns}/{name} ({subject}) expired at {not_after}. Clients will refuse it.",
                    not_after = display_time(not_after)
                ),
            )
        } else {
            // Rounded down, so the time left is never overstated: 2 days 23 hours is `2d 23h`.
            let left = roughly(left.unsigned_abs());
            (
                format!("certificate in {name} expires in {left}"),
                format!(
                    "The certificate in Secret {ns}/{name} ({subject}) expires at {not_after}, in {left}. Renew it, or check why its issuer has not.",
                    not_after = display_time(not_after)
                ),
            )
        };
        let mut a = Alert::new(key("Expiring"), severity, title, now)
            .message(message)
            .field("Not after", display_time(not_after))
            .labels(secret.labels().clone());
        if let Some((issuer, sans)) = names(&crt.0) {
            a.evidence.facts.insert("Issuer".into(), issuer);
            if !sans.is_empty() {
                a.evidence.facts.insert("Names".into(), sans.join(", "));
            }
        }
        if let Some(o) = secret.owner_references().first() {
            a.evidence.owners = vec![format!("{}/{}", o.kind, o.name)];
        }
        vec![Finding::firing(a)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::monitors::testkit;

    /// A self-signed certificate for `CN=test.example` (made with openssl for this test).
    const CERT: &str = include_str!("../../tests/support/test-cert.pem");

    fn secret(crt: &[u8]) -> Secret {
        let mut s = Secret::default();
        s.metadata.name = Some("web-tls".into());
        s.metadata.namespace = Some("shop".into());
        s.data = Some(
            [
                ("tls.crt".to_string(), k8s_openapi::ByteString(crt.to_vec())),
                (
                    "tls.key".to_string(),
                    k8s_openapi::ByteString(b"PRIVATE".to_vec()),
                ),
            ]
            .into(),
        );
        s
    }

    fn config() -> Config {
        testkit::config(
            "monitors: {tls_cert_expiry: {enabled: true, warn_days: 28, crit_days: 14}}",
        )
    }

    #[test]
    fn reads_the_leaf_expiry() {
        let (not_after, subject) = leaf_expiry(CERT.as_bytes()).unwrap();
        assert!(not_after > "2030-01-01T00:00:00Z".parse().unwrap());
        assert!(subject.contains("test.example"), "{subject}");
    }

    #[test]
    fn the_alert_names_the_issuer_and_the_certificate_names() {
        let s = secret(CERT.as_bytes());
        let (not_after, _) = leaf_expiry(CERT.as_bytes()).unwrap();
        let now = not_after - SignedDuration::from_hours(24 * 3);
        let found = TlsCertExpiry.firing(&config(), &s, now);
        let facts = &found[0].alert.evidence.facts;
        assert!(facts["Issuer"].contains("test.example"), "{facts:?}");
    }

    #[test]
    fn decision_table() {
        let s = secret(CERT.as_bytes());
        let (not_after, _) = leaf_expiry(CERT.as_bytes()).unwrap();
        let before = |days: i64| not_after - SignedDuration::from_hours(24 * days);
        let cases = [
            (before(40), None),
            (before(20), Some(Severity::Warning)),
            (before(5), Some(Severity::Critical)),
            (before(-3), Some(Severity::Critical)),
        ];
        for (now, want) in cases {
            let got = TlsCertExpiry
                .firing(&config(), &s, now)
                .first()
                .map(|f| f.alert.severity);
            assert_eq!(got, want, "{now}");
        }
        let soon = &TlsCertExpiry.firing(&config(), &s, before(20))[0].alert;
        assert_eq!(soon.title, "certificate in web-tls expires in 20d 0h");
        assert_eq!(soon.key.reason, "Expiring");
        let expired = &TlsCertExpiry.firing(&config(), &s, before(-3))[0].alert;
        assert_eq!(expired.title, "certificate in web-tls has expired");
        let bad = TlsCertExpiry.firing(&config(), &secret(b"garbage"), before(40));
        assert_eq!(bad[0].alert.key.reason, "Unreadable");
    }

    #[test]
    fn time_left_is_rounded_down_to_the_hour_or_minute() {
        let s = secret(CERT.as_bytes());
        let (not_after, _) = leaf_expiry(CERT.as_bytes()).unwrap();
        let left = |d: i64, h: i64, m: i64, sec: i64| {
            not_after - SignedDuration::from_secs(((d * 24 + h) * 60 + m) * 60 + sec)
        };
        let cases = [
            (left(3, 0, 0, 0), "3d 0h"),
            (left(2, 23, 59, 59), "2d 23h"),
            (left(2, 23, 59, 0), "2d 23h"),
            (left(1, 0, 0, 0), "1d 0h"),
            (left(0, 23, 59, 59), "23h 59m"),
            (left(0, 1, 0, 0), "1h 0m"),
            (left(0, 0, 59, 59), "59m"),
        ];
        for (now, want) in cases {
            let a = &TlsCertExpiry.firing(&config(), &s, now)[0].alert;
            assert_eq!(a.title, format!("certificate in web-tls expires in {want}"));
            assert!(
                a.message.ends_with(&format!(
                    "expires at {}, in {want}. Renew it, or check why its issuer has not.",
                    display_time(not_after)
                )),
                "{}",
                a.message
            );
        }
    }

    #[test]
    fn the_private_key_never_enters_kpulse() {
        let mut s = secret(CERT.as_bytes());
        trim(&mut s);
        let keys: Vec<&String> = s.data.as_ref().unwrap().keys().collect();
        assert_eq!(keys, vec!["tls.crt"]);
    }
}
