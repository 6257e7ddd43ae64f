//! Linearizability checking of recorded client histories.
//!
//! A [`History`] records client operations on keys: when each was invoked, and, when known, when
//! and how it completed. [`History::check`] decides whether some linearization explains every
//! result: a total order of the operations that respects real time (an operation that completed
//! before another was invoked comes first) and in which every result is the one the sequential
//! model gives.
//!
//! # Model
//!
//! Every key is an independent register whose state is an `Option<Value>` (`None`: absent or
//! deleted), initially `None`:
//!
//! | operation                       | result            | meaning                                   |
//! |---------------------------------|-------------------|-------------------------------------------|
//! | [`HistoryOp::Read`]             | [`HistoryRet::Read`]`(v)` | the state was `v`                  |
//! | [`HistoryOp::Write`]`(v)`       | [`HistoryRet::Ok`] | the state becomes `Some(v)`              |
//! | [`HistoryOp::Delete`]           | [`HistoryRet::Ok`] | the state becomes `None`                 |
//! | [`HistoryOp::Cas`]`{expected, new}` | [`HistoryRet::Swapped`] | the state was `expected`; it becomes `Some(new)` |
//! | [`HistoryOp::Cas`]`{expected, new}` | [`HistoryRet::CasFailed`] | the state was not `expected`; unchanged |
//!
//! # Outcomes
//!
//! Every operation starts with [`History::invoke`] and then has one of three outcomes:
//!
//! - **completed** ([`History::complete`]): it took effect exactly once, at some point between
//!   its invocation and its completion, with the recorded result;
//! - **failed** ([`History::fail`]): it certainly did not take effect (an aborted or rejected
//!   request); it is left out of the check;
//! - **unknown** (neither completed nor failed, e.g. the client timed out or its node crashed):
//!   it either never took effect, or took effect once at any point after its invocation, however
//!   late. Its interval is open-ended. A read with an unknown outcome constrains nothing and is
//!   ignored; an unknown compare-and-swap may have swapped (if the state was `expected` at its
//!   linearization point) or not.
//!
//! # Time
//!
//! Times are caller-chosen `u64`s (e.g. microseconds of simulated time). Events are ordered by
//! time, and events with equal times by the order in which they were recorded. Operation `a`
//! precedes operation `b` in real time exactly when `a`'s completion is ordered before `b`'s
//! invocation. A simulator that records events as they happen can therefore pass the same time
//! for many events without losing precision.
//!
//! # Algorithm
//!
//! Linearizability is compositional (Herlihy and Wing), so every key is checked on its own. For
//! one key:
//!
//! 1. Values are interned to small integers; values that no operation names (no read returned
//!    them, no compare expected them) behave identically and share one state. Unknown-outcome
//!    updates whose effect no operation could observe are left out (that never changes the
//!    verdict).
//! 2. A precheck looks for an operation that real-time order alone keeps from the state it needs:
//!    a read of a value no write had been invoked for by the time the read completed, or a stale
//!    read, where the only write of the value was followed, entirely before the read was
//!    invoked, by a completed write of another value. These common violations are reported
//!    without a search, with a direct explanation.
//! 3. Otherwise the Wing–Gong–Lowe search runs, with memoisation as in Porcupine: a depth-first
//!    search over a doubly linked list of call and return events that tries to linearize each
//!    operation whose call precedes the first pending return, backtracks when a return is
//!    reached, and remembers every visited configuration (the set of linearized operations as a
//!    bitset, the register state) so that none is explored twice. Operations with an unknown
//!    outcome have no return event: they are candidates whenever their invocation precedes the
//!    first pending return, and the search succeeds once every completed operation is
//!    linearized, whichever unknown ones took effect. A configuration is skipped when a visited
//!    one has the same completed operations and state and a subset of its unknown operations.
//!
//! The search also prunes: a candidate read or failed compare whose result fits the current
//! state is linearized at once without trying alternatives; a configuration is abandoned as soon
//! as a pending operation needs a state that the register does not hold and no pending update
//! installs; an unknown-outcome update is only placed where some pending operation could observe
//! its effect, identical ones are used in invocation order, and no write may overwrite one before
//! some operation has observed it. None of these loses a linearization.
//!
//! The cost grows mainly with concurrency (how many operations on one key are in flight at
//! once). Histories of a few hundred operations per key with up to ~15 concurrent clients, some
//! with unknown outcomes, are accepted in about a millisecond; refuting a violation that the
//! precheck misses takes longer, as the search must exhaust the alternatives. The search is exponential in the worst case, so it is bounded
//! by a per-key step limit ([`DEFAULT_STEP_LIMIT`] for [`History::check`], chosen with
//! [`History::check_with_limit`]); when it runs out the result is [`CheckError::Inconclusive`],
//! never a false verdict.
//!
//! # JSON lines
//!
//! [`History::from_jsonl`] reads histories recorded from real clusters, one event per line, with
//! line order as time:
//!
//! ```text
//! {"process":3,"type":"invoke","f":"write","key":"k7","value":"v123"}
//! {"process":3,"type":"ok","f":"write","key":"k7","value":"v123"}
//! ```
//!
//! - `process`: the client, a non-negative integer; each has at most one operation in flight;
//! - `type`: `invoke`; or `ok` (completed), `fail` (see below) or `info` (outcome unknown), which
//!   end the process's operation in flight;
//! - `f`: `read`, `write`, `cas` or `delete`;
//! - `key`: a string;
//! - `value`: for `write` the written string; for `read` the string read, or `null` when the key
//!   was absent (on the completion; ignored on the invocation); for `cas` the array
//!   `[expected, new]` where `expected` may be `null` (absent); unused for `delete`.
//!
//! `fail` means "certainly not applied" for `read`, `write` and `delete`. For `cas` a `fail` means
//! that the compare failed, which the checker uses as an observation ([`HistoryRet::CasFailed`]):
//! a cas rejected for another reason (an abort, overload) must be recorded as `info` if it may
//! have been applied, or left out otherwise. Unknown fields are ignored; operations still in
//! flight at the end of the input have unknown outcomes. Values are taken as their UTF-8 bytes.
//!
//! # Example
//!
//! ```
//! use hermes_core::history::{History, HistoryOp, HistoryRet};
//!
//! let mut history = History::new();
//! let w = history.invoke(1, "k".into(), HistoryOp::Write("v1".into()), 10);
//! history.complete(w, HistoryRet::Ok, 20);
//! let r = history.invoke(2, "k".into(), HistoryOp::Read, 30);
//! history.complete(r, HistoryRet::Read(None), 40); // stale: the write completed before
//! assert!(history.check().is_err());
//! ```

use crate::types::{Key, Value};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;

mod jsonl;
mod model;
mod report;
mod search;
#[cfg(test)]
mod tests;

pub use jsonl::ParseError;

/// The per-key step limit of [`History::check`].
///
/// A step is a small unit of search work: examining one candidate operation, backtracking once,
/// comparing one visited configuration, or storing one word of the memo cache (a stored
/// configuration costs a few steps more than its size in words). Accepting a typical key takes
/// hundreds to thousands of steps. The default bounds the search of one key to around a second
/// of CPU time and a few hundred megabytes.
pub const DEFAULT_STEP_LIMIT: u64 = 20_000_000;

/// Identifies one operation of a [`History`]: its position in recording order.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct OpId(usize);

impl OpId {
    /// The position of the operation in recording order, starting at 0.
    pub fn index(self) -> usize {
        self.0
    }
}

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// An operation on one key, as invoked by a client.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HistoryOp {
    /// Read the key; completes with [`HistoryRet::Read`].
    Read,
    /// Set the key to a value; completes with [`HistoryRet::Ok`].
    Write(Value),
    /// Make the key absent; completes with [`HistoryRet::Ok`].
    Delete,
    /// Compare-and-swap; completes with [`HistoryRet::Swapped`] or [`HistoryRet::CasFailed`].
    Cas {
        /// The state the key must hold for the swap (`None`: absent).
        expected: Option<Value>,
        /// The value installed by a swap.
        new: Value,
    },
}

/// The result of a completed operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum HistoryRet {
    /// The value a [`HistoryOp::Read`] returned (`None`: absent).
    Read(Option<Value>),
    /// A [`HistoryOp::Write`] or [`HistoryOp::Delete`] took effect.
    Ok,
    /// A [`HistoryOp::Cas`] found `expected` and installed `new`.
    Swapped,
    /// A [`HistoryOp::Cas`] found a state other than `expected` and changed nothing.
    CasFailed,
}

impl HistoryRet {
    /// Whether `self` is a possible result of `op`.
    fn fits(&self, op: &HistoryOp) -> bool {
        matches!(
            (op, self),
            (HistoryOp::Read, HistoryRet::Read(_))
                | (HistoryOp::Write(_) | HistoryOp::Delete, HistoryRet::Ok)
                | (
                    HistoryOp::Cas { .. },
                    HistoryRet::Swapped | HistoryRet::CasFailed
                )
        )
    }
}

/// A point in the history: caller time, then recording order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
struct Stamp {
    time: u64,
    seq: u64,
}

/// What became of an operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
enum Outcome {
    /// Neither completed nor failed: it may or may not have taken effect.
    Unknown,
    /// Completed with `ret` at `at`.
    Completed { ret: HistoryRet, at: Stamp },
    /// Certainly not applied.
    Failed,
}

/// One recorded operation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    client: u64,
    key: Key,
    op: HistoryOp,
    invoked: Stamp,
    outcome: Outcome,
}

/// A recorded history of client operations on any number of keys.
///
/// Record every operation with [`invoke`](History::invoke), then either
/// [`complete`](History::complete) it, [`fail`](History::fail) it, or leave it with an unknown
/// outcome; then [`check`](History::check) the history. Recording mistakes (completing an
/// operation twice, a result that does not fit the operation, a completion before the invocation)
/// do not panic: they make [`check`](History::check) return [`CheckError::Malformed`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    records: Vec<Record>,
    next_seq: u64,
    malformed: Option<String>,
}

impl History {
    /// An empty history.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that `client` invoked `op` on `key` at `time`. Until it is completed or failed,
    /// the operation's outcome is unknown.
    pub fn invoke(&mut self, client: u64, key: Key, op: HistoryOp, time: u64) -> OpId {
        let invoked = self.stamp(time);
        let id = OpId(self.records.len());
        self.records.push(Record {
            client,
            key,
            op,
            invoked,
            outcome: Outcome::Unknown,
        });
        id
    }

    /// Records that operation `id` completed at `time` with result `ret`.
    pub fn complete(&mut self, id: OpId, ret: HistoryRet, time: u64) {
        let at = self.stamp(time);
        let problem = match self.records.get_mut(id.0) {
            None => Some(format!("completion of {id}, which was never invoked")),
            Some(record) if record.outcome != Outcome::Unknown => {
                Some(format!("second completion or failure of {id}"))
            }
            Some(record) if !ret.fits(&record.op) => Some(format!(
                "{id} is a {} but completed with {ret:?}",
                report::op_name(&record.op)
            )),
            Some(record) if time < record.invoked.time => Some(format!(
                "{id} completed at time {time}, before its invocation at time {}",
                record.invoked.time
            )),
            Some(record) => {
                record.outcome = Outcome::Completed { ret, at };
                None
            }
        };
        self.note(problem);
    }

    /// Records that operation `id` certainly did not take effect; it is left out of the check.
    pub fn fail(&mut self, id: OpId) {
        let problem = match self.records.get_mut(id.0) {
            None => Some(format!("failure of {id}, which was never invoked")),
            Some(record) if record.outcome != Outcome::Unknown => {
                Some(format!("second completion or failure of {id}"))
            }
            Some(record) => {
                record.outcome = Outcome::Failed;
                None
            }
        };
        self.note(problem);
    }

    /// The number of recorded operations (whatever their outcome).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no operation was recorded.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Checks that the history is linearizable, with the per-key step limit
    /// [`DEFAULT_STEP_LIMIT`].
    pub fn check(&self) -> Result<(), CheckError> {
        self.check_with_limit(DEFAULT_STEP_LIMIT)
    }

    /// Checks that the history is linearizable, giving up on a key after `max_steps` search steps.
    ///
    /// Keys are checked in byte order. The first key found not linearizable is reported; if none
    /// is but the search ran out of steps on some key, the first such key is reported as
    /// [`CheckError::Inconclusive`].
    pub fn check_with_limit(&self, max_steps: u64) -> Result<(), CheckError> {
        if let Some(problem) = &self.malformed {
            return Err(CheckError::Malformed(problem.clone()));
        }
        // `complete` keeps these invariants; a deserialized history may not.
        for (index, record) in self.records.iter().enumerate() {
            if let Outcome::Completed { ret, at } = &record.outcome {
                if !ret.fits(&record.op) || *at <= record.invoked {
                    return Err(CheckError::Malformed(format!(
                        "{} has an invalid completion",
                        OpId(index)
                    )));
                }
            }
        }
        let mut by_key: BTreeMap<&Key, Vec<usize>> = BTreeMap::new();
        for (index, record) in self.records.iter().enumerate() {
            by_key.entry(&record.key).or_default().push(index);
        }
        let mut inconclusive = None;
        for (key, ops) in by_key {
            let mut key_ops = model::KeyOps::build(&self.records, &ops);
            key_ops.merge_unnamed();
            key_ops.drop_unobservable();
            let stuck = match key_ops.precheck() {
                Some(stuck) => stuck,
                None => match search::search(&key_ops, max_steps) {
                    search::Search::Linearizable => continue,
                    search::Search::Stuck(stuck) => stuck,
                    search::Search::Inconclusive { steps } => {
                        if inconclusive.is_none() {
                            inconclusive = Some(CheckError::Inconclusive {
                                key: key.clone(),
                                steps,
                            });
                        }
                        continue;
                    }
                },
            };
            let violation = report::violation(&self.records, &ops, &key_ops, &stuck);
            return Err(CheckError::NotLinearizable(violation));
        }
        inconclusive.map_or(Ok(()), Err)
    }

    /// Reads a history in the JSON-lines format described in the [module docs](self).
    pub fn from_jsonl(input: &str) -> Result<History, ParseError> {
        jsonl::parse(input)
    }

    fn stamp(&mut self, time: u64) -> Stamp {
        let seq = self.next_seq;
        self.next_seq += 1;
        Stamp { time, seq }
    }

    fn note(&mut self, problem: Option<String>) {
        if self.malformed.is_none() {
            self.malformed = problem;
        }
    }
}

/// Why [`History::check`] did not accept a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckError {
    /// The operations on one key have no linearization.
    NotLinearizable(Violation),
    /// The search on `key` ran out of steps before reaching a verdict: the history may or may not
    /// be linearizable.
    Inconclusive {
        /// The key whose search was cut short.
        key: Key,
        /// The steps spent on it.
        steps: u64,
    },
    /// The recording API was misused (the first mistake is described).
    Malformed(String),
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::NotLinearizable(violation) => violation.fmt(f),
            CheckError::Inconclusive { key, steps } => write!(
                f,
                "linearizability of key {} is undecided: the search gave up after {steps} steps",
                report::Bytes(&key[..])
            ),
            CheckError::Malformed(problem) => write!(f, "malformed history: {problem}"),
        }
    }
}

impl std::error::Error for CheckError {}

/// Evidence that the operations on one key are not linearizable.
///
/// Names a completed operation (`op`) that no linearization can place. When real-time order alone
/// rules it out (see the precheck in the [module docs](self)), `prefix` is empty and the
/// explanation names the operations involved. Otherwise the search reports the deepest point it
/// reached: the longest sequence of operations it linearized (`prefix`), after which `op` could
/// not be placed. Its [`Display`](fmt::Display) names the key and shows the ops of the key
/// around `op`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// The key.
    pub key: Key,
    /// A completed operation that no linearization can place.
    pub op: OpId,
    /// The deepest linearizable prefix the search reached, in linearization order (empty when
    /// no search was needed).
    pub prefix: Vec<OpId>,
    /// A readable description: why `op` cannot be placed, the prefix (its last few ops) and the
    /// ops of the key around `op` in invocation order.
    pub explanation: String,
}

impl std::error::Error for Violation {}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "key {} is not linearizable: {}",
            report::Bytes(&self.key[..]),
            self.explanation
        )
    }
}
