//! The offline subcommands as a user runs them: the `kpulse` binary, files on disk, exit codes
//! and the text it prints.

use std::path::Path;
use std::process::{Command, Output};

fn kpulse(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kpulse"))
        .args(args)
        .output()
        .expect("run kpulse")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn write(dir: &Path, name: &str, content: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path.display().to_string()
}

/// The README's configuration, as a user would copy it.
/// A fenced block of the README: the first after `heading` that opens with `fence`.
fn readme_block(heading: &str, fence: &str) -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = &readme[readme.find(heading).expect("README section")..];
    let start = section.find(fence).expect("README block") + fence.len();
    let body = &section[start..];
    body[..body.find("\n```").expect("README block end")]
        .trim_start_matches('\n')
        .to_string()
}

/// The README's "Configuration at a glance".
fn readme_config() -> String {
    readme_block("## Configuration at a glance", "```yaml")
}

#[test]
fn check_config_lists_every_problem_with_its_path_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "config.yaml",
        "clustr: x
channels:
  mail: {type: email, smtp: {host: smtp.example.com, tls: bogus}, from: kpulse@example.com, to: ops@example.com}
  ops: {type: slack, webhook_url: $SLACK_WEBHOOK}
routing:
  default: [opz]
",
    );
    let secrets = write(dir.path(), "secrets.env", "OTHER=x\n");
    let out = kpulse(&["check-config", &file, "--secrets", &secrets]);
    assert_eq!(out.status.code(), Some(1));
    let text = text(&out);
    for e in [
        "5 problems:",
        "  clustr: unknown field `clustr`",
        "  channels.mail.smtp.tls: unknown variant `bogus`",
        "  channels.mail.to: invalid type: string",
        "  channels.ops.webhook_url: unresolved secret reference $SLACK_WEBHOOK",
        "  routing.default[0]: unknown channel \"opz\"",
    ] {
        assert!(text.contains(e), "missing {e:?} in:\n{text}");
    }
}

#[test]
fn without_secrets_the_readme_commands_work_and_say_what_was_not_checked() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "config.yaml", &readme_config());
    let out = kpulse(&["check-config", &file]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("$NAME references were not checked: pass --secrets FILE"),
        "{}",
        text(&out)
    );
    // The README's route-test command, its alert taken from the README, prints what the README
    // shows.
    let commands = readme_block("## Configuration at a glance", "```sh");
    let spec = commands
        .lines()
        .find_map(|l| l.strip_prefix("kpulse route-test --config config.yaml --alert '"))
        .and_then(|l| l.strip_suffix('\''))
        .expect("the README's route-test command");
    let out = kpulse(&["route-test", "--config", &file, "--alert", spec]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = readme_block("shows the\n`severity_rules` entry", "```");
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{shown}\n"));
}

#[test]
fn route_test_refuses_an_unknown_monitor() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "config.yaml", &readme_config());
    let out = kpulse(&[
        "route-test",
        "--config",
        &file,
        "--alert",
        "monitor=pod_crash",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("monitor=pod_crash: unknown monitor (did you mean pod_crashes?)"),
        "{}",
        text(&out)
    );
}

/// What the chart's check-config Job runs: the configuration and the Secret as mounted files.
#[test]
fn check_config_with_a_mounted_secret_names_what_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "config.yaml", &readme_config());
    let secret = dir.path().join("kpulse-secrets");
    std::fs::create_dir(&secret).unwrap();
    let check = || {
        let out = kpulse(&[
            "check-config",
            "--config",
            &file,
            "--secrets",
            &secret.display().to_string(),
        ]);
        (out.status.success(), text(&out))
    };
    // An optional Secret volume whose Secret does not exist: an empty directory.
    let (ok, shown) = check();
    assert!(!ok);
    for e in [
        "channels.ops.webhook_url: unresolved secret reference $SLACK_WEBHOOK",
        "kpulse-secrets: no secret values: the Secret does not exist or has no keys",
    ] {
        assert!(shown.contains(e), "missing {e:?} in:\n{shown}");
    }
    // The Secret exists with one of its two keys.
    write(
        &secret,
        "SLACK_WEBHOOK",
        "https://hooks.slack.example/T0/B0/x",
    );
    let (ok, shown) = check();
    assert!(!ok);
    assert!(
        shown.contains(
            "1 problem:\n  channels.oncall.routing_key: unresolved secret reference $PD_ROUTING_KEY"
        ),
        "{shown}"
    );
    assert!(!shown.contains("no secret values"), "{shown}");
    write(&secret, "PD_ROUTING_KEY", "0123");
    let (ok, shown) = check();
    assert!(ok, "{shown}");
}

#[test]
fn schema_prints_the_configuration_schema_for_editors() {
    let out = kpulse(&["schema"]);
    assert!(out.status.success());
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(schema, kpulse::config::json_schema());
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert!(schema["properties"]["channels"].is_object());
}
