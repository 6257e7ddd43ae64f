//! Placement: which nodes keep a key when the cluster is sharded.
//!
//! Pure functions, stable across versions and platforms (slots and rankings are stored on disk and
//! sent on the wire, and every node and client must compute the same answers):
//! - **keys to slots** ([`key_slot`]): Redis Cluster's CRC16 of the key (or of its `{hash tag}`)
//!   modulo [`SLOTS`], so Redis-Cluster-aware clients route the same way;
//! - **slots to replicas** ([`rank`]): rendezvous (highest-random-weight) hashing ranks the nodes
//!   per slot. Given the cluster's members and the nodes that *hold* a slot (are caught up on it),
//!   the slot's [`targets`] are the first `r` members of its ranking, its [`serving`] replicas the
//!   first `r` holders, and its [`shadows`] the targets that do not hold it yet.
//!
//! Adding or removing a node changes the targets only of slots where that node is (or was) among
//! the first `r`: about `r / n` of the slot replicas move, the minimum.
//!
//! ```
//! use hermes_core::placement::{key_slot, serving, shadows, targets, Slot};
//! use hermes_core::NodeId;
//! use std::collections::BTreeSet;
//!
//! // Keys that share a hash tag share a slot (Redis Cluster's rule).
//! let slot = key_slot(b"{user1000}.following");
//! assert_eq!(slot, key_slot(b"{user1000}.followers"));
//! assert_eq!(key_slot(b"foo"), Slot::new(12182).unwrap());
//!
//! // Four members keep each slot on three of them.
//! let members: BTreeSet<NodeId> = (1..=4).map(NodeId).collect();
//! let targets = targets(slot, members.iter().copied(), 3);
//! assert_eq!(targets.len(), 3);
//!
//! // While one target is still catching up, it is a shadow and the other holders serve.
//! let newcomer = targets[0];
//! let holders: BTreeSet<NodeId> = members.iter().copied().filter(|&n| n != newcomer).collect();
//! assert_eq!(shadows(slot, members.iter().copied(), &holders, 3), vec![newcomer]);
//! assert!(!serving(slot, holders.iter().copied(), 3).contains(&newcomer));
//! ```

mod rendezvous;
mod slot;

pub use rendezvous::{rank, serving, shadows, targets, weight};
pub use slot::{crc16, hash_tag, key_slot, Slot, SLOTS};
