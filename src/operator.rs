//! `kpulse run`: starts every task (monitors, digest ticker, HTTP) around one pipeline and
//! shuts them down in order on SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use kube::Client;
use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, SecretMap};
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::sinks::Registry;

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// Kubeconfig to use instead of the in-cluster ServiceAccount.
    #[arg(long, env = "KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of kpulse's own ConfigMaps (the chart sets it from the downward API).
    #[arg(long, env = "POD_NAMESPACE", default_value = "kpulse")]
    pub namespace: String,
    /// Name of the configuration ConfigMap.
    #[arg(long, env = "KPULSE_CONFIG_MAP", default_value = "kpulse")]
    pub config_map: String,
    /// Name of the Secret (in --namespace) whose keys fill `$NAME` references.
    #[arg(
        long,
        visible_alias = "secret",
        env = "KPULSE_SECRET",
        value_name = "NAME"
    )]
    pub secret_name: Option<String>,
    /// Read the configuration from this file instead of the ConfigMap (no live reload).
    #[arg(
        long = "config",
        visible_alias = "config-file",
        env = "KPULSE_CONFIG_FILE",
        value_name = "FILE"
    )]
    pub config_file: Option<PathBuf>,
    /// Secret values for `$NAME` references with --config: a NAME=value file, a Secret manifest
    /// (YAML), or a directory with one file per key.
    #[arg(
        long = "secrets",
        visible_alias = "secrets-file",
        env = "KPULSE_SECRETS_FILE",
        value_name = "FILE"
    )]
    pub secrets_file: Option<PathBuf>,
    /// Address of the HTTP server (/healthz, /readyz, /status).
    #[arg(long, env = "KPULSE_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,
    /// Address of the metrics server (/metrics, and /test-channel when a token is configured).
    #[arg(long, env = "KPULSE_METRICS_ADDR", default_value = "0.0.0.0:9090")]
    pub metrics_addr: SocketAddr,
    /// Name of the Lease for leader election. Set (the chart does when `replicas > 1`): replicas
    /// elect a leader, and only the leader notifies and writes state.
    #[arg(long, env = "KPULSE_LEASE_NAME")]
    pub lease_name: Option<String>,
    /// How long a leader that stopped renewing keeps the lease.
    #[arg(long, env = "KPULSE_LEASE_DURATION", default_value = "15s", value_parser = humantime::parse_duration)]
    pub lease_duration: Duration,
    /// This replica's identity in the election (the chart passes the pod name).
    #[arg(long, env = "POD_NAME")]
    pub pod_name: Option<String>,
    /// How the watches get their initial state: `streaming` lists (watch events from the API
    /// server's watch cache, the least memory), `paged` lists, or `auto`: streaming where the
    /// API server serves it (Kubernetes 1.34 and newer by default), asked once at start-up.
    #[arg(long, env = "KPULSE_LISTS", value_enum, default_value_t = crate::monitors::lists::Lists::Auto)]
    pub lists: crate::monitors::lists::Lists,
    /// Log format: json or text.
    #[arg(long, env = "KPULSE_LOG_FORMAT", default_value = "json")]
    pub log_format: String,
}

/// Entry point of `kpulse run`.
pub fn main(args: RunArgs) -> ExitCode {
    crate::memory::configure();
    let telemetry = match args.log_format.parse() {
        Ok(format) => crate::telemetry::init(format),
        Err(e) => {
            eprintln!("--log-format: {e}");
            return ExitCode::FAILURE;
        }
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let code = match rt.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "kpulse stopped");
            ExitCode::FAILURE
        }
    };
    telemetry.shutdown();
    code
}

async fn client(args: &RunArgs) -> anyhow::Result<Client> {
    kube_client(args.kubeconfig.as_deref()).await
}

/// A client from `kubeconfig`, or in-cluster (or the default kubeconfig) without one.
pub async fn kube_client(kubeconfig: Option<&std::path::Path>) -> anyhow::Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig and not in a cluster")?,
    };
    Ok(Client::try_from(config)?)
}

/// Where the live configuration lives.
fn source(args: &RunArgs) -> crate::reload::Source {
    crate::reload::Source {
        namespace: args.namespace.clone(),
        config_map: args.config_map.clone(),
        secret: args.secret_name.clone(),
    }
}

/// Reads the configuration once: from the file, else from the ConfigMap and its Secret as the
/// API server has them (a missing ConfigMap means the built-in default: every alert to the `log`
/// channel).
pub async fn initial_config(client: &Client, args: &RunArgs) -> anyhow::Result<Config> {
    if let Some(file) = &args.config_file {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        let secrets = match &args.secrets_file {
            Some(p) => crate::cli::read_secrets(p).map_err(anyhow::Error::msg)?,
            None => SecretMap::new(),
        };
        return config::load(&text, &secrets)
            .map_err(|e| anyhow::anyhow!("{}: invalid configuration:\n{e}", file.display()));
    }
    match crate::reload::load(client, &source(args)).await {
        Ok(Some(config)) => Ok(config),
        Ok(None) => {
            tracing::warn!(namespace = %args.namespace, name = %args.config_map, "configuration ConfigMap not found; sending every alert to the log channel");
            Ok(Config::default())
        }
        Err(e @ crate::reload::ReadError::Api(_)) => Err(anyhow::anyhow!(
            "reading the configuration from {}/{}: {e}",
            args.namespace,
            args.config_map
        )),
        Err(crate::reload::ReadError::Invalid(e)) => Err(anyhow::anyhow!(e)),
    }
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let shutdown = shutdown_signal();
    // Bound first: a taken port is a startup error naming the address, not a panic later.
    let listeners = crate::http::Listeners::bind(args.http_addr, args.metrics_addr).await?;
    let client = client(&args).await?;
    let config = initial_config(&client, &args).await?;
    let registry = Registry::build(&config).map_err(|errs| {
        anyhow::anyhow!(
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    let metrics = Arc::new(Metrics::new());
    let pipeline = Pipeline::new(config, registry, metrics)?;
    pipeline.collect_evidence_with(client.clone());
    tracing::info!(version = env!("CARGO_PKG_VERSION"), namespace = %args.namespace, "kpulse starting");

    // The stored state goes in before any watch lists, so the first full reconcile of every
    // monitor runs against it: nothing that still holds fires again, and what cleared while
    // kpulse was away resolves exactly once.
    let store: crate::state::SharedStore = Arc::new(tokio::sync::Mutex::new(
        crate::state::StateStore::new(client.clone(), &args.namespace),
    ));
    if args.lease_name.is_none() {
        if let Some(snapshot) = store.lock().await.load().await {
            pipeline.restore(snapshot);
        }
        tokio::spawn(crate::welcome::greet(pipeline.clone(), store.clone()));
    }

    let token = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(pipeline.clone().run_ticker(token.clone()));
    let writer = tokio::spawn(crate::state::run_writer(
        store.clone(),
        pipeline.clone(),
        token.clone(),
    ));
    // The lease is released only after the final state write, so a standby loads fresh state.
    let lease_token = CancellationToken::new();
    let election = args.lease_name.clone().map(|lease| {
        let identity = args
            .pod_name
            .clone()
            .unwrap_or_else(|| format!("kpulse-{}-{}", std::process::id(), rand::random::<u32>()));
        let election = crate::leader::Election {
            namespace: args.namespace.clone(),
            lease,
            identity,
            duration: args.lease_duration,
        };
        // Standby until elected: decide, send nothing.
        pipeline.set_leader(false);
        tokio::spawn(crate::leader::run(
            client.clone(),
            pipeline.clone(),
            store.clone(),
            election,
            lease_token.clone(),
        ))
    });
    if args.config_file.is_none() {
        tasks.spawn(crate::reload::run(
            client.clone(),
            pipeline.clone(),
            store.clone(),
            source(&args),
            token.clone(),
        ));
    }
    tasks.spawn(crate::silences::run(
        client.clone(),
        pipeline.clone(),
        args.namespace.clone(),
        token.clone(),
    ));
    let streaming = crate::monitors::lists::streaming(args.lists, &client, &args.namespace).await;
    let ready = crate::monitors::start(
        client.clone(),
        pipeline.clone(),
        token.clone(),
        streaming,
        &mut tasks,
    );
    let app = crate::http::App::new(pipeline.clone(), {
        let ready = ready.clone();
        move || ready.is_ready()
    })
    .with_silence_store(crate::silences::Store::new(client.clone(), &args.namespace));
    tasks.spawn(listeners.serve(app, token.clone()));

    tokio::spawn({
        let token = token.clone();
        async move {
            tokio::select! {
                _ = ready.wait() => tracing::info!("watches synced; kpulse is ready"),
                _ = token.cancelled() => {}
            }
        }
    });

    shutdown.await;
    tracing::info!("shutting down");
    token.cancel();
    // Monitors and the ticker stop at the token; give them a moment, then send what is due.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    // Digests whose interval is due go out now; the others stay queued in the state.
    pipeline.tick();
    let _ = tokio::time::timeout(Duration::from_secs(20), pipeline.drain()).await;
    let _ = writer.await;
    if pipeline.is_leader() {
        store.lock().await.save(&pipeline).await;
    }
    pipeline.set_leader(false);
    lease_token.cancel();
    if let Some(election) = election {
        let _ = tokio::time::timeout(Duration::from_secs(6), election).await;
    }
    tracing::info!("kpulse stopped");
    Ok(())
}

/// The first SIGTERM or Ctrl-C. Both are registered when this is called, before the returned
/// future is first polled: a SIGTERM during start-up (while the state loads or the watches'
/// list strategy is asked) is then a clean shutdown once start-up is done, not the default
/// action's immediate end.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let signals = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        )
    };
    async move {
        #[cfg(unix)]
        match signals {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// A SIGTERM that arrives after `shutdown_signal` is called but before its future is polled
    /// (kpulse still starting) is kept for it; unregistered, its default action would end the
    /// process, this test binary with it.
    #[tokio::test]
    async fn a_sigterm_before_the_first_poll_ends_the_wait() {
        let shutdown = shutdown_signal();
        // SAFETY: raise only sends a signal to this process, which now handles SIGTERM.
        assert_eq!(unsafe { libc::raise(libc::SIGTERM) }, 0);
        tokio::time::timeout(Duration::from_secs(5), shutdown)
            .await
            .expect("the SIGTERM ends the wait");
    }
}
