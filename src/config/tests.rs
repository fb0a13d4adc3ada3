use super::*;
use crate::alert::Severity;

fn secrets() -> SecretMap {
    [
        (
            "SLACK_WEBHOOK",
            "https://hooks.slack.example/T000/B000/XXXX",
        ),
        ("PD_KEY", "pd-routing-key-123"),
        ("HOOK_TOKEN", "tok-abc"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Asserts that loading `yaml` fails with exactly these errors (each a fragment of one line).
fn assert_errors(yaml: &str, secrets: &SecretMap, expected: &[&str]) {
    let errs = load(yaml, secrets).unwrap_err();
    let text = errs.to_string();
    for e in expected {
        assert!(text.contains(e), "missing {e:?} in:\n{text}");
    }
    assert_eq!(errs.len(), expected.len(), "{text}");
}

const GOOD: &str = r#"
cluster: prod-eks-1
dedupe:
  window: 30m
  digest: {severities: [info], interval: 15m}
channels:
  ops: {type: slack, webhook_url: $SLACK_WEBHOOK}
  oncall: {type: pagerduty, routing_key: "${PD_KEY}"}
  mail:
    type: email
    smtp: {host: smtp.example.com, port: 587, tls: starttls}
    from: kpulse@example.com
    to: [ops@example.com]
  audit:
    type: webhook
    url: https://hooks.example.com/kpulse
    headers: {Authorization: "Bearer $HOOK_TOKEN"}
routing:
  default: [ops]
  rules:
    - match: {severity: [critical], namespace: "payments-*"}
      channels: [oncall, ops]
monitors:
  pvc_usage: {warn_at: 85, crit_at: 97}
  tls_cert_expiry: {warn_days: 28, crit_days: 14}
  warning_events: {ignore_reasons: [DNSConfigForming]}
namespaces: {exclude: [kube-node-lease]}
"#;

#[test]
fn loads_the_design_example_and_expands_secrets() {
    let c = load(GOOD, &secrets()).expect("valid config");
    assert_eq!(c.cluster, "prod-eks-1");
    assert_eq!(c.dedupe.window, HumanDuration::mins(30));
    assert_eq!(c.dedupe.digest.severities, vec![Severity::Info]);
    match &c.channels["ops"] {
        Channel::Slack(s) => assert_eq!(
            s.webhook_url.as_ref().unwrap().expose(),
            "https://hooks.slack.example/T000/B000/XXXX"
        ),
        other => panic!("wrong channel {other:?}"),
    }
    match &c.channels["audit"] {
        Channel::Webhook(w) => assert_eq!(w.headers["Authorization"].expose(), "Bearer tok-abc"),
        other => panic!("wrong channel {other:?}"),
    }
    assert_eq!(
        c.routing.rules[0].matcher.namespace.0,
        vec!["payments-*".to_string()]
    );
    assert!(c.resolution.enabled, "resolution is on by default");
    assert_eq!(c.monitors.pvc_usage.crit_at, 97);
}

#[test]
fn five_mistakes_give_five_errors_with_paths() {
    let yaml = r#"
channels:
  ops: {type: slack, webhook_url: $MISSING_WEBHOOK}
  mail: {type: email, smtp: {host: smtp.example.com}, from: "not an address", to: [ops@example.com]}
routing:
  default: [ops]
  rules:
    - match: {namespace_regex: "pay(ments"}
      channels: [ops]
    - match: {severity: [critical]}
      channels: [pager]
monitors:
  pvc_usage: {warn_at: 90, crit_at: 80}
"#;
    // A missing secret hides nothing, and the URL that did not expand is not checked as well.
    let meaning = [
        "routing.rules[1].channels[0]: unknown channel \"pager\"",
        "routing.rules[0].match.namespace_regex: invalid regular expression",
        "channels.mail.from: \"not an address\" is not a valid email address",
        "monitors.pvc_usage.crit_at: (80) must not be below warn_at (90)",
    ];
    let mut expected = meaning.to_vec();
    expected.push("channels.ops.webhook_url: unresolved secret reference $MISSING_WEBHOOK");
    assert_errors(yaml, &secrets(), &expected);

    let mut s = secrets();
    s.insert(
        "MISSING_WEBHOOK".into(),
        "http://insecure.example/hook".into(),
    );
    let mut expected = meaning.to_vec();
    expected.push("channels.ops.webhook_url: must use https://");
    assert_errors(yaml, &s, &expected);
    let text = load(yaml, &s).unwrap_err().to_string();
    assert!(
        !text.contains("insecure.example"),
        "URL value leaked: {text}"
    );
}

#[test]
fn alertmanager_resend_interval_defaults_to_a_minute_and_is_bounded() {
    let yaml = |extra: &str| {
        format!(
            "channels: {{am: {{type: alertmanager, url: https://am.example{extra}}}}}\nrouting: {{default: [am]}}\n"
        )
    };
    let c = load(&yaml(""), &secrets()).expect("valid config");
    assert_eq!(
        c.channels["am"].resend_interval(),
        Some(HumanDuration::mins(1))
    );
    assert_eq!(c.channels.len(), 1);
    for bad in ["0s", "25h"] {
        let text = load(&yaml(&format!(", resend_interval: {bad}")), &secrets())
            .unwrap_err()
            .to_string();
        assert!(
            text.contains("channels.am.resend_interval: must be between 1s and 24h"),
            "{bad}: {text}"
        );
    }
}

#[test]
fn pvc_fill_prediction_settings_are_checked() {
    let yaml = |pvc: &str| {
        format!(
            "channels: {{log: {{type: log}}}}\nrouting: {{default: [log]}}\nmonitors: {{pvc_usage: {{{pvc}}}}}\n"
        )
    };
    let c = load(&yaml("enabled: true"), &secrets()).expect("defaults are valid");
    assert_eq!(c.monitors.pvc_usage.fill_within, HumanDuration::hours(96));
    assert_eq!(c.monitors.pvc_usage.warn_at, 90);
    let text = load(
        &yaml("trend_from: 101, trend_window: 1m, interval: 1m"),
        &secrets(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        text.contains("monitors.pvc_usage.trend_from: must be a percentage from 0 to 100, got 101"),
        "{text}"
    );
    assert!(
        text.contains("monitors.pvc_usage.trend_window: must be at least twice interval"),
        "{text}"
    );
    // With the prediction off the window does not matter.
    load(
        &yaml("fill_within: 0s, trend_window: 1m, interval: 1m"),
        &secrets(),
    )
    .expect("valid");
}

#[test]
fn structural_errors_are_all_reported_with_paths() {
    let yaml = r#"
channels:
  a: {type: slack, webhook_url: "https://x.example", colour: red}
  b: {type: carrier-pigeon}
routing:
  default: [a]
  rules:
    - match: {severity: [urgent]}
      channels: [a]
monitors:
  pod_crash: {enabled: true}
dedupe: {window: soon}
"#;
    let errs = load(yaml, &secrets()).unwrap_err();
    let text = errs.to_string();
    for e in [
        "channels.a.colour: unknown field `colour`",
        "channels.b.type: unknown variant `carrier-pigeon`",
        "routing.rules[0].match.severity[0]: unknown variant `urgent`",
        "monitors.pod_crash: unknown field `pod_crash`",
        "dedupe.window: invalid duration \"soon\"",
    ] {
        assert!(text.contains(e), "missing {e:?} in:\n{text}");
    }
    assert_eq!(errs.len(), 5, "{text}");
}

#[test]
fn unknown_top_level_key_and_duplicate_channel_are_errors() {
    let errs = load("clustr: x\n", &secrets()).unwrap_err();
    assert!(
        errs.to_string().contains("unknown field `clustr`"),
        "{errs}"
    );

    let yaml = "channels:\n  ops: {type: log}\n  ops: {type: log}\nrouting: {default: [ops]}\n";
    let errs = load(yaml, &secrets()).unwrap_err();
    let text = errs.to_string().to_lowercase();
    assert!(text.contains("duplicate") && text.contains("ops"), "{text}");
}

#[test]
fn empty_routing_default_is_an_error() {
    let errs = load("channels: {l: {type: log}}\n", &secrets()).unwrap_err();
    assert!(
        errs.to_string().starts_with("routing.default: is empty"),
        "{errs}"
    );
}

#[test]
fn http_is_allowed_only_when_asked() {
    let yaml = "channels:\n  h: {type: webhook, url: 'http://receiver.svc:8080/', delivery: {allow_http: true}}\nrouting: {default: [h]}\n";
    assert!(load(yaml, &secrets()).is_ok());
}

#[test]
fn secret_values_never_reach_debug_output() {
    let c = load(GOOD, &secrets()).unwrap();
    let dump = format!("{c:?}");
    for secret in secrets().values() {
        assert!(!dump.contains(secret.as_str()), "secret in Debug: {secret}");
    }
}

#[test]
fn empty_document_needs_a_channel() {
    let errs = load("", &secrets()).unwrap_err();
    assert!(errs.to_string().contains("routing.default"));
}

#[test]
fn default_config_is_valid() {
    let yaml = serde_saphyr::to_string(&Config::default()).unwrap();
    let c = load(&yaml, &SecretMap::new()).expect("default config round-trips");
    assert_eq!(c, Config::default());
}

#[test]
fn configuration_docs_are_fresh() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/configuration.md");
    let on_disk = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        on_disk == docs::configuration_markdown(),
        "docs/configuration.md is stale: run `make generate`"
    );
}

#[test]
fn strings_rendered_into_every_message_are_bounded() {
    let huge = "x".repeat(2 * 1024 * 1024);
    let yaml =
        format!("cluster: {huge}\nchannels: {{l: {{type: log}}}}\nrouting: {{default: [l]}}\n");
    let Err(errs) = load(&yaml, &secrets()) else {
        panic!("a 2 MiB cluster name was accepted");
    };
    assert_eq!(
        errs.to_string(),
        "cluster: is 2097152 characters long; at most 100 are allowed"
    );

    let at_limit = format!(
        "cluster: {}\nchannels: {{l: {{type: log}}}}\nrouting: {{default: [l]}}\n",
        "é".repeat(100)
    );
    assert_eq!(
        load(&at_limit, &secrets()).unwrap().cluster.chars().count(),
        100
    );

    let long_name = "c".repeat(64);
    let links: String = (0..11)
        .map(|i| format!("  l{i}: https://rb.example/{{monitor}}\n"))
        .collect();
    let yaml = format!(
        "cluster: \"prod\\nFAKE HEADER\"\nchannels:\n  {long_name}: {{type: log}}\n  s: {{type: slack, webhook_url: $SLACK_WEBHOOK, mention: '{}'}}\nrouting: {{default: [s]}}\nlinks:\n{links}  {}: https://rb.example/\n  long: 'https://rb.example/{}'\n",
        "<!here>".repeat(30),
        "n".repeat(64),
        "p".repeat(2048),
    );
    let expected = [
        "cluster: must be one line without control characters",
        "channels.cccccccccccccccccccccccccccccccccccccccc… (name): is 64 characters long; at most 63 are allowed",
        "channels.s.mention: is 210 characters long; at most 200 are allowed",
        "links: has 13 entries; at most 10 (each is added to every message)",
        "links.nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn… (name): is 64 characters long; at most 63 are allowed",
        "links.long: is 2067 characters long; at most 2048 are allowed",
    ];
    assert_errors(&yaml, &secrets(), &expected);
}

#[test]
fn the_schema_carries_the_length_limits() {
    let schema = json_schema();
    assert_eq!(schema["properties"]["cluster"]["maxLength"], 100);
    assert_eq!(schema["properties"]["links"]["maxProperties"], 10);
}

/// The issue this pass exists for: one unknown key used to hide every other mistake.
#[test]
fn one_pass_reports_structure_secrets_and_meaning_together() {
    let yaml = r#"
clustr: x
channels:
  mail:
    type: email
    smtp: {host: smtp.example.com, tls: bogus}
    from: kpulse@example.com
    to: ops@example.com
  ops: {type: slack, webhook_url: $MISSING}
routing:
  default: [opz]
  rules:
    - match: {monitor: pod_crash}
      channels: [pager]
monitors:
  pvc_usage: {warn_at: 90, crit_at: 80}
"#;
    let expected = [
        "clustr: unknown field `clustr`",
        "channels.mail.smtp.tls: unknown variant `bogus`",
        "channels.mail.to: invalid type: string \"ops@example.com\", expected a sequence",
        "channels.ops.webhook_url: unresolved secret reference $MISSING",
        "routing.default[0]: unknown channel \"opz\"",
        "routing.rules[0].channels[0]: unknown channel \"pager\"",
        "routing.rules[0].match.monitor[0]: unknown monitor \"pod_crash\"",
        "monitors.pvc_usage.crit_at: (80) must not be below warn_at (90)",
    ];
    assert_errors(yaml, &secrets(), &expected);
}

#[test]
fn every_channel_type_keeps_the_path_inside_the_channel() {
    let types = structure::channel_types();
    assert!(types.len() >= 10, "{types:?}");
    for kind in types {
        let yaml = format!(
            "channels:\n  c: {{type: {kind}, delivery: {{timeout: soon, retries: many}}}}\nrouting: {{default: [c]}}\n"
        );
        let text = load(&yaml, &secrets()).unwrap_err().to_string();
        for path in [
            "channels.c.delivery.timeout: ",
            "channels.c.delivery.retries: ",
        ] {
            assert!(text.contains(path), "{kind}: no {path:?} in:\n{text}");
        }
        assert!(
            !text.contains("unknown channel"),
            "{kind}: a faulty channel still counts as defined:\n{text}"
        );
    }
}

#[test]
fn a_default_standing_in_for_a_mistake_raises_no_error_of_its_own() {
    // warn_at is taken out, so its default (90) would be above crit_at: not reported.
    let yaml = "channels: {l: {type: log}}\nrouting: {default: [l]}\nmonitors:\n  pvc_usage: {warn_at: lots, crit_at: 80}\n  node_disk: {warn_at: 95, crit_at: 90}\n";
    let errs = load(yaml, &secrets()).unwrap_err();
    let text = errs.to_string();
    assert!(
        text.contains("monitors.pvc_usage.warn_at: invalid type"),
        "{text}"
    );
    assert!(
        text.contains("monitors.node_disk.crit_at: (90) must not be below warn_at (95)"),
        "a sound monitor beside it is still checked: {text}"
    );
    assert_eq!(errs.len(), 2, "{text}");

    // A routing rule with a faulty matcher still has its channels checked.
    let yaml = "channels: {l: {type: log}}\nrouting:\n  default: [l]\n  rules:\n    - match: {severity: [urgent]}\n      channels: [nope]\n";
    let text = load(yaml, &secrets()).unwrap_err().to_string();
    assert!(
        text.contains("routing.rules[0].match.severity[0]: unknown variant `urgent`")
            && text.contains("routing.rules[0].channels[0]: unknown channel \"nope\""),
        "{text}"
    );
}

#[test]
fn without_secrets_references_are_left_unchecked() {
    let yaml = "channels:\n  s: {type: slack, webhook_url: $SLACK_WEBHOOK}\n  h: {type: webhook, url: 'https://x.example/${OPEN'}\nrouting: {default: [s, pager]}\n";
    let errs = load_without_secrets(yaml).unwrap_err();
    let text = errs.to_string();
    assert!(
        text.contains("channels.h.url: unterminated ${...} reference"),
        "{text}"
    );
    assert!(
        text.contains("routing.default[1]: unknown channel"),
        "{text}"
    );
    assert_eq!(
        errs.len(),
        2,
        "no unresolved-reference or URL error: {text}"
    );
    let ok = load_without_secrets(
        "channels: {s: {type: slack, webhook_url: $SLACK_WEBHOOK}}\nrouting: {default: [s]}\n",
    )
    .expect("valid without its secret values");
    assert_eq!(ok.channels.len(), 1);
}

#[test]
fn severity_rules_are_checked_with_their_paths() {
    let errors = load(
        "severity_rules:\n  - match: {monitor: pod_crash}\n    severity: critical\n  - match: {namespace: '['}\n    severity: critical\n  - match: {reason: OOMKilled}\n    severity: urgent\n",
        &SecretMap::new(),
    )
    .unwrap_err();
    let text = errors.to_string();
    assert!(
        text.contains("severity_rules[0].match.monitor[0]: unknown monitor \"pod_crash\""),
        "{text}"
    );
    assert!(
        text.contains("severity_rules[1].match.namespace[0]: invalid glob"),
        "{text}"
    );
    assert!(text.contains("severity_rules[2].severity"), "{text}");
    let ok = load(
        "channels: {ops: {type: log}}\nrouting: {default: [ops]}\nseverity_rules:\n  - match: {monitor: pod_crashes, reason: OOMKilled, owner_kind: Deployment}\n    severity: critical\n",
        &SecretMap::new(),
    )
    .unwrap();
    assert_eq!(ok.severity_rules[0].severity, Severity::Critical);
}

#[test]
fn inhibit_rules_name_the_field_of_each_mistake() {
    let yaml = r#"
channels: {log: {type: log}}
routing: {default: [log]}
inhibit:
  rules:
    - source: {monitor: node_condition}
      target: {namespace: "pay[ments"}
      equal: [node, owner, "labels."]
"#;
    assert_errors(
        yaml,
        &secrets(),
        &[
            "inhibit.rules[0].source.monitor[0]: unknown monitor \"node_condition\"",
            "inhibit.rules[0].target.namespace[0]: invalid glob",
            "inhibit.rules[0].equal[1]: unknown attribute \"owner\" (known: namespace, node, workload, object, labels.<name>)",
            "inhibit.rules[0].equal[2]: unknown attribute \"labels.\"",
        ],
    );
}

#[test]
fn a_silence_needs_a_matcher_an_rfc3339_end_after_its_start_and_a_comment() {
    let yaml = r#"
channels: {ops: {type: log}}
routing: {default: [ops]}
silences:
  - {match: {namespace: shop}, ends_at: "2026-12-24T18:00:00Z", comment: freeze}
  - {match: {}, ends_at: "tomorrow", comment: " "}
  - {match: {namespace: "["}, starts_at: "2026-12-24T18:00:00Z", ends_at: "2026-12-24T17:00:00Z", comment: x}
  - {match: {namespace: shop}, comment: no end}
"#;
    assert_errors(
        yaml,
        &secrets(),
        &[
            "silences[1].match: a silence needs at least one matcher",
            "silences[1].ends_at: \"tomorrow\" is not an RFC 3339 time",
            "silences[1].comment: say why alerts are silenced",
            "silences[2].match.namespace[0]: invalid glob",
            "silences[2].ends_at: must be after starts_at",
            "silences[3]: missing field `ends_at`",
        ],
    );
}

#[test]
fn a_maintenance_window_names_the_field_that_cannot_be_read() {
    let yaml = r#"
channels: {ops: {type: log}}
routing: {default: [ops]}
maintenance:
  - {name: patching, match: {namespace: shop}, days: [sat, sun], from: "02:00", to: "04:00", timezone: Europe/Berlin}
  - {name: patching, schedule: "0 2 * * *", duration: 1h}
  - {name: "bad name", schedule: "0 2 * * *"}
  - {name: tz, days: [mon], from: "02:00", to: "03:00", timezone: Moon/Base}
  - {name: glob, match: {namespace: "["}, schedule: "0 2 * * *", duration: 1h}
  - {name: act, schedule: "0 2 * * *", duration: 1h, action: forget}
"#;
    assert_errors(
        yaml,
        &secrets(),
        &[
            "maintenance[1].name: \"patching\" is already the name of another window",
            "maintenance[2].name: \"bad name\": letters, digits, - and _",
            "maintenance[2].duration: required with schedule",
            "maintenance[3].timezone: unknown time zone \"Moon/Base\"",
            "maintenance[4].match.namespace[0]: invalid glob",
            "maintenance[5].action: unknown variant `forget`",
        ],
    );
}

#[test]
fn escalation_and_repeat_are_checked_with_their_paths() {
    let yaml = r#"
channels: {ops: {type: log}}
routing: {default: [ops]}
escalation:
  - {match: {monitor: pod_crashes}, restarts: 10, severity: critical}
  - {match: {monitor: pod_crashes}, severity: critical}
  - {match: {}, restarts: 3, pods: 4, severity: critical}
  - {match: {}, pods: 0, severity: critical}
repeat: {interval: {critical: 4h, warning: 30s}, max: 0}
"#;
    assert_errors(
        yaml,
        &secrets(),
        &[
            "escalation[1]: give either restarts or pods",
            "escalation[2]: give either restarts or pods",
            "escalation[3].pods: must be at least 1",
            "repeat.interval.warning: at least 1m",
            "repeat.max: between 1 and 100",
        ],
    );
}

#[test]
fn templates_are_checked_at_load_with_their_path_line_and_channels() {
    let yaml = r#"
channels: {ops: {type: log}}
routing: {default: [ops]}
templates:
  - {channels: [ops], title: "{{ alert.key.name }}: {{ alert.key.reason }}"}
  - {channels: [pager], body: "{% if state == 'firing' %}down{% endif %}"}
  - {title: "{{ alert.key.nmae }}"}
"#;
    assert_errors(
        yaml,
        &secrets(),
        &[
            "templates[1].channels[0]: unknown channel \"pager\"",
            "templates[2].title: line 1: ",
        ],
    );
}
