//! Placement measured over every slot: how evenly rendezvous hashing spreads slot replicas over
//! the members, and how many move when a member is added or removed.
//!
//! `cargo test -p hermes-core --test placement -- --nocapture` prints the table recorded in
//! docs/BENCHMARKS.md ("Placement balance and movement").

use hermes_core::placement::{targets, Slot, SLOTS};
use hermes_core::NodeId;
use std::collections::BTreeMap;

/// The replication factors measured.
const REPLICATION: [usize; 2] = [1, 3];

/// The cluster sizes measured.
const SIZES: std::ops::RangeInclusive<u32> = 3..=32;

/// The largest relative distance from the mean allowed for a node's slot count. The measured
/// worst case is far smaller (see docs/BENCHMARKS.md); the functions are deterministic, so this
/// bound catches a broken weight function, never noise.
const BALANCE_TOLERANCE: f64 = 0.25;

/// Members `1..=n`.
fn members(n: u32) -> Vec<NodeId> {
    (1..=n).map(NodeId).collect()
}

/// The targets of every slot, in slot order.
fn placement(members: &[NodeId], r: usize) -> Vec<Vec<NodeId>> {
    Slot::all()
        .map(|slot| targets(slot, members.iter().copied(), r))
        .collect()
}

/// How many slots each member is a target of (a slot counts once per replica).
fn slots_per_node(placement: &[Vec<NodeId>]) -> BTreeMap<NodeId, usize> {
    let mut counts = BTreeMap::new();
    for node in placement.iter().flatten() {
        *counts.entry(*node).or_insert(0) += 1;
    }
    counts
}

/// What one membership change did to the targets: how many slots changed targets, and how many
/// slot replicas arrived at a node that was not a target before (each must be copied).
struct Movement {
    changed_slots: usize,
    arrived_replicas: usize,
}

/// Compares the targets of every slot `before` and `after` a change of the one node `changed`
/// (added or removed). Asserts that every slot whose targets change had `changed` among the targets
/// before (a removal) or has it after (an addition), and that nothing else changes but the one
/// node `changed` displaces or that replaces it.
fn movement(before: &[Vec<NodeId>], after: &[Vec<NodeId>], changed: NodeId) -> Movement {
    let mut result = Movement {
        changed_slots: 0,
        arrived_replicas: 0,
    };
    for (slot, (old, new)) in before.iter().zip(after).enumerate() {
        let arrived: Vec<NodeId> = new.iter().copied().filter(|n| !old.contains(n)).collect();
        let left: Vec<NodeId> = old.iter().copied().filter(|n| !new.contains(n)).collect();
        if arrived.is_empty() && left.is_empty() {
            continue;
        }
        let others = arrived
            .iter()
            .chain(&left)
            .filter(|&&n| n != changed)
            .count();
        assert!(
            (old.contains(&changed) || new.contains(&changed)) && others <= 1,
            "slot {slot} moved from {old:?} to {new:?}, changing more than {changed}'s place"
        );
        result.changed_slots += 1;
        result.arrived_replicas += arrived.len();
    }
    result
}

/// `part` as a percentage of `whole`.
fn percent(part: usize, whole: usize) -> f64 {
    part as f64 * 100.0 / whole as f64
}

#[test]
fn placement_is_balanced_and_moves_only_the_changed_nodes_share() {
    println!(
        "| N | R | mean slots/node | most | fewest \
         | add node N+1: slots changed (R/(N+1)), replicas copied \
         | remove node N: slots changed (R/N), replicas copied |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut worst_balance: f64 = 0.0;
    for r in REPLICATION {
        for n in SIZES {
            let current = placement(&members(n), r);
            let total = usize::from(SLOTS) * r;

            // Balance: every member's share of slot replicas against the mean.
            let counts = slots_per_node(&current);
            assert_eq!(
                counts.len(),
                n as usize,
                "every member is a target of some slot"
            );
            assert_eq!(counts.values().sum::<usize>(), total);
            let mean = total as f64 / f64::from(n);
            let most = *counts.values().max().unwrap();
            let fewest = *counts.values().min().unwrap();
            let above = most as f64 / mean - 1.0;
            let below = 1.0 - fewest as f64 / mean;
            worst_balance = worst_balance.max(above).max(below);
            assert!(
                above <= BALANCE_TOLERANCE && below <= BALANCE_TOLERANCE,
                "N={n} R={r}: {fewest}..{most} slots per node against a mean of {mean:.0}"
            );

            // Adding node n+1: only slots that now target it change, and it is the only arrival.
            let newcomer = NodeId(n + 1);
            let grown = placement(&members(n + 1), r);
            let added = movement(&current, &grown, newcomer);
            let newcomer_slots = slots_per_node(&grown)[&newcomer];
            assert_eq!(added.changed_slots, newcomer_slots);
            assert_eq!(added.arrived_replicas, newcomer_slots);
            let expected_added = (r as f64 / f64::from(n + 1)).min(1.0);
            let added_share = added.changed_slots as f64 / f64::from(SLOTS);
            assert!((added_share / expected_added - 1.0).abs() <= BALANCE_TOLERANCE);

            // Removing node n: only slots that targeted it change, each gaining at most one node.
            let leaver = NodeId(n);
            let shrunk = placement(&members(n - 1), r);
            let removed = movement(&current, &shrunk, leaver);
            assert_eq!(removed.changed_slots, counts[&leaver]);
            let replacements = if n as usize > r { counts[&leaver] } else { 0 };
            assert_eq!(removed.arrived_replicas, replacements);
            let expected_removed = (r as f64 / f64::from(n)).min(1.0);

            println!(
                "| {n} | {r} | {mean:.0} | {most} (+{:.1} %) | {fewest} (−{:.1} %) | {:.1} % ({:.1} %), {:.1} % | {:.1} % ({:.1} %), {:.1} % |",
                above * 100.0,
                below * 100.0,
                added_share * 100.0,
                expected_added * 100.0,
                percent(added.arrived_replicas, total),
                percent(removed.changed_slots, usize::from(SLOTS)),
                expected_removed * 100.0,
                percent(removed.arrived_replicas, total),
            );
        }
    }
    println!(
        "worst distance from the mean: {:.1} %",
        worst_balance * 100.0
    );
}
