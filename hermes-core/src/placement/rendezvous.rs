//! Slots to replicas: rendezvous (highest-random-weight) hashing.
//!
//! Every node has a pseudo-random [`weight`] for every slot; a slot's *ranking* lists nodes by
//! decreasing weight. Adding or removing a node changes only the positions of that node in the
//! rankings, so only the slots whose first `r` entries include it change replicas.

use super::slot::Slot;
use crate::types::NodeId;
use std::cmp::Reverse;
use std::collections::BTreeSet;

/// The weight of `node` for `slot`: the higher, the earlier `node` ranks for `slot`.
///
/// Defined as the SplitMix64 finalizer (Steele, Lea and Flood, "Fast splittable pseudorandom
/// number generators", OOPSLA 2014; the constants of Java's `SplittableRandom.mix64`) applied to
/// `(node << 16 | slot) + 0x9E3779B97F4A7C15` (wrapping). It is fixed, platform-independent
/// integer arithmetic and, like [`super::key_slot`], **stable forever**: every node and client must
/// compute the same rankings, across versions.
pub const fn weight(slot: Slot, node: NodeId) -> u64 {
    let mut z = ((node.0 as u64) << 16 | slot.number() as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The sort key of `node` in the ranking of `slot`: decreasing weight, then (for the theoretical
/// case of equal weights) increasing id, so every ranking is a total order.
fn rank_key(slot: Slot, node: NodeId) -> (Reverse<u64>, NodeId) {
    (Reverse(weight(slot, node)), node)
}

/// The ranking of `slot` among `members`: each distinct member once, in decreasing [`weight`].
pub fn rank(slot: Slot, members: impl IntoIterator<Item = NodeId>) -> Vec<NodeId> {
    let mut ranked: Vec<NodeId> = members.into_iter().collect();
    ranked.sort_unstable_by_key(|&node| rank_key(slot, node));
    ranked.dedup();
    ranked
}

/// The first `r` distinct nodes of `nodes` in the ranking of `slot` (fewer if there are fewer),
/// in ranking order; keeps only `r` nodes at a time.
fn first_ranked(slot: Slot, nodes: impl IntoIterator<Item = NodeId>, r: usize) -> Vec<NodeId> {
    let mut first: Vec<NodeId> = Vec::with_capacity(r.min(16));
    if r == 0 {
        return first;
    }
    for node in nodes {
        let key = rank_key(slot, node);
        let Err(position) = first.binary_search_by_key(&key, |&kept| rank_key(slot, kept)) else {
            continue; // a duplicate
        };
        if position < r {
            if first.len() == r {
                first.pop();
            }
            first.insert(position, node);
        }
    }
    first
}

/// The targets of `slot`: the first `r` members in its ranking, i.e. the nodes that should hold the
/// slot's keys once every move has finished. Fewer than `r` if there are fewer members.
pub fn targets(slot: Slot, members: impl IntoIterator<Item = NodeId>, r: usize) -> Vec<NodeId> {
    first_ranked(slot, members, r)
}

/// The serving replicas of `slot`: the first `r` of its `holders` (the nodes the view records as
/// caught up on the slot) in its ranking. They serve reads and coordinate writes of the slot's
/// keys; during a move they may include an old holder that is no longer a target.
pub fn serving(slot: Slot, holders: impl IntoIterator<Item = NodeId>, r: usize) -> Vec<NodeId> {
    first_ranked(slot, holders, r)
}

/// The shadows of `slot`: its [`targets`] among `members` that are not in `holders` yet, in
/// ranking order. A shadow receives and ACKs the slot's INVs while it catches up, but serves and
/// coordinates nothing.
pub fn shadows(
    slot: Slot,
    members: impl IntoIterator<Item = NodeId>,
    holders: &BTreeSet<NodeId>,
    r: usize,
) -> Vec<NodeId> {
    let mut shadows = targets(slot, members, r);
    shadows.retain(|node| !holders.contains(node));
    shadows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(ids: impl IntoIterator<Item = u32>) -> Vec<NodeId> {
        ids.into_iter().map(NodeId).collect()
    }

    const SLOT: Slot = match Slot::new(42) {
        Some(slot) => slot,
        None => panic!("42 is a slot"),
    };

    #[test]
    fn weight_is_fixed() {
        // Pinned values: a change here moves data between nodes.
        let zero = Slot::new(0).unwrap();
        assert_eq!(weight(zero, NodeId(0)), 0xE220_A839_7B1D_CDAF);
        assert_ne!(weight(SLOT, NodeId(1)), weight(SLOT, NodeId(2)));
    }

    #[test]
    fn rank_orders_by_decreasing_weight_and_ignores_input_order_and_duplicates() {
        let ranked = rank(SLOT, nodes(1..=5));
        assert_eq!(ranked.len(), 5);
        assert!(ranked
            .windows(2)
            .all(|pair| weight(SLOT, pair[0]) > weight(SLOT, pair[1])));
        assert_eq!(rank(SLOT, nodes([5, 3, 1, 4, 2, 3, 5])), ranked);
        assert!(rank(SLOT, []).is_empty());
    }

    #[test]
    fn targets_are_the_head_of_the_ranking() {
        let ranked = rank(SLOT, nodes(1..=7));
        for r in 0..=8 {
            assert_eq!(targets(SLOT, nodes(1..=7), r), ranked[..r.min(7)]);
        }
        assert_eq!(targets(SLOT, nodes([3, 3, 3]), 2), nodes([3]));
    }

    #[test]
    fn serving_is_the_head_of_the_ranking_among_holders() {
        let ranked = rank(SLOT, nodes(1..=5));
        let holders = [ranked[4], ranked[1], ranked[3]];
        assert_eq!(serving(SLOT, holders, 2), vec![ranked[1], ranked[3]]);
        assert_eq!(
            serving(SLOT, holders, 3),
            vec![ranked[1], ranked[3], ranked[4]]
        );
        assert!(serving(SLOT, [], 3).is_empty());
    }

    #[test]
    fn shadows_are_targets_that_do_not_hold_the_slot() {
        let ranked = rank(SLOT, nodes(1..=5));
        // The slot is held by nodes ranked 2nd, 4th and 5th: the 1st and 3rd are shadows, and
        // until they catch up the 2nd, 4th and 5th serve.
        let holders: BTreeSet<NodeId> = [ranked[1], ranked[3], ranked[4]].into();
        assert_eq!(
            shadows(SLOT, nodes(1..=5), &holders, 3),
            vec![ranked[0], ranked[2]]
        );
        assert_eq!(
            serving(SLOT, holders.iter().copied(), 3),
            vec![ranked[1], ranked[3], ranked[4]]
        );
        // Once every target holds the slot there are no shadows and the targets serve.
        let caught_up: BTreeSet<NodeId> = ranked.iter().copied().collect();
        assert!(shadows(SLOT, nodes(1..=5), &caught_up, 3).is_empty());
        assert_eq!(serving(SLOT, caught_up.iter().copied(), 3), ranked[..3]);
    }
}
