//! The two error types of the node runtime: what a request answers, and what stops a node.
//!
//! - [`RequestError`] (defined in `hermes-core`, re-exported here): the outcome of one request —
//!   what a node answers, what travels on the client protocol, what a client of
//!   [`crate::ClusterNode`] or [`crate::RemoteClient`] matches on.
//! - [`NodeError`]: a failure of the node itself (its configuration, its store, its files and
//!   sockets), from starting, running or stopping it. It never travels on the wire.

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use hermes_core::RequestError;

/// A failure of a node (or of a client's setup): configuration, store, files and sockets.
///
/// Every `Display` is one line and names the file, field or address at fault.
#[derive(Clone, Debug, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum NodeError {
    /// The configuration is invalid; the message names the file and field.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The store failed; the node stopped (fail-stop). The message names the path.
    #[error("storage failure: {0}")]
    Store(String),
    /// A file or socket could not be used; the message names it.
    #[error("{0}")]
    Io(String),
    /// [`crate::ClusterNode::wait_active`] gave up: the node was not Active in time.
    #[error("node not active after {waited_ms} ms (state: {state})")]
    NotActive {
        /// How long it waited.
        waited_ms: u64,
        /// The last state seen.
        state: crate::NodeState,
    },
}

impl From<hermes_store::StoreError> for NodeError {
    fn from(err: hermes_store::StoreError) -> Self {
        NodeError::Store(err.to_string())
    }
}
