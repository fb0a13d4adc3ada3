//! Semantic checks on a structurally valid configuration. Each returns every problem it finds.

use std::collections::BTreeSet;

use super::monitors::Monitors;
use super::{Channel, Config, ConfigError, InhibitAttr, Matcher};

/// Placeholders allowed in `links` templates.
pub const LINK_PLACEHOLDERS: [&str; 7] = [
    "cluster",
    "monitor",
    "namespace",
    "kind",
    "name",
    "reason",
    "severity",
];

/// Longest `cluster` name, in characters: it starts every message (EKS names go up to 100).
pub const MAX_CLUSTER_CHARS: usize = 100;
/// Longest channel name, in characters: it is shown in payloads, metrics and `/status`.
pub const MAX_CHANNEL_NAME_CHARS: usize = 63;
/// Most `links` entries: each is added to every message.
pub const MAX_LINKS: usize = 10;
/// Longest `links` name, in characters.
pub const MAX_LINK_NAME_CHARS: usize = 63;
/// Longest `links` template, in characters.
pub const MAX_LINK_TEMPLATE_CHARS: usize = 2048;
/// Longest Slack `mention`, in characters: it is prepended to every critical alert.
pub const MAX_MENTION_CHARS: usize = 200;

/// Every check that does not need expanded secret values.
pub fn semantic(config: &Config) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let channels: BTreeSet<&str> = config.channels.keys().map(String::as_str).collect();

    if config.cluster.trim().is_empty() {
        errors.push(ConfigError::new("cluster", "must not be empty"));
    }
    bounded(&config.cluster, MAX_CLUSTER_CHARS, "cluster", &mut errors);
    one_line(&config.cluster, "cluster", &mut errors);
    for (name, channel) in &config.channels {
        channel_checks(name, channel, &mut errors);
    }

    if config.routing.default.is_empty() {
        errors.push(ConfigError::new(
            "routing.default",
            "is empty: alerts that match no rule would be dropped; name at least one channel",
        ));
    }
    for (i, name) in config.routing.default.iter().enumerate() {
        known_channel(
            &channels,
            name,
            format!("routing.default[{i}]"),
            &mut errors,
        );
    }
    for (r, rule) in config.routing.rules.iter().enumerate() {
        let base = format!("routing.rules[{r}]");
        for (i, name) in rule.channels.iter().enumerate() {
            known_channel(
                &channels,
                name,
                format!("{base}.channels[{i}]"),
                &mut errors,
            );
        }
        matcher_checks(&rule.matcher, &format!("{base}.match"), &mut errors);
    }

    for (r, rule) in config.severity_rules.iter().enumerate() {
        matcher_checks(
            &rule.matcher,
            &format!("severity_rules[{r}].match"),
            &mut errors,
        );
    }

    for (i, silence) in config.silences.iter().enumerate() {
        let base = format!("silences[{i}]");
        matcher_checks(&silence.matcher, &format!("{base}.match"), &mut errors);
        if silence.matcher == super::Matcher::default() {
            errors.push(ConfigError::new(
                format!("{base}.match"),
                "a silence needs at least one matcher",
            ));
        }
        let time = |field: &str, text: &str, errors: &mut Vec<ConfigError>| {
            text.trim()
                .parse::<jiff::Timestamp>()
                .map_err(|e| {
                    errors.push(ConfigError::new(
                        format!("{base}.{field}"),
                        format!(
                            "{text:?} is not an RFC 3339 time such as 2026-12-24T18:00:00Z ({e})"
                        ),
                    ))
                })
                .ok()
        };
        let ends = time("ends_at", &silence.ends_at, &mut errors);
        let starts = silence
            .starts_at
            .as_deref()
            .and_then(|t| time("starts_at", t, &mut errors));
        if let (Some(starts), Some(ends)) = (starts, ends)
            && ends <= starts
        {
            errors.push(ConfigError::new(
                format!("{base}.ends_at"),
                "must be after starts_at",
            ));
        }
        if silence.comment.trim().is_empty() {
            errors.push(ConfigError::new(
                format!("{base}.comment"),
                "say why alerts are silenced",
            ));
        }
    }

    for (i, rule) in config.escalation.iter().enumerate() {
        let base = format!("escalation[{i}]");
        matcher_checks(&rule.matcher, &format!("{base}.match"), &mut errors);
        match (rule.restarts, rule.pods) {
            (Some(_), Some(_)) | (None, None) => {
                errors.push(ConfigError::new(&base, "give either restarts or pods"))
            }
            (Some(0), _) | (_, Some(0)) => errors.push(ConfigError::new(
                format!(
                    "{base}.{}",
                    if rule.restarts.is_some() {
                        "restarts"
                    } else {
                        "pods"
                    }
                ),
                "must be at least 1",
            )),
            _ => {}
        }
    }
    for (severity, interval) in &config.repeat.interval {
        if interval.0 < std::time::Duration::from_secs(60) {
            errors.push(ConfigError::new(
                format!("repeat.interval.{severity}"),
                "at least 1m",
            ));
        }
    }
    if !(1..=100).contains(&config.repeat.max) {
        errors.push(ConfigError::new("repeat.max", "between 1 and 100"));
    }

    if let Err(template_errors) = crate::templates::Templates::new(&config.templates) {
        errors.extend(template_errors);
    }
    for (i, rule) in config.templates.iter().enumerate() {
        for (c, name) in rule.channels.iter().enumerate() {
            known_channel(
                &channels,
                name,
                format!("templates[{i}].channels[{c}]"),
                &mut errors,
            );
        }
    }

    let mut windows = std::collections::BTreeSet::new();
    for (i, w) in config.maintenance.iter().enumerate() {
        let base = format!("maintenance[{i}]");
        matcher_checks(&w.matcher, &format!("{base}.match"), &mut errors);
        if !valid_name(&w.name) {
            errors.push(ConfigError::new(
                format!("{base}.name"),
                format!(
                    "{:?}: letters, digits, - and _, at most 63 characters",
                    w.name
                ),
            ));
        } else if !windows.insert(w.name.as_str()) {
            errors.push(ConfigError::new(
                format!("{base}.name"),
                format!("{:?} is already the name of another window", w.name),
            ));
        }
        if let Err((field, message)) = crate::engine::MaintenanceWindowRule::new(w)
            && field != "match"
        {
            errors.push(ConfigError::new(format!("{base}.{field}"), message));
        }
    }

    for (r, rule) in config.inhibit.rules.iter().enumerate() {
        let base = format!("inhibit.rules[{r}]");
        matcher_checks(&rule.source, &format!("{base}.source"), &mut errors);
        matcher_checks(&rule.target, &format!("{base}.target"), &mut errors);
        for (i, attr) in rule.equal.iter().enumerate() {
            if InhibitAttr::parse(attr).is_none() {
                errors.push(ConfigError::new(
                    format!("{base}.equal[{i}]"),
                    format!("unknown attribute {attr:?} (known: {})", InhibitAttr::KNOWN),
                ));
            }
        }
    }

    for (i, name) in config.welcome.channels.iter().enumerate() {
        known_channel(
            &channels,
            name,
            format!("welcome.channels[{i}]"),
            &mut errors,
        );
    }

    if config.dedupe.digest.interval.is_zero() {
        errors.push(ConfigError::new(
            "dedupe.digest.interval",
            "must be longer than 0s",
        ));
    }
    if config.state.interval.get().as_secs() < 5 {
        errors.push(ConfigError::new("state.interval", "must be at least 5s"));
    }
    for (i, pattern) in config.namespaces.include.iter().enumerate() {
        glob_check(pattern, format!("namespaces.include[{i}]"), &mut errors);
    }
    for (i, pattern) in config.namespaces.exclude.iter().enumerate() {
        glob_check(pattern, format!("namespaces.exclude[{i}]"), &mut errors);
    }
    if config.links.len() > MAX_LINKS {
        errors.push(ConfigError::new(
            "links",
            format!(
                "has {} entries; at most {MAX_LINKS} (each is added to every message)",
                config.links.len()
            ),
        ));
    }
    for (name, template) in &config.links {
        let path = format!("links.{}", shown_name(name));
        bounded(
            name,
            MAX_LINK_NAME_CHARS,
            &format!("{path} (name)"),
            &mut errors,
        );
        bounded(template, MAX_LINK_TEMPLATE_CHARS, &path, &mut errors);
        link_check(template, path, &mut errors);
    }
    monitor_checks(&config.monitors, &mut errors);
    evidence_checks(&config.evidence, &mut errors);
    errors
}

fn evidence_checks(e: &super::EvidenceSettings, errors: &mut Vec<ConfigError>) {
    let budget = e.budget.get();
    if budget.is_zero() || budget > std::time::Duration::from_secs(30) {
        errors.push(ConfigError::new(
            "evidence.budget",
            "must be longer than 0s and at most 30s (it delays the first message of an alert)",
        ));
    }
    let ranges = [
        ("evidence.events", e.events, 0, 20),
        ("evidence.text_bytes", e.text_bytes, 40, 2000),
        ("evidence.logs.lines", e.logs.lines, 1, 200),
        ("evidence.logs.max_bytes", e.logs.max_bytes, 100, 16384),
    ];
    for (path, value, min, max) in ranges {
        if !(min..=max).contains(&value) {
            errors.push(ConfigError::new(
                path,
                format!("is {value}; must be from {min} to {max}"),
            ));
        }
    }
    for name in e.monitors.keys() {
        if !Monitors::NAMES.contains(&name.as_str()) {
            errors.push(ConfigError::new(
                format!("evidence.monitors.{}", shown_name(name)),
                "is not a monitor (see `monitors` for the names)",
            ));
        }
    }
}

/// A length limit on a string that is rendered into messages. The value is never echoed.
fn bounded(value: &str, max: usize, path: &str, errors: &mut Vec<ConfigError>) {
    let chars = value.chars().count();
    if chars > max {
        errors.push(ConfigError::new(
            path,
            format!("is {chars} characters long; at most {max} are allowed"),
        ));
    }
}

/// Rejects line breaks and other control characters, which would break headlines and subjects.
fn one_line(value: &str, path: &str, errors: &mut Vec<ConfigError>) {
    if value.chars().any(char::is_control) {
        errors.push(ConfigError::new(
            path,
            "must be one line without control characters",
        ));
    }
}

/// A map key as shown in an error path: cut short, so an oversized key is not echoed whole.
fn shown_name(name: &str) -> String {
    const SHOWN: usize = 40;
    if name.chars().count() > SHOWN {
        format!("{}…", name.chars().take(SHOWN).collect::<String>())
    } else {
        name.to_string()
    }
}

fn known_channel(known: &BTreeSet<&str>, name: &str, path: String, errors: &mut Vec<ConfigError>) {
    if !known.contains(name) {
        let list = known.iter().copied().collect::<Vec<_>>().join(", ");
        let hint = if list.is_empty() {
            "no channels are defined".to_string()
        } else {
            format!("defined channels: {list}")
        };
        errors.push(ConfigError::new(
            path,
            format!("unknown channel {name:?} ({hint})"),
        ));
    }
}

/// Letters, digits, `-` and `_`, not empty.
fn name_chars(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn valid_name(name: &str) -> bool {
    name_chars(name) && name.chars().count() <= MAX_CHANNEL_NAME_CHARS
}

fn channel_checks(name: &str, channel: &Channel, errors: &mut Vec<ConfigError>) {
    let base = format!("channels.{}", shown_name(name));
    if !name_chars(name) {
        errors.push(ConfigError::new(
            &base,
            "channel names may only use letters, digits, '-' and '_'",
        ));
    }
    bounded(
        name,
        MAX_CHANNEL_NAME_CHARS,
        &format!("{base} (name)"),
        errors,
    );
    if channel.delivery().timeout.is_zero() {
        errors.push(ConfigError::new(
            format!("{base}.delivery.timeout"),
            "must be longer than 0s",
        ));
    }
    if channel.delivery().retries > 10 {
        errors.push(ConfigError::new(
            format!("{base}.delivery.retries"),
            "at most 10 retries",
        ));
    }
    if let Channel::Slack(c) = channel
        && let Some(mention) = &c.mention
    {
        bounded(
            mention,
            MAX_MENTION_CHARS,
            &format!("{base}.mention"),
            errors,
        );
    }
    match channel {
        Channel::Slack(c) => match (&c.webhook_url, &c.token) {
            (None, None) => errors.push(ConfigError::new(
                &base,
                "set webhook_url (incoming webhook) or token (bot token)",
            )),
            (Some(_), Some(_)) => errors.push(ConfigError::new(
                &base,
                "set webhook_url or token, not both",
            )),
            (None, Some(_)) if c.channel.as_deref().unwrap_or("").is_empty() => errors.push(
                ConfigError::new(format!("{base}.channel"), "is required with token"),
            ),
            _ => {}
        },
        Channel::Email(c) => {
            if c.smtp.host.trim().is_empty() {
                errors.push(ConfigError::new(
                    format!("{base}.smtp.host"),
                    "must not be empty",
                ));
            }
            if c.smtp.username.is_some() != c.smtp.password.is_some() {
                errors.push(ConfigError::new(
                    format!("{base}.smtp"),
                    "set both username and password, or neither",
                ));
            }
            address_check(&c.from, format!("{base}.from"), errors);
            if c.to.is_empty() {
                errors.push(ConfigError::new(
                    format!("{base}.to"),
                    "name at least one recipient",
                ));
            }
            for (i, to) in c.to.iter().enumerate() {
                address_check(to, format!("{base}.to[{i}]"), errors);
            }
        }
        Channel::Webhook(c) => header_checks(c.headers.keys(), &base, errors),
        Channel::Alertmanager(c) => {
            header_checks(c.headers.keys(), &base, errors);
            let every = c.resend_interval.get();
            if every < std::time::Duration::from_secs(1)
                || every > std::time::Duration::from_secs(86_400)
            {
                errors.push(ConfigError::new(
                    format!("{base}.resend_interval"),
                    "must be between 1s and 24h",
                ));
            }
        }
        _ => {}
    }
}

fn header_checks<'a>(
    names: impl Iterator<Item = &'a String>,
    base: &str,
    errors: &mut Vec<ConfigError>,
) {
    for name in names {
        if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
            errors.push(ConfigError::new(
                format!("{base}.headers.{name}"),
                "is not a valid HTTP header name",
            ));
        }
    }
}

fn address_check(address: &str, path: String, errors: &mut Vec<ConfigError>) {
    if address.parse::<lettre::message::Mailbox>().is_err() {
        errors.push(ConfigError::new(
            path,
            format!("{address:?} is not a valid email address"),
        ));
    }
}

fn matcher_checks(m: &Matcher, base: &str, errors: &mut Vec<ConfigError>) {
    for (i, monitor) in m.monitor.iter().enumerate() {
        if !Monitors::NAMES.contains(&monitor.as_str()) {
            errors.push(ConfigError::new(
                format!("{base}.monitor[{i}]"),
                format!(
                    "unknown monitor {monitor:?} (known: {})",
                    Monitors::NAMES.join(", ")
                ),
            ));
        }
    }
    for (i, pattern) in m.namespace.iter().enumerate() {
        glob_check(pattern, format!("{base}.namespace[{i}]"), errors);
    }
    if let Some(re) = &m.namespace_regex
        && let Err(e) = regex::Regex::new(re)
    {
        errors.push(ConfigError::new(
            format!("{base}.namespace_regex"),
            format!("invalid regular expression: {e}"),
        ));
    }
    for (key, pattern) in &m.labels {
        glob_check(pattern, format!("{base}.labels.{key}"), errors);
    }
}

fn glob_check(pattern: &str, path: String, errors: &mut Vec<ConfigError>) {
    if let Err(e) = globset::Glob::new(pattern) {
        errors.push(ConfigError::new(
            path,
            format!("invalid glob {pattern:?}: {}", e.kind()),
        ));
    }
}

fn link_check(template: &str, path: String, errors: &mut Vec<ConfigError>) {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            errors.push(ConfigError::new(&path, "unclosed '{' in link template"));
            return;
        };
        let name = &rest[open + 1..open + close];
        if !LINK_PLACEHOLDERS.contains(&name) {
            errors.push(ConfigError::new(
                &path,
                format!(
                    "unknown placeholder {{{name}}} (known: {})",
                    LINK_PLACEHOLDERS.join(", ")
                ),
            ));
        }
        rest = &rest[open + close + 1..];
    }
}

fn percent_pair(warn: u8, crit: u8, base: &str, errors: &mut Vec<ConfigError>) {
    for (field, v) in [("warn_at", warn), ("crit_at", crit)] {
        if v == 0 || v > 100 {
            errors.push(ConfigError::new(
                format!("{base}.{field}"),
                format!("must be a percentage from 1 to 100, got {v}"),
            ));
        }
    }
    if crit < warn {
        errors.push(ConfigError::new(
            format!("{base}.crit_at"),
            format!("({crit}) must not be below warn_at ({warn})"),
        ));
    }
}

fn monitor_checks(m: &Monitors, errors: &mut Vec<ConfigError>) {
    percent_pair(
        m.pvc_usage.warn_at,
        m.pvc_usage.crit_at,
        "monitors.pvc_usage",
        errors,
    );
    let pvc = &m.pvc_usage;
    if pvc.trend_from > 100 {
        errors.push(ConfigError::new(
            "monitors.pvc_usage.trend_from",
            format!("must be a percentage from 0 to 100, got {}", pvc.trend_from),
        ));
    }
    if !pvc.fill_within.is_zero() && pvc.trend_window.get() < pvc.interval.get() * 2 {
        errors.push(ConfigError::new(
            "monitors.pvc_usage.trend_window",
            "must be at least twice interval, to hold enough readings for a prediction",
        ));
    }
    percent_pair(
        m.node_disk.warn_at,
        m.node_disk.crit_at,
        "monitors.node_disk",
        errors,
    );
    if m.node_resources.pids_crit_at < m.node_resources.pids_warn_at {
        errors.push(ConfigError::new(
            "monitors.node_resources.pids_crit_at",
            "must not be below pids_warn_at",
        ));
    }
    if m.tls_cert_expiry.crit_days > m.tls_cert_expiry.warn_days {
        errors.push(ConfigError::new(
            "monitors.tls_cert_expiry.crit_days",
            format!(
                "({}) must not be above warn_days ({})",
                m.tls_cert_expiry.crit_days, m.tls_cert_expiry.warn_days
            ),
        ));
    }
    if m.pod_restarts.threshold == 0 {
        errors.push(ConfigError::new(
            "monitors.pod_restarts.threshold",
            "must be at least 1",
        ));
    }
    for (name, interval) in [
        ("pvc_usage", m.pvc_usage.interval),
        ("node_disk", m.node_disk.interval),
        ("node_resources", m.node_resources.interval),
        ("canary", m.canary.interval),
    ] {
        if interval.get().as_secs() < 5 {
            errors.push(ConfigError::new(
                format!("monitors.{name}.interval"),
                "must be at least 5s",
            ));
        }
    }
}

/// URL checks, on the expanded configuration. Messages never show the URL: it may hold a token.
pub fn urls(config: &Config) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    for (name, channel) in &config.channels {
        for (field, url) in channel.urls() {
            let path = format!("channels.{name}.{field}");
            match reqwest::Url::parse(url.expose()) {
                Err(_) => errors.push(ConfigError::new(
                    path,
                    "is not a valid URL (value not shown: it may hold a secret)",
                )),
                Ok(u) => match u.scheme() {
                    "https" => {}
                    "http" if channel.delivery().allow_http => {}
                    "http" => errors.push(ConfigError::new(
                        path,
                        "must use https:// (set delivery.allow_http: true to allow a plain http receiver)",
                    )),
                    other => errors.push(ConfigError::new(
                        path,
                        format!("unsupported URL scheme {other:?} (use https://)"),
                    )),
                },
            }
        }
    }
    errors
}
