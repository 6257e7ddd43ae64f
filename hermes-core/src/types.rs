//! Identifiers, timestamps and simulated-or-real time shared by every layer.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// A key: an arbitrary, non-empty byte string (bounded by [`crate::Config::key_bytes_max`]).
pub type Key = bytes::Bytes;

/// A value: an arbitrary byte string (bounded by [`crate::Config::value_bytes_max`]).
pub type Value = bytes::Bytes;

/// The identity of a node in the cluster.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct NodeId(pub u32);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// A membership epoch. Every view change increments it; INVs and ACKs of another epoch are dropped.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Epoch(pub u64);

impl Epoch {
    /// The epoch after this one, `None` for the last one (`u64::MAX`), which has no successor.
    pub fn next(self) -> Option<Epoch> {
        self.0.checked_add(1).map(Epoch)
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "e{}", self.0)
    }
}

/// A per-key logical timestamp, ordered lexicographically by `(version, node, incarnation)`.
///
/// `node` is the coordinator that created the timestamp and `incarnation` the life of its process
/// (it grows with every restart). Two different updates of one key never share a timestamp: a
/// coordinator only creates timestamps strictly above the one it holds, and a restarted node,
/// which may have lost what it created before, creates them under a new incarnation. With read-modify-writes enabled (always, here) a write adds 2 to the version and an RMW
/// adds 1, so a write always beats an RMW that read the same version.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Ts {
    /// The version number; compared first.
    pub version: u64,
    /// The coordinator that created this timestamp; breaks ties between equal versions.
    pub node: NodeId,
    /// The coordinator's incarnation when it created this timestamp.
    pub incarnation: u32,
}

impl Ts {
    /// The timestamp of a key that was never written (an absent key).
    pub const ZERO: Ts = Ts {
        version: 0,
        node: NodeId(0),
        incarnation: 0,
    };

    /// The highest version a timestamp may carry. A write adds 2 to the version it starts from, so
    /// this leaves room for one write above any version a peer may send; a key whose next version
    /// would pass it can no longer be updated (see [`crate::peer_numbers`]).
    pub const VERSION_MAX: u64 = u64::MAX - 2;

    /// Creates a timestamp of incarnation 0.
    pub const fn new(version: u64, node: NodeId) -> Self {
        Ts {
            version,
            node,
            incarnation: 0,
        }
    }

    /// This timestamp with another incarnation.
    pub const fn with_incarnation(self, incarnation: u32) -> Self {
        Ts {
            incarnation,
            ..self
        }
    }

    /// The timestamp a write coordinated by `node` takes over `self` (version + 2), `None` if it
    /// would pass [`Ts::VERSION_MAX`].
    pub fn next_write(self, node: NodeId) -> Option<Ts> {
        self.next_version(2, node)
    }

    /// The timestamp an RMW coordinated by `node` takes over `self` (version + 1), `None` if it
    /// would pass [`Ts::VERSION_MAX`].
    pub fn next_rmw(self, node: NodeId) -> Option<Ts> {
        self.next_version(1, node)
    }

    fn next_version(self, step: u64, node: NodeId) -> Option<Ts> {
        let version = self.version.checked_add(step)?;
        (version <= Ts::VERSION_MAX).then(|| Ts::new(version, node))
    }

    /// Whether this timestamp was created by `node` in `incarnation`.
    pub fn created_by(self, node: NodeId, incarnation: u32) -> bool {
        self.node == node && self.incarnation == incarnation
    }
}

impl fmt::Display for Ts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.incarnation == 0 {
            write!(f, "{}.{}", self.version, self.node.0)
        } else {
            write!(f, "{}.{}/{}", self.version, self.node.0, self.incarnation)
        }
    }
}

/// A point in monotonic time, in microseconds since an origin the driver chooses.
///
/// The core never reads a clock: every input carries an `Instant`, and the simulator hands out
/// simulated ones. Saturating arithmetic keeps far-future deadlines from overflowing.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Instant(u64);

impl Instant {
    /// The origin.
    pub const ZERO: Instant = Instant(0);
    /// A deadline that never comes.
    pub const NEVER: Instant = Instant(u64::MAX);

    /// An instant `micros` microseconds after the origin.
    pub const fn from_micros(micros: u64) -> Self {
        Instant(micros)
    }

    /// An instant `millis` milliseconds after the origin.
    pub const fn from_millis(millis: u64) -> Self {
        Instant(millis.saturating_mul(1000))
    }

    /// Microseconds since the origin.
    pub const fn as_micros(self) -> u64 {
        self.0
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: Instant) -> Duration {
        Duration::from_micros(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Instant {
    type Output = Instant;
    fn add(self, rhs: Duration) -> Instant {
        let micros = u64::try_from(rhs.as_micros()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(micros))
    }
}

impl Sub<Duration> for Instant {
    type Output = Instant;
    fn sub(self, rhs: Duration) -> Instant {
        let micros = u64::try_from(rhs.as_micros()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_sub(micros))
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06}s", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// What a key holds in storage and in the replica: a committed or pending value, or a tombstone.
///
/// This is the record type `hermes-store` persists: the latest `(ts, value)` per key is the whole
/// durable state of a Hermes replica (there is no replicated log).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Record {
    /// The timestamp of the update that produced this record.
    pub ts: Ts,
    /// The value, or `None` for a tombstone (a deleted key).
    pub value: Option<Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ts_orders_by_version_then_node() {
        assert!(Ts::new(2, NodeId(1)) > Ts::new(1, NodeId(9)));
        assert!(Ts::new(2, NodeId(2)) > Ts::new(2, NodeId(1)));
        assert_eq!(Ts::ZERO.next_write(NodeId(3)), Some(Ts::new(2, NodeId(3))));
        assert_eq!(Ts::ZERO.next_rmw(NodeId(3)), Some(Ts::new(1, NodeId(3))));
    }

    #[test]
    fn no_timestamp_or_epoch_is_created_past_the_limit() {
        let last_write = Ts::new(Ts::VERSION_MAX - 2, NodeId(1));
        assert_eq!(
            last_write.next_write(NodeId(1)),
            Some(Ts::new(Ts::VERSION_MAX, NodeId(1)))
        );
        assert_eq!(
            Ts::new(Ts::VERSION_MAX - 1, NodeId(1)).next_write(NodeId(1)),
            None
        );
        assert_eq!(Ts::new(u64::MAX, NodeId(1)).next_rmw(NodeId(1)), None);
        assert_eq!(Epoch(u64::MAX).next(), None);
        assert_eq!(Epoch(1).next(), Some(Epoch(2)));
    }

    #[test]
    fn instant_arithmetic_saturates() {
        assert_eq!(Instant::NEVER + Duration::from_secs(1), Instant::NEVER);
        assert_eq!(Instant::ZERO - Duration::from_secs(1), Instant::ZERO);
        assert_eq!(
            Instant::from_millis(3).saturating_since(Instant::from_millis(1)),
            Duration::from_millis(2)
        );
    }
}
