//! `hermes simulate`: the deterministic cluster simulator over a range of seeds.

use hermes_core::sim::{SimConfig, Simulation};

use crate::cli::SimulateArgs;
use crate::error::CliError;

/// Runs the seeds and prints the summary.
pub fn run(args: SimulateArgs) -> Result<(), CliError> {
    let SimulateArgs {
        first,
        seeds,
        verbose,
    } = args;
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
        Ok(())
    } else {
        Err(CliError::other(format!("{failed} simulated runs failed")))
    }
}
