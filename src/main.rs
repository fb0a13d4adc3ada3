//! The `kpulse` binary: command-line parsing and dispatch only.

use std::process::ExitCode;

use clap::Parser;
use kpulse::cli::{Cli, Command};

fn main() -> ExitCode {
    kpulse::install_crypto_provider();
    match Cli::parse().command {
        Command::Run(args) => kpulse::operator::main(*args),
        Command::CheckConfig(args) => {
            kpulse::cli::check_config(args.config(), args.files.secrets.as_deref())
        }
        Command::Schema => kpulse::cli::schema(),
        Command::RouteTest(args) => kpulse::cli::route_test(
            args.files
                .config
                .as_deref()
                .expect("clap requires --config"),
            args.files.secrets.as_deref(),
            &args.alert,
        ),
        Command::Silence(args) => kpulse::cli::silence(args),
        Command::Generate { root } => kpulse::cli::generate(&root),
    }
}
