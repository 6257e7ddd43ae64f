//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Hermes: a replicated, linearizable key-value store. Any node coordinates a write in one round
/// trip; every node serves linearizable reads locally.
#[derive(Parser, Debug)]
#[command(name = "hermes", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// How client commands reach the cluster.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Options of the commands that talk to a running cluster.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// The cluster's client configuration (written by `hermes dev`).
    #[arg(
        long,
        global = true,
        env = "HERMES_CLUSTER",
        default_value = "hermes-dev/client.toml",
        value_name = "FILE"
    )]
    pub cluster: PathBuf,
    /// The node to talk to (default: the first one that answers).
    #[arg(long, global = true, value_name = "ID")]
    pub node: Option<u32>,
    /// Print one JSON object instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start a local cluster on 127.0.0.1 (one process per node) and stop it on Ctrl-C.
    Dev(DevArgs),
    /// Run one node.
    Start(StartArgs),
    /// Write a value: `put KEY VALUE`, or `put KEY --value-file FILE`.
    Put {
        /// The key.
        key: String,
        /// The value.
        #[arg(required_unless_present = "value_file")]
        value: Option<String>,
        /// Read the value from FILE instead.
        #[arg(long, value_name = "FILE", conflicts_with = "value")]
        value_file: Option<PathBuf>,
    },
    /// Read a value: prints it alone on stdout; exit status 2 if the key does not exist.
    Get {
        /// The key.
        key: String,
    },
    /// Delete a key.
    Delete {
        /// The key.
        key: String,
    },
    /// Compare-and-swap: `cas KEY EXPECTED NEW`, or `cas KEY --expect-absent NEW`; exit status
    /// 3 if the key holds a different value.
    Cas {
        /// The key.
        key: String,
        /// EXPECTED and NEW, or only NEW with `--expect-absent`.
        #[arg(num_args = 1..=2, required = true, value_name = "EXPECTED NEW")]
        values: Vec<String>,
        /// Swap only if the key does not exist.
        #[arg(long)]
        expect_absent: bool,
    },
    /// Show a node's view, lease, state, peers and counters.
    Status,
    /// Write a cluster CA and certificates for nodes and clients.
    GenCerts(GenCertsArgs),
    /// A closed-loop load generator: throughput and latency percentiles of reads and writes.
    Bench(BenchArgs),
    /// Run the deterministic cluster simulator over a range of seeds.
    Simulate(SimulateArgs),
}

/// `hermes dev`.
#[derive(Args, Debug)]
pub struct DevArgs {
    /// How many nodes.
    #[arg(long, default_value_t = 3)]
    pub nodes: u32,
    /// Where to write certificates, configurations, data and logs.
    #[arg(long, default_value = "hermes-dev")]
    pub dir: PathBuf,
    /// Durability mode of the nodes: memory, async or sync.
    #[arg(long, default_value = "memory")]
    pub durability: String,
    /// How long to wait for the cluster to become ready, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub ready_timeout_ms: u64,
}

/// `hermes start`.
#[derive(Args, Debug)]
pub struct StartArgs {
    /// The node's configuration file.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

/// `hermes gen-certs`.
#[derive(Args, Debug)]
pub struct GenCertsArgs {
    /// The directory to write into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Node ids, comma-separated.
    #[arg(long, value_delimiter = ',', required = true, value_name = "IDS")]
    pub nodes: Vec<u32>,
    /// Client names, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "cli",
        value_name = "NAMES"
    )]
    pub clients: Vec<String>,
    /// Replace existing files (and the CA).
    #[arg(long)]
    pub force: bool,
}

/// `hermes bench`.
#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// The store to load: hermes (from --cluster), redis or etcd (from --endpoints; etcd needs
    /// a build with `--features etcd`).
    #[arg(long, value_enum, default_value_t = crate::commands::bench::backend::Target::Hermes)]
    pub target: crate::commands::bench::backend::Target,
    /// With --target redis or etcd: the servers, comma-separated `host:port` (redis: the
    /// primary, the first one; default 127.0.0.1:6379; etcd: clients round-robin over them;
    /// default 127.0.0.1:2379).
    #[arg(long, value_delimiter = ',', value_name = "HOST:PORT,...")]
    pub endpoints: Vec<String>,
    /// With --target redis: replicas that must acknowledge each write (`SET` then `WAIT N`);
    /// 0 for a plain `SET`.
    #[arg(long, default_value_t = 1, value_name = "N")]
    pub redis_wait: usize,
    /// With --target redis: the timeout of `WAIT`, in milliseconds.
    #[arg(long, default_value_t = 1_000)]
    pub redis_wait_timeout_ms: u64,
    /// Concurrent closed-loop clients, spread over all nodes.
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// How long to run, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    pub duration_ms: u64,
    /// How many distinct keys.
    #[arg(long, default_value_t = 1_000)]
    pub keys: usize,
    /// Size of each written value, in bytes.
    #[arg(long, default_value_t = 256)]
    pub value_bytes: usize,
    /// Fraction of operations that are writes (0 to 1).
    #[arg(long, default_value_t = 0.1)]
    pub write_ratio: f64,
    /// Fraction of operations that are compare-and-swaps (0 to 1).
    #[arg(long, default_value_t = 0.0)]
    pub cas_ratio: f64,
    /// Write every operation to FILE as JSON lines (invoke / ok / fail / info events).
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// Threads of the load generator (1: one thread, whose clients share frames and wake-ups;
    /// the same for every --target).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
}

/// `hermes simulate`.
#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// The first seed.
    #[arg(long, default_value_t = 1)]
    pub first: u64,
    /// How many seeds to run.
    #[arg(long, default_value_t = 100)]
    pub seeds: u64,
    /// Print every run's figures, not only the summary.
    #[arg(short, long)]
    pub verbose: bool,
}
