//! The one redactor: what kpulse shows of a delivery (a sink's error, a provider's answer) never
//! contains a secret the channel was configured with, even when the receiver echoes it back.
//!
//! A [`Redactor`] is built per channel with the channel's sink, from every secret setting
//! ([`Channel::secrets`]), and [`crate::sinks::Registry`] passes every attempt's outcome through it
//! before anything logs, counts, stores or answers it. It replaces each secret by `<redacted>` in
//! every form a receiver may plausibly echo it in: as configured; as sent (a URL's path, query,
//! token-like segments and query values, user info, the credential after a header's scheme, the
//! Basic or SMTP `AUTH` credentials); each of those percent-decoded; and all of them
//! JSON-escaped, percent-encoded, HTML-escaped and base64-encoded. The text is cut to a readable length only
//! after that, so a cut never splits a secret the redactor would have found.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};

use crate::config::{Channel, SecretUse};

/// What a secret is replaced by.
pub const REDACTED: &str = "<redacted>";

/// How many characters of an error or answer kpulse shows.
pub const SHOWN: usize = 300;

/// Values shorter than this are not searched for: they cannot be told apart from ordinary text
/// (`1`, `yes`), and are no credential.
const MIN_CHARS: usize = 4;

/// URL segments and query values at least this long are secret whatever they look like.
const LONG_PART: usize = 16;

/// RFC 3986 percent-encoding: all but the unreserved characters.
const RFC3986: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// JavaScript's `encodeURIComponent`, which keeps a few more.
const URI_COMPONENT: &AsciiSet = &RFC3986
    .remove(b'!')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')')
    .remove(b'*');

/// Replaces every form of a channel's secrets.
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, so a whole URL goes before its path and the path before its segments.
    forms: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} forms)", self.forms.len())
    }
}

impl Redactor {
    /// The redactor for every secret setting of `channel`.
    pub fn for_channel(channel: &Channel) -> Self {
        Self::new(&channel.secrets())
    }

    /// The redactor for every secret of every channel of `config`: for text from outside kpulse
    /// (evidence), which any channel may receive. Built once per configuration.
    pub fn for_config(config: &crate::config::Config) -> Self {
        let secrets: Vec<SecretUse<'_>> =
            config.channels.values().flat_map(|c| c.secrets()).collect();
        Self::new(&secrets)
    }

    pub fn new(secrets: &[SecretUse<'_>]) -> Self {
        let mut forms: Vec<String> = secrets
            .iter()
            .flat_map(|s| sent_values(*s))
            // A receiver may echo a value decoded, and then encode it its own way.
            .flat_map(|v| [percent_decode(&v), v])
            .filter(|v| v.chars().count() >= MIN_CHARS)
            .flat_map(|v| encodings(&v))
            .filter(|f| !f.is_empty())
            .collect();
        forms.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        forms.dedup();
        Redactor { forms }
    }

    /// `text` with every form of every secret replaced by [`REDACTED`].
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for form in &self.forms {
            if out.contains(form.as_str()) {
                out = out.replace(form.as_str(), REDACTED);
            }
        }
        out
    }

    /// What kpulse shows of `text`: redacted, then on one line, then cut to [`SHOWN`] characters.
    pub fn shown(&self, text: &str) -> String {
        let one_line = self
            .redact(text)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        truncate(&one_line, SHOWN)
    }
}

/// The values a secret travels as.
fn sent_values(secret: SecretUse<'_>) -> Vec<String> {
    match secret {
        SecretUse::Value(s) => vec![s.expose().to_string()],
        SecretUse::Header(s) => header_values(s.expose()),
        SecretUse::Url(s) => url_values(s.expose()),
        SecretUse::Login { username, password } => vec![format!(
            // AUTH PLAIN's credentials, sent base64-encoded.
            "\0{}\0{}",
            username.expose(),
            password.expose()
        )],
    }
}

/// The value, the credential after its scheme (`Bearer <token>`), and for `Basic` the decoded
/// `user:password` and password.
fn header_values(value: &str) -> Vec<String> {
    let mut out = vec![value.to_string()];
    let Some((scheme, credential)) = value.trim().split_once(char::is_whitespace) else {
        return out;
    };
    let credential = credential.trim();
    out.push(credential.to_string());
    if scheme.eq_ignore_ascii_case("basic")
        && let Some(decoded) = STANDARD
            .decode(credential)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
    {
        if let Some((_, password)) = decoded.split_once(':') {
            out.push(password.to_string());
        }
        out.push(decoded);
    }
    out
}

/// The URL as configured and as sent; its path when a segment is token-like and its query;
/// each token-like path segment and query value; its user info, which is sent as Basic
/// credentials.
fn url_values(raw: &str) -> Vec<String> {
    let mut out = vec![raw.to_string()];
    let Ok(url) = reqwest::Url::parse(raw) else {
        return out;
    };
    out.push(url.as_str().to_string());
    let segments: Vec<&str> = url.path_segments().into_iter().flatten().collect();
    if segments.iter().any(|s| token_like(s)) {
        out.push(url.path().to_string());
    }
    let query = url.query().unwrap_or_default();
    if !query.is_empty() {
        out.push(query.to_string());
        out.push(format!("{}?{query}", url.path()));
    }
    let values = query
        .split('&')
        .map(|pair| pair.split_once('=').map_or(pair, |(_, v)| v));
    out.extend(
        segments
            .into_iter()
            .chain(values)
            .filter(|p| token_like(p))
            .map(str::to_string),
    );
    if let Some(password) = url.password() {
        let password = percent_decode(password);
        out.push(format!("{}:{password}", percent_decode(url.username())));
        out.push(password);
    }
    if token_like(url.username()) {
        out.push(url.username().to_string());
    }
    out
}

/// Whether a URL part looks like a credential rather than a word of the API's path
/// (`services`, `webhooks`, `v2`): long, or at least 8 characters with a digit, a capital or a
/// symbol.
fn token_like(part: &str) -> bool {
    let part = percent_decode(part);
    let chars = part.chars().count();
    chars >= LONG_PART
        || (chars >= 8
            && part
                .chars()
                .any(|c| !(c.is_ascii_lowercase() || c == '-' || c == '_' || c == '.')))
}

/// `value` and the encodings a receiver may echo it in.
fn encodings(value: &str) -> Vec<String> {
    let json = serde_json::to_string(value).expect("a string always serializes");
    let json = json[1..json.len() - 1].to_string();
    let mut out = vec![
        value.to_string(),
        json.replace('/', "\\/"),
        // Go's encoding/json escapes HTML characters.
        json.replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026"),
        json,
        html_escape(value),
        STANDARD.encode(value),
        URL_SAFE.encode(value),
    ];
    for set in [RFC3986, URI_COMPONENT] {
        let percent = utf8_percent_encode(value, set).to_string();
        out.push(percent.replace("%20", "+"));
        out.push(lowercase_hex(&percent));
        out.push(percent);
    }
    out
}

/// `%3C` → `%3c`, leaving everything else alone.
fn lowercase_hex(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut hex_left = 0;
    for c in s.chars() {
        if c == '%' {
            hex_left = 2;
            out.push(c);
        } else if hex_left > 0 {
            hex_left -= 1;
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

fn percent_decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// Secret-looking values in text kpulse did not write (a container's log or termination
/// message, an event): `password=...`, `token: ...`, `Authorization: Bearer ...`, a URL's
/// password, private key blocks, JWTs, and cloud and chat tokens by their shape.
static SECRET_LIKE: std::sync::LazyLock<Vec<(regex::Regex, &'static str)>> =
    std::sync::LazyLock::new(|| {
        let pairs: &[(&str, &str)] = &[
            (
                r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)",
                REDACTED,
            ),
            (
                r"(?i)\b(bearer|basic|token)(\s+)[A-Za-z0-9._~+/=-]{8,}",
                "$1$2<redacted>",
            ),
            (
                r#"(?i)\b([a-z0-9_.-]*(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|credentials?)[a-z0-9_.-]*)("?\s*[:=]\s*"?)[^\s"',;&]+"#,
                "$1$3<redacted>",
            ),
            (r"(://[^/\s:@]+:)[^/\s@]+@", "$1<redacted>@"),
            (
                r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
                REDACTED,
            ),
            (r"\b(AKIA|ASIA)[0-9A-Z]{16}\b", REDACTED),
            (
                r"\b(xox[abprs]-[A-Za-z0-9-]{10,}|gh[pousr]_[A-Za-z0-9]{20,}|glpat-[A-Za-z0-9_-]{20,})",
                REDACTED,
            ),
        ];
        pairs
            .iter()
            .map(|(re, with)| (regex::Regex::new(re).expect("a valid pattern"), *with))
            .collect()
    });

/// `text` with every secret-looking value replaced by [`REDACTED`] (see [`SECRET_LIKE`]).
pub fn secret_like(text: &str) -> String {
    let mut out = text.to_string();
    for (re, with) in SECRET_LIKE.iter() {
        if re.is_match(&out) {
            out = re.replace_all(&out, *with).into_owned();
        }
    }
    out
}

/// Cuts `s` to at most `max` characters, ending with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SecretString;

    const KEY: &str = "c4nary\"5ecret<K7>/+x";

    fn redactor(uses: &[SecretUse<'_>]) -> Redactor {
        Redactor::new(uses)
    }

    #[test]
    fn every_encoding_of_a_value_is_redacted() {
        let key = SecretString::new(KEY);
        let r = redactor(&[SecretUse::Value(&key)]);
        let json = serde_json::to_string(KEY).unwrap();
        for form in [
            KEY.to_string(),
            json[1..json.len() - 1].to_string(),
            r#"c4nary\"5ecret<K7>\/+x"#.to_string(),
            r#"c4nary\"5ecret\u003cK7\u003e/+x"#.to_string(),
            "c4nary%225ecret%3CK7%3E%2F%2Bx".to_string(),
            "c4nary%225ecret%3cK7%3e%2f%2bx".to_string(),
            "c4nary&quot;5ecret&lt;K7&gt;/+x".to_string(),
            STANDARD.encode(KEY),
            URL_SAFE.encode(KEY),
        ] {
            assert_eq!(
                r.redact(&format!("error: {form}!")),
                "error: <redacted>!",
                "{form}"
            );
        }
    }

    #[test]
    fn a_header_credential_is_redacted_without_its_scheme() {
        let bearer = SecretString::new("Bearer t0ken-abcdef");
        let basic = SecretString::new(format!("Basic {}", STANDARD.encode("relay:pa55word")));
        let r = redactor(&[SecretUse::Header(&bearer), SecretUse::Header(&basic)]);
        assert_eq!(
            r.redact("invalid token t0ken-abcdef for user relay, password pa55word"),
            "invalid token <redacted> for user relay, password <redacted>"
        );
        assert_eq!(r.redact("got Bearer t0ken-abcdef"), "got <redacted>");
    }

    #[test]
    fn a_url_is_redacted_whole_and_by_its_secret_parts() {
        let url = SecretString::new(
            "https://relay:pa55w%3Ard@hooks.example.com/services/T0123ABCD/B0456/XyZsecrettoken?api-version=2016-06-01&sig=s1g%2Bvalue",
        );
        let r = redactor(&[SecretUse::Url(&url)]);
        let basic = format!("Basic {} rejected", STANDARD.encode("relay:pa55w:rd"));
        let cases = [
            (url.expose(), "<redacted>"),
            (
                "POST /services/T0123ABCD/B0456/XyZsecrettoken?api-version=2016-06-01&sig=s1g%2Bvalue HTTP/1.1",
                "POST <redacted> HTTP/1.1",
            ),
            ("unknown team T0123ABCD", "unknown team <redacted>"),
            ("bad token XyZsecrettoken", "bad token <redacted>"),
            ("bad sig s1g+value", "bad sig <redacted>"),
            ("bad sig s1g%2Bvalue", "bad sig <redacted>"),
            (&basic, "Basic <redacted> rejected"),
            ("password pa55w:rd", "password <redacted>"),
            // Words of the API's path stay readable.
            (
                "no services or webhooks at hooks.example.com",
                "no services or webhooks at hooks.example.com",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(r.redact(text), want, "{text}");
        }
    }

    #[test]
    fn a_url_without_a_token_keeps_its_path_readable() {
        let url = SecretString::new("https://events.pagerduty.com/v2/enqueue");
        let r = redactor(&[SecretUse::Url(&url)]);
        assert_eq!(
            r.redact("HTTP 404: /v2/enqueue not found"),
            "HTTP 404: /v2/enqueue not found"
        );
    }

    #[test]
    fn an_smtp_login_is_redacted_as_auth_plain_sends_it() {
        let (user, password) = (SecretString::new("relay"), SecretString::new("pa55word"));
        let r = redactor(&[SecretUse::Login {
            username: &user,
            password: &password,
        }]);
        let plain = STANDARD.encode("\0relay\0pa55word");
        assert_eq!(
            r.redact(&format!("535 AUTH PLAIN {plain} rejected")),
            "535 AUTH PLAIN <redacted> rejected"
        );
    }

    #[test]
    fn short_values_are_not_searched_for() {
        let short = SecretString::new("1");
        let r = redactor(&[SecretUse::Value(&short)]);
        assert_eq!(r.redact("HTTP 401"), "HTTP 401");
    }

    #[test]
    fn the_text_is_cut_after_redaction_so_no_part_of_a_secret_shows() {
        let key = SecretString::new("t0ken-abcdefghijklmnop");
        let r = redactor(&[SecretUse::Value(&key)]);
        for at in SHOWN - 12..SHOWN + 2 {
            let text = format!("{}{}\n tail", "x".repeat(at), key.expose());
            let shown = r.shown(&text);
            assert!(!shown.contains("t0ken-a"), "{shown}");
            assert!(shown.chars().count() <= SHOWN);
        }
        assert_eq!(r.shown("a\n  b t0ken-abcdefghijklmnop"), "a b <redacted>");
    }

    #[test]
    fn a_channel_redacts_every_secret_setting() {
        let config = crate::config::load(
            "channels:
  ops:
    type: webhook
    url: https://hooks.example.com/x/Tok3nInPath
    headers: {Authorization: Bearer head3r-token}
    hmac_secret: hmac-key-value
routing: {default: [ops]}
",
            &Default::default(),
        )
        .unwrap();
        let r = Redactor::for_channel(&config.channels["ops"]);
        assert_eq!(
            r.redact("Tok3nInPath head3r-token hmac-key-value"),
            "<redacted> <redacted> <redacted>"
        );
    }

    #[test]
    fn secret_looking_values_in_foreign_text_are_redacted() {
        let cases = [
            (
                "connecting with password=hunter22",
                "connecting with password=<redacted>",
            ),
            ("DB_PASSWORD: s3cr3t!", "DB_PASSWORD: <redacted>"),
            (
                r#"{"api_key": "abcd1234efgh"}"#,
                r#"{"api_key": "<redacted>"}"#,
            ),
            (
                "Authorization: Bearer abc.def.ghijklmnop",
                "Authorization: Bearer <redacted>",
            ),
            (
                "GET postgres://app:pa55word@db:5432/x",
                "GET postgres://app:<redacted>@db:5432/x",
            ),
            ("key AKIAIOSFODNN7EXAMPLE used", "key <redacted> used"),
            ("tok xoxb-1234567890-abcdefghij", "tok <redacted>"),
            (
                "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N",
                "jwt <redacted>",
            ),
            (
                "-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----",
                "<redacted>",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(secret_like(text), want, "{text}");
        }
        for plain in [
            "starting server on :8080",
            "exit status 1",
            "token bucket refilled",
            "the password field is required",
        ] {
            assert_eq!(secret_like(plain), plain);
        }
    }
}
