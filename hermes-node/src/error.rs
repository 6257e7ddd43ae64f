//! The one error type of this crate.

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// An error from a [`crate::ClusterNode`] or a [`crate::RemoteClient`].
///
/// Request errors keep the names of the project's seed where they fit (`NotResponsible`,
/// `NoActiveReplicas`, `NetworkError`, `QuorumFailed`, `ValueNotFound`). Every `Display` is one
/// line. The type travels over the client protocol, so its payloads are plain strings.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum NodeError {
    /// This node serves nothing right now: it is restarting, joining, copying state, removed
    /// from the view, or shutting down. Another node may serve the request.
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
    /// The request timed out while this node could not reach a majority of the view (it held
    /// no lease). With `outcome_unknown`, an update may still take effect.
    #[error("no quorum: the node holds no lease and the request timed out (outcome unknown: {outcome_unknown})")]
    QuorumFailed {
        /// Whether the update may still take effect.
        outcome_unknown: bool,
    },
    /// The key does not exist (never written, or deleted).
    #[error("value not found")]
    ValueNotFound,
    /// The request did not finish in time. With `outcome_unknown`, an update may still take
    /// effect; without it, it certainly did not.
    #[error("timed out (outcome unknown: {outcome_unknown})")]
    Timeout {
        /// Whether the update may still take effect.
        outcome_unknown: bool,
    },
    /// A configured bound on queued or pending requests is reached; retry later.
    #[error("overloaded: {0}")]
    Overloaded(String),
    /// The compare-and-swap compared a different value; nothing was written.
    #[error("compare-and-swap failed: the key holds a different value")]
    CasFailed,
    /// The compare-and-swap lost a race with a concurrent update and did not take effect.
    #[error("aborted: a concurrent update to the key won; retry")]
    Aborted,
    /// The request is malformed: an empty key, a key or value over its limit.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The configuration is invalid; the message names the file and field.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The store failed; the node stopped (fail-stop). The message names the path.
    #[error("storage failure: {0}")]
    Store(String),
    /// A file or socket could not be used; the message names it.
    #[error("{0}")]
    Io(String),
    /// The node has stopped (shut down, or failed earlier with the logged error).
    #[error("node stopped")]
    Stopped,
}

impl NodeError {
    /// Whether an update that failed with this error may still take effect.
    pub fn outcome_unknown(&self) -> bool {
        match self {
            NodeError::Timeout { outcome_unknown }
            | NodeError::QuorumFailed { outcome_unknown } => *outcome_unknown,
            NodeError::NetworkError(_) | NodeError::Stopped => true,
            _ => false,
        }
    }
}

impl From<hermes_net::NetError> for NodeError {
    fn from(err: hermes_net::NetError) -> Self {
        NodeError::NetworkError(err.to_string())
    }
}

impl From<hermes_store::StoreError> for NodeError {
    fn from(err: hermes_store::StoreError) -> Self {
        NodeError::Store(err.to_string())
    }
}
