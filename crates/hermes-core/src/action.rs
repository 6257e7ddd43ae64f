//! Outputs of the core: data describing the effects the driver must carry out.

use crate::message::Message;
use crate::op::{OpResult, RequestId};
use crate::types::NodeId;

/// An effect requested by the core, drained with [`crate::Replica::poll_action`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Send `msg` to the replica `to`.
    Send {
        /// The destination.
        to: NodeId,
        /// The message.
        msg: Message,
    },
    /// Answer the client request `id`.
    Reply {
        /// The request being answered.
        id: RequestId,
        /// Its result.
        result: OpResult,
    },
}
