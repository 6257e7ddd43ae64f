//! The client protocol's application messages, carried by [`hermes_net::Client`].

use bytes::Bytes;
use hermes_core::{Op, Outcome, Ts};
use serde::{Deserialize, Serialize};

use crate::{NodeError, Status};

/// A request from a client to a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientCall {
    /// Run one operation.
    Execute(Op),
    /// Report the node's status.
    Status,
}

/// A node's answer to a [`ClientCall`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientAnswer {
    /// The result of [`ClientCall::Execute`]; a read of an absent key is
    /// `Ok(Outcome::Value(None))`.
    Done(Result<Outcome, NodeError>),
    /// The answer to [`ClientCall::Status`].
    Status(Box<Status>),
}

/// The timestamp of a committed update, from its outcome.
pub(crate) fn committed(outcome: Outcome) -> Result<Ts, NodeError> {
    match outcome {
        Outcome::Written { ts } | Outcome::Swapped { ts } => Ok(ts),
        Outcome::Value(_) => Err(NodeError::NetworkError(
            "unexpected answer to an update: a value".into(),
        )),
    }
}

/// The value a read found; an absent key is [`NodeError::ValueNotFound`].
pub(crate) fn found(outcome: Outcome) -> Result<Bytes, NodeError> {
    match outcome {
        Outcome::Value(Some(value)) => Ok(value),
        Outcome::Value(None) => Err(NodeError::ValueNotFound),
        other => Err(NodeError::NetworkError(format!(
            "unexpected answer to a read: {other:?}"
        ))),
    }
}
