//! Membership views: who must ACK a write, who may serve, and in which epoch.

use crate::types::{Epoch, NodeId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A membership view: the epoch, the full members and the shadows (joining replicas).
///
/// Members and shadows both receive and must ACK every INV of the epoch; only members serve reads
/// and coordinate updates.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct View {
    /// The epoch this view was installed in; strictly increases with every view change.
    pub epoch: Epoch,
    /// Full members: they serve reads (under a lease) and coordinate writes.
    pub members: BTreeSet<NodeId>,
    /// Shadow replicas: they receive and ACK every INV but serve nothing and coordinate nothing.
    pub shadows: BTreeSet<NodeId>,
    /// The incarnation of each replica's process as of its last join (absent = 0); a restarted
    /// node rejoins with a higher one.
    pub incarnations: BTreeMap<NodeId, u64>,
}

impl View {
    /// A view of `members` (no shadows) at `epoch`.
    pub fn new(epoch: Epoch, members: impl IntoIterator<Item = NodeId>) -> Self {
        View {
            epoch,
            members: members.into_iter().collect(),
            shadows: BTreeSet::new(),
            incarnations: BTreeMap::new(),
        }
    }

    /// Whether `node` is a full member.
    pub fn is_member(&self, node: NodeId) -> bool {
        self.members.contains(&node)
    }

    /// Whether `node` takes part in replication (a member or a shadow).
    pub fn contains(&self, node: NodeId) -> bool {
        self.members.contains(&node) || self.shadows.contains(&node)
    }

    /// Every replica that must receive and ACK an INV (members and shadows), in id order.
    pub fn replicas(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.members.union(&self.shadows).copied()
    }

    /// The incarnation recorded for `node` (0 when it never rejoined).
    pub fn incarnation(&self, node: NodeId) -> u64 {
        self.incarnations.get(&node).copied().unwrap_or(0)
    }

    /// How many members form a majority of this view.
    pub fn majority(&self) -> usize {
        self.members.len() / 2 + 1
    }
}
