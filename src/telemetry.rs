//! Logs and traces.
//!
//! Logs are JSON lines on stderr by default (`--log-format text` for people), filtered by
//! `RUST_LOG` (default `info`). Traces go to an OpenTelemetry collector over OTLP/HTTP only when
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set and
//! `OTEL_SDK_DISABLED` is not `true`; otherwise nothing is exported and no exporter exists. The
//! exporter's other standard variables (`OTEL_EXPORTER_OTLP_HEADERS`, `..._TIMEOUT`,
//! `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_*`) are read by the SDK itself.
//!
//! Spans are exported by a batch processor on its own thread with a bounded queue: a slow or
//! dead collector costs dropped spans and one logged export error, never a blocked task.

use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Layered, SubscriberExt as _};
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// How long shutdown waits for the last spans to reach the collector.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// One JSON object per line (the default: what log pipelines parse).
    #[default]
    Json,
    /// Human-readable lines.
    Text,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "json" => Ok(LogFormat::Json),
            "text" => Ok(LogFormat::Text),
            other => Err(format!("unknown log format {other:?} (use json or text)")),
        }
    }
}

/// Where spans go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Export {
    /// No exporter at all.
    Off,
    /// OTLP/HTTP; `None` lets the SDK resolve the endpoint from the standard variables, `Some` is
    /// the full traces URL (`http://host:4318/v1/traces`).
    Otlp(Option<String>),
}

impl Export {
    /// Reads the standard OpenTelemetry variables through `var` (the environment in production).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Self {
        let set = |name: &str| var(name).is_some_and(|v| !v.trim().is_empty());
        let disabled =
            var("OTEL_SDK_DISABLED").is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        if !disabled
            && (set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") || set("OTEL_EXPORTER_OTLP_ENDPOINT"))
        {
            Export::Otlp(None)
        } else {
            Export::Off
        }
    }

    pub fn from_env() -> Self {
        Self::from_vars(|name| std::env::var(name).ok())
    }
}

/// Everything [`subscriber`] needs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub format: LogFormat,
    /// An `EnvFilter` directive, e.g. `info,kpulse=debug`.
    pub filter: String,
    pub export: Export,
}

impl Settings {
    /// From the environment: `RUST_LOG` (default `info`) and the OpenTelemetry variables.
    pub fn from_env(format: LogFormat) -> Self {
        Settings {
            format,
            filter: std::env::var("RUST_LOG")
                .ok()
                .filter(|f| !f.trim().is_empty())
                .unwrap_or_else(|| "info".to_string()),
            export: Export::from_env(),
        }
    }
}

/// Holds the trace exporter, if any; [`Telemetry::shutdown`] flushes it.
#[derive(Debug, Default)]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Whether spans are being exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Sends the spans queued so far (tests; shutdown does this itself).
    pub fn flush(&self) {
        if let Some(p) = &self.provider
            && let Err(e) = p.force_flush()
        {
            tracing::warn!(error = %e, "could not flush traces");
        }
    }

    /// Flushes and stops the exporter, waiting at most [`SHUTDOWN_TIMEOUT`].
    pub fn shutdown(self) {
        let Some(p) = self.provider else { return };
        // Shutdown blocks while it exports; never let a dead collector hold the process.
        let (done, wait) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = done.send(p.shutdown_with_timeout(SHUTDOWN_TIMEOUT));
        });
        match wait.recv_timeout(SHUTDOWN_TIMEOUT + Duration::from_secs(1)) {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "trace exporter did not shut down cleanly"),
            Err(_) => tracing::warn!("trace exporter did not shut down in time"),
        }
    }
}

/// An error in the filter directive.
#[derive(Debug, thiserror::Error)]
#[error("invalid log filter {filter:?}: {message}")]
pub struct FilterError {
    pub filter: String,
    pub message: String,
}

type Filtered = Layered<EnvFilter, Registry>;

/// The subscriber for `settings`, writing log lines to `writer`, and the exporter handle. A trace
/// exporter that cannot be built is reported (as an error in the returned warnings) and skipped:
/// telemetry never stops kpulse.
pub fn subscriber<W>(
    settings: &Settings,
    writer: W,
) -> Result<
    (
        impl tracing::Subscriber + Send + Sync + 'static,
        Telemetry,
        Vec<String>,
    ),
    FilterError,
>
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_new(&settings.filter).map_err(|e| FilterError {
        filter: settings.filter.clone(),
        message: e.to_string(),
    })?;
    let mut warnings = Vec::new();
    let mut layers: Vec<Box<dyn Layer<Filtered> + Send + Sync>> = Vec::new();
    layers.push(match settings.format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_span_list(false)
            .with_writer(writer)
            .boxed(),
        LogFormat::Text => tracing_subscriber::fmt::layer().with_writer(writer).boxed(),
    });
    let provider = match &settings.export {
        Export::Off => None,
        Export::Otlp(endpoint) => match tracer_provider(endpoint.as_deref()) {
            Ok(p) => Some(p),
            Err(e) => {
                warnings.push(format!("OpenTelemetry export disabled: {e}"));
                None
            }
        },
    };
    if let Some(p) = &provider {
        layers.push(
            tracing_opentelemetry::layer()
                .with_tracer(p.tracer("kpulse"))
                .boxed(),
        );
    }
    let subscriber = Registry::default().with(filter).with(layers);
    Ok((subscriber, Telemetry { provider }, warnings))
}

fn tracer_provider(
    endpoint: Option<&str>,
) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let mut builder = opentelemetry_otlp::SpanExporter::builder().with_http();
    if let Some(endpoint) = endpoint {
        builder = builder.with_endpoint(endpoint);
    }
    let exporter = builder.build()?;
    let mut resource = Resource::builder().with_attribute(opentelemetry::KeyValue::new(
        "service.version",
        env!("CARGO_PKG_VERSION"),
    ));
    if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name("kpulse");
    }
    Ok(SdkTracerProvider::builder()
        .with_resource(resource.build())
        .with_batch_exporter(exporter)
        .build())
}

/// Installs the process-wide subscriber for `kpulse run` (stderr, settings from the environment).
/// A bad `RUST_LOG` falls back to `info` with a warning; nothing here can stop kpulse.
pub fn init(format: LogFormat) -> Telemetry {
    let mut settings = Settings::from_env(format);
    let mut warnings = Vec::new();
    let built = match subscriber(&settings, std::io::stderr) {
        Ok(built) => built,
        Err(e) => {
            warnings.push(format!("{e}; using \"info\""));
            settings.filter = "info".into();
            subscriber(&settings, std::io::stderr).expect("the \"info\" filter is valid")
        }
    };
    let (subscriber, telemetry, more) = built;
    warnings.extend(more);
    if tracing::subscriber::set_global_default(subscriber).is_err() {
        // Already installed (tests); keep the exporter so shutdown still flushes.
        return telemetry;
    }
    for w in warnings {
        tracing::warn!("{w}");
    }
    if telemetry.exporting() {
        tracing::info!("exporting traces over OTLP/HTTP");
    }
    telemetry
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn export_only_when_an_endpoint_is_set_and_the_sdk_is_not_disabled() {
        assert_eq!(Export::from_vars(vars(&[])), Export::Off);
        assert_eq!(
            Export::from_vars(vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "")])),
            Export::Off
        );
        assert_eq!(
            Export::from_vars(vars(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")])),
            Export::Otlp(None)
        );
        assert_eq!(
            Export::from_vars(vars(&[(
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://c:4318/v1/traces"
            )])),
            Export::Otlp(None)
        );
        assert_eq!(
            Export::from_vars(vars(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_SDK_DISABLED", "TRUE"),
            ])),
            Export::Off
        );
        assert_eq!(
            Export::from_vars(vars(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
                ("OTEL_SDK_DISABLED", "false"),
            ])),
            Export::Otlp(None)
        );
    }

    #[test]
    fn log_formats() {
        assert_eq!("json".parse(), Ok(LogFormat::Json));
        assert_eq!("text".parse(), Ok(LogFormat::Text));
        assert!(
            "xml"
                .parse::<LogFormat>()
                .unwrap_err()
                .contains("json or text")
        );
    }
}
