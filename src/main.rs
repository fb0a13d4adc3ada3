//! The `kpulse` binary: command-line parsing and dispatch only.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "kpulse",
    version,
    about = "Event-driven Kubernetes alerting: plain-words notifications and [RESOLVED] messages"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the operator (in-cluster, or against --kubeconfig).
    Run(Box<kpulse::operator::RunArgs>),
    /// Validate a configuration file; exit 1 listing every problem.
    CheckConfig {
        /// The configuration (the `config.yaml` of the ConfigMap).
        file: PathBuf,
        /// Secret values for `$NAME` references: a `NAME=value` file (one per line) or a
        /// Kubernetes Secret manifest (YAML).
        #[arg(long)]
        secrets: Option<PathBuf>,
    },
    /// Print the JSON schema of the configuration.
    Schema,
    /// Show which channels an alert would reach, and why.
    RouteTest {
        #[arg(long)]
        config: PathBuf,
        #[arg(long)]
        secrets: Option<PathBuf>,
        /// Alert fields, e.g. `monitor=pod_crashes,namespace=payments,severity=critical`
        /// (also kind, name, reason and label.NAME=value).
        #[arg(long)]
        alert: String,
    },
    /// Regenerate files derived from the code (docs/configuration.md, the chart's
    /// values.schema.json, the example payloads in docs/webhook.md and docs/sinks.md).
    #[command(hide = true)]
    Generate {
        /// Repository root.
        #[arg(long, default_value = ".")]
        root: PathBuf,
    },
}

fn main() -> ExitCode {
    kpulse::install_crypto_provider();
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => kpulse::operator::main(*args),
        Command::CheckConfig { file, secrets } => {
            kpulse::cli::check_config(&file, secrets.as_deref())
        }
        Command::Schema => kpulse::cli::schema(),
        Command::RouteTest {
            config,
            secrets,
            alert,
        } => kpulse::cli::route_test(&config, secrets.as_deref(), &alert),
        Command::Generate { root } => kpulse::cli::generate(&root),
    }
}
