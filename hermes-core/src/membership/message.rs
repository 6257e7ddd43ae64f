//! Membership messages: heartbeats with lease grants, single-decree Paxos per epoch, view
//! catch-up, join and state transfer.

use crate::types::{Epoch, Key, NodeId, Ts, Value};
use crate::view::View;
use serde::{Deserialize, Serialize};

/// A Paxos ballot, ordered by `(round, node)`.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Ballot {
    /// The round; a proposer picks one above every round it has seen.
    pub round: u64,
    /// The proposer; breaks ties.
    pub node: NodeId,
}

/// One key's state in a state-transfer chunk.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TransferEntry {
    /// The key.
    pub key: Key,
    /// The donor's timestamp.
    pub ts: Ts,
    /// The donor's value (`None` = tombstone).
    pub value: Option<Value>,
    /// Whether the donor holds the key Valid (committed).
    pub valid: bool,
    /// Whether the update is an RMW.
    pub is_rmw: bool,
    /// The donor's last writer of the key.
    pub last_writer: NodeId,
}

/// A membership message.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MembershipMessage {
    /// Liveness and a lease request for `epoch`.
    Heartbeat {
        /// The sender's epoch.
        epoch: Epoch,
        /// The sender's heartbeat round.
        round: u64,
    },
    /// The answer to a heartbeat: whether the lease for `epoch` is granted.
    HeartbeatAck {
        /// The epoch of the heartbeat.
        epoch: Epoch,
        /// The round of the heartbeat.
        round: u64,
        /// Whether the sender granted the lease.
        granted: bool,
    },
    /// Paxos phase 1a for the view of `epoch`.
    Prepare {
        /// The epoch being decided.
        epoch: Epoch,
        /// The proposer's ballot.
        ballot: Ballot,
    },
    /// Paxos phase 1b.
    Promise {
        /// The epoch being decided.
        epoch: Epoch,
        /// The ballot promised.
        ballot: Ballot,
        /// The highest-ballot view this acceptor accepted for `epoch`, if any.
        accepted: Option<(Ballot, View)>,
    },
    /// A refusal: the acceptor promised a higher ballot.
    Reject {
        /// The epoch being decided.
        epoch: Epoch,
        /// The ballot the acceptor promised.
        promised: Ballot,
    },
    /// Paxos phase 2a.
    Accept {
        /// The epoch being decided.
        epoch: Epoch,
        /// The proposer's ballot.
        ballot: Ballot,
        /// The proposed view.
        view: View,
    },
    /// Paxos phase 2b.
    Accepted {
        /// The epoch being decided.
        epoch: Epoch,
        /// The ballot accepted.
        ballot: Ballot,
    },
    /// A decided view; receivers install it if it is newer than theirs.
    Decided {
        /// The view.
        view: View,
    },
    /// "Send me your latest decided view."
    ViewRequest,
    /// A request to join (or, with a higher incarnation, rejoin after a restart) as a shadow.
    Join {
        /// The joiner's incarnation; it grows with every restart.
        incarnation: u64,
        /// Whether the joiner restarted under `sync` durability with a store that holds every
        /// write acknowledged in a view listing it as a member (see
        /// [`crate::DurableMembership::complete_store`]). A view that still lists the joiner as
        /// a member may then take it back as a member at once (its records Invalid until
        /// replayed) instead of as a shadow that needs a state transfer.
        complete_store: bool,
    },
    /// A join refused, with the reason.
    JoinRefused {
        /// Why.
        reason: String,
    },
    /// A shadow asks a donor for the keys after `after` (from the start when `None`).
    TransferRequest {
        /// The epoch in which the requester became a shadow.
        epoch: Epoch,
        /// Resume after this key.
        after: Option<Key>,
    },
    /// A chunk of the donor's state.
    TransferChunk {
        /// The epoch of the request.
        epoch: Epoch,
        /// The key the chunk continues after (echoed from the request).
        after: Option<Key>,
        /// The entries, in key order.
        entries: Vec<TransferEntry>,
        /// Whether this is the last chunk.
        done: bool,
    },
    /// The sender asks to be removed from the cluster (graceful leave).
    Leave,
    /// A shadow finished its state transfer and asks to be promoted.
    CaughtUp {
        /// The epoch in which the shadow was added.
        epoch: Epoch,
        /// The shadow's incarnation: a report from an earlier life of the node must not promote
        /// the current one before its own transfer is complete.
        incarnation: u64,
    },
}
