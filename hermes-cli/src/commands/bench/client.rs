//! One closed-loop client: draw an operation, send it, wait for the answer, count it, repeat.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::backend::{ClientConnection, Completion, Request};
use super::record::{Event, EventType, EventValue, Recorder};
use super::stats::RunStats;
use super::workload::{OpKind, SplitMix64, Workload};

/// How long a client pauses after an error other than an abort, so that a broken connection
/// or an overloaded node is not hammered in a tight loop.
const ERROR_PAUSE_MS: u64 = 10;

/// How long after the end of the run an unanswered operation is waited for; then it is
/// abandoned (counted as an error with unknown outcome), so that a dead node cannot stretch the
/// run by a whole request timeout.
pub const ABANDON_AFTER_END_MS: u64 = 1_000;

/// The name under which abandoned operations are counted.
const ABANDONED: &str = "abandoned";

/// What every client shares: when to stop, and running totals for the progress line.
pub struct RunControl {
    /// Clients start no operation at or after this instant.
    deadline: Instant,
    /// Operations still unanswered at this instant are abandoned.
    abandon_at: tokio::time::Instant,
    /// Set to stop early (Ctrl-C, a failed record file).
    stopped: AtomicBool,
    /// Operations answered without error so far, by every client.
    answered: AtomicU64,
    /// Errors so far, of every client.
    errors: AtomicU64,
}

impl RunControl {
    /// A run that ends at `deadline`.
    pub fn new(deadline: Instant) -> Self {
        RunControl {
            deadline,
            abandon_at: tokio::time::Instant::from_std(deadline)
                + Duration::from_millis(ABANDON_AFTER_END_MS),
            stopped: AtomicBool::new(false),
            answered: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    /// Asks every client to stop after its current operation.
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    /// Whether the run was stopped before its deadline.
    pub fn was_stopped(&self) -> bool {
        self.stopped.load(Ordering::Relaxed)
    }

    /// Whether clients should start no more operations.
    fn is_over(&self) -> bool {
        self.stopped.load(Ordering::Relaxed) || Instant::now() >= self.deadline
    }

    /// Operations answered without error so far.
    pub fn answered(&self) -> u64 {
        self.answered.load(Ordering::Relaxed)
    }

    /// Errors so far.
    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }
}

/// Everything one client needs.
pub struct ClientContext {
    /// The client number (`process` in the record).
    pub process: usize,
    /// The client's way to the store (for Hermes, its node's connection, shared with the
    /// other clients of that node).
    pub connection: ClientConnection,
    /// Keys, values and the mix.
    pub workload: Arc<Workload>,
    /// Where events go, with `--record`.
    pub recorder: Option<Arc<Recorder>>,
    /// When to stop, and the running totals.
    pub control: Arc<RunControl>,
    /// The seed of the client's random draws.
    pub seed: u64,
}

/// The recorded type of a completion of an operation of `kind`.
pub fn completion_type(kind: OpKind, completion: &Completion) -> EventType {
    match completion {
        Completion::Read(_) | Completion::Written | Completion::Swapped => EventType::Ok,
        Completion::ComparedDifferent => EventType::Fail,
        // A compare-and-swap `fail` means "compared a different value" to the checker, so any
        // other failure of one is recorded as an unknown outcome, which is never wrong.
        Completion::Failed { .. } if kind == OpKind::Cas => EventType::Info,
        Completion::Failed {
            outcome_unknown: true,
            ..
        } if kind == OpKind::Write => EventType::Info,
        Completion::Failed { .. } => EventType::Fail,
    }
}

/// Runs one client until the deadline (or a stop) and returns what it saw.
pub async fn run_client(context: ClientContext) -> RunStats {
    let ClientContext {
        process,
        mut connection,
        workload,
        recorder,
        control,
        seed,
    } = context;
    let mut rng = SplitMix64::new(seed);
    let mut stats = RunStats::default();
    let mut line = Vec::new();
    let mut writes_issued: u64 = 0;
    // The value this client last saw under each key, as the expectation of its next
    // compare-and-swap there (absent if it saw none).
    let track_values = workload.cas_ratio() > 0.0;
    let mut last_seen: HashMap<usize, Bytes> = HashMap::new();

    while !control.is_over() {
        let key_index = workload.pick_key(&mut rng);
        let key = workload.key(key_index);
        let kind = workload.pick_op(&mut rng);
        let (request, new_value, expected) = match kind {
            OpKind::Read => (Request::Read { key: key.clone() }, None, None),
            OpKind::Write => {
                writes_issued += 1;
                let value = workload.value(process, writes_issued);
                let request = Request::Write {
                    key: key.clone(),
                    value: value.clone(),
                };
                (request, Some(value), None)
            }
            OpKind::Cas => {
                writes_issued += 1;
                let value = workload.value(process, writes_issued);
                let expected = last_seen.get(&key_index).cloned();
                let request = Request::Cas {
                    key: key.clone(),
                    expected: expected.clone(),
                    new: value.clone(),
                };
                (request, Some(value), expected)
            }
        };
        let new_bytes = new_value.as_deref().unwrap_or_default();
        let op_value = match kind {
            OpKind::Read => EventValue::Null,
            OpKind::Write => EventValue::Bytes(new_bytes),
            OpKind::Cas => EventValue::Pair(expected.as_deref(), new_bytes),
        };

        if let Some(recorder) = &recorder {
            Event {
                process,
                event_type: EventType::Invoke,
                kind,
                key: &key,
                value: op_value,
                error: None,
                initial: false,
            }
            .format_into(&mut line);
            if !recorder.append(&line, 1) {
                control.stop();
                break;
            }
        }
        let started = Instant::now();
        let result = tokio::time::timeout_at(control.abandon_at, connection.execute(request)).await;
        let latency = started.elapsed();
        let completion = match result {
            Ok(completion) => completion,
            Err(_) => Completion::Failed {
                name: ABANDONED,
                outcome_unknown: true,
                pause: false,
            },
        };

        if let Some(recorder) = &recorder {
            let (value, error) = match &completion {
                Completion::Read(Some(value)) => (EventValue::Bytes(value), None),
                Completion::Read(None) => (EventValue::Null, None),
                Completion::Failed { name, .. } => (op_value, Some(*name)),
                _ => (op_value, None),
            };
            Event {
                process,
                event_type: completion_type(kind, &completion),
                kind,
                key: &key,
                value,
                error,
                initial: false,
            }
            .format_into(&mut line);
            if !recorder.append(&line, 1) {
                control.stop();
            }
        }

        let kind_stats = stats.kind_mut(kind);
        match completion {
            Completion::Failed {
                name,
                outcome_unknown,
                pause,
            } => {
                kind_stats.count_error(name, outcome_unknown);
                control.errors.fetch_add(1, Ordering::Relaxed);
                if pause {
                    tokio::time::sleep(Duration::from_millis(ERROR_PAUSE_MS)).await;
                }
            }
            answered => {
                kind_stats.answered += 1;
                kind_stats.latency.record(latency);
                control.answered.fetch_add(1, Ordering::Relaxed);
                match answered {
                    Completion::Read(None) => {
                        kind_stats.absent += 1;
                        if track_values {
                            last_seen.remove(&key_index);
                        }
                    }
                    Completion::Read(Some(value)) => {
                        if track_values {
                            last_seen.insert(key_index, value);
                        }
                    }
                    Completion::ComparedDifferent => kind_stats.compared_different += 1,
                    Completion::Written | Completion::Swapped => {
                        if let (true, Some(value)) = (track_values, new_value) {
                            last_seen.insert(key_index, value);
                        }
                    }
                    Completion::Failed { .. } => {}
                }
            }
        }
    }
    stats
}
