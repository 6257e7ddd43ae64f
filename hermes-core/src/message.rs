//! The replication messages exchanged between replicas.
//!
//! The sender of a message is not a field: the transport authenticates it and hands it to
//! [`crate::Replica::handle_message`] as `from`.

use crate::types::{Epoch, Key, Ts, Value};
use serde::{Deserialize, Serialize};

/// A message between replicas.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Message {
    /// An invalidation carrying the new value (early value propagation).
    Inv(Inv),
    /// An acknowledgement of an INV, carrying the INV's timestamp.
    Ack(Ack),
    /// A validation: the update with this timestamp is committed.
    Val(Val),
    /// A membership message (heartbeats, view agreement, join, state transfer).
    Membership(crate::membership::MembershipMessage),
}

/// An invalidation: "the key now has timestamp `ts` and value `value`".
///
/// Sent by a coordinator, a replayer, or (as the RMW "abort-INV") by a follower that holds a higher
/// timestamp than an RMW-INV it received.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Inv {
    /// The key.
    pub key: Key,
    /// The timestamp of the update.
    pub ts: Ts,
    /// The new value, or `None` for a tombstone.
    pub value: Option<Value>,
    /// Whether the update is a read-modify-write (which may abort).
    pub is_rmw: bool,
    /// The sender's epoch; receivers in another epoch drop the message.
    pub epoch: Epoch,
}

/// An acknowledgement: "I hold a timestamp at least `ts` for `key`".
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Ack {
    /// The key.
    pub key: Key,
    /// The timestamp copied from the acknowledged INV (never the follower's own).
    pub ts: Ts,
    /// The timestamp the follower holds after handling the INV (at least `ts`, or higher when
    /// the follower already knows a newer update). The coordinator forwards the highest one in
    /// its VAL, so that no RMW starts from a value that a concurrent update already supersedes.
    pub held: Ts,
    /// The sender's epoch; receivers in another epoch drop the message.
    pub epoch: Epoch,
}

/// A validation: "the update with timestamp `ts` is committed".
///
/// Receivers act on it only on exact timestamp equality; its epoch is informational (a committed
/// update stays committed across epochs).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Val {
    /// The key.
    pub key: Key,
    /// The committed timestamp.
    pub ts: Ts,
    /// The highest timestamp any replica held when it ACKed `ts`: an update above `ts` may be in
    /// flight up to this timestamp, so RMWs wait until the key is Valid at least this high.
    pub highest: Ts,
    /// The sender's epoch.
    pub epoch: Epoch,
}
