//! Semantic checks on a structurally valid configuration. Each returns every problem it finds.

use std::collections::BTreeSet;

use super::monitors::Monitors;
use super::{Channel, Config, ConfigError, Matcher};

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

/// Every check that does not need expanded secret values.
pub fn semantic(config: &Config) -> Vec<ConfigError> {
    let mut errors = Vec::new();
    let channels: BTreeSet<&str> = config.channels.keys().map(String::as_str).collect();

    if config.cluster.trim().is_empty() {
        errors.push(ConfigError::new("cluster", "must not be empty"));
    }
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
    for (name, template) in &config.links {
        link_check(template, format!("links.{name}"), &mut errors);
    }
    monitor_checks(&config.monitors, &mut errors);
    errors
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

fn channel_checks(name: &str, channel: &Channel, errors: &mut Vec<ConfigError>) {
    let base = format!("channels.{name}");
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !valid_name {
        errors.push(ConfigError::new(
            &base,
            "channel names may only use letters, digits, '-' and '_'",
        ));
    }
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
