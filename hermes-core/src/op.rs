//! Client operations and their outcomes.

use crate::types::{Key, Ts, Value};
use serde::{Deserialize, Serialize};
use thiserror::Error;

/// A caller-chosen identifier of a client request, unique among the requests in flight at a replica.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct RequestId(pub u64);

/// A single-key client operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Op {
    /// Read the key: served locally when the key is Valid and the replica may serve.
    Read {
        /// The key.
        key: Key,
    },
    /// Write a value (a non-aborting update, version + 2).
    Write {
        /// The key.
        key: Key,
        /// The new value.
        value: Value,
    },
    /// Delete the key: a tombstone write.
    Delete {
        /// The key.
        key: Key,
    },
    /// Compare-and-swap (an RMW, version + 1): set `new` if the current value equals `expected`
    /// (`None` = the key is absent).
    Cas {
        /// The key.
        key: Key,
        /// The value the key must hold, or `None` if it must be absent.
        expected: Option<Value>,
        /// The value to install.
        new: Value,
    },
}

impl Op {
    /// The key the operation is about.
    pub fn key(&self) -> &Key {
        match self {
            Op::Read { key } | Op::Write { key, .. } | Op::Delete { key } | Op::Cas { key, .. } => {
                key
            }
        }
    }
}

/// The successful outcome of an operation.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// A read's result: the value, or `None` when the key is absent or deleted.
    Value(Option<Value>),
    /// A write or delete committed with this timestamp.
    Written {
        /// The timestamp of the committed update.
        ts: Ts,
    },
    /// A compare-and-swap committed with this timestamp.
    Swapped {
        /// The timestamp of the committed RMW.
        ts: Ts,
    },
}

/// Why a request did not succeed: what a node answers, what travels on the client protocol and
/// what a client matches on. The one request-outcome type of the workspace.
///
/// The core answers with `InvalidArgument`, `Overloaded`, `CasFailed`, `Aborted` and `Timeout`;
/// the node runtime and its clients add the rest (the names of the project's seed:
/// `NotResponsible`, `NoActiveReplicas`, `NetworkError`, `QuorumFailed`, `ValueNotFound`, and
/// `Stopped`). Every `Display` is one line; payloads are plain strings so that the type travels.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Error, Serialize, Deserialize)]
pub enum RequestError {
    // The order of the variants is their encoding on the client protocol: append, never reorder.
    /// The node serves nothing right now: it is restarting, joining, copying state, removed from
    /// the view, or shutting down. Another node may serve the request.
    #[error("node {node} is not serving: {reason}")]
    NotResponsible {
        /// The node that refused.
        node: u32,
        /// Why, in a few words.
        reason: String,
    },
    /// No node of the cluster configuration could be reached.
    #[error("no active replicas: {0}")]
    NoActiveReplicas(String),
    /// A connection to a node failed or broke; the request's outcome is unknown if it was sent.
    #[error("network error: {0}")]
    NetworkError(String),
    /// The request timed out while the node could not reach a majority of the view (it held no
    /// lease). With `outcome_unknown`, an update may still take effect.
    #[error("no quorum: the node holds no lease and the request timed out (outcome unknown: {outcome_unknown})")]
    QuorumFailed {
        /// Whether the update may still take effect.
        outcome_unknown: bool,
    },
    /// The key does not exist (never written, or deleted).
    #[error("value not found")]
    ValueNotFound,
    /// The request did not finish in time. With `outcome_unknown` the update may or may not take
    /// effect; without it, it certainly did not.
    #[error("timed out (outcome unknown: {outcome_unknown})")]
    Timeout {
        /// Whether the update may still take effect.
        outcome_unknown: bool,
    },
    /// A configured bound on pending requests is reached; retry later.
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// The compare-and-swap compared a different value; nothing was written.
    #[error("compare-and-swap failed: the key holds a different value")]
    CasFailed,
    /// The compare-and-swap lost a race with a concurrent update and did not take effect; retry.
    #[error("aborted: a concurrent update to the key won; retry")]
    Aborted,
    /// The request is malformed (empty key, key or value over the configured limit, a request id
    /// already in flight); the message names the limit.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The node stopped (shut down, or failed with a logged error) before it answered; an
    /// update may still have taken effect.
    #[error("node stopped")]
    Stopped,
}

impl RequestError {
    /// Whether an update that failed with this error may still take effect.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            RequestError::Timeout { outcome_unknown }
            | RequestError::QuorumFailed { outcome_unknown } => *outcome_unknown,
            RequestError::NetworkError(_) | RequestError::Stopped => true,
            _ => false,
        }
    }
}

/// The result of a request.
pub type OpResult = Result<Outcome, RequestError>;
