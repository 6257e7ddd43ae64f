//! Simulation parameters, derived from a seed (swarm testing) or set by hand.

use super::rng::SimRng;
use crate::config::Config;
use crate::replica::PlantedBug;
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
    /// The smallest one-way message delay, in microseconds.
    pub delay_min_us: u64,
    /// The mean extra one-way delay, in microseconds (uniform, with a long tail).
    pub delay_mean_us: u64,
    /// The probability that a message is lost.
    pub loss: f64,
    /// The probability that a message is delivered twice.
    pub duplicate: f64,
    /// Whether links are cut and healed at random (symmetric and one-way).
    pub partitions: bool,
    /// How many replicas are crashed or isolated and then removed by a view change (at most a
    /// minority).
    pub removals: u32,
    /// The replica removed first, if chosen by hand (node ids start at 1); otherwise random.
    pub first_victim: Option<u32>,
    /// Whether a crash waits for the node's next RMW broadcast and cuts it short (the INV reaches
    /// only some replicas), instead of striking at a random instant.
    pub crash_mid_broadcast: bool,
    /// The longest time the membership oracle takes to install a view after a crash or an
    /// isolation, in milliseconds.
    pub view_change_delay_ms_max: u64,
    /// The bound on each replica's clock-rate error, in parts per million.
    pub clock_drift_ppm: u64,
    /// The replica configuration template (`node_id` is set per replica).
    pub replica: Config,
    /// A protocol bug planted in every replica (needs the `planted-bugs` feature).
    pub planted_bug: Option<PlantedBug>,
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
        let mut rng = SimRng::new(seed ^ 0x5EED_C0FF_EE00_0001);
        let nodes = if rng.chance(0.6) { 3 } else { 5 };
        let message_loss_timeout_ms = rng.between(2, 20);
        SimConfig {
            seed,
            nodes,
            keys: rng.between(1, 6) as u32,
            clients_per_node: rng.between(1, 3) as u32,
            ops: rng.between(200, 400) as u32,
            mix: OpMix::default(),
            delay_min_us: rng.between(20, 200),
            delay_mean_us: rng.between(50, 1_000),
            loss: [0.0, 0.01, 0.05, 0.15][rng.below(4) as usize],
            duplicate: [0.0, 0.02, 0.1][rng.below(3) as usize],
            partitions: rng.chance(0.5),
            removals: rng.below(u64::from((nodes - 1) / 2) + 1) as u32,
            first_victim: None,
            crash_mid_broadcast: rng.chance(0.3),
            view_change_delay_ms_max: 30,
            clock_drift_ppm: rng.between(0, 50_000),
            replica: Config {
                node_id: NodeId(1),
                message_loss_timeout_ms,
                request_timeout_ms: rng.between(200, 2_000),
                key_bytes_max: 64,
                value_bytes_max: 64,
                requests_per_key_max: 16,
                requests_max: 64,
            },
            planted_bug: None,
            time_limit_ms: 120_000,
        }
    }

    /// This configuration with a planted bug.
    pub fn with_bug(mut self, bug: PlantedBug) -> Self {
        self.planted_bug = Some(bug);
        self
    }
}
