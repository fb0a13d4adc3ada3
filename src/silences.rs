//! Run-time silences: the ConfigMap `kpulse-silences` in kpulse's namespace, one key per silence
//! (its id) holding the silence as JSON. `kpulse silence add|list|expire` and the HTTP API
//! (`/silences`) write it; every replica watches it and hands it to its engine, so a standby has
//! the same silences when it takes over, and they survive restarts. Expiring a silence sets its
//! end to now (it stays listed a day); silences that ended more than a day ago are removed at the
//! next write.

use std::collections::BTreeMap;

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use tokio_util::sync::CancellationToken;

use crate::config::Matcher;
use crate::engine::Silence;
use crate::pipeline::Pipeline;

pub const NAME: &str = "kpulse-silences";

/// How long an ended silence stays listed.
const KEPT_AFTER_END: SignedDuration = SignedDuration::from_hours(24);

/// The silences of the ConfigMap, and a message per key that is not a valid silence (naming the
/// key; the rest are used).
pub fn parse(cm: &ConfigMap) -> (Vec<Silence>, Vec<String>) {
    let mut silences = Vec::new();
    let mut errors = Vec::new();
    for (key, text) in cm.data.iter().flatten() {
        match serde_json::from_str::<Silence>(text) {
            Ok(s) if s.id != *key => {
                errors.push(format!("{NAME} key {key:?}: its silence has id {:?}", s.id))
            }
            Ok(s) => match s.check() {
                Ok(()) => silences.push(s),
                Err(e) => errors.push(format!("{NAME} key {key:?}: {e}")),
            },
            Err(e) => errors.push(format!("{NAME} key {key:?}: not a silence: {e}")),
        }
    }
    (silences, errors)
}

/// A matcher from `key=value` pairs: `monitor`, `severity`, `namespace`, `kind`, `reason`,
/// `owner_kind` take one value or several separated by `|`; `namespace_regex` one regular
/// expression; `labels.NAME=glob` a label.
pub fn matcher(pairs: &[String]) -> Result<Matcher, String> {
    let mut map = serde_json::Map::new();
    let mut labels = serde_json::Map::new();
    for pair in pairs.iter().flat_map(|p| p.split(',')) {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let Some((k, v)) = pair.split_once('=') else {
            return Err(format!("--match {pair:?}: expected KEY=VALUE"));
        };
        let (k, v) = (k.trim(), v.trim());
        if let Some(label) = k.strip_prefix("labels.") {
            labels.insert(label.to_string(), v.into());
        } else if k == "namespace_regex" {
            map.insert(k.to_string(), v.into());
        } else {
            let values: Vec<serde_json::Value> = v.split('|').map(|s| s.trim().into()).collect();
            map.insert(k.to_string(), values.into());
        }
    }
    if !labels.is_empty() {
        map.insert("labels".into(), labels.into());
    }
    if map.is_empty() {
        return Err("--match: a silence needs at least one matcher, e.g. namespace=shop".into());
    }
    serde_json::from_value(map.into()).map_err(|e| format!("--match: {e}"))
}

/// A new silence from now for `duration`.
pub fn new_silence(
    matcher: Matcher,
    duration: SignedDuration,
    comment: &str,
    created_by: &str,
    now: Timestamp,
) -> Result<Silence, String> {
    if duration <= SignedDuration::ZERO {
        return Err("--for: a silence must last a while, e.g. 2h".into());
    }
    let silence = Silence {
        id: format!("s-{:08x}", rand::random::<u32>()),
        matcher,
        starts_at: now,
        ends_at: now
            .checked_add(duration)
            .map_err(|_| "--for: too long".to_string())?,
        comment: comment.trim().to_string(),
        created_by: created_by.to_string(),
    };
    silence.check()?;
    Ok(silence)
}

/// Reads and writes `kpulse-silences`.
pub struct Store {
    api: Api<ConfigMap>,
}

impl Store {
    pub fn new(client: kube::Client, namespace: &str) -> Self {
        Store {
            api: Api::namespaced(client, namespace),
        }
    }

    /// Every silence stored, ended ones of the last day included.
    pub async fn list(&self) -> Result<Vec<Silence>, String> {
        let cm = self.api.get_opt(NAME).await.map_err(|e| api_error(&e))?;
        Ok(cm.map(|cm| parse(&cm).0).unwrap_or_default())
    }

    pub async fn add(&self, silence: Silence, now: Timestamp) -> Result<(), String> {
        self.change(now, |data| {
            let text = serde_json::to_string(&silence).map_err(|e| e.to_string())?;
            data.insert(silence.id.clone(), text);
            Ok(())
        })
        .await
    }

    /// Ends the silence `id` now. Returns it as it is afterwards.
    pub async fn expire(&self, id: &str, now: Timestamp) -> Result<Silence, String> {
        let mut expired = None;
        self.change(now, |data| {
            let text = data
                .get(id)
                .ok_or_else(|| format!("no silence {id:?} in {NAME}"))?;
            let mut s: Silence = serde_json::from_str(text)
                .map_err(|e| format!("{NAME} key {id:?}: not a silence: {e}"))?;
            if s.ends_at > now {
                s.ends_at = now.max(s.starts_at + SignedDuration::from_nanos(1));
            }
            data.insert(
                id.to_string(),
                serde_json::to_string(&s).map_err(|e| e.to_string())?,
            );
            expired = Some(s);
            Ok(())
        })
        .await?;
        Ok(expired.expect("set by the change"))
    }

    /// Applies `edit` to the data (creating the ConfigMap if needed), dropping silences that
    /// ended more than a day ago; retried on a conflicting write.
    async fn change(
        &self,
        now: Timestamp,
        mut edit: impl FnMut(&mut BTreeMap<String, String>) -> Result<(), String>,
    ) -> Result<(), String> {
        for _ in 0..5 {
            let existing = self.api.get_opt(NAME).await.map_err(|e| api_error(&e))?;
            let mut cm = existing.clone().unwrap_or_else(|| ConfigMap {
                metadata: ObjectMeta {
                    name: Some(NAME.into()),
                    labels: Some(BTreeMap::from([(
                        "app.kubernetes.io/name".to_string(),
                        "kpulse".to_string(),
                    )])),
                    ..Default::default()
                },
                ..Default::default()
            });
            let data = cm.data.get_or_insert_with(BTreeMap::new);
            data.retain(|_, text| {
                serde_json::from_str::<Silence>(text)
                    .map(|s| s.ends_at + KEPT_AFTER_END > now)
                    .unwrap_or(true)
            });
            edit(data)?;
            let result = match existing {
                Some(_) => self.api.replace(NAME, &PostParams::default(), &cm).await,
                None => self.api.create(&PostParams::default(), &cm).await,
            };
            match result {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 409 => continue,
                Err(e) => return Err(api_error(&e)),
            }
        }
        Err(format!(
            "{NAME}: changed by others five times in a row; try again"
        ))
    }
}

fn api_error(e: &kube::Error) -> String {
    format!("{NAME}: {}", crate::reload::api_error(e))
}

/// Watches `kpulse-silences` and hands its silences to the engine until cancelled.
pub async fn run(
    client: kube::Client,
    pipeline: Pipeline,
    namespace: String,
    token: CancellationToken,
) {
    let api: Api<ConfigMap> = Api::namespaced(client, &namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={NAME}"));
    let mut events = std::pin::pin!(watcher::watcher(api, config).default_backoff());
    let mut listed: Option<ConfigMap> = None;
    let mut last_errors: Vec<String> = Vec::new();
    loop {
        let event = tokio::select! {
            _ = token.cancelled() => return,
            event = events.next() => match event {
                Some(Ok(event)) => event,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "watching {NAME}");
                    continue;
                }
                None => return,
            },
        };
        let current = match event {
            watcher::Event::Init => {
                listed = None;
                continue;
            }
            watcher::Event::InitApply(cm) => {
                listed = Some(cm);
                continue;
            }
            watcher::Event::InitDone => listed.take(),
            watcher::Event::Apply(cm) => Some(cm),
            watcher::Event::Delete(_) => None,
        };
        let (silences, errors) = current.as_ref().map(parse).unwrap_or_default();
        if errors != last_errors {
            for e in &errors {
                tracing::warn!("{e}; the other silences are used");
            }
            last_errors = errors;
        }
        tracing::debug!(count = silences.len(), "run-time silences read");
        pipeline.set_silences(silences);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_are_read_from_key_value_pairs_and_errors_name_the_pair() {
        let m = matcher(&[
            "namespace=shop|web".into(),
            "monitor=pod_crashes,labels.team=pay".into(),
        ])
        .unwrap();
        assert_eq!(m.namespace.0, vec!["shop", "web"]);
        assert_eq!(m.monitor.0, vec!["pod_crashes"]);
        assert_eq!(m.labels["team"], "pay");
        assert!(
            matcher(&["shop".into()])
                .unwrap_err()
                .contains("\"shop\": expected KEY=VALUE")
        );
        assert!(matcher(&[]).unwrap_err().contains("at least one matcher"));
        let unknown = matcher(&["team=pay".into()]).unwrap_err();
        assert!(unknown.contains("unknown field `team`"), "{unknown}");
        assert!(matcher(&["severity=loud".into()]).is_err());
    }

    #[test]
    fn the_config_map_is_read_key_by_key_and_a_bad_key_is_named_without_losing_the_others() {
        let now = Timestamp::from_second(1_800_000_000).unwrap();
        let good = new_silence(
            matcher(&["namespace=shop".into()]).unwrap(),
            SignedDuration::from_hours(2),
            "upgrade",
            "alice",
            now,
        )
        .unwrap();
        assert!(good.id.starts_with("s-"));
        assert_eq!(good.ends_at, now + SignedDuration::from_hours(2));
        let mut other = good.clone();
        other.id = "s-2".into();
        let cm = ConfigMap {
            data: Some(BTreeMap::from([
                (good.id.clone(), serde_json::to_string(&good).unwrap()),
                ("s-2".into(), serde_json::to_string(&other).unwrap()),
                ("s-3".into(), "{not json".into()),
                ("s-4".into(), serde_json::to_string(&good).unwrap()),
            ])),
            ..Default::default()
        };
        let (silences, errors) = parse(&cm);
        assert_eq!(silences.len(), 2);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(
            errors[0].contains("key \"s-3\": not a silence"),
            "{errors:?}"
        );
        assert!(
            errors[1].contains("key \"s-4\": its silence has id"),
            "{errors:?}"
        );
        let no_time = new_silence(good.matcher.clone(), SignedDuration::ZERO, "x", "", now);
        assert!(no_time.unwrap_err().contains("--for"));
        let no_comment = new_silence(
            good.matcher.clone(),
            SignedDuration::from_hours(1),
            " ",
            "",
            now,
        );
        assert!(no_comment.unwrap_err().contains("comment"));
    }
}
