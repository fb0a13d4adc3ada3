//! The `email` sink: SMTP through lettre, one multipart/alternative message (plain text and HTML)
//! per dispatch.
//!
//! The subject starts with the cluster (`[prod] ...`, `[prod] [RESOLVED] ...`, or
//! `[prod] kpulse digest: 3 alerts (2 firing, 1 resolved)`), and `X-Kpulse-State:
//! firing|resolved|mixed` lets a mail filter route resolutions away without parsing subjects. A
//! resolution replies to the email that reported the alert, so mail clients thread them.

use std::time::Duration;

use futures::future::BoxFuture;
use lettre::message::header::{Header, HeaderName, HeaderValue, InReplyTo, References};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncTransport, Message, Tokio1Executor};
use tokio::sync::OnceCell;

use super::{AttemptError, Batch, Delivered, Notifier, render};
use crate::alert::{Notification, State};
use crate::config::{EmailChannel, SmtpTls};
use crate::engine::DispatchKind;

/// Sends each batch as one email.
pub struct EmailSink {
    channel: String,
    settings: EmailChannel,
    tls: Tls,
    from: Mailbox,
    to: Vec<Mailbox>,
    timeout: Duration,
    /// Built on the first attempt: lettre's connection pool spawns a task, so it needs the runtime.
    transport: OnceCell<AsyncSmtpTransport<Tokio1Executor>>,
}

impl EmailSink {
    /// Checks the addresses and loads `smtp.ca_file`; the SMTP connection is opened on first use.
    pub fn new(channel: &str, settings: &EmailChannel) -> Result<Self, String> {
        let from = settings
            .from
            .parse::<Mailbox>()
            .map_err(|e| format!("from: {e}"))?;
        let to = settings
            .to
            .iter()
            .enumerate()
            .map(|(i, a)| a.parse::<Mailbox>().map_err(|e| format!("to[{i}]: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        let smtp = &settings.smtp;
        let tls = match smtp.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Starttls => {
                Tls::Required(tls_parameters(&smtp.host, smtp.ca_file.as_deref())?)
            }
            SmtpTls::Implicit => Tls::Wrapper(tls_parameters(&smtp.host, smtp.ca_file.as_deref())?),
        };
        Ok(EmailSink {
            channel: channel.to_string(),
            settings: settings.clone(),
            tls,
            from,
            to,
            timeout: settings.delivery.timeout.get(),
            transport: OnceCell::new(),
        })
    }

    async fn transport(&self) -> &AsyncSmtpTransport<Tokio1Executor> {
        self.transport
            .get_or_init(|| async {
                let smtp = &self.settings.smtp;
                let mut builder =
                    AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&smtp.host)
                        .port(smtp.port)
                        .tls(self.tls.clone())
                        .timeout(Some(self.timeout));
                if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
                    builder = builder.credentials(Credentials::new(
                        user.expose().to_string(),
                        password.expose().to_string(),
                    ));
                }
                builder.build()
            })
            .await
    }

    /// The email for a batch with this Message-ID (public for tests and previews).
    ///
    /// A resolution whose firing email was sent on this channel refers to it (`In-Reply-To`,
    /// `References`, from the item's stored reference), so mail clients show it in the alert's
    /// thread.
    pub fn message(&self, batch: &Batch, message_id: &str) -> Result<Message, String> {
        let mut builder = Message::builder()
            .message_id(Some(message_id.to_string()))
            .from(self.from.clone())
            .subject(subject(batch))
            .header(KpulseState(state(batch)));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let mut firing_ids: Vec<&str> = batch
            .items
            .iter()
            .filter(|i| i.notification.state == State::Resolved)
            .filter_map(|i| i.reference.as_deref())
            .filter(|r| r.starts_with('<') && r.ends_with('>'))
            .collect();
        firing_ids.dedup();
        if let Some(first) = firing_ids.first() {
            builder = builder
                .header(InReplyTo::from(first.to_string()))
                .header(References::from(firing_ids.join(" ")));
        }
        builder
            .multipart(MultiPart::alternative_plain_html(text(batch), html(batch)))
            .map_err(|e| format!("could not build the message: {e}"))
    }

    /// A new Message-ID in the sender's domain.
    fn new_message_id(&self) -> String {
        format!(
            "<kpulse.{:032x}@{}>",
            rand::random::<u128>(),
            self.from.email.domain()
        )
    }

    /// An SMTP error as an attempt error: 4xx replies and connection problems may heal; 5xx replies
    /// (a rejected login, an unknown recipient) and an untrusted certificate do not. The server's
    /// reply may echo the login; the registry redacts it.
    fn classify(&self, e: lettre::transport::smtp::Error) -> AttemptError {
        // lettre nests errors of one kind ("Connection error: Connection error: ..."): say it once.
        let mut parts: Vec<&str> = Vec::new();
        let full = e.to_string();
        for part in full.split(": ") {
            if parts.last() != Some(&part) {
                parts.push(part);
            }
        }
        let text = parts.join(": ");
        let smtp = &self.settings.smtp;
        let message = format!("SMTP {}:{}: {text}", smtp.host, smtp.port);
        if text.contains("invalid peer certificate") {
            // Retrying does not make a certificate trusted.
            AttemptError::permanent(format!(
                "{message} (set smtp.ca_file to trust a private CA)"
            ))
        } else if e.is_permanent() || e.is_client() {
            AttemptError::permanent(message)
        } else {
            AttemptError::transient(message)
        }
    }
}

fn tls_parameters(host: &str, ca_file: Option<&str>) -> Result<TlsParameters, String> {
    let mut builder = TlsParameters::builder(host.to_string());
    if let Some(path) = ca_file {
        let pem = std::fs::read(path).map_err(|e| format!("smtp.ca_file {path:?}: {e}"))?;
        let cert = Certificate::from_pem(&pem)
            .map_err(|e| format!("smtp.ca_file {path:?} is not a PEM certificate: {e}"))?;
        builder = builder.add_root_certificate(cert);
    }
    builder
        .build_rustls()
        .map_err(|e| format!("smtp TLS settings: {e}"))
}

impl Notifier for EmailSink {
    fn kind(&self) -> &'static str {
        "email"
    }

    fn attempt<'a>(&'a self, batch: &'a Batch) -> BoxFuture<'a, Result<Delivered, AttemptError>> {
        Box::pin(async move {
            let id = self.new_message_id();
            let message = self.message(batch, &id).map_err(AttemptError::permanent)?;
            let response = self
                .transport()
                .await
                .send(message)
                .await
                .map_err(|e| self.classify(e))?;
            let reply = response.message().next().unwrap_or_default();
            // Kept by the engine so the resolution can reply to this email.
            let references = batch
                .items
                .iter()
                .filter(|i| i.notification.state == State::Firing)
                .map(|i| (i.notification.alert.key.clone(), id.clone()))
                .collect();
            Ok(Delivered {
                references,
                response: format!("{} {reply} ({})", response.code(), self.channel),
            })
        })
    }
}

/// `X-Kpulse-State: firing|resolved|mixed`.
#[derive(Debug, Clone, PartialEq)]
struct KpulseState(&'static str);

impl Header for KpulseState {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("X-Kpulse-State")
    }

    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        match s.trim() {
            "firing" => Ok(KpulseState("firing")),
            "resolved" => Ok(KpulseState("resolved")),
            "mixed" => Ok(KpulseState("mixed")),
            other => Err(format!("unknown state {other:?}").into()),
        }
    }

    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.to_string())
    }
}

/// `firing` or `resolved` when every notification agrees, `mixed` otherwise.
pub fn state(batch: &Batch) -> &'static str {
    let mut states = batch.items.iter().map(|i| i.notification.state);
    match states.next() {
        None => State::Firing.as_str(),
        Some(first) if states.all(|s| s == first) => first.as_str(),
        Some(_) => "mixed",
    }
}

/// The subject: the cluster first, then `[RESOLVED]` on resolutions, so one mail filter on
/// `[prod]` catches both sides.
pub fn subject(batch: &Batch) -> String {
    match (batch.kind, batch.items.as_slice()) {
        (DispatchKind::Immediate, [item]) => headline(&batch.cluster, &item.notification),
        (_, items) => render::digest_title(&batch.cluster, items),
    }
}

/// `[prod] checkout/pod/api OOMKilled` or `[prod] [RESOLVED] checkout/pod/api OOMKilled`.
fn headline(cluster: &str, n: &Notification) -> String {
    format!(
        "[{cluster}] {}{} {}",
        render::resolved_prefix(n.state),
        n.alert.key.object(),
        n.alert.title
    )
}

/// The plain-text part.
pub fn text(batch: &Batch) -> String {
    let mut out = String::new();
    let digest = batch.kind == DispatchKind::Digest || batch.items.len() > 1;
    if digest {
        out.push_str(&format!("{}\n", subject(batch)));
    }
    for item in &batch.items {
        let n = &item.notification;
        if digest {
            out.push_str("\n----\n\n");
        }
        out.push_str(&format!(
            "{} {}\n\n{}\n",
            render::emoji(n.state),
            headline(&batch.cluster, n),
            render::body(n)
        ));
        let links = render::links(&batch.links, &batch.cluster, n);
        if !links.is_empty() {
            out.push('\n');
            for (name, url) in links {
                out.push_str(&format!("{name}: {url}\n"));
            }
        }
    }
    out.push_str("\n-- \nSent by kpulse.\n");
    out
}

/// The HTML part: a red or green banner per alert, the summary, a facts table and the links.
pub fn html(batch: &Batch) -> String {
    let mut out = String::from(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"></head>\n\
         <body style=\"margin:0;padding:16px;font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;font-size:14px;color:#1f2328\">\n",
    );
    if batch.kind == DispatchKind::Digest || batch.items.len() > 1 {
        out.push_str(&format!(
            "<h2 style=\"margin:0 0 16px 0\">{}</h2>\n",
            escape(&subject(batch))
        ));
    }
    for item in &batch.items {
        let n = &item.notification;
        let colour = render::color(n.state);
        out.push_str(&format!(
            "<div style=\"border:1px solid {colour};border-radius:6px;margin:0 0 16px 0\">\n\
             <div style=\"background:{colour};color:#ffffff;padding:12px 16px;font-size:16px;font-weight:bold\">{} {}</div>\n\
             <div style=\"padding:12px 16px\">\n<p style=\"margin:0 0 12px 0\">{}</p>\n",
            render::emoji(n.state),
            escape(&headline(&batch.cluster, n)),
            escape(&render::summary(n)),
        ));
        let facts = render::facts(n);
        if !facts.is_empty() {
            out.push_str("<table style=\"border-collapse:collapse\">\n");
            for (k, v) in facts {
                out.push_str(&format!(
                    "<tr><th style=\"text-align:left;padding:2px 12px 2px 0;color:#59636e;font-weight:normal\">{}</th><td style=\"padding:2px 0\">{}</td></tr>\n",
                    escape(&k),
                    escape(&v)
                ));
            }
            out.push_str("</table>\n");
        }
        out.push_str(&evidence_html(&render::evidence(n)));
        let links = render::links(&batch.links, &batch.cluster, n);
        if !links.is_empty() {
            let anchors: Vec<String> = links
                .iter()
                .map(|(name, url)| {
                    format!(
                        "<a href=\"{}\" style=\"color:#0969da\">{}</a>",
                        escape(url),
                        escape(name)
                    )
                })
                .collect();
            out.push_str(&format!(
                "<p style=\"margin:12px 0 0 0\">{}</p>\n",
                anchors.join(" &middot; ")
            ));
        }
        out.push_str("</div>\n</div>\n");
    }
    out.push_str("<p style=\"color:#59636e;font-size:12px\">Sent by kpulse.</p>\n</body></html>\n");
    out
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The evidence in HTML: the hint in a box, the facts in a table, events, log lines and
/// commands in preformatted blocks.
fn evidence_html(shown: &render::Shown) -> String {
    let mut out = String::new();
    for (cause, next) in &shown.hints {
        out.push_str(&format!(
            "<p style=\"margin:12px 0;padding:8px 12px;background:#fff8c5;border-radius:4px\"><b>Likely cause:</b> {}<br><b>Next step:</b> {}</p>\n",
            escape(cause),
            escape(next)
        ));
    }
    if !shown.facts.is_empty() {
        out.push_str("<table style=\"border-collapse:collapse;font-size:13px\">\n");
        for (k, v) in &shown.facts {
            out.push_str(&format!(
                "<tr><th style=\"text-align:left;padding:2px 12px 2px 0;color:#59636e;font-weight:normal\">{}</th><td style=\"padding:2px 0\">{}</td></tr>\n",
                escape(k),
                escape(v)
            ));
        }
        out.push_str("</table>\n");
    }
    for (title, lines) in [
        ("Recent events", &shown.events),
        ("Last log lines", &shown.log),
        ("Next commands", &shown.commands),
    ] {
        if !lines.is_empty() {
            out.push_str(&format!(
                "<p style=\"margin:12px 0 4px 0;font-weight:bold\">{title}</p>\n<pre style=\"margin:0;padding:8px;background:#f6f8fa;font-size:12px;white-space:pre-wrap\">{}</pre>\n",
                escape(&lines.join("\n"))
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::{Alert, AlertKey, Severity};
    use crate::engine::DispatchItem;
    use jiff::{SignedDuration, Timestamp};
    use std::collections::BTreeMap;

    fn item(state: State, name: &str) -> DispatchItem {
        let t0 = Timestamp::from_second(1_800_000_000).unwrap();
        let alert = Alert::new(
            AlertKey::new(
                "pvc_usage",
                "checkout",
                "PersistentVolumeClaim",
                name,
                "Usage",
            ),
            Severity::Warning,
            "back below threshold <80%>",
            t0,
        )
        .message("Volume is 91% full");
        DispatchItem {
            notification: Notification {
                state,
                alert,
                at: t0 + SignedDuration::from_mins(5),
            },
            reference: None,
        }
    }

    fn batch(kind: DispatchKind, items: Vec<DispatchItem>) -> Batch {
        Batch {
            cluster: "prod-eks-1".into(),
            channel: "mail".into(),
            kind,
            items,
            links: BTreeMap::from([(
                "runbook".to_string(),
                "https://rb.example/{reason}?a=1&b=2".to_string(),
            )]),
            at: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    #[test]
    fn subjects_put_the_cluster_first() {
        let firing = batch(DispatchKind::Immediate, vec![item(State::Firing, "data-0")]);
        assert_eq!(
            subject(&firing),
            "[prod-eks-1] checkout/persistentvolumeclaim/data-0 back below threshold <80%>"
        );
        let resolved = batch(
            DispatchKind::Immediate,
            vec![item(State::Resolved, "data-0")],
        );
        assert_eq!(
            subject(&resolved),
            "[prod-eks-1] [RESOLVED] checkout/persistentvolumeclaim/data-0 back below threshold <80%>"
        );
        let digest = batch(
            DispatchKind::Digest,
            vec![item(State::Firing, "a"), item(State::Resolved, "b")],
        );
        assert_eq!(
            subject(&digest),
            "[prod-eks-1] kpulse digest: 2 alerts (1 firing, 1 resolved)"
        );
        assert_eq!(
            (state(&firing), state(&resolved), state(&digest)),
            ("firing", "resolved", "mixed")
        );
    }

    #[test]
    fn html_escapes_and_colours_the_banner() {
        let h = html(&batch(
            DispatchKind::Immediate,
            vec![item(State::Resolved, "data-0")],
        ));
        assert!(h.contains(render::color(State::Resolved)));
        assert!(!h.contains(render::color(State::Firing)));
        assert!(h.contains("back below threshold &lt;80%&gt;"), "{h}");
        assert!(
            h.contains("href=\"https://rb.example/Usage?a=1&amp;b=2\""),
            "{h}"
        );
        assert!(h.contains("Cleared after 5m."));
    }

    #[test]
    fn text_lists_every_alert_of_a_digest() {
        let t = text(&batch(
            DispatchKind::Digest,
            vec![item(State::Firing, "a"), item(State::Firing, "b")],
        ));
        assert!(
            t.starts_with("[prod-eks-1] kpulse digest: 2 alerts (2 firing, 0 resolved)\n"),
            "{t}"
        );
        assert!(t.contains("persistentvolumeclaim/a ") && t.contains("persistentvolumeclaim/b "));
        assert!(t.contains("runbook: https://rb.example/Usage?a=1&b=2"));
    }
}
