//! The command line: one vocabulary for every subcommand (`--config FILE`, `--secrets FILE`),
//! and the offline subcommands `check-config`, `schema`, `route-test` and `generate`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgGroup, Parser, Subcommand};

use crate::alert::{Alert, AlertKey, Severity};
use crate::config::{self, Config, SecretMap};
use crate::engine::{Engine, Settings};

/// `kpulse`: every subcommand and flag.
#[derive(Parser, Debug)]
#[command(
    name = "kpulse",
    version,
    about = "Event-driven Kubernetes alerting: plain-words notifications and [RESOLVED] messages"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the operator (in-cluster, or against --kubeconfig).
    Run(Box<crate::operator::RunArgs>),
    /// Validate a configuration file; exit 1 listing every problem.
    CheckConfig(CheckConfigArgs),
    /// Print the JSON schema of the configuration (for editors: see docs/configuration.md).
    Schema,
    /// Show which channels an alert would reach, and why.
    RouteTest(RouteTestArgs),
    /// Regenerate files derived from the code (docs/configuration.md, the chart's
    /// values.schema.json, the example payloads in docs/webhook.md and docs/sinks.md).
    #[command(hide = true)]
    Generate {
        /// Repository root.
        #[arg(long, default_value = ".")]
        root: PathBuf,
    },
}

/// Help of `--secrets`, the same on every subcommand.
const SECRETS_HELP: &str = "Secret values for $NAME references: a NAME=value file (one per line), a Kubernetes Secret manifest (YAML), or a directory with one file per key (a mounted Secret)";

/// A configuration file and the secret values for its `$NAME` references.
#[derive(clap::Args, Debug)]
pub struct FileArgs {
    /// The configuration: the `config.yaml` of the ConfigMap, or `values.config` of the chart.
    #[arg(long, visible_alias = "config-file", value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[arg(long, visible_alias = "secrets-file", value_name = "FILE", help = SECRETS_HELP,
          long_help = format!("{SECRETS_HELP}. Without it, references are neither resolved nor checked."))]
    pub secrets: Option<PathBuf>,
}

/// `kpulse check-config`.
#[derive(clap::Args, Debug)]
#[command(group(ArgGroup::new("input").required(true).args(["config", "file"])))]
pub struct CheckConfigArgs {
    /// The configuration file, as a positional argument (the same as --config FILE).
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,
    #[command(flatten)]
    pub files: FileArgs,
}

/// `kpulse route-test`.
#[derive(clap::Args, Debug)]
#[command(group(ArgGroup::new("input").required(true).args(["config"])))]
pub struct RouteTestArgs {
    #[command(flatten)]
    pub files: FileArgs,
    /// Alert fields, e.g. `monitor=pod_crashes,namespace=payments,severity=critical`
    /// (also kind, name, reason and label.NAME=value).
    #[arg(long, value_name = "SPEC")]
    pub alert: String,
}

impl CheckConfigArgs {
    pub fn config(&self) -> &Path {
        self.files
            .config
            .as_deref()
            .or(self.file.as_deref())
            .expect("clap requires FILE or --config")
    }
}

/// Reads secret values from a `NAME=value` file, a Secret manifest (`data` base64, or
/// `stringData`), or a directory with one file per key, as Kubernetes mounts a Secret.
pub fn read_secrets(path: &Path) -> Result<SecretMap, String> {
    let shown = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    if path.is_dir() {
        return read_secret_dir(path).map_err(|e| shown(&e));
    }
    let text = std::fs::read_to_string(path).map_err(|e| shown(&e))?;
    parse_secrets(&text).map_err(|e| shown(&e))
}

/// A mounted Secret: one file per key. Names starting with `.` are the kubelet's own
/// (`..data`, timestamped directories) and skipped.
fn read_secret_dir(dir: &Path) -> Result<SecretMap, String> {
    let mut map = SecretMap::new();
    for entry in std::fs::read_dir(dir).map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || !entry.path().is_file() {
            continue;
        }
        let bytes = std::fs::read(entry.path()).map_err(|e| format!("{name}: {e}"))?;
        let value = String::from_utf8(bytes).map_err(|_| format!("{name}: not UTF-8 text"))?;
        map.insert(name, value);
    }
    Ok(map)
}

pub fn parse_secrets(text: &str) -> Result<SecretMap, String> {
    let looks_like_manifest = text.lines().any(|l| l.trim_start().starts_with("kind:"));
    if !looks_like_manifest {
        let mut map = SecretMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| format!("line {}: expected NAME=value", i + 1))?;
            map.insert(k.trim().to_string(), v.to_string());
        }
        return Ok(map);
    }
    #[derive(serde::Deserialize)]
    struct Manifest {
        #[serde(default)]
        data: BTreeMap<String, String>,
        #[serde(default, rename = "stringData")]
        string_data: BTreeMap<String, String>,
    }
    let m: Manifest =
        serde_saphyr::from_str(text).map_err(|e| format!("not a Secret manifest: {e}"))?;
    let mut map = SecretMap::new();
    for (k, v) in m.data {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .map_err(|_| format!("data.{k}: not valid base64"))?;
        let s = String::from_utf8(bytes).map_err(|_| format!("data.{k}: not UTF-8"))?;
        map.insert(k, s);
    }
    map.extend(m.string_data);
    Ok(map)
}

/// Loads a configuration file; without `secrets`, `$NAME` references are not resolved (and not
/// reported).
fn load_file(file: &Path, secrets: Option<&Path>) -> Result<Config, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let mut note = String::new();
    let loaded = match secrets {
        Some(p) => {
            let values = read_secrets(p)?;
            // A mounted Secret that is missing (an optional volume) is an empty directory.
            if values.is_empty() && p.is_dir() {
                note = format!(
                    "\n{}: no secret values: the Secret does not exist or has no keys",
                    p.display()
                );
            }
            config::load(&text, &values)
        }
        None => config::load_without_secrets(&text),
    };
    loaded.map_err(|errs| {
        let n = errs.len();
        let list: Vec<String> = errs.0.iter().map(|e| format!("  {e}")).collect();
        format!(
            "{}: {n} problem{}:\n{}{note}",
            file.display(),
            if n == 1 { "" } else { "s" },
            list.join("\n")
        )
    })
}

/// `kpulse check-config FILE [--secrets FILE]`.
pub fn check_config(file: &Path, secrets: Option<&Path>) -> ExitCode {
    match load_file(file, secrets) {
        Ok(c) => {
            let enabled = config::Monitors::NAMES
                .iter()
                .filter(|m| c.monitors.enabled(m))
                .count();
            println!(
                "{}: valid: cluster {:?}, {} channel(s), {} routing rule(s), {} monitor(s) enabled",
                file.display(),
                c.cluster,
                c.channels.len(),
                c.routing.rules.len(),
                enabled
            );
            if secrets.is_none() {
                println!("{UNCHECKED_SECRETS}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `kpulse schema`.
pub fn schema() -> ExitCode {
    println!(
        "{}",
        serde_json::to_string_pretty(&config::json_schema()).expect("schema serializes")
    );
    ExitCode::SUCCESS
}

/// Said when a file was checked without its secret values.
const UNCHECKED_SECRETS: &str =
    "$NAME references were not checked: pass --secrets FILE to resolve them";

/// The alert `route-test` routes, and whether its severity was given.
#[derive(Debug)]
pub struct TestAlert {
    pub alert: Alert,
    pub severity_given: bool,
}

/// Parses `monitor=pod_crashes,namespace=payments,severity=critical,label.team=x`. The monitor
/// must be one kpulse has.
pub fn parse_alert(spec: &str) -> Result<TestAlert, String> {
    let mut key = AlertKey::new("", "", "Pod", "example", "Example");
    let mut severity = None;
    let mut labels = BTreeMap::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?}: expected field=value"))?;
        match k {
            "monitor" => key.monitor = v.to_string(),
            "namespace" => key.namespace = v.to_string(),
            "kind" => key.kind = v.to_string(),
            "name" => key.name = v.to_string(),
            "reason" => key.reason = v.to_string(),
            "severity" => severity = Some(v.parse::<Severity>()?),
            other => match other.strip_prefix("label.") {
                Some(label) => {
                    labels.insert(label.to_string(), v.to_string());
                }
                None => {
                    return Err(format!(
                        "unknown alert field {other:?} (use monitor, namespace, kind, name, reason, severity, label.NAME)"
                    ));
                }
            },
        }
    }
    if key.monitor.is_empty() {
        return Err("monitor=... is required".into());
    }
    known_monitor(&key.monitor)?;
    let alert = Alert::new(
        key,
        severity.unwrap_or(Severity::Warning),
        "route test",
        jiff::Timestamp::now(),
    )
    .labels(labels);
    Ok(TestAlert {
        alert,
        severity_given: severity.is_some(),
    })
}

/// An unknown monitor name is an error that suggests the names it resembles.
fn known_monitor(name: &str) -> Result<(), String> {
    let names = config::Monitors::NAMES;
    if names.contains(&name) {
        return Ok(());
    }
    let close: Vec<&str> = names
        .into_iter()
        .filter(|n| n.contains(name) || name.contains(n))
        .collect();
    let hint = if close.is_empty() {
        format!("known: {}", names.join(", "))
    } else {
        format!("did you mean {}?", close.join(" or "))
    };
    Err(format!("monitor={name}: unknown monitor ({hint})"))
}

/// The text `route-test` prints.
pub fn explain_route(config: &Config, test: &TestAlert) -> Result<String, String> {
    let settings = Settings::from_config(config).map_err(|e| e.to_string())?;
    let engine = Engine::new(settings);
    let alert = &test.alert;
    let x = engine.explain(alert);
    let severity = alert.severity;
    let mut out = if test.severity_given {
        format!("alert: {}, severity {severity}\n", alert.key)
    } else {
        format!(
            "alert: {}, severity {severity} (not given; add severity=info|warning|critical)\n",
            alert.key
        )
    };
    out.push_str(&match x.route.rule {
        Some(i) => format!("matched routing.rules[{i}]\n"),
        None => "no rule matched: routing.default\n".to_string(),
    });
    if x.digest.is_empty() {
        out.push_str("muted: the rule has no channels\n");
    }
    for (channel, digest) in x.digest {
        let how = if digest {
            format!("digest (sent every {})", config.dedupe.digest.interval)
        } else {
            "immediate".to_string()
        };
        let kind = config
            .channels
            .get(&channel)
            .map(|c| c.type_name())
            .unwrap_or("?");
        out.push_str(&format!("  -> {channel} ({kind}): {how}\n"));
    }
    Ok(out)
}

/// `kpulse route-test --config FILE --alert SPEC`.
pub fn route_test(file: &Path, secrets: Option<&Path>, spec: &str) -> ExitCode {
    let result = load_file(file, secrets).and_then(|c| {
        let alert = parse_alert(spec)?;
        explain_route(&c, &alert)
    });
    if result.is_ok() && secrets.is_none() {
        eprintln!("{UNCHECKED_SECRETS}");
    }
    match result {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}

/// `kpulse generate`: rewrites the generated files.
pub fn generate(root: &Path) -> ExitCode {
    let files = match crate::generated::files(root) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    for (path, content) in files {
        let full = root.join(path);
        if let Some(dir) = full.parent()
            && let Err(e) = std::fs::create_dir_all(dir)
        {
            eprintln!("{}: {e}", dir.display());
            return ExitCode::FAILURE;
        }
        if let Err(e) = std::fs::write(&full, content) {
            eprintln!("{}: {e}", full.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {path}");
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn route_test_explains_rule_and_delivery() {
        let c = config::load(
            "channels: {ops: {type: log}, oncall: {type: log}}\nrouting:\n  default: [ops]\n  rules:\n    - match: {severity: [critical], namespace: 'payments*'}\n      channels: [oncall, ops]\ndedupe: {digest: {severities: [info]}}\n",
            &SecretMap::new(),
        )
        .unwrap();
        let a = parse_alert("monitor=pod_crashes,namespace=payments,severity=critical").unwrap();
        assert_eq!(
            explain_route(&c, &a).unwrap(),
            "alert: pod_crashes/payments/Pod/example/Example, severity critical\nmatched routing.rules[0]\n  -> oncall (log): immediate\n  -> ops (log): immediate\n"
        );
        let a = parse_alert("monitor=pod_crashes,namespace=shop,severity=info").unwrap();
        assert_eq!(
            explain_route(&c, &a).unwrap(),
            "alert: pod_crashes/shop/Pod/example/Example, severity info\nno rule matched: routing.default\n  -> ops (log): digest (sent every 15m)\n"
        );
        let a = parse_alert("monitor=job_failed,namespace=shop").unwrap();
        assert!(
            explain_route(&c, &a)
                .unwrap()
                .starts_with("alert: job_failed/shop/Pod/example/Example, severity warning (not given; add severity=info|warning|critical)\n"),
        );
        assert!(
            parse_alert("monitor=pod_crashes,colour=red")
                .unwrap_err()
                .contains("colour")
        );
    }

    #[test]
    fn route_test_refuses_a_monitor_kpulse_does_not_have() {
        assert_eq!(
            parse_alert("monitor=pod_crash,severity=critical").unwrap_err(),
            "monitor=pod_crash: unknown monitor (did you mean pod_crashes?)"
        );
        let e = parse_alert("monitor=disk_full").unwrap_err();
        assert!(
            e.starts_with("monitor=disk_full: unknown monitor (known: pod_crashes, "),
            "{e}"
        );
    }

    fn parse(args: &[&str]) -> Command {
        let mut argv = vec!["kpulse"];
        argv.extend(args);
        Cli::try_parse_from(argv)
            .unwrap_or_else(|e| panic!("{args:?}: {e}"))
            .command
    }

    #[test]
    fn every_subcommand_takes_config_and_secrets_and_the_old_spellings() {
        for args in [
            &["check-config", "--config", "c.yaml", "--secrets", "s.env"][..],
            &["check-config", "c.yaml", "--secrets", "s.env"],
            &[
                "check-config",
                "--config-file",
                "c.yaml",
                "--secrets-file",
                "s.env",
            ],
        ] {
            let Command::CheckConfig(a) = parse(args) else {
                panic!("{args:?}: not check-config");
            };
            assert_eq!(
                (a.config(), a.files.secrets.as_deref()),
                (Path::new("c.yaml"), Some(Path::new("s.env"))),
                "{args:?}"
            );
        }
        for args in [
            &[
                "route-test",
                "--config",
                "c.yaml",
                "--secrets",
                "s.env",
                "--alert",
                "monitor=job_failed",
            ][..],
            &[
                "route-test",
                "--config-file",
                "c.yaml",
                "--secrets-file",
                "s.env",
                "--alert",
                "monitor=job_failed",
            ],
        ] {
            let Command::RouteTest(a) = parse(args) else {
                panic!("{args:?}: not route-test");
            };
            assert_eq!(a.files.config.as_deref(), Some(Path::new("c.yaml")));
            assert_eq!(a.files.secrets.as_deref(), Some(Path::new("s.env")));
        }
        for args in [
            &[
                "run",
                "--config",
                "c.yaml",
                "--secrets",
                "s.env",
                "--secret-name",
                "creds",
            ][..],
            &[
                "run",
                "--config-file",
                "c.yaml",
                "--secrets-file",
                "s.env",
                "--secret",
                "creds",
            ],
        ] {
            let Command::Run(a) = parse(args) else {
                panic!("{args:?}: not run");
            };
            assert_eq!(a.config_file.as_deref(), Some(Path::new("c.yaml")));
            assert_eq!(a.secrets_file.as_deref(), Some(Path::new("s.env")));
            assert_eq!(a.secret_name.as_deref(), Some("creds"));
        }
    }

    #[test]
    fn check_config_needs_exactly_one_file() {
        let mut argv = vec!["kpulse", "check-config", "--secrets", "s.env"];
        assert!(Cli::try_parse_from(&argv).is_err(), "no file");
        argv.extend(["a.yaml", "--config", "b.yaml"]);
        assert!(Cli::try_parse_from(&argv).is_err(), "two files");
        assert!(Cli::try_parse_from(["kpulse", "route-test", "--alert", "monitor=x"]).is_err());
    }

    #[test]
    fn every_flag_has_help() {
        use clap::CommandFactory;
        fn walk(cmd: &clap::Command, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && arg.get_help().is_none() {
                    missing.push(format!("{} {id}", cmd.get_name()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&Cli::command(), &mut missing);
        assert!(missing.is_empty(), "flags without help: {missing:?}");
    }

    #[test]
    fn secrets_from_a_mounted_secret_directory() {
        // The kubelet's layout: keys are links into a timestamped directory behind `..data`.
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("..2026_01_01_00_00_00.000000001");
        std::fs::create_dir(&data).unwrap();
        std::fs::write(data.join("TOKEN"), "abc").unwrap();
        std::os::unix::fs::symlink(&data, dir.path().join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/TOKEN", dir.path().join("TOKEN")).unwrap();
        let map = read_secrets(dir.path()).unwrap();
        assert_eq!(
            map.into_iter().collect::<Vec<_>>(),
            [("TOKEN".to_string(), "abc".to_string())]
        );
    }

    #[test]
    fn secrets_from_env_file_and_manifest() {
        let env = parse_secrets("# comment\nTOKEN=abc=def\n\nHOOK=x\n").unwrap();
        assert_eq!(env["TOKEN"], "abc=def");
        let manifest = "apiVersion: v1\nkind: Secret\nmetadata: {name: kpulse}\ndata:\n  TOKEN: YWJj\nstringData:\n  HOOK: plain\n";
        let m = parse_secrets(manifest).unwrap();
        assert_eq!((m["TOKEN"].as_str(), m["HOOK"].as_str()), ("abc", "plain"));
    }
}
