//! `hermes`: the command-line interface of the Hermes workspace.
//!
//! Today it runs the deterministic cluster simulator (`hermes simulate`); the cluster commands
//! (`start`, `dev`, `put`, `get`, …) arrive with the node runtime.

use clap::{Parser, Subcommand};
use hermes_core::sim::{SimConfig, Simulation};
use std::process::ExitCode;

/// Hermes: a replicated, linearizable key-value store.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the deterministic cluster simulator over a range of seeds and print its figures.
    Simulate {
        /// The first seed.
        #[arg(long, default_value_t = 1)]
        first: u64,
        /// How many seeds to run.
        #[arg(long, default_value_t = 100)]
        seeds: u64,
        /// Print every run's figures, not only the summary.
        #[arg(short, long)]
        verbose: bool,
    },
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Simulate {
            first,
            seeds,
            verbose,
        } => simulate(first, seeds, verbose),
    }
}

fn simulate(first: u64, seeds: u64, verbose: bool) -> ExitCode {
    let started = std::time::Instant::now();
    let (mut ops, mut messages, mut view_changes, mut failed) = (0u64, 0u64, 0u64, 0u64);
    for seed in first..first.saturating_add(seeds) {
        match Simulation::new(SimConfig::from_seed(seed)).run() {
            Ok(report) => {
                if verbose {
                    println!("{report}");
                }
                ops += report.ops;
                messages += report.messages;
                view_changes += report.view_changes;
            }
            Err(failure) => {
                failed += 1;
                eprintln!("{failure}");
            }
        }
    }
    println!(
        "{seeds} simulated clusters (seeds {first}..{}): {} failed; {ops} client operations, \
         {messages} messages, {view_changes} view changes, every history linearizable: {} \
         ({:.1}s)",
        first.saturating_add(seeds).saturating_sub(1),
        failed,
        failed == 0,
        started.elapsed().as_secs_f64()
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
