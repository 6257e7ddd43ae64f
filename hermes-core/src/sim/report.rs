//! What a simulated run reports: its figures, or the failure with the command that replays it.

use crate::durability::Durability;
use crate::types::Instant;
use std::fmt;

/// Figures of a successful run.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SimReport {
    /// The seed.
    pub seed: u64,
    /// The number of replicas.
    pub nodes: u32,
    /// Simulated time at the end of the run.
    pub sim_time: Instant,
    /// Events processed.
    pub steps: u64,
    /// Client operations invoked (both phases).
    pub ops: u64,
    /// Reads answered.
    pub reads: u64,
    /// Writes and deletes acknowledged.
    pub writes: u64,
    /// CAS operations that swapped.
    pub cas_swapped: u64,
    /// CAS operations that compared a different value.
    pub cas_failed: u64,
    /// CAS operations aborted by a concurrent update.
    pub aborted: u64,
    /// Requests that timed out (or were lost with a crashed replica) with an unknown outcome.
    pub unknown: u64,
    /// Requests that failed without effect (timeout before starting, overload).
    pub failed: u64,
    /// Messages handed to the network.
    pub messages: u64,
    /// Messages lost (random loss, cut links, dead receivers).
    pub lost: u64,
    /// Messages delivered twice.
    pub duplicated: u64,
    /// Views installed by the membership oracle.
    pub view_changes: u64,
    /// Replays started by the replicas.
    pub replays: u64,
    /// INV retransmissions by the replicas.
    pub retransmits: u64,
    /// Operations in the history given to the linearizability checker.
    pub history_ops: u64,
    /// Nodes restarted after a crash.
    pub restarts: u64,
    /// Episodes that crashed every node at once.
    pub total_crashes: u64,
    /// When the liveness phase found the cluster converged.
    pub convergence_time: Instant,
    /// For each crash, the simulated time until the next committed write anywhere, in µs.
    pub recovery_times_us: Vec<u64>,
    /// For each restart, the simulated time until the node was a member again, in µs.
    pub join_times_us: Vec<u64>,
}

impl fmt::Display for SimReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} ({} nodes): {} ops in {} simulated ({} steps): {} reads, {} writes, \
             {} cas swapped, {} cas failed, {} aborted, {} unknown, {} failed; \
             {} messages ({} lost, {} duplicated), {} view changes, {} replays, {} retransmits; \
             {} restarts ({} total crashes); history of {} ops linearizable",
            self.seed,
            self.nodes,
            self.ops,
            self.sim_time,
            self.steps,
            self.reads,
            self.writes,
            self.cas_swapped,
            self.cas_failed,
            self.aborted,
            self.unknown,
            self.failed,
            self.messages,
            self.lost,
            self.duplicated,
            self.view_changes,
            self.replays,
            self.retransmits,
            self.restarts,
            self.total_crashes,
            self.history_ops
        )
    }
}

/// What went wrong in a failed run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// A per-step safety invariant broke.
    Invariant,
    /// The client history is not linearizable.
    Linearizability,
    /// After faults healed, the cluster did not serve new writes and reads in time.
    Liveness,
}

/// A failed run: the seed, where it failed, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SimFailure {
    /// The seed that reproduces the failure.
    pub seed: u64,
    /// The event number at which it was detected.
    pub step: u64,
    /// The simulated time at which it was detected.
    pub sim_time: Instant,
    /// What broke.
    pub kind: FailureKind,
    /// A readable description.
    pub detail: String,
    /// Whether a bug was planted on purpose.
    pub planted: bool,
    /// The durability mode of the run.
    pub durability: Durability,
}

impl fmt::Display for SimFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "seed {} failed at step {} ({}): {:?}: {}\nreplay with: cargo run -p hermes-core --example soak -- --seed {}{}{}",
            self.seed,
            self.step,
            self.sim_time,
            self.kind,
            self.detail,
            self.seed,
            match self.durability {
                Durability::Memory => String::new(),
                mode => format!(" --durability {mode}"),
            },
            if self.planted { " (a planted bug was active)" } else { "" }
        )
    }
}

impl std::error::Error for SimFailure {}
