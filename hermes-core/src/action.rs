//! Outputs of the core: data describing the effects the driver must carry out.

use crate::durability::PersistToken;
use crate::message::Message;
use crate::op::{OpResult, RequestId};
use crate::types::{Key, NodeId, Record};

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
    /// Write these records to the store (emitted only with `async` or `sync` durability). Each
    /// is the key's latest record; a later `Persist` may replace it. Under `sync` the node
    /// waits for [`crate::Node::handle_persisted`] with this token (or a higher one) before
    /// anything that depends on the records (ACKs, commits, a shadow's promotion); the driver
    /// never has to block.
    Persist {
        /// The records, one per key, in key order.
        records: Vec<(Key, Record)>,
        /// The token to report once the records are durable.
        token: PersistToken,
    },
    /// Write the membership state durably (fsync) before carrying out any later action: a
    /// promise or acceptance sent after it must survive a restart.
    SaveMembership(crate::membership::DurableMembership),
    /// A new view was installed (for logs and metrics).
    ViewInstalled(crate::view::View),
    /// This node's request to join was refused (for example: its id is already a member).
    JoinRefused(String),
}
