//! Runs the deterministic simulator over many seeds and prints its figures.
//!
//! ```text
//! cargo run --release -p hermes-core --example soak -- --seeds 100000   # a long soak
//! cargo run --release -p hermes-core --example soak -- --seed 1234 -v   # replay one seed
//! cargo run --release -p hermes-core --example soak -- --durability sync --seeds 1000
//! ```
//!
//! `--durability memory|async|sync` picks the mode (default `memory`); `sync` adds episodes that
//! crash every node at once.

use hermes_core::sim::{SimConfig, SimReport, Simulation};
use hermes_core::Durability;
use std::process::ExitCode;
use std::time::Instant;

struct Args {
    first: u64,
    count: u64,
    verbose: bool,
    trace: bool,
    durability: Durability,
}

const USAGE: &str =
    "usage: soak [--seeds N] [--first S] [--seed S] [--durability memory|async|sync] [-v] [--trace]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        first: 1,
        count: 200,
        verbose: false,
        trace: false,
        durability: Durability::Memory,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut number = |name: &str| -> Result<u64, String> {
            let text = it.next().ok_or(format!("{name} needs a number"))?;
            text.parse()
                .map_err(|_| format!("{name} needs a number, got `{text}`"))
        };
        match arg.as_str() {
            "--seed" => {
                args.first = number("--seed")?;
                args.count = 1;
            }
            "--first" => args.first = number("--first")?,
            "--seeds" => args.count = number("--seeds")?,
            "-v" | "--verbose" => args.verbose = true,
            "--trace" => args.trace = true,
            "--durability" => {
                let text = it.next().ok_or("--durability needs a mode")?;
                args.durability = text.parse().map_err(|e| format!("--durability: {e}"))?;
            }
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let mut total = SimReport::default();
    let mut failures = 0u64;
    let mut recovery_us: Vec<u64> = Vec::new();
    let mut join_us: Vec<u64> = Vec::new();
    for seed in args.first..args.first + args.count {
        let mut config = SimConfig::from_seed(seed).with_durability(args.durability);
        config.trace = args.trace;
        match Simulation::new(config).run() {
            Ok(report) => {
                if args.verbose || args.count == 1 {
                    println!("{report}");
                }
                add(&mut total, &report);
                recovery_us.extend(&report.recovery_times_us);
                join_us.extend(&report.join_times_us);
            }
            Err(failure) => {
                failures += 1;
                eprintln!("{failure}");
            }
        }
    }
    let elapsed = started.elapsed();
    println!(
        "{} seeds ({}..{}), durability {}, {} failed, in {:.1}s wall",
        args.count,
        args.first,
        args.first + args.count - 1,
        args.durability,
        failures,
        elapsed.as_secs_f64()
    );
    println!(
        "ops {} (reads {}, writes {}, cas swapped {}, cas failed {}, aborted {}, unknown {}, failed {}); \
         messages {} (lost {}, duplicated {}); view changes {}, replays {}, retransmits {}; \
         restarts {} ({} total crashes); {:.0} simulated ops/s of wall time",
        total.ops,
        total.reads,
        total.writes,
        total.cas_swapped,
        total.cas_failed,
        total.aborted,
        total.unknown,
        total.failed,
        total.messages,
        total.lost,
        total.duplicated,
        total.view_changes,
        total.replays,
        total.retransmits,
        total.restarts,
        total.total_crashes,
        total.ops as f64 / elapsed.as_secs_f64()
    );
    println!(
        "simulated time from a crash to the next committed write: {}; from a restart to \
         membership again: {}",
        summary(&mut recovery_us),
        summary(&mut join_us)
    );
    if failures > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// "median X ms, worst Y ms over N".
fn summary(samples: &mut [u64]) -> String {
    if samples.is_empty() {
        return "no samples".into();
    }
    samples.sort_unstable();
    let median = samples[samples.len() / 2] as f64 / 1_000.0;
    let worst = samples[samples.len() - 1] as f64 / 1_000.0;
    format!(
        "median {median:.0} ms, worst {worst:.0} ms over {}",
        samples.len()
    )
}

fn add(total: &mut SimReport, report: &SimReport) {
    total.ops += report.ops;
    total.reads += report.reads;
    total.writes += report.writes;
    total.cas_swapped += report.cas_swapped;
    total.cas_failed += report.cas_failed;
    total.aborted += report.aborted;
    total.unknown += report.unknown;
    total.failed += report.failed;
    total.messages += report.messages;
    total.lost += report.lost;
    total.duplicated += report.duplicated;
    total.view_changes += report.view_changes;
    total.replays += report.replays;
    total.retransmits += report.retransmits;
    total.restarts += report.restarts;
    total.total_crashes += report.total_crashes;
}
