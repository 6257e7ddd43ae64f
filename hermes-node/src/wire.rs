//! The client protocol's application messages, carried by [`hermes_net::Client`].

use hermes_core::{Op, OpResult};
use serde::{Deserialize, Serialize};

use crate::Status;

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
    Done(OpResult),
    /// The answer to [`ClientCall::Status`].
    Status(Box<Status>),
}
