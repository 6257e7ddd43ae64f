//! `hermes`: the command-line interface of the Hermes key-value store.
//!
//! - `hermes dev --nodes 3`: a local cluster on 127.0.0.1 in one command.
//! - `hermes start --config node.toml`: one node.
//! - `hermes put|get|delete|cas|status`: talk to a cluster (`--cluster FILE`, `--node ID`,
//!   `--json`).
//! - `hermes gen-certs`: a cluster CA and certificates.
//! - `hermes bench`: a closed-loop load generator.
//! - `hermes simulate`: the deterministic cluster simulator.
//!
//! Exit status: 0 success, 2 key not found, 3 compare-and-swap compared a different value,
//! 1 any other error (one line on stderr).

mod cli;
mod commands;
mod error;
mod output;

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::error::CliError;

fn main() -> ExitCode {
    let cli = match Cli::parse_args(std::env::args_os()) {
        Ok(cli) => cli,
        Err(err) => return usage_error(&err),
    };
    let json = cli.command.client_args().is_some_and(|client| client.json);
    let result = run(cli);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if json && err.is_request_error() {
                output::print_json(&err.to_json());
            } else {
                eprintln!("error: {}", err.message);
            }
            ExitCode::from(err.code)
        }
    }
}

/// Help and version go to stdout with status 0; a usage error is one line on stderr, status 1.
fn usage_error(err: &clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = err.print();
            ExitCode::SUCCESS
        }
        _ => {
            eprintln!(
                "error: {} (see `hermes --help`)",
                cli::usage_error_line(err)
            );
            ExitCode::from(error::EXIT_ERROR)
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Simulate(args) => commands::simulate::run(args),
        Command::GenCerts(args) => commands::gen_certs::run(args),
        Command::Start(args) => {
            // The configuration decides the runtime, so it is read before one exists.
            let config = commands::start::load(&args)?;
            let runtime = build_runtime(config.runtime.runtime_builder())?;
            runtime.block_on(commands::start::run(config))
        }
        command => {
            let threads = match &command {
                Command::Bench(args) => usize::from(args.threads),
                _ => 1,
            };
            let runtime = build_runtime(hermes_node::config::runtime_builder(threads))?;
            runtime.block_on(async move {
                match command {
                    Command::Dev(args) => commands::dev::run(args).await,
                    Command::Bench(args) => {
                        let client = args.client.clone();
                        commands::bench::run(&client, args).await
                    }
                    other => match other.client_args().cloned() {
                        Some(client) => commands::kv::run(&client, other).await,
                        None => Err(CliError::other("not a client command")),
                    },
                }
            })
        }
    }
}

fn build_runtime(
    mut builder: tokio::runtime::Builder,
) -> Result<tokio::runtime::Runtime, CliError> {
    builder
        .build()
        .map_err(|err| CliError::other(format!("cannot start the async runtime: {err}")))
}
