//! The durability mode a node runs with, chosen in configuration, and the token that names one
//! [`crate::Action::Persist`].

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How a node makes its records durable. Written in configuration as `memory`, `async` or `sync`.
///
/// | mode | what the core does | what survives |
/// |---|---|---|
/// | `memory` | emits no [`Persist`](crate::Action::Persist) (records live in the replica only) | a crash of fewer than all replicas loses nothing: a restarted node ([`Node::restart`](crate::Node::restart)) rejoins empty and copies the state from a live replica. A crash of every replica at once loses the data, and the cluster cannot form a view again by itself |
/// | `async` | emits a `Persist` whenever a key takes a newer record; nothing waits for [`handle_persisted`](crate::Node::handle_persisted) | as `memory`: the store may lack the last acknowledged writes (those still queued), so a node restarted with [`Node::recover`](crate::Node::recover) does not trust its records and copies the state from a live replica. A crash of every replica at once may lose acknowledged writes, and the cluster does not re-form by itself |
/// | `sync` | emits `Persist` as in `async`; a follower ACKs an INV, and a coordinator commits (sends its VAL and answers the client), only once the record is durable; a shadow reports caught up only once its copied state is durable | no acknowledged write is lost, even when every replica crashes at once: the members of the last view restart with [`Node::recover`](crate::Node::recover) and form a new view among themselves |
///
/// In every mode a restarted node rejoins through the membership service before it serves or
/// coordinates; recovered records start Invalid, and are replayed (`sync`, taken back as a
/// member) or dropped for a state transfer.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// Durability through replication alone: nothing is written to a store. The default, as in
    /// the Hermes paper.
    #[default]
    Memory,
    /// Records are written in the background in groups; requests never wait for the disk.
    Async,
    /// A record is durable before the write it belongs to is acknowledged.
    Sync,
}

impl Durability {
    /// Every mode, in the order of increasing durability.
    pub const ALL: [Durability; 3] = [Durability::Memory, Durability::Async, Durability::Sync];

    /// The name used in configuration: `memory`, `async` or `sync`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Durability::Memory => "memory",
            Durability::Async => "async",
            Durability::Sync => "sync",
        }
    }

    /// Whether the node writes records to its store at all (`async` and `sync`).
    pub const fn persists(self) -> bool {
        !matches!(self, Durability::Memory)
    }

    /// Whether acknowledgements wait until the record is durable (`sync` only).
    pub const fn acks_wait_for_disk(self) -> bool {
        matches!(self, Durability::Sync)
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`Durability`] from a string that names no mode.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown durability mode {input:?}: expected one of memory, async, sync")]
pub struct ParseDurabilityError {
    /// The string that was given.
    pub input: String,
}

impl FromStr for Durability {
    type Err = ParseDurabilityError;

    /// Parses `memory`, `async` or `sync` (exactly, lowercase, as in configuration files).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Durability::ALL
            .into_iter()
            .find(|mode| mode.as_str() == s)
            .ok_or_else(|| ParseDurabilityError {
                input: s.to_string(),
            })
    }
}

/// Names one [`crate::Action::Persist`]. Tokens strictly increase in the order a node emits
/// them, starting at 1 for every [`crate::Node`] (a restarted node starts over);
/// [`crate::Node::handle_persisted`] with a token means every `Persist` up to and including it
/// is durable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PersistToken(pub u64);

impl fmt::Display for PersistToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_memory() {
        assert_eq!(Durability::default(), Durability::Memory);
    }

    #[test]
    fn parses_and_prints_config_names() {
        for mode in Durability::ALL {
            assert_eq!(mode.to_string().parse::<Durability>(), Ok(mode));
        }
        assert_eq!("sync".parse::<Durability>(), Ok(Durability::Sync));
        let err = "fsync".parse::<Durability>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown durability mode \"fsync\": expected one of memory, async, sync"
        );
        assert!("Sync".parse::<Durability>().is_err());
    }

    #[test]
    fn predicates() {
        assert!(!Durability::Memory.persists());
        assert!(Durability::Async.persists() && !Durability::Async.acks_wait_for_disk());
        assert!(Durability::Sync.persists() && Durability::Sync.acks_wait_for_disk());
    }

    #[test]
    fn tokens_order_by_number() {
        assert!(PersistToken(2) > PersistToken(1));
        assert_eq!(PersistToken::default(), PersistToken(0));
    }
}
