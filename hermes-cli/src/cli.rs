//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};

/// Hermes: a replicated, linearizable key-value store. Any node coordinates a write in one round
/// trip; every node serves linearizable reads locally.
#[derive(Parser, Debug)]
#[command(name = "hermes", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Client options written before the command (`hermes --cluster FILE get KEY`).
    #[command(flatten)]
    pub leading: LeadingClientArgs,
}

/// Options of the commands that talk to a running cluster (`put`, `get`, `delete`, `cas`,
/// `status`, `bench`), given after the command.
#[derive(Args, Debug, Clone)]
pub struct ClientArgs {
    /// The cluster's client configuration (written by `hermes dev`).
    #[arg(
        long,
        env = "HERMES_CLUSTER",
        default_value = "hermes-dev/client.toml",
        value_name = "FILE"
    )]
    pub cluster: PathBuf,
    /// The node to talk to (default: the first one that answers).
    #[arg(long, value_name = "ID")]
    pub node: Option<u32>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// The client options accepted before the command as well, for the commands that take them;
/// those given after the command win.
#[derive(Args, Debug, Clone, Default)]
pub struct LeadingClientArgs {
    /// For put, get, delete, cas, status and bench: the cluster's client configuration
    /// (default: hermes-dev/client.toml, or HERMES_CLUSTER).
    #[arg(long, value_name = "FILE")]
    pub cluster: Option<PathBuf>,
    /// For put, get, delete, cas, status and bench: the node to talk to.
    #[arg(long, value_name = "ID")]
    pub node: Option<u32>,
    /// For put, get, delete, cas, status and bench: print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

impl LeadingClientArgs {
    /// The first option given, as written on the command line.
    fn first_given(&self) -> Option<&'static str> {
        if self.cluster.is_some() {
            Some("--cluster")
        } else if self.node.is_some() {
            Some("--node")
        } else if self.json {
            Some("--json")
        } else {
            None
        }
    }
}

impl Cli {
    /// Parses `args` (the program name first) and merges client options written before the
    /// command into the command's own.
    ///
    /// # Errors
    /// A clap error for anything clap rejects, and [`ErrorKind::UnknownArgument`] for a client
    /// option before a command that takes none.
    pub fn parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let mut command = Cli::command();
        let matches = command.try_get_matches_from_mut(args)?;
        let mut cli = Cli::from_arg_matches(&matches).map_err(|err| err.format(&mut command))?;
        let Some(flag) = cli.leading.first_given() else {
            return Ok(cli);
        };
        let (name, sub_matches) = matches
            .subcommand()
            .ok_or_else(|| command.error(ErrorKind::MissingSubcommand, "no command given"))?;
        let leading = cli.leading.clone();
        match cli.command.client_args_mut() {
            Some(client) => {
                client.merge_leading(leading, sub_matches);
                Ok(cli)
            }
            None => Err(command.error(
                ErrorKind::UnknownArgument,
                format!(
                    "`{flag}` is an option of put, get, delete, cas, status and bench, not of \
                     `{name}`"
                ),
            )),
        }
    }
}

/// A usage error as one line, without the `error: ` prefix: the first paragraph of clap's message
/// with its lines joined, so that a list of missing arguments stays in it (clap writes each on a
/// line of its own under the sentence), and without the usage and tips that follow.
pub fn usage_error_line(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    let mut lines = rendered
        .lines()
        .map(str::trim)
        .take_while(|line| !line.is_empty());
    let first = lines.next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let rest: Vec<&str> = lines.collect();
    if rest.is_empty() {
        first.to_string()
    } else {
        format!("{first} {}", rest.join(", "))
    }
}

impl ClientArgs {
    /// Takes the options written before the command unless the same option was written after it.
    fn merge_leading(&mut self, leading: LeadingClientArgs, matches: &ArgMatches) {
        if let Some(cluster) = leading.cluster {
            if matches.value_source("cluster") != Some(ValueSource::CommandLine) {
                self.cluster = cluster;
            }
        }
        self.node = self.node.or(leading.node);
        self.json |= leading.json;
    }
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
        /// How to reach the cluster.
        #[command(flatten)]
        client: ClientArgs,
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
        /// How to reach the cluster.
        #[command(flatten)]
        client: ClientArgs,
        /// The key.
        key: String,
    },
    /// Delete a key.
    Delete {
        /// How to reach the cluster.
        #[command(flatten)]
        client: ClientArgs,
        /// The key.
        key: String,
    },
    /// Compare-and-swap: `cas KEY EXPECTED NEW`, or `cas KEY --expect-absent NEW`; exit status
    /// 3 if the key holds a different value.
    Cas {
        /// How to reach the cluster.
        #[command(flatten)]
        client: ClientArgs,
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
    Status {
        /// How to reach the cluster.
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Write a cluster CA and certificates for nodes and clients.
    GenCerts(GenCertsArgs),
    /// A closed-loop load generator: throughput and latency percentiles of reads and writes.
    Bench(BenchArgs),
    /// Run the deterministic cluster simulator over a range of seeds.
    Simulate(SimulateArgs),
}

impl Command {
    /// The client options of a command that talks to a cluster.
    pub fn client_args(&self) -> Option<&ClientArgs> {
        match self {
            Command::Put { client, .. }
            | Command::Get { client, .. }
            | Command::Delete { client, .. }
            | Command::Cas { client, .. }
            | Command::Status { client } => Some(client),
            Command::Bench(args) => Some(&args.client),
            Command::Dev(_) | Command::Start(_) | Command::GenCerts(_) | Command::Simulate(_) => {
                None
            }
        }
    }

    fn client_args_mut(&mut self) -> Option<&mut ClientArgs> {
        match self {
            Command::Put { client, .. }
            | Command::Get { client, .. }
            | Command::Delete { client, .. }
            | Command::Cas { client, .. }
            | Command::Status { client } => Some(client),
            Command::Bench(args) => Some(&mut args.client),
            Command::Dev(_) | Command::Start(_) | Command::GenCerts(_) | Command::Simulate(_) => {
                None
            }
        }
    }
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
    /// How to reach a Hermes cluster (with --target hermes).
    #[command(flatten)]
    pub client: ClientArgs,
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::parse_args(std::iter::once("hermes").chain(args.iter().copied()))
    }

    fn long_help(path: &[&str]) -> String {
        let mut command = Cli::command();
        command.build();
        let mut sub = &mut command;
        for name in path {
            sub = sub
                .find_subcommand_mut(name)
                .unwrap_or_else(|| panic!("no subcommand {name}"));
        }
        sub.render_long_help().to_string()
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn client_options_are_listed_only_by_the_commands_that_use_them() {
        for command in ["put", "get", "delete", "cas", "status", "bench"] {
            let help = long_help(&[command]);
            for option in ["--cluster", "--node", "--json"] {
                assert!(help.contains(option), "`{command} --help` lacks {option}");
            }
        }
        for command in ["dev", "start", "gen-certs", "simulate"] {
            let help = long_help(&[command]);
            for option in ["--cluster", "--json"] {
                assert!(!help.contains(option), "`{command} --help` lists {option}");
            }
            // `gen-certs --nodes` is its own option; `--node ` (with the space) is the client's.
            assert!(!help.contains("--node "), "`{command} --help` lists --node");
        }
    }

    #[test]
    fn client_options_are_accepted_before_and_after_the_command() {
        let cli = parse(&["--cluster", "c.toml", "--json", "get", "k", "--node", "2"]).unwrap();
        let client = cli.command.client_args().unwrap();
        assert_eq!(client.cluster, PathBuf::from("c.toml"));
        assert_eq!(client.node, Some(2));
        assert!(client.json);

        let cli = parse(&["--node", "1", "status", "--node", "3"]).unwrap();
        assert_eq!(cli.command.client_args().unwrap().node, Some(3));

        let cli = parse(&[
            "--cluster",
            "before.toml",
            "put",
            "k",
            "v",
            "--cluster",
            "after.toml",
        ])
        .unwrap();
        assert_eq!(
            cli.command.client_args().unwrap().cluster,
            PathBuf::from("after.toml")
        );

        let cli = parse(&["bench", "--cluster", "c.toml", "--node", "1"]).unwrap();
        let Command::Bench(args) = &cli.command else {
            panic!("not bench: {cli:?}");
        };
        assert_eq!(args.client.cluster, PathBuf::from("c.toml"));
        assert_eq!(args.client.node, Some(1));
    }

    #[test]
    fn client_options_are_refused_by_the_commands_that_do_not_use_them() {
        let err = parse(&["start", "--config", "n.toml", "--cluster", "c.toml"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnknownArgument);
        let err = parse(&["gen-certs", "--out", "d", "--nodes", "1", "--json"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnknownArgument);

        let err = parse(&["--json", "start", "--config", "n.toml"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::UnknownArgument);
        let line = usage_error_line(&err);
        assert!(line.contains("--json") && line.contains("start"), "{line}");
    }

    #[test]
    fn a_missing_argument_is_named_on_one_line() {
        let err = parse(&["put"]).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::MissingRequiredArgument);
        let line = usage_error_line(&err);
        assert!(line.contains("<KEY>"), "{line}");
        assert!(!line.contains('\n'), "{line}");
        assert!(!line.starts_with("error:"), "{line}");

        let line = usage_error_line(&parse(&["put", "k"]).unwrap_err());
        assert!(line.contains("<VALUE>"), "{line}");

        let line = usage_error_line(&parse(&["start"]).unwrap_err());
        assert!(line.contains("--config <FILE>"), "{line}");

        let line = usage_error_line(&parse(&["gen-certs", "--out", "d"]).unwrap_err());
        assert!(line.contains("--nodes <IDS>"), "{line}");
    }

    #[test]
    fn other_usage_errors_keep_their_first_line_only() {
        let line = usage_error_line(&parse(&["get", "k", "--bogus"]).unwrap_err());
        assert!(
            line.starts_with("unexpected argument '--bogus' found"),
            "{line}"
        );
        assert!(!line.contains("tip") && !line.contains("Usage"), "{line}");

        let line =
            usage_error_line(&parse(&["gen-certs", "--out", "d", "--nodes", "x"]).unwrap_err());
        assert!(
            line.starts_with("invalid value 'x' for '--nodes <IDS>'"),
            "{line}"
        );
    }
}
