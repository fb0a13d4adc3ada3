//! Message rendering shared by every sink: the headline, the body lines and filled-in links.

use std::collections::BTreeMap;

use crate::alert::{Notification, State};
use crate::engine::DispatchItem;

/// Emoji at the start of a headline.
pub fn emoji(state: State) -> &'static str {
    match state {
        State::Firing => "🚨",
        State::Resolved => "✅",
    }
}

/// `[RESOLVED] ` on resolutions, empty otherwise.
pub fn resolved_prefix(state: State) -> &'static str {
    match state {
        State::Firing => "",
        State::Resolved => "[RESOLVED] ",
    }
}

/// `🚨 [prod] checkout/pod/api-7d9f api-7d9f/server OOMKilled` or
/// `✅ [RESOLVED] [prod] checkout/pod/api-7d9f ...`.
pub fn headline(cluster: &str, n: &Notification) -> String {
    format!("{} {}", emoji(n.state), plain_headline(cluster, n))
}

/// The headline without the emoji (email subjects, plain text).
pub fn plain_headline(cluster: &str, n: &Notification) -> String {
    format!(
        "{}[{}] {} {}",
        resolved_prefix(n.state),
        cluster,
        n.alert.key.object(),
        n.alert.title
    )
}

/// The headline of a digest: `[prod] kpulse digest: 3 alerts (2 firing, 1 resolved)`.
pub fn digest_title(cluster: &str, items: &[DispatchItem]) -> String {
    let firing = items
        .iter()
        .filter(|i| i.notification.state == State::Firing)
        .count();
    let resolved = items.len() - firing;
    let noun = if items.len() == 1 { "alert" } else { "alerts" };
    format!(
        "[{cluster}] kpulse digest: {} {noun} ({firing} firing, {resolved} resolved)",
        items.len()
    )
}

/// Red for firing, green for resolved, as `#rrggbb`.
pub fn color(state: State) -> &'static str {
    match state {
        State::Firing => "#d40e0d",
        State::Resolved => "#2eb67d",
    }
}

/// [`color`] as a number (Discord).
pub fn color_rgb(state: State) -> u32 {
    u32::from_str_radix(&color(state)[1..], 16).expect("color() returns #rrggbb")
}

/// The state a whole batch reports: firing if anything in it fires.
pub fn batch_state(items: &[DispatchItem]) -> State {
    if items.iter().any(|i| i.notification.state == State::Firing) {
        State::Firing
    } else {
        State::Resolved
    }
}

/// What happened, or that it is over, in one paragraph.
pub fn summary(n: &Notification) -> String {
    match n.state {
        State::Firing => n.alert.message.clone(),
        State::Resolved => format!("Cleared after {}. It was: {}", since(n), n.alert.message)
            .trim_end()
            .to_string(),
    }
}

/// The message body: the summary, then the facts.
pub fn body(n: &Notification) -> String {
    let mut out = summary(n);
    let facts = facts(n);
    if !facts.is_empty() {
        out.push('\n');
        for (k, v) in facts {
            out.push_str(&format!("\n{k}: {v}"));
        }
    }
    out
}

/// Key facts shown by every sink, in a fixed order.
pub fn facts(n: &Notification) -> Vec<(String, String)> {
    let a = &n.alert;
    let mut out = vec![
        ("Severity".to_string(), a.severity.to_string()),
        ("Monitor".to_string(), a.key.monitor.clone()),
        ("Reason".to_string(), a.key.reason.clone()),
    ];
    if let Some(owner) = &a.owner {
        out.push(("Owner".to_string(), owner.clone()));
    }
    if let Some(node) = &a.node {
        out.push(("Node".to_string(), node.clone()));
    }
    for (k, v) in &a.fields {
        out.push((k.clone(), v.clone()));
    }
    out.push(("First seen".to_string(), a.first_seen.to_string()));
    out
}

/// How long the condition lasted, for resolutions.
pub fn since(n: &Notification) -> String {
    let secs = (n.at.as_second() - n.alert.first_seen.as_second()).max(0) as u64;
    humantime::format_duration(std::time::Duration::from_secs(secs)).to_string()
}

/// Fills `{placeholder}`s of each link template for this alert.
pub fn links(
    templates: &BTreeMap<String, String>,
    cluster: &str,
    n: &Notification,
) -> Vec<(String, String)> {
    let k = &n.alert.key;
    templates
        .iter()
        .map(|(name, t)| {
            let url = t
                .replace("{cluster}", cluster)
                .replace("{monitor}", &k.monitor)
                .replace("{namespace}", &k.namespace)
                .replace("{kind}", &k.kind)
                .replace("{name}", &k.name)
                .replace("{reason}", &k.reason)
                .replace("{severity}", n.alert.severity.as_str());
            (name.clone(), url)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Alert, AlertKey, Severity};
    use jiff::{SignedDuration, Timestamp};

    fn oom(state: State) -> Notification {
        let t0 = Timestamp::from_second(1_800_000_000).unwrap();
        let alert = Alert::new(
            AlertKey::new("pod_crashes", "checkout", "Pod", "api-7d9f", "OOMKilled"),
            Severity::Critical,
            "api-7d9f/server OOMKilled",
            t0,
        )
        .message("Container server in pod checkout/api-7d9f is in state OOMKilled")
        .field("Exit code", "137");
        Notification {
            state,
            alert,
            at: t0 + SignedDuration::from_mins(5),
        }
    }

    #[test]
    fn firing_and_resolved_headlines_read_like_the_product_promises() {
        assert_eq!(
            headline("prod-eks-1", &oom(State::Firing)),
            "🚨 [prod-eks-1] checkout/pod/api-7d9f api-7d9f/server OOMKilled"
        );
        assert_eq!(
            headline("prod-eks-1", &oom(State::Resolved)),
            "✅ [RESOLVED] [prod-eks-1] checkout/pod/api-7d9f api-7d9f/server OOMKilled"
        );
        let b = body(&oom(State::Resolved));
        assert!(
            b.starts_with("Cleared after 5m. It was: Container server"),
            "{b}"
        );
        assert!(b.contains("Exit code: 137"));
    }

    #[test]
    fn digest_titles_count_firing_and_resolved() {
        let items: Vec<DispatchItem> = [State::Firing, State::Resolved, State::Firing]
            .into_iter()
            .map(|s| DispatchItem {
                notification: oom(s),
                reference: None,
            })
            .collect();
        assert_eq!(
            digest_title("prod", &items),
            "[prod] kpulse digest: 3 alerts (2 firing, 1 resolved)"
        );
        assert_eq!(
            digest_title("prod", &items[1..2]),
            "[prod] kpulse digest: 1 alert (0 firing, 1 resolved)"
        );
        assert_eq!(batch_state(&items[1..2]), State::Resolved);
        assert_eq!(batch_state(&items), State::Firing);
        assert_eq!(color_rgb(State::Firing), 0xd40e0d);
        assert_eq!(color_rgb(State::Resolved), 0x2eb67d);
    }

    #[test]
    fn links_fill_placeholders() {
        let t: BTreeMap<String, String> = [(
            "runbook".to_string(),
            "https://rb.example/{monitor}/{reason}?ns={namespace}&c={cluster}".to_string(),
        )]
        .into();
        assert_eq!(
            links(&t, "prod", &oom(State::Firing)),
            vec![(
                "runbook".to_string(),
                "https://rb.example/pod_crashes/OOMKilled?ns=checkout&c=prod".to_string()
            )]
        );
    }
}
