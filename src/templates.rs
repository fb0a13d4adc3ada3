//! User templates (`templates`): a minijinja template for an alert's title and one for its body
//! (the message under the title), per channel and per matcher. The first rule whose `channels`
//! and `match` fit an alert decides; without one, kpulse's own text is used.
//!
//! Every template is compiled when the configuration loads, then rendered once against a sample
//! alert that has every field, with undefined values as errors: a syntax error or a misspelt
//! field (`alert.titel`) is reported with the template's path and line, and the configuration is
//! refused. At run time an absent value (a pod alert's `owner`) renders empty; a template that
//! still fails (or whose output is empty) falls back to kpulse's own text, with a warning.
//!
//! Variables: `cluster`, `channel`, `state` (`firing` or `resolved`) and `alert`: `key`
//! (`monitor`, `namespace`, `kind`, `name`, `reason`), `severity`, `title`, `message`, `labels`,
//! `owner`, `node`, `fields`, `first_seen`.

use minijinja::{Environment, UndefinedBehavior, Value, context};

use crate::alert::{Alert, AlertKey, Severity};
use crate::config::{ConfigError, TemplateRule};
use crate::engine::Matches;
use crate::sinks::Batch;

/// A title is cut to this many characters, a body to [`MAX_BODY`].
const MAX_TITLE: usize = 300;
const MAX_BODY: usize = 4000;
/// Execution budget of one render (minijinja fuel): a runaway loop stops, never hangs kpulse.
const FUEL: u64 = 50_000;

struct Rule {
    channels: Vec<String>,
    matches: Matches,
    title: Option<String>,
    body: Option<String>,
}

/// Compiled `templates`.
pub struct Templates {
    env: Environment<'static>,
    rules: Vec<Rule>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Templates({} rules)", self.rules.len())
    }
}

fn environment(undefined: UndefinedBehavior) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(undefined);
    env.set_fuel(Some(FUEL));
    // Plain text for chat and email sinks, which escape for their own formats.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env
}

/// A sample alert with every field set, for checking templates at load.
fn sample() -> Alert {
    let mut alert = Alert::new(
        AlertKey::new(
            "pod_crashes",
            "shop",
            "Pod",
            "api-7d4b9-x2v8q",
            "CrashLoopBackOff",
        ),
        Severity::Warning,
        "api-7d4b9-x2v8q crash-looping",
        jiff::Timestamp::UNIX_EPOCH,
    )
    .message("Container server keeps crashing.")
    .owner("Deployment/api")
    .node("node-1")
    .field("Restarts", "3");
    alert.labels.insert("app".into(), "api".into());
    alert
}

fn context(cluster: &str, channel: &str, state: crate::alert::State, alert: &Alert) -> Value {
    context! {
        cluster => cluster,
        channel => channel,
        state => state,
        alert => Value::from_serialize(alert),
    }
}

/// `line N: ...` of a minijinja error.
fn explain(e: &minijinja::Error) -> String {
    let what = e
        .detail()
        .map(str::to_string)
        .unwrap_or_else(|| e.kind().to_string());
    match e.line() {
        Some(line) => format!("line {line}: {what}"),
        None => what,
    }
}

impl Templates {
    /// Compiles `rules`; every error names its template (`templates[0].title`) and line.
    pub fn new(rules: &[TemplateRule]) -> Result<Self, Vec<ConfigError>> {
        let mut env = environment(UndefinedBehavior::Lenient);
        let mut check = environment(UndefinedBehavior::Strict);
        let mut errors = Vec::new();
        let mut compiled = Vec::new();
        let probe = context("prod", "ops", crate::alert::State::Firing, &sample());
        for (i, r) in rules.iter().enumerate() {
            let mut names = [None, None];
            for (slot, (part, text)) in [("title", &r.title), ("body", &r.body)]
                .into_iter()
                .enumerate()
            {
                let Some(text) = text else { continue };
                let name = format!("templates[{i}].{part}");
                let added = env
                    .add_template_owned(name.clone(), text.clone())
                    .and_then(|()| check.add_template_owned(name.clone(), text.clone()))
                    .and_then(|()| check.get_template(&name)?.render(&probe));
                match added {
                    Ok(_) => names[slot] = Some(name),
                    Err(e) => errors.push(ConfigError::new(name, explain(&e))),
                }
            }
            if r.title.is_none() && r.body.is_none() {
                errors.push(ConfigError::new(
                    format!("templates[{i}]"),
                    "give a title, a body or both",
                ));
            }
            let matches = match Matches::new(&r.matcher) {
                Ok(m) => m,
                Err(e) => {
                    errors.push(ConfigError::new(format!("templates[{i}].match"), e));
                    continue;
                }
            };
            let [title, body] = names;
            compiled.push(Rule {
                channels: r.channels.clone(),
                matches,
                title,
                body,
            });
        }
        if errors.is_empty() {
            Ok(Templates {
                env,
                rules: compiled,
            })
        } else {
            Err(errors)
        }
    }

    pub fn none() -> Self {
        Templates {
            env: environment(UndefinedBehavior::Lenient),
            rules: Vec::new(),
        }
    }

    /// Renders the titles and bodies of `batch`'s alerts with the first rule that fits each.
    pub fn apply(&self, batch: &mut Batch) {
        if self.rules.is_empty() {
            return;
        }
        for item in &mut batch.items {
            let n = &mut item.notification;
            let Some(rule) = self.rules.iter().find(|r| {
                (r.channels.is_empty() || r.channels.contains(&batch.channel))
                    && r.matches.matches(&n.alert)
            }) else {
                continue;
            };
            let ctx = context(&batch.cluster, &batch.channel, n.state, &n.alert);
            let render = |name: &Option<String>, max: usize| -> Option<String> {
                let name = name.as_deref()?;
                let rendered = self.env.get_template(name).and_then(|t| t.render(&ctx));
                match rendered {
                    Ok(text) if !text.trim().is_empty() => {
                        Some(text.trim().chars().take(max).collect())
                    }
                    Ok(_) => {
                        tracing::warn!(template = name, alert = %n.alert.key, "template rendered nothing; kpulse's own text is used");
                        None
                    }
                    Err(e) => {
                        tracing::warn!(template = name, alert = %n.alert.key, error = %explain(&e), "template failed; kpulse's own text is used");
                        None
                    }
                }
            };
            let title = render(&rule.title, MAX_TITLE);
            let body = render(&rule.body, MAX_BODY);
            if let Some(t) = title {
                n.alert.title = t;
            }
            if let Some(b) = body {
                n.alert.message = b;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Notification, State};
    use crate::engine::{DispatchItem, DispatchKind};

    fn rules(yaml: &str) -> Vec<TemplateRule> {
        serde_saphyr::from_str(yaml).unwrap()
    }

    fn batch(channel: &str, alert: Alert, state: State) -> Batch {
        let mut b = Batch::test("prod", channel, jiff::Timestamp::UNIX_EPOCH);
        b.kind = DispatchKind::Immediate;
        b.items = vec![DispatchItem {
            notification: Notification {
                state,
                alert,
                at: jiff::Timestamp::UNIX_EPOCH,
            },
            reference: None,
        }];
        b
    }

    #[test]
    fn the_first_fitting_rule_renders_title_and_body_per_channel_and_matcher() {
        let t = Templates::new(&rules(
            r#"
- channels: [pager]
  match: {monitor: pod_crashes}
  title: "{{ alert.key.namespace }}/{{ alert.owner }}: {{ alert.key.reason }}{% if state == 'resolved' %} (over){% endif %}"
- match: {monitor: pod_crashes}
  body: "{{ alert.message }} Restarts: {{ alert.fields.Restarts }}. Runbook: https://runbooks/{{ alert.key.reason | lower }}"
"#,
        ))
        .unwrap();
        let mut b = batch("pager", sample(), State::Resolved);
        t.apply(&mut b);
        let a = &b.items[0].notification.alert;
        assert_eq!(a.title, "shop/Deployment/api: CrashLoopBackOff (over)");
        assert_eq!(
            a.message, "Container server keeps crashing.",
            "the first rule decides"
        );
        let mut b = batch("ops", sample(), State::Firing);
        t.apply(&mut b);
        let a = &b.items[0].notification.alert;
        assert_eq!(
            a.title, "api-7d4b9-x2v8q crash-looping",
            "kpulse's own title"
        );
        assert_eq!(
            a.message,
            "Container server keeps crashing. Restarts: 3. Runbook: https://runbooks/crashloopbackoff"
        );
        // An alert without an owner renders it empty; another monitor is left alone.
        let mut bare = sample();
        bare.owner = None;
        let mut b = batch("pager", bare, State::Firing);
        t.apply(&mut b);
        assert_eq!(
            b.items[0].notification.alert.title,
            "shop/: CrashLoopBackOff"
        );
        let mut other = sample();
        other.key.monitor = "job_failed".into();
        let mut b = batch("pager", other.clone(), State::Firing);
        t.apply(&mut b);
        assert_eq!(b.items[0].notification.alert, other);
    }

    #[test]
    fn a_template_that_cannot_render_is_refused_at_load_with_its_path_and_line() {
        let errors = Templates::new(&rules(
            r#"
- title: "{{ alert.key.name }"
- body: "first line\n{{ alert.titel }}"
- match: {namespace: "["}
  title: ok
- channels: [ops]
"#,
        ))
        .unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert!(
            text[0].starts_with("templates[0].title: line 1: "),
            "{text:?}"
        );
        assert!(
            text[1].starts_with("templates[1].body: line 2: "),
            "{text:?}"
        );
        assert!(text[1].contains("undefined"), "{text:?}");
        assert!(
            text[2].starts_with("templates[2].match: invalid glob"),
            "{text:?}"
        );
        assert_eq!(text[3], "templates[3]: give a title, a body or both");
        assert_eq!(text.len(), 4, "{text:?}");
    }

    #[test]
    fn a_runaway_template_runs_out_of_fuel_and_is_refused_never_a_hang() {
        let errors = Templates::new(&rules(
            "- title: \"{% for i in range(100000) %}{{ i }}{% endfor %}\"\n",
        ))
        .unwrap_err();
        assert!(errors[0].to_string().contains("fuel"), "{errors:?}");
    }
}
