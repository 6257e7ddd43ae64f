//! `hermes bench`: a closed-loop load generator, for Hermes and, to compare, for Redis and etcd
//! (`--target`, see [`backend`]).
//!
//! For Hermes, opens one connection per node (clients on the same node share it: their requests
//! are pipelined and batched), puts client `i` on node `i mod n` (or every client on `--node`);
//! for Redis, one connection per client to the primary; for etcd, one channel per endpoint,
//! client `i` on endpoint `i mod n`. Then runs every client in a loop for `--duration-ms`: draw a key uniformly from `k0..k{K-1}`, draw
//! the kind by the ratios (compare-and-swap, write, else read), send it, wait for the answer.
//! Written values are `v<client>-<n>-<run tag>` padded to `--value-bytes`, unique per write; a
//! compare-and-swap expects the value its client last read or wrote under the key (or absent).
//!
//! Reports per kind the answered operations, errors by kind, throughput and latency
//! percentiles (invocation to answer), as text or as one JSON object with `--json`; a progress
//! line on stderr about once a second unless `--json`. Operations still unanswered
//! [`client::ABANDON_AFTER_END_MS`] after the end are abandoned and counted as errors
//! (`abandoned`, outcome unknown). Ctrl-C stops the run early and still reports. `--record FILE` writes every operation as JSON lines that
//! `hermes_core::history::History::from_jsonl` reads (see [`record`]).
//!
//! Exit status 0 when the run completed, even if some requests failed (they are reported);
//! 1 with one line on stderr for invalid arguments or when no node could be reached.

pub mod backend;
mod client;
mod record;
mod stats;
mod workload;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Map, Value};

use self::backend::{Backend, Completion, Request, Target, ETCD_UNSUPPORTED};
use self::client::{run_client, ClientContext, RunControl};
use self::record::{Event, EventType, EventValue, Recorder};
use self::stats::{format_latency, kind_json, per_second, rounded, RunStats, PERCENTILES};
use self::workload::{run_tag, OpKind, Workload};
use crate::cli::{BenchArgs, ClientArgs};
use crate::commands::start::shutdown_signal;
use crate::error::CliError;
use crate::output::{init_logging, print_json};

/// Most concurrent clients.
const CLIENTS_MAX: usize = 100_000;
/// Most keys (their names are kept in memory).
const KEYS_MAX: usize = 100_000_000;
/// Largest value: the nodes' default `protocol.value_bytes_max`.
const VALUE_BYTES_MAX: usize = hermes_core::Config::VALUE_BYTES_MAX_DEFAULT;
/// Longest run: a day.
const DURATION_MS_MAX: u64 = 24 * 3600 * 1000;
/// How often the progress line is printed.
const PROGRESS_INTERVAL_MS: u64 = 1_000;
/// From this many keys on, reading their values for the record is announced.
const SLOW_INITIAL_READ_KEYS: usize = 100_000;
/// Concurrent reads of the keys' values before a recorded run.
const INITIAL_READERS_MAX: usize = 64;
/// Attempts at reading one key's value before a recorded run.
const INITIAL_READ_ATTEMPTS: usize = 3;
/// Pause between those attempts.
const INITIAL_READ_RETRY_MS: u64 = 200;

/// Runs the benchmark.
pub async fn run(client_args: &ClientArgs, args: BenchArgs) -> Result<(), CliError> {
    init_logging("warn");
    validate(&args)?;
    if args.target != Target::Hermes && client_args.node.is_some() {
        return Err(CliError::other(format!(
            "--node: only with --target hermes, not {}",
            args.target.name()
        )));
    }
    let recorder = match &args.record {
        Some(path) => Some(Arc::new(Recorder::create(path)?)),
        None => None,
    };
    let (backend, unreachable) = Backend::connect(client_args, &args).await?;
    let backend = Arc::new(backend);
    for failure in &unreachable {
        eprintln!("warning: {failure}; its clients go to the others");
    }

    let seed_base = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| since.as_nanos() as u64)
        .unwrap_or(0x5EED);
    let workload = Arc::new(Workload::new(
        args.keys,
        args.value_bytes,
        args.write_ratio,
        args.cas_ratio,
        run_tag(seed_base),
    ));
    if let Some(recorder) = &recorder {
        if !client_args.json && args.keys >= SLOW_INITIAL_READ_KEYS {
            eprintln!(
                "reading the values of {} keys for the record before the run",
                args.keys
            );
        }
        record_initial_values(&backend, &workload, recorder, args.clients).await?;
    }
    let mut connections = Vec::with_capacity(args.clients);
    for process in 0..args.clients {
        connections.push(backend.client(process).await.map_err(CliError::other)?);
    }
    let started = Instant::now();
    let deadline = started
        .checked_add(Duration::from_millis(args.duration_ms))
        .ok_or_else(|| CliError::other("--duration-ms: too long"))?;
    let control = Arc::new(RunControl::new(deadline));
    let mut clients = Vec::with_capacity(args.clients);
    for (process, connection) in connections.into_iter().enumerate() {
        let context = ClientContext {
            process,
            connection,
            workload: Arc::clone(&workload),
            recorder: recorder.clone(),
            control: Arc::clone(&control),
            seed: seed_base ^ (process as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        };
        clients.push(tokio::spawn(run_client(context)));
    }
    let interrupt = {
        let control = Arc::clone(&control);
        tokio::spawn(async move {
            if shutdown_signal().await.is_ok() {
                control.stop();
            }
        })
    };
    let progress = (!client_args.json).then(|| tokio::spawn(print_progress(Arc::clone(&control))));

    let mut stats = RunStats::default();
    let mut client_failure = None;
    for handle in clients {
        match handle.await {
            Ok(client_stats) => stats.merge(&client_stats),
            Err(err) => client_failure = Some(err.to_string()),
        }
    }
    let elapsed = started.elapsed();
    interrupt.abort();
    if let Some(progress) = progress {
        progress.abort();
    }
    backend.close();
    if let Some(failure) = client_failure {
        return Err(CliError::other(format!("a bench client failed: {failure}")));
    }
    let recorded = match &recorder {
        Some(recorder) => Some((recorder.path().to_path_buf(), recorder.finish()?)),
        None => None,
    };

    let report = Report {
        args: &args,
        backend: &backend,
        unreachable,
        elapsed,
        interrupted: control.was_stopped(),
        stats,
        recorded,
    };
    if client_args.json {
        print_json(&report.to_json());
    } else {
        report.print();
    }
    Ok(())
}

/// Checks the arguments before anything else, with one-line errors.
fn validate(args: &BenchArgs) -> Result<(), CliError> {
    let fail = |message: String| Err(CliError::other(message));
    if args.clients == 0 || args.clients > CLIENTS_MAX {
        return fail(format!(
            "--clients: between 1 and {CLIENTS_MAX}, not {}",
            args.clients
        ));
    }
    if args.duration_ms == 0 || args.duration_ms > DURATION_MS_MAX {
        return fail(format!(
            "--duration-ms: between 1 and {DURATION_MS_MAX} (a day), not {}",
            args.duration_ms
        ));
    }
    if args.keys == 0 || args.keys > KEYS_MAX {
        return fail(format!(
            "--keys: between 1 and {KEYS_MAX}, not {}",
            args.keys
        ));
    }
    if args.value_bytes == 0 || args.value_bytes > VALUE_BYTES_MAX {
        return fail(format!(
            "--value-bytes: between 1 and {VALUE_BYTES_MAX}, not {}",
            args.value_bytes
        ));
    }
    for (name, ratio) in [
        ("--write-ratio", args.write_ratio),
        ("--cas-ratio", args.cas_ratio),
    ] {
        if !(0.0..=1.0).contains(&ratio) {
            return fail(format!("{name}: between 0 and 1, not {ratio}"));
        }
    }
    if args.write_ratio + args.cas_ratio > 1.0 + 1e-9 {
        return fail(format!(
            "--write-ratio plus --cas-ratio: at most 1, not {} + {}",
            args.write_ratio, args.cas_ratio
        ));
    }
    match args.target {
        Target::Hermes if !args.endpoints.is_empty() => {
            return fail(
                "--endpoints: only with --target redis or etcd (hermes reads --cluster)".into(),
            );
        }
        Target::Etcd if !cfg!(feature = "etcd") => return fail(ETCD_UNSUPPORTED.into()),
        Target::Redis if args.redis_wait > 0 && args.redis_wait_timeout_ms == 0 => {
            return fail("--redis-wait-timeout-ms: at least 1 (WAIT with 0 waits forever)".into());
        }
        _ => {}
    }
    if args
        .endpoints
        .iter()
        .any(|endpoint| endpoint.trim().is_empty())
    {
        return fail(format!(
            "--endpoints: an empty endpoint in {:?}",
            args.endpoints.join(",")
        ));
    }
    Ok(())
}

/// Starts the record with the value every key holds before the run, so that the history can be
/// checked on a cluster that already holds data: for each key that exists, a write of its value
/// by process `process` (one past the last client), invoked and completed before any client
/// starts, marked `"initial":true`. Keys are read with up to [`INITIAL_READERS_MAX`] concurrent
/// readers, each with a connection of its own (for Hermes: spread over the nodes).
///
/// # Errors
/// A one-line message if a key cannot be read (the record would not be checkable) or the record
/// cannot be written.
async fn record_initial_values(
    backend: &Arc<Backend>,
    workload: &Arc<Workload>,
    recorder: &Arc<Recorder>,
    process: usize,
) -> Result<(), CliError> {
    let readers = workload.key_count().min(INITIAL_READERS_MAX);
    let tasks: Vec<_> = (0..readers)
        .map(|reader| {
            let backend = Arc::clone(backend);
            let workload = Arc::clone(workload);
            let recorder = Arc::clone(recorder);
            tokio::spawn(async move {
                let mut connection = backend.client(reader).await?;
                let mut lines = Vec::new();
                for key_index in (reader..workload.key_count()).step_by(readers) {
                    let key = workload.key(key_index);
                    let Some(value) = read_with_retries(&mut connection, &key).await? else {
                        continue;
                    };
                    lines.clear();
                    for event_type in [EventType::Invoke, EventType::Ok] {
                        Event {
                            process,
                            event_type,
                            kind: OpKind::Write,
                            key: &key,
                            value: EventValue::Bytes(&value),
                            error: None,
                            initial: true,
                        }
                        .append_to(&mut lines);
                    }
                    if !recorder.append(&lines, 2) {
                        return Ok(());
                    }
                }
                Ok::<(), String>(())
            })
        })
        .collect();
    for task in tasks {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(message)) => return Err(CliError::other(message)),
            Err(err) => return Err(CliError::other(format!("a reader failed: {err}"))),
        }
    }
    Ok(())
}

/// Reads `key`, retrying errors a few times; `None` if the key is absent.
async fn read_with_retries(
    connection: &mut backend::ClientConnection,
    key: &bytes::Bytes,
) -> Result<Option<bytes::Bytes>, String> {
    let mut attempt = 1;
    loop {
        let error = match connection.execute(Request::Read { key: key.clone() }).await {
            Completion::Read(value) => return Ok(value),
            Completion::Failed { name, .. } => name.to_string(),
            other => format!("unexpected answer {other:?}"),
        };
        if attempt >= INITIAL_READ_ATTEMPTS {
            return Err(format!(
                "--record: cannot read the value of {} before the run: {error}",
                String::from_utf8_lossy(key)
            ));
        }
        attempt += 1;
        tokio::time::sleep(Duration::from_millis(INITIAL_READ_RETRY_MS)).await;
    }
}

/// Prints the throughput of the last interval on stderr, about once a second, until aborted.
async fn print_progress(control: Arc<RunControl>) {
    let started = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_millis(PROGRESS_INTERVAL_MS));
    ticks.tick().await;
    let mut last_answered = 0;
    let mut last_at = started;
    loop {
        ticks.tick().await;
        let now = Instant::now();
        let answered = control.answered();
        let rate = per_second(answered - last_answered, now - last_at);
        eprintln!(
            "bench: {:.0} s, {rate:.0} ops/s, {answered} ops, {} errors",
            (now - started).as_secs_f64(),
            control.errors()
        );
        last_answered = answered;
        last_at = now;
    }
}

/// The result of a run.
struct Report<'a> {
    /// The run's arguments.
    args: &'a BenchArgs,
    /// The store that was loaded.
    backend: &'a Backend,
    /// Why its other nodes or endpoints could not be reached.
    unreachable: Vec<String>,
    /// From the first client's start to the last client's end.
    elapsed: Duration,
    /// Whether the run was stopped before its deadline.
    interrupted: bool,
    /// The counts of every client.
    stats: RunStats,
    /// The record file and how many events it holds.
    recorded: Option<(PathBuf, u64)>,
}

impl Report<'_> {
    /// The kinds the run could have issued, or did issue.
    fn kinds(&self) -> impl Iterator<Item = OpKind> + '_ {
        OpKind::ALL.into_iter().filter(|&kind| {
            let stats = self.stats.kind(kind);
            let ratio = match kind {
                OpKind::Read => 1.0 - self.args.write_ratio - self.args.cas_ratio,
                OpKind::Write => self.args.write_ratio,
                OpKind::Cas => self.args.cas_ratio,
            };
            ratio > 1e-9 || stats.answered > 0 || stats.error_count() > 0
        })
    }

    /// The report as one JSON object.
    fn to_json(&self) -> Value {
        let answered = self.stats.answered();
        let mut object = Map::new();
        object.insert("ok".into(), json!(true));
        object.insert("target".into(), json!(self.args.target.name()));
        object.insert("write_mode".into(), self.backend.write_mode_json());
        object.insert("clients".into(), json!(self.args.clients));
        object.insert("nodes".into(), self.backend.nodes_json());
        object.insert("unreachable".into(), json!(self.unreachable));
        object.insert("keys".into(), json!(self.args.keys));
        object.insert("value_bytes".into(), json!(self.args.value_bytes));
        object.insert("write_ratio".into(), json!(self.args.write_ratio));
        object.insert("cas_ratio".into(), json!(self.args.cas_ratio));
        object.insert("duration_ms".into(), json!(self.args.duration_ms));
        object.insert(
            "elapsed_ms".into(),
            json!(u64::try_from(self.elapsed.as_millis()).unwrap_or(u64::MAX)),
        );
        object.insert("interrupted".into(), json!(self.interrupted));
        object.insert("ops".into(), json!(answered));
        object.insert(
            "ops_per_sec".into(),
            json!(rounded(per_second(answered, self.elapsed))),
        );
        object.insert("errors".into(), json!(self.stats.errors()));
        for kind in OpKind::ALL {
            object.insert(
                kind.name().into(),
                kind_json(kind, self.stats.kind(kind), self.elapsed),
            );
        }
        object.insert(
            "record".into(),
            match &self.recorded {
                Some((path, events)) => {
                    json!({ "file": path.display().to_string(), "events": events })
                }
                None => Value::Null,
            },
        );
        Value::Object(object)
    }

    /// Prints the report for people on stdout.
    fn print(&self) {
        let args = self.args;
        println!(
            "{} clients over {} for {:.2} s{}: {} keys, {}-byte values, {}% writes, {}% \
             compare-and-swaps",
            args.clients,
            self.backend.describe(),
            self.elapsed.as_secs_f64(),
            if self.interrupted {
                " (interrupted)"
            } else {
                ""
            },
            args.keys,
            args.value_bytes,
            args.write_ratio * 100.0,
            args.cas_ratio * 100.0,
        );
        println!(
            "{:<6} {:>10} {:>10} {:>9} {:>9} {:>9} {:>9} {:>7}",
            "", "ok", "ops/s", "p50", "p99", "p99.9", "max", "errors"
        );
        for kind in self.kinds() {
            let stats = self.stats.kind(kind);
            let latency = |value: Option<u64>| value.map_or_else(|| "-".into(), format_latency);
            let [p50, p99, p999] = PERCENTILES.map(|(_, q)| latency(stats.latency.quantile_ns(q)));
            println!(
                "{:<6} {:>10} {:>10.0} {:>9} {:>9} {:>9} {:>9} {:>7}",
                kind.name(),
                stats.answered,
                per_second(stats.answered, self.elapsed),
                p50,
                p99,
                p999,
                latency(stats.latency.max_ns()),
                stats.error_count()
            );
        }
        println!(
            "{:<6} {:>10} {:>10.0} {:>9} {:>9} {:>9} {:>9} {:>7}",
            "total",
            self.stats.answered(),
            per_second(self.stats.answered(), self.elapsed),
            "",
            "",
            "",
            "",
            self.stats.errors()
        );
        let reads = self.stats.kind(OpKind::Read);
        if reads.absent > 0 {
            println!("reads that found the key absent: {}", reads.absent);
        }
        let cas = self.stats.kind(OpKind::Cas);
        if cas.answered > 0 {
            println!(
                "compare-and-swaps: {} swapped, {} compared a different value",
                cas.answered - cas.compared_different,
                cas.compared_different
            );
        }
        for kind in OpKind::ALL {
            let stats = self.stats.kind(kind);
            if stats.errors.is_empty() {
                continue;
            }
            let errors: Vec<String> = stats
                .errors
                .iter()
                .map(|(name, count)| format!("{name} {count}"))
                .collect();
            println!(
                "{} errors: {} ({} with unknown outcome)",
                kind.name(),
                errors.join(", "),
                stats.outcome_unknown
            );
        }
        if let Some((path, events)) = &self.recorded {
            println!("recorded {events} events in {}", path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> BenchArgs {
        BenchArgs {
            client: ClientArgs {
                cluster: "client.toml".into(),
                node: None,
                json: false,
            },
            target: Target::Hermes,
            endpoints: Vec::new(),
            redis_wait: 1,
            redis_wait_timeout_ms: 1000,
            clients: 4,
            duration_ms: 1000,
            keys: 10,
            value_bytes: 16,
            write_ratio: 0.5,
            cas_ratio: 0.1,
            record: None,
            threads: 1,
        }
    }

    fn rejected(args: BenchArgs) -> String {
        match validate(&args) {
            Ok(()) => panic!("accepted {args:?}"),
            Err(err) => err.message,
        }
    }

    #[test]
    fn invalid_arguments_are_refused_by_name() {
        assert!(validate(&args()).is_ok());
        assert!(rejected(BenchArgs {
            clients: 0,
            ..args()
        })
        .starts_with("--clients"));
        assert!(rejected(BenchArgs { keys: 0, ..args() }).starts_with("--keys"));
        assert!(rejected(BenchArgs {
            duration_ms: 0,
            ..args()
        })
        .starts_with("--duration-ms"));
        assert!(rejected(BenchArgs {
            value_bytes: 0,
            ..args()
        })
        .starts_with("--value-bytes"));
        assert!(rejected(BenchArgs {
            value_bytes: 2 << 20,
            ..args()
        })
        .starts_with("--value-bytes"));
        assert!(rejected(BenchArgs {
            write_ratio: 1.5,
            ..args()
        })
        .starts_with("--write-ratio"));
        assert!(rejected(BenchArgs {
            cas_ratio: -0.1,
            ..args()
        })
        .starts_with("--cas-ratio"));
        assert!(rejected(BenchArgs {
            cas_ratio: f64::NAN,
            ..args()
        })
        .starts_with("--cas-ratio"));
        let both = rejected(BenchArgs {
            write_ratio: 0.8,
            cas_ratio: 0.3,
            ..args()
        });
        assert!(both.contains("at most 1"), "{both}");
        assert!(validate(&BenchArgs {
            write_ratio: 0.7,
            cas_ratio: 0.3,
            ..args()
        })
        .is_ok());
    }

    #[test]
    fn target_options_are_checked() {
        let redis = || BenchArgs {
            target: Target::Redis,
            endpoints: vec!["127.0.0.1:6379".into()],
            ..args()
        };
        assert!(validate(&redis()).is_ok());
        assert!(validate(&BenchArgs {
            redis_wait: 0,
            redis_wait_timeout_ms: 0,
            ..redis()
        })
        .is_ok());
        assert!(rejected(BenchArgs {
            redis_wait_timeout_ms: 0,
            ..redis()
        })
        .starts_with("--redis-wait-timeout-ms"));
        assert!(rejected(BenchArgs {
            endpoints: vec!["127.0.0.1:6379".into(), String::new()],
            ..redis()
        })
        .starts_with("--endpoints"));
        assert!(rejected(BenchArgs {
            target: Target::Hermes,
            ..redis()
        })
        .starts_with("--endpoints"));
        let etcd = validate(&BenchArgs {
            target: Target::Etcd,
            endpoints: Vec::new(),
            ..args()
        });
        assert_eq!(etcd.is_ok(), cfg!(feature = "etcd"));
        if let Err(err) = etcd {
            assert!(err.message.contains("--features etcd"), "{}", err.message);
            assert!(!err.message.contains('\n'));
        }
    }
}
