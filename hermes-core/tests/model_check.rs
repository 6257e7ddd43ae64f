//! Bounded exhaustive model checks of the hermes-core replica with stateright.
//!
//! The model (in `model/mod.rs`) runs three real [`hermes_core::Replica`]s and two clients over
//! a network that duplicates, reorders and loses messages, and checks linearizability of the
//! clients' history and hermes-core's per-step invariants in every state reachable within the
//! step bound. `examples/model_check.rs` runs the same model to deeper bounds.

mod model;

use model::{run, Faults, ModelConfig};

/// Threads per checker run (the test harness already runs the checks side by side).
const THREADS: usize = 1;

fn check(cfg: ModelConfig, max_steps: usize) {
    let label = format!("{} ({:?})", cfg.name, cfg.faults);
    let report = run(cfg, Some(max_steps), THREADS);
    println!("{label}: {report}");
    assert!(report.violations.is_empty(), "{label}: {report}");
    assert!(report.unwitnessed.is_empty(), "{label}: {report}");
}

#[test]
fn one_key_duplicating_network() {
    check(ModelConfig::one_key(Faults::Duplicating), 18);
}

#[test]
fn two_keys_duplicating_network() {
    check(ModelConfig::two_keys(Faults::Duplicating), 22);
}

#[test]
fn one_key_lossy_network() {
    check(ModelConfig::one_key(Faults::Lossy { timer_fires: 1 }), 16);
}

/// Reads served from Invalid keys must be caught. Runs with `--features planted-bugs`.
#[cfg(feature = "planted-bugs")]
#[test]
fn planted_read_in_invalid_is_not_linearizable() {
    let report = run(ModelConfig::read_in_invalid(), None, THREADS);
    println!("planted ReadInInvalid: {report}");
    assert!(
        report
            .violations
            .iter()
            .any(|(name, _)| *name == "linearizable"),
        "the planted bug went unnoticed: {report}"
    );
}
