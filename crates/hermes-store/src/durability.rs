//! The durability mode a node runs with, chosen in configuration.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// How a node makes its records durable. Written in configuration as `memory`, `async` or `sync`.
///
/// | mode | what a node does with its store | what survives |
/// |---|---|---|
/// | `memory` | nothing (records live in the replica only) | a crash of fewer than all replicas loses nothing: a restarted node rejoins empty and copies the state from a live replica |
/// | `async` | hands every committed record to an [`AsyncWriter`](crate::AsyncWriter), which writes in the background in groups (one transaction and one `sync` per group); requests never wait for the disk | as `memory`; in addition a restarted node comes back with everything it had written (fast rejoin), and a whole-cluster power loss loses at most the records still queued in the writers |
/// | `sync` | a follower ACKs an INV, and a coordinator reports a write done, only after the record is durable: the core emits `Persist` actions and waits for `handle_persisted` (it never blocks); the node hands each `Persist` to an [`AsyncWriter`](crate::AsyncWriter) with its token and reports it persisted when the writer says it is durable, so concurrent writes share one fsync | a whole-cluster power loss loses no acknowledged write |
///
/// In every mode a restarted node still rejoins through membership and catches up before it
/// serves; persistence shortens that catch-up and, in `sync` mode, protects against losing every
/// replica at once.
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
}
