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
    /// Write the membership state durably (fsync) before carrying out any later action: a
    /// promise or acceptance sent after it must survive a restart.
    SaveMembership(crate::membership::DurableMembership),
    /// A new view was installed (for logs and metrics).
    ViewInstalled(crate::view::View),
    /// This node's request to join was refused (for example: its id is already a member).
    JoinRefused(String),
}
