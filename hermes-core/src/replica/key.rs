//! Per-key protocol state.

use crate::op::RequestId;
use crate::types::{Epoch, Instant, NodeId, Ts, Value};
use std::collections::{BTreeSet, VecDeque};

/// The protocol state of one key at one replica (the paper's key states).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyState {
    /// The value is committed; reads are served locally (when the replica may serve).
    Valid,
    /// An INV was adopted; waiting for its VAL (or a replay) before serving.
    Invalid,
    /// This replica coordinates a write or RMW on the key.
    Write,
    /// This replica replays someone's update with its original timestamp and value.
    Replay,
    /// This replica's pending write or replay was superseded by a higher INV; it still gathers its
    /// ACKs so the superseded write completes (writes never abort).
    Trans,
}

/// What kind of local update a replica is driving on a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpdateKind {
    /// A client write or delete coordinated here.
    Write,
    /// A client read-modify-write (CAS) coordinated here; it may abort.
    Rmw,
    /// A replay of an update adopted from another node (or of a lost VAL), same timestamp and value.
    Replay,
}

/// The one local update a replica may have in flight per key, with its exact-timestamp ACK set.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pending {
    /// The timestamp of the update; only ACKs carrying exactly this timestamp count.
    pub ts: Ts,
    /// The value the update installs (`None` = tombstone); kept for retransmission, since in
    /// Trans the key's value is the superseding one.
    pub value: Option<Value>,
    /// Whether the INV is flagged as an RMW (RMWs, and replays of RMWs, may abort).
    pub is_rmw: bool,
    /// What this update is.
    pub kind: UpdateKind,
    /// The replicas that ACKed `ts` in `epoch`. Cleared on every view change.
    pub acks: BTreeSet<NodeId>,
    /// The epoch the INV was last broadcast in; ACKs of any other epoch never count.
    pub epoch: Epoch,
    /// The client request waiting for this update, if any.
    pub client: Option<RequestId>,
    /// The highest timestamp held by any replica whose ACK was counted.
    pub highest_acked: Ts,
}

/// Everything a replica keeps about one key.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyEntry {
    /// The value held (committed when Valid, adopted otherwise); `None` = absent or deleted.
    pub value: Option<Value>,
    /// The timestamp of the value held. Never decreases.
    pub ts: Ts,
    /// The protocol state.
    pub state: KeyState,
    /// The node that sent the INV this replica adopted last (or this node, when it coordinates or
    /// replays); if it leaves the view while the key is Invalid, the update is replayed.
    pub last_writer: NodeId,
    /// Whether the update that produced `ts` is an RMW (replays keep the flag).
    pub is_rmw: bool,
    /// The local update in flight, if any (present exactly in Write, Replay and Trans).
    pub pending: Option<Pending>,
    /// A client RMW coordinated here that lost to a higher update; it is answered `Aborted` once
    /// the key is Valid at a higher timestamp (only then can the lost RMW never commit).
    pub aborted_rmw: Option<RequestId>,
    /// The highest timestamp known to exist for this key when it last became Valid (from the
    /// ACKs of the committing update). While it exceeds `ts`, a concurrent update based on an
    /// older version may still land above `ts`, so RMWs wait (reads and writes do not).
    pub known_max: Ts,
    /// Requests stalled on this key, in arrival order.
    pub waiting: VecDeque<RequestId>,
    /// The key's armed deadline: INV retransmission while an update is pending, or the replay of
    /// an Invalid key that requests wait on.
    pub deadline: Option<Instant>,
}

impl KeyEntry {
    /// The entry of a key this replica has never heard of: Valid, absent, at [`Ts::ZERO`].
    pub fn absent() -> Self {
        KeyEntry {
            value: None,
            ts: Ts::ZERO,
            state: KeyState::Valid,
            last_writer: NodeId(0),
            is_rmw: false,
            pending: None,
            aborted_rmw: None,
            known_max: Ts::ZERO,
            waiting: VecDeque::new(),
            deadline: None,
        }
    }

    /// Whether the entry carries no information beyond "absent" and may be dropped.
    pub(crate) fn is_pristine(&self) -> bool {
        self.ts == Ts::ZERO
            && self.state == KeyState::Valid
            && self.pending.is_none()
            && self.aborted_rmw.is_none()
            && self.waiting.is_empty()
            && self.deadline.is_none()
    }

    /// How many client requests this key holds (waiting, coordinating or awaiting an abort).
    pub(crate) fn request_count(&self) -> usize {
        self.waiting.len()
            + usize::from(self.pending.as_ref().is_some_and(|p| p.client.is_some()))
            + usize::from(self.aborted_rmw.is_some())
    }
}
