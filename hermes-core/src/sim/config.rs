//! Simulation parameters, derived from a seed (swarm testing) or set by hand.

use crate::config::Config;
use crate::durability::Durability;
use crate::replica::PlantedBug;
use crate::rng::SeededRng;
use crate::types::NodeId;

/// The parameters of one simulated run. Every random choice of the run derives from `seed`.
#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    /// The seed of every random choice.
    pub seed: u64,
    /// The number of replicas.
    pub nodes: u32,
    /// The size of the hot key set the clients use.
    pub keys: u32,
    /// Closed-loop clients attached to each replica.
    pub clients_per_node: u32,
    /// Client operations issued in the safety phase.
    pub ops: u32,
    /// The operation mix of the safety phase.
    pub mix: OpMix,
    /// The longest pause of a client between two operations, in microseconds.
    pub think_us_max: u64,
    /// The smallest one-way message delay, in microseconds.
    pub delay_min_us: u64,
    /// The mean extra one-way delay, in microseconds (uniform, with a long tail).
    pub delay_mean_us: u64,
    /// The probability that a message is lost.
    pub loss: f64,
    /// The probability that a message is delivered twice.
    pub duplicate: f64,
    /// Fault episodes in the safety phase, one after another: a crash (often followed by a
    /// restart), the isolation of one node, a minority partition, a one-way link cut or a
    /// flapping link.
    pub faults: u32,
    /// Whether one-way cuts and flapping links are among the episodes (otherwise only crashes,
    /// isolations and minority partitions).
    pub partitions: bool,
    /// The node hit by the first episode, if chosen by hand (ids start at 1); otherwise random.
    pub first_victim: Option<u32>,
    /// Whether a crash waits for the node's next RMW broadcast and cuts it short (the INV reaches
    /// only some replicas), instead of striking at a random instant.
    pub crash_mid_broadcast: bool,
    /// Each replica's clock-rate error is drawn within ± this bound, in parts per million (kept
    /// within what `clock_drift_margin_ms` covers).
    pub clock_drift_ppm: u64,
    /// Episodes, after the others, that crash every node at once; each node restarts after its
    /// own delay, and a second total crash may strike while they recover. Only survivable
    /// with `sync` durability (`replica.durability`), which [`SimConfig::with_durability`]
    /// sets them up for.
    pub total_crashes: u32,
    /// The longest a `Persist` waits before the simulated store makes it durable, in
    /// microseconds (each wait is uniform up to this; everything queued by then is made durable
    /// together, as a group commit does). A crash loses what is not durable yet.
    pub persist_delay_us_max: u64,
    /// The replica configuration template (`node_id` is set per replica). Its `durability`
    /// chooses the mode: with `async` and `sync` every node keeps a simulated store, and a
    /// crashed node comes back with [`crate::Node::recover`]; with `memory` it comes back empty
    /// with [`crate::Node::restart`].
    pub replica: Config,
    /// A protocol bug planted in every replica (needs the `planted-bugs` feature).
    pub planted_bug: Option<PlantedBug>,
    /// Print the run's membership and fault events and every answered read to stderr.
    pub trace: bool,
    /// Simulated time after which the run fails as not live, in milliseconds.
    pub time_limit_ms: u64,
}

/// The share of each kind of client operation, in percent (they add up to 100).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpMix {
    /// Reads.
    pub read: u8,
    /// Writes.
    pub write: u8,
    /// Deletes.
    pub delete: u8,
    /// Compare-and-swaps (the rest).
    pub cas: u8,
}

impl Default for OpMix {
    fn default() -> Self {
        OpMix {
            read: 40,
            write: 25,
            delete: 5,
            cas: 30,
        }
    }
}

impl SimConfig {
    /// A configuration drawn from `seed`: cluster size, key count, fault mix and timeouts vary
    /// from seed to seed.
    pub fn from_seed(seed: u64) -> Self {
        let mut rng = SeededRng::new(seed ^ 0x5EED_C0FF_EE00_0001);
        let nodes = if rng.chance(0.6) { 3 } else { 5 };
        let message_loss_timeout_ms = rng.between(5, 40);
        let heartbeat_interval_ms = rng.between(10, 30);
        let lease_ms = heartbeat_interval_ms * rng.between(8, 12);
        let clock_drift_margin_ms = lease_ms / 5;
        // The margin covers clock rates that differ by ρ = margin / (2 lease + margin); drift
        // each clock by at most a fraction of that.
        let drift_bound_ppm =
            1_000_000 * clock_drift_margin_ms / (2 * lease_ms + clock_drift_margin_ms);
        SimConfig {
            seed,
            nodes,
            keys: rng.between(1, 6) as u32,
            clients_per_node: rng.between(1, 3) as u32,
            ops: rng.between(200, 400) as u32,
            mix: OpMix::default(),
            think_us_max: rng.between(2_000, 20_000),
            delay_min_us: rng.between(20, 200),
            delay_mean_us: rng.between(50, 1_000),
            loss: [0.0, 0.01, 0.05, 0.15][rng.below(4) as usize],
            duplicate: [0.0, 0.02, 0.1][rng.below(3) as usize],
            faults: rng.between(1, 4) as u32,
            partitions: rng.chance(0.5),
            first_victim: None,
            crash_mid_broadcast: rng.chance(0.3),
            clock_drift_ppm: rng.between(0, drift_bound_ppm * 4 / 10),
            total_crashes: 0,
            persist_delay_us_max: 2_000,
            replica: Config {
                node_id: NodeId(1),
                message_loss_timeout_ms,
                request_timeout_ms: rng.between(1_000, 3_000),
                key_bytes_max: 64,
                value_bytes_max: 64,
                requests_per_key_max: 16,
                requests_max: 64,
                heartbeat_interval_ms,
                lease_ms,
                suspicion_timeout_ms: heartbeat_interval_ms * rng.between(4, 6),
                clock_drift_margin_ms,
                transfer_chunk_keys_max: rng.between(1, 4) as usize,
                durability: Durability::Memory,
                startup_grace_ms: 0,
            },
            planted_bug: None,
            trace: false,
            time_limit_ms: 60_000,
        }
    }

    /// This configuration under `durability`. The store's latency is drawn from the seed; under
    /// `sync`, one or two episodes that crash every node at once (also drawn from the seed) follow
    /// the other fault episodes. The draws do not disturb the rest of the configuration, so a
    /// seed keeps its cluster, workload and other faults in every mode.
    pub fn with_durability(mut self, durability: Durability) -> Self {
        let mut rng = SeededRng::new(self.seed ^ 0xD0AB_1E00_5EED_0002);
        self.replica.durability = durability;
        self.persist_delay_us_max = rng.between(100, 5_000);
        self.total_crashes = match durability {
            Durability::Sync => rng.between(1, 2) as u32,
            Durability::Memory | Durability::Async => 0,
        };
        self
    }

    /// This configuration with a planted bug.
    pub fn with_bug(mut self, bug: PlantedBug) -> Self {
        self.planted_bug = Some(bug);
        self
    }
}
