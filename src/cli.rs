//! The command line: one vocabulary for every subcommand (`--config FILE`, `--secrets FILE`),
//! and the offline subcommands `check-config`, `schema`, `route-test` and `generate`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{ArgGroup, Parser, Subcommand};

use crate::alert::{Alert, AlertKey, Severity};
use crate::config::monitors::{Entry, Level, Lookup};
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
    /// Add, list or expire run-time silences (the ConfigMap kpulse-silences).
    Silence(SilenceArgs),
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
    /// (also kind, name, reason and label.NAME=value). The reason must be one the monitor sends;
    /// without reason, kind or severity, it takes the monitor's main reason and the kind and
    /// severity kpulse sends it with.
    #[arg(long, value_name = "SPEC")]
    pub alert: String,
}

/// `kpulse silence`.
#[derive(clap::Args, Debug)]
pub struct SilenceArgs {
    /// Kubeconfig to use instead of the in-cluster ServiceAccount.
    #[arg(long, env = "KUBECONFIG", global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The namespace kpulse runs in (where kpulse-silences lives).
    #[arg(
        long,
        short = 'n',
        env = "POD_NAMESPACE",
        default_value = "kpulse",
        global = true
    )]
    pub namespace: String,
    #[command(subcommand)]
    pub action: SilenceAction,
}

#[derive(Subcommand, Debug)]
pub enum SilenceAction {
    /// Silence the alerts that match, from now for a while.
    Add {
        /// What to silence: KEY=VALUE (monitor, severity, namespace, kind, reason, owner_kind:
        /// several values with `|`; namespace_regex; labels.NAME=glob). Repeat or separate with
        /// commas; all must match.
        #[arg(long = "match", value_name = "KEY=VALUE", required = true)]
        matchers: Vec<String>,
        /// How long, e.g. 2h or 30m (required: every silence expires).
        #[arg(long = "for", value_name = "DURATION", value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
        /// Why (shown in the notices and the list).
        #[arg(long)]
        comment: String,
        /// Who (shown in the list). Default: $USER.
        #[arg(long = "by", env = "USER", default_value = "")]
        created_by: String,
    },
    /// List the silences (active, pending, and those ended in the last day).
    List,
    /// End a silence now.
    Expire {
        /// Its id, as `add` and `list` print it.
        id: String,
    },
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

/// The alert `route-test` routes, and what was assumed for the fields not given.
#[derive(Debug)]
pub struct TestAlert {
    pub alert: Alert,
    /// Where the severity came from, when `severity=` was not given.
    pub severity_from: Option<String>,
    /// Which reason was taken, when `reason=` was not given.
    pub reason_from: Option<String>,
}

/// Parses `monitor=pod_crashes,namespace=payments,severity=critical,label.team=x`. The monitor
/// must be one kpulse has, and the reason one it sends (see [`config::monitors::Reasons`]);
/// without `reason=`, `kind=` and `severity=`, the alert takes the monitor's main reason and the
/// kind and severity kpulse sends it with.
pub fn parse_alert(spec: &str) -> Result<TestAlert, String> {
    let mut key = AlertKey::new("", "", "", "example", "");
    let (mut kind, mut reason, mut severity) = (None, None, None);
    let (mut owner, mut node) = (None, None);
    let mut labels = BTreeMap::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("{part:?}: expected field=value"))?;
        match k {
            "monitor" => key.monitor = v.to_string(),
            "namespace" => key.namespace = v.to_string(),
            "kind" => kind = Some(v.to_string()),
            "name" => key.name = v.to_string(),
            "reason" => reason = Some(v.to_string()),
            "severity" => severity = Some(v.parse::<Severity>()?),
            "owner" => owner = Some(v.to_string()),
            "node" => node = Some(v.to_string()),
            other => match other.strip_prefix("label.") {
                Some(label) => {
                    labels.insert(label.to_string(), v.to_string());
                }
                None => {
                    return Err(format!(
                        "unknown alert field {other:?} (use monitor, namespace, kind, name, reason, severity, owner, node, label.NAME)"
                    ));
                }
            },
        }
    }
    if key.monitor.is_empty() {
        return Err("monitor=... is required".into());
    }
    let entry = known_monitor(&key.monitor)?;
    let sent = sent(entry, reason.as_deref(), kind.as_deref())?;
    key.kind = kind.unwrap_or_else(|| sent.kind.to_string());
    key.reason = sent.reason;
    let severity_from = match severity {
        Some(_) => None,
        None => Some(sent.severity_from),
    };
    let mut alert = Alert::new(
        key,
        severity.unwrap_or(sent.severity.assumed()),
        "route test",
        jiff::Timestamp::now(),
    )
    .labels(labels);
    alert.owner = owner;
    alert.node = node;
    Ok(TestAlert {
        alert,
        severity_from,
        reason_from: sent.reason_from,
    })
}

/// What the registry says a monitor sends for the test alert's reason.
struct Sent {
    /// The reason given, or the monitor's main one.
    reason: String,
    /// The kind of object the monitor sends it about.
    kind: &'static str,
    severity: Level,
    /// Where the severity comes from, e.g. "what pod_crashes sends for OOMKilled".
    severity_from: String,
    /// Said when the reason was not given.
    reason_from: Option<String>,
}

/// Looks `reason` (the main one when `None`) up in the monitor's declared reasons: a reason it
/// never sends is an error that suggests the ones it does.
fn sent(entry: &Entry, reason: Option<&str>, kind: Option<&str>) -> Result<Sent, String> {
    let monitor = entry.name;
    let reasons = &entry.reasons;
    let Some((main, main_known)) = reasons.main(kind) else {
        return Err(format!(
            "monitor={monitor}: it sends no alerts, so there is nothing to route"
        ));
    };
    let known: Vec<&str> = reasons.names().collect();
    let (reason, lookup, reason_from) = match reason {
        Some("") => return Err(format!("reason=: empty (known: {})", known.join(", "))),
        Some(r) => (r.to_string(), reasons.lookup(r, kind), None),
        None => {
            let mut also: Vec<String> = known
                .iter()
                .filter(|r| **r != main)
                .map(|r| r.to_string())
                .collect();
            if let Some(other) = &reasons.other {
                also.push(format!(
                    "{}{}",
                    if also.is_empty() { "" } else { "and " },
                    other.what
                ));
            }
            // Picked for the kind given, rather than the monitor's main reason.
            let about = match kind {
                Some(kind) if reasons.main(None).is_some_and(|(m, _)| m != main) => {
                    format!(" about {kind}")
                }
                _ => String::new(),
            };
            let note = if also.is_empty() {
                format!("reason not given: {main}, the one {monitor} sends")
            } else {
                format!(
                    "reason not given: {main}, the main one {monitor} sends{about} (also {})",
                    also.join(", ")
                )
            };
            (main.to_string(), Lookup::Known(main_known), Some(note))
        }
    };
    let (kinds, severity, about) = match lookup {
        Lookup::Known(k) => (k.kinds, k.severity, reason.clone()),
        Lookup::Other(o) => (o.kinds, o.severity, format!("{reason}, as for {}", o.what)),
        Lookup::Never(n) => {
            return Err(format!(
                "reason={reason}: {monitor} never sends it ({})",
                n.why
            ));
        }
        Lookup::Unknown => {
            let close = resembling(&reason, &known);
            let hint = if close.is_empty() {
                format!("{monitor} sends {}", known.join(", "))
            } else {
                format!("did you mean {}?", close.join(" or "))
            };
            return Err(format!(
                "reason={reason}: unknown reason for {monitor} ({hint})"
            ));
        }
    };
    let severity_from = match severity.single() {
        Some(_) => format!("what {monitor} sends for {about}"),
        None => {
            let others: Vec<&str> = severity.severities[1..]
                .iter()
                .map(|s| s.as_str())
                .collect();
            format!(
                "{monitor} sends {about} as {severity}: assumed {}, add severity={} for {}",
                severity.assumed(),
                others.join("|"),
                if others.len() == 1 {
                    "the other"
                } else {
                    "another"
                }
            )
        }
    };
    Ok(Sent {
        reason,
        kind: kinds[0],
        severity,
        severity_from,
        reason_from,
    })
}

/// An unknown monitor name is an error that suggests the names it resembles.
fn known_monitor(name: &str) -> Result<&'static Entry, String> {
    if let Some(entry) = config::Monitors::entry(name) {
        return Ok(entry);
    }
    let names = config::Monitors::NAMES;
    let close = resembling(name, &names);
    let hint = if close.is_empty() {
        format!("known: {}", names.join(", "))
    } else {
        format!("did you mean {}?", close.join(" or "))
    };
    Err(format!("monitor={name}: unknown monitor ({hint})"))
}

/// The candidates `word` may be a typo of: the same but for case, one containing the other, or
/// at most two edits apart.
fn resembling<'a>(word: &str, candidates: &[&'a str]) -> Vec<&'a str> {
    let word = word.to_lowercase();
    candidates
        .iter()
        .copied()
        .filter(|c| {
            let c = c.to_lowercase();
            c.contains(&word) || word.contains(&c) || (word.len() > 3 && edits(&word, &c) <= 2)
        })
        .collect()
}

/// The Levenshtein distance between `a` and `b`.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The text `route-test` prints.
pub fn explain_route(config: &Config, test: &TestAlert) -> Result<String, String> {
    let settings = Settings::from_config(config).map_err(|e| e.to_string())?;
    let engine = Engine::new(settings);
    let alert = &test.alert;
    let now = jiff::Timestamp::now();
    let x = engine.explain(alert, now);
    let severity = alert.severity;
    let mut out = match &test.severity_from {
        None => format!("alert: {}, severity {severity}\n", alert.key),
        Some(from) => format!("alert: {}, severity {severity} ({from})\n", alert.key),
    };
    if let Some(note) = &test.reason_from {
        out.push_str(note);
        out.push('\n');
    }
    if let Some(i) = x.severity_rule {
        out.push_str(&format!(
            "severity_rules[{i}] sets severity {}\n",
            x.severity
        ));
    }
    match &x.incident {
        Some(crate::engine::IncidentJoin::Member(group)) => out.push_str(&format!(
            "incident {group}: joins its workload's incident; sent as one message after incidents.group_wait ({}) with the others\n",
            config.incidents.group_wait
        )),
        Some(crate::engine::IncidentJoin::Folds(group)) => out.push_str(&format!(
            "incident {group}: folds into its pods' incident when one is open\n"
        )),
        None => {}
    }
    if !x.inhibit_rules.is_empty() {
        out.push_str(&format!(
            "held back while a source of inhibit rule {} fires\n",
            x.inhibit_rules.join(", ")
        ));
    }
    if let Some(id) = &x.silence {
        let silence = engine.silences().into_iter().find(|(s, ..)| &s.id == id);
        if let Some((s, ..)) = silence {
            out.push_str(&format!(
                "silenced by {id} until {} ({}): not sent now\n",
                crate::alert::display_time(s.ends_at),
                s.comment
            ));
        }
    }
    for w in &x.maintenance {
        out.push_str(&match (w.open_until, w.next_open) {
            (Some(until), _) => format!(
                "maintenance window {} is open until {}: not sent now\n",
                w.name,
                crate::alert::display_time(until)
            ),
            (None, Some(next)) => format!(
                "maintenance window {} holds it back when open (next at {})\n",
                w.name,
                crate::alert::display_time(next)
            ),
            (None, None) => format!("maintenance window {} matches it\n", w.name),
        });
    }
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
    printed(result)
}

/// Prints the text of a subcommand that worked, or its error.
fn printed(result: Result<String, String>) -> ExitCode {
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

/// `kpulse silence add|list|expire`: reads and writes kpulse-silences with the kubeconfig's
/// credentials.
pub fn silence(args: SilenceArgs) -> ExitCode {
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
        .and_then(|runtime| runtime.block_on(silence_action(args)));
    printed(result)
}

async fn silence_action(args: SilenceArgs) -> Result<String, String> {
    use crate::silences::{Store, matcher, new_silence};
    let client = crate::operator::kube_client(args.kubeconfig.as_deref())
        .await
        .map_err(|e| format!("{e:#}"))?;
    let store = Store::new(client, &args.namespace);
    let now = jiff::Timestamp::now();
    match args.action {
        SilenceAction::Add {
            matchers,
            duration,
            comment,
            created_by,
        } => {
            let duration = jiff::SignedDuration::try_from(duration)
                .map_err(|_| "--for: too long".to_string())?;
            let silence = new_silence(matcher(&matchers)?, duration, &comment, &created_by, now)?;
            store.add(silence.clone(), now).await?;
            Ok(format!(
                "{} silences {} until {}\n",
                silence.id,
                crate::engine::describe_matcher(&silence.matcher),
                crate::alert::display_time(silence.ends_at)
            ))
        }
        SilenceAction::List => Ok(silence_table(&store.list().await?, now)),
        SilenceAction::Expire { id } => {
            let s = store.expire(&id, now).await?;
            Ok(format!(
                "{} expired at {}\n",
                s.id,
                crate::alert::display_time(s.ends_at)
            ))
        }
    }
}

/// `kpulse silence list`: one line per silence, the active ones first.
pub fn silence_table(silences: &[crate::engine::Silence], now: jiff::Timestamp) -> String {
    if silences.is_empty() {
        return "no silences\n".into();
    }
    let mut rows: Vec<_> = silences.iter().collect();
    let state = |s: &crate::engine::Silence| {
        if s.active(now) {
            0
        } else if s.starts_at > now {
            1
        } else {
            2
        }
    };
    rows.sort_by_key(|s| (state(s), s.ends_at));
    let mut out = String::from("ID\tSTATE\tUNTIL\tMATCH\tBY\tCOMMENT\n");
    for s in rows {
        let name = ["active", "pending", "ended"][state(s)];
        out.push_str(&format!(
            "{}\t{name}\t{}\t{}\t{}\t{}\n",
            s.id,
            crate::alert::display_time(s.ends_at),
            crate::engine::describe_matcher(&s.matcher),
            s.created_by,
            s.comment
        ));
    }
    out
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
            "alert: pod_crashes/payments/Pod/example/CrashLoopBackOff, severity critical\nreason not given: CrashLoopBackOff, the main one pod_crashes sends (also OOMKilled, ErrorExit)\nheld back while a source of inhibit rule node, workload fires\nmatched routing.rules[0]\n  -> oncall (log): immediate\n  -> ops (log): immediate\n"
        );
        let a = parse_alert("monitor=pod_crashes,namespace=shop,reason=OOMKilled,severity=info")
            .unwrap();
        assert_eq!(
            explain_route(&c, &a).unwrap(),
            "alert: pod_crashes/shop/Pod/example/OOMKilled, severity info\nheld back while a source of inhibit rule node, workload, pod fires\nno rule matched: routing.default\n  -> ops (log): digest (sent every 15m)\n"
        );
        let a = parse_alert("monitor=job_failed,namespace=shop").unwrap();
        assert!(
            explain_route(&c, &a)
                .unwrap()
                .starts_with("alert: job_failed/shop/Job/example/BackoffLimitExceeded, severity warning (what job_failed sends for BackoffLimitExceeded)\nreason not given: BackoffLimitExceeded, the main one job_failed sends (also DeadlineExceeded, PodFailurePolicy, MaxFailedIndexesExceeded, FailedIndexes, Failed, LongRunning, and any other reason of the Job's Failed condition)\nno rule matched"),
            "{}",
            explain_route(&c, &a).unwrap()
        );
        assert!(
            parse_alert("monitor=pod_crashes,colour=red")
                .unwrap_err()
                .contains("colour")
        );
    }

    #[test]
    fn route_test_shows_the_severity_rule_that_set_the_severity_and_routes_by_it() {
        let c = config::load(
            "channels: {ops: {type: log}, pager: {type: log}}\nrouting:\n  default: [ops]\n  rules:\n    - match: {severity: [critical]}\n      channels: [pager]\nseverity_rules:\n  - match: {monitor: pod_crashes, reason: OOMKilled}\n    severity: critical\n",
            &SecretMap::new(),
        )
        .unwrap();
        let a = parse_alert("monitor=pod_crashes,reason=OOMKilled").unwrap();
        let out = explain_route(&c, &a).unwrap();
        assert!(
            out.contains("severity_rules[0] sets severity critical\nheld back while a source of inhibit rule node, workload, pod fires\nmatched routing.rules[0]\n  -> pager (log): immediate\n"),
            "{out}"
        );
        let a = parse_alert("monitor=pod_crashes,reason=CrashLoopBackOff").unwrap();
        let out = explain_route(&c, &a).unwrap();
        assert!(!out.contains("severity_rules"), "{out}");
        assert!(out.contains("no rule matched: routing.default"), "{out}");
    }

    #[test]
    fn route_test_says_which_incident_inhibit_rules_and_silence_apply() {
        let c = config::load(
            "channels: {ops: {type: log}}\nrouting: {default: [ops]}\nsilences:\n  - {match: {namespace: shop, owner_kind: Deployment}, ends_at: '2999-01-01T00:00:00Z', comment: shop upgrade}\n",
            &SecretMap::new(),
        )
        .unwrap();
        let a =
            parse_alert("monitor=pod_crashes,namespace=shop,owner=Deployment/api,node=n1").unwrap();
        let out = explain_route(&c, &a).unwrap();
        assert!(
            out.contains("incident shop/Deployment/api: joins its workload's incident; sent as one message after incidents.group_wait (30s) with the others\nheld back while a source of inhibit rule node, workload fires\nsilenced by config-"),
            "{out}"
        );
        assert!(
            out.contains("until 2999-01-01T00:00:00Z (shop upgrade): not sent now\n"),
            "{out}"
        );
        let a = parse_alert("monitor=rollout_stuck,namespace=web,kind=Deployment").unwrap();
        let out = explain_route(&c, &a).unwrap();
        assert!(
            out.contains("incident web/Deployment/example: folds into its pods' incident when one is open\nno rule matched"),
            "{out}"
        );
        assert!(!out.contains("silenced"), "{out}");
    }

    #[test]
    fn route_test_names_the_maintenance_windows_of_an_alert() {
        let c = config::load(
            "channels: {ops: {type: log}}\nrouting: {default: [ops]}\nmaintenance:\n  - {name: never-open, match: {namespace: shop}, schedule: '0 0 1 1 *', duration: 1m}\n  - {name: always, schedule: '* * * * *', duration: 2m}\n",
            &SecretMap::new(),
        )
        .unwrap();
        let a = parse_alert("monitor=pod_crashes,namespace=shop").unwrap();
        let out = explain_route(&c, &a).unwrap();
        assert!(
            out.contains("maintenance window never-open holds it back when open (next at "),
            "{out}"
        );
        assert!(
            out.contains("maintenance window always is open until "),
            "{out}"
        );
        let a = parse_alert("monitor=pod_crashes,namespace=web").unwrap();
        let out = explain_route(&c, &a).unwrap();
        assert!(!out.contains("never-open"), "{out}");
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

    #[test]
    fn route_test_refuses_a_reason_the_monitor_does_not_send() {
        assert_eq!(
            parse_alert("monitor=pod_crashes,reason=OOMKiled").unwrap_err(),
            "reason=OOMKiled: unknown reason for pod_crashes (did you mean OOMKilled?)"
        );
        assert_eq!(
            parse_alert("monitor=pod_crashes,reason=Evicted").unwrap_err(),
            "reason=Evicted: unknown reason for pod_crashes (pod_crashes sends CrashLoopBackOff, OOMKilled, ErrorExit)"
        );
        // Open sets accept any reason, but not one the monitor is known never to send.
        assert_eq!(
            parse_alert("monitor=container_waiting,reason=ErrImagePull").unwrap_err(),
            "reason=ErrImagePull: container_waiting never sends it (sent as ImagePullBackOff)"
        );
        assert!(
            parse_alert("monitor=pod_crashes,reason=").is_err(),
            "an empty reason"
        );
    }

    #[test]
    fn route_test_accepts_any_reason_of_an_open_set() {
        let a = parse_alert("monitor=job_failed,reason=SomethingCustom").unwrap();
        assert_eq!(
            a.alert.key.to_string(),
            "job_failed//Job/example/SomethingCustom"
        );
        assert_eq!(
            (a.alert.severity, a.severity_from.as_deref(), a.reason_from),
            (
                Severity::Warning,
                Some(
                    "what job_failed sends for SomethingCustom, as for any other reason of the Job's Failed condition"
                ),
                None
            )
        );
        let a = parse_alert("monitor=node_conditions,reason=GPUUnhealthy").unwrap();
        assert_eq!(
            (a.alert.key.kind.as_str(), a.alert.severity),
            ("Node", Severity::Warning)
        );
        // A Node's SystemOOM event is critical; a Pod's is one of the others.
        let node = parse_alert("monitor=warning_events,reason=SystemOOM").unwrap();
        let pod = parse_alert("monitor=warning_events,reason=SystemOOM,kind=Pod").unwrap();
        assert_eq!(
            [node.alert.severity, pod.alert.severity],
            [Severity::Critical, Severity::Warning]
        );
        assert_eq!(node.alert.key.kind, "Node");
    }

    #[test]
    fn without_severity_route_test_uses_what_the_registry_says() {
        for e in config::Monitors::REGISTRY {
            for known in e.reasons.known {
                for reason in known.names {
                    let a = parse_alert(&format!("monitor={},reason={reason}", e.name)).unwrap();
                    let from = a.severity_from.unwrap();
                    assert_eq!(a.alert.severity, known.severity.assumed(), "{from}");
                    assert_eq!(a.alert.key.kind, known.kinds[0], "{from}");
                    match known.severity.single() {
                        Some(_) => {
                            assert_eq!(from, format!("what {} sends for {reason}", e.name))
                        }
                        None => assert!(from.contains(&known.severity.to_string()), "{from}"),
                    }
                }
            }
        }
        let a = parse_alert("monitor=pvc_pending,reason=Lost").unwrap();
        assert_eq!(
            (a.alert.severity, a.severity_from.unwrap()),
            (
                Severity::Critical,
                "what pvc_pending sends for Lost".to_string()
            )
        );
        let a = parse_alert("monitor=pvc_usage,namespace=db").unwrap();
        assert_eq!(
            (a.alert.key.to_string(), a.alert.severity),
            (
                "pvc_usage/db/PersistentVolumeClaim/example/SpaceUsage".to_string(),
                Severity::Warning
            )
        );
        assert_eq!(
            a.severity_from.unwrap(),
            "pvc_usage sends SpaceUsage as warning or critical, by fill level and rate: assumed warning, add severity=critical for the other"
        );
        assert_eq!(
            a.reason_from.unwrap(),
            "reason not given: SpaceUsage, the main one pvc_usage sends (also InodeUsage)"
        );
        // Given, the severity is the test's; without a reason, the kind picks one about it.
        let a = parse_alert("monitor=rollout_stuck,kind=DaemonSet,severity=critical").unwrap();
        assert_eq!(
            (a.alert.key.to_string(), a.alert.severity, a.severity_from),
            (
                "rollout_stuck//DaemonSet/example/RolloutStalled".to_string(),
                Severity::Critical,
                None
            )
        );
        assert_eq!(
            a.reason_from.unwrap(),
            "reason not given: RolloutStalled, the main one rollout_stuck sends about DaemonSet (also ProgressDeadlineExceeded, ReplicaFailure)"
        );
        let a = parse_alert("monitor=canary").unwrap();
        assert_eq!(
            a.reason_from.unwrap(),
            "reason not given: CanaryFailed, the one canary sends"
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
