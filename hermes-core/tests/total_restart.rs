//! Restarts with durable records, on three nodes with a hand-driven clock, network and disks:
//! under `sync` durability a cluster whose members all crash at once comes back with every
//! acknowledged write; a restarted member holding its store is taken back as a member directly;
//! without its records a node rejoins as a shadow; under `memory` a total crash never re-forms.

mod support;

use hermes_core::{Config, Durability, Key, Node, NodeId, NodeState, Op, Outcome, Value};
use std::time::Duration;
use support::cluster::{value, Cluster};

/// Nodes 1, 2, 3 under `mode`.
fn cluster(mode: Durability) -> Cluster<Node> {
    Cluster::nodes(
        3,
        Config {
            durability: mode,
            ..Config::default()
        },
    )
}

#[test]
fn under_sync_a_cluster_whose_members_all_crash_comes_back_with_every_acknowledged_write() {
    let mut c = cluster(Durability::Sync);
    c.run_for(Duration::from_millis(200));
    c.write(1, "a", "a1");
    c.write(2, "b", "b1");
    c.write(3, "a", "a2");
    for id in 1..=3 {
        c.crash(id);
    }
    c.run_for(Duration::from_millis(50));
    for id in 1..=3 {
        c.start(id, true);
    }
    c.run_for(Duration::from_secs(5));
    let view = c.views.last().cloned().unwrap();
    assert_eq!(view.members.len(), 3, "{view:?}");
    assert!(view.shadows.is_empty(), "taken back directly: {view:?}");
    for id in 1..=3 {
        assert_eq!(view.incarnation(NodeId(id)), 1, "{view:?}");
        assert!(c.active(id), "node {id}");
        assert_eq!(c.read(id, "a"), value("a2"), "node {id}");
        assert_eq!(c.read(id, "b"), value("b1"), "node {id}");
    }
    c.write(2, "a", "a3");
    assert_eq!(c.read(1, "a"), value("a3"));
}

#[test]
fn under_sync_a_majority_of_the_last_view_is_enough_and_the_rest_rejoins_later() {
    let mut c = cluster(Durability::Sync);
    c.run_for(Duration::from_millis(200));
    c.write(1, "a", "a1");
    c.write(3, "b", "b1");
    for id in 1..=3 {
        c.crash(id);
    }
    c.start(1, true);
    c.start(2, true);
    c.run_for(Duration::from_secs(5));
    assert!(c.active(1) && c.active(2));
    assert_eq!(c.read(1, "b"), value("b1"));
    assert_eq!(c.read(2, "a"), value("a1"));
    c.write(2, "b", "b2");
    // Node 3 was removed meanwhile: its store no longer has every write, so it copies the state.
    c.start(3, true);
    c.run_for(Duration::from_secs(5));
    let epochs_with_3_as_shadow = c
        .views
        .iter()
        .filter(|v| v.shadows.contains(&NodeId(3)))
        .count();
    assert!(epochs_with_3_as_shadow > 0, "{:?}", c.views);
    assert!(c.active(3));
    assert_eq!(c.read(3, "b"), value("b2"));
    assert_eq!(c.read(3, "a"), value("a1"));
}

#[test]
fn under_sync_a_member_restarted_with_its_store_is_taken_back_directly() {
    let mut c = cluster(Durability::Sync);
    c.run_for(Duration::from_millis(200));
    c.write(1, "a", "a1");
    let before = c.views.len();
    c.crash(3);
    c.start(3, true);
    c.run_for(Duration::from_secs(3));
    let added = &c.views[before..];
    assert!(!added.is_empty());
    assert!(added.iter().all(|v| v.is_member(NodeId(3))), "{added:?}");
    assert_eq!(added.last().unwrap().incarnation(NodeId(3)), 1);
    assert!(c.active(3));
    assert_eq!(c.read(3, "a"), value("a1"));
}

/// Node 3 starts a CAS from `b` that reaches nobody but its own disk, and crashes. The others
/// remove it and commit a rival CAS from `b` (at a lower timestamp: node 1's id is lower). When
/// node 3 comes back its record of the lost CAS is above everything the cluster holds; it must
/// not be replayed (both CAS would then have swapped `b`), so a node that comes back as a
/// shadow drops its records and copies the state.
#[test]
fn under_sync_a_lost_rmw_recovered_by_a_node_the_cluster_removed_is_never_replayed() {
    let mut c = cluster(Durability::Sync);
    c.run_for(Duration::from_millis(200));
    c.write(1, "k", "b");
    c.isolate(3);
    let cas = |new: &str| Op::Cas {
        key: Key::from("k"),
        expected: value("b"),
        new: Value::from(new.to_string()),
    };
    c.submit(3, cas("x"));
    c.run_for(Duration::from_millis(20));
    assert!(
        c.disks[2].durable.values().any(|r| r.value == value("x")),
        "the lost CAS is on node 3's disk"
    );
    c.crash(3);
    c.heal();
    c.run_for(Duration::from_secs(3));
    assert!(!c.node(1).membership().view().contains(NodeId(3)));
    let swapped = c.request(1, cas("y"), Duration::from_secs(5));
    assert!(
        matches!(swapped, Ok(Outcome::Swapped { .. })),
        "{swapped:?}"
    );
    c.start(3, true);
    c.run_for(Duration::from_secs(5));
    assert!(c.active(3));
    for id in 1..=3 {
        assert_eq!(c.read(id, "k"), value("y"), "node {id}");
    }
}

/// Two CAS from `b` are in flight when every node crashes: node 1's reached only its own disk,
/// node 3's (higher: same version, higher id) reached node 2 but not node 1. After the restart
/// every node replays what it holds; at most one CAS may take effect, and since node 3's is the
/// highest record, node 1's is never validated anywhere. (The replica-level test
/// `a_recovered_record_is_replayed_as_an_rmw_and_gives_way_to_a_higher_one` pins the rule that
/// makes this hold whatever the order of the replays.)
#[test]
fn under_sync_a_recovered_rmw_below_a_rival_gives_way_after_a_total_restart() {
    let mut c = cluster(Durability::Sync);
    c.run_for(Duration::from_millis(200));
    c.write(1, "k", "b");
    let cas = |new: &str| Op::Cas {
        key: Key::from("k"),
        expected: value("b"),
        new: Value::from(new.to_string()),
    };
    c.isolate(1);
    c.submit(1, cas("x"));
    c.submit(3, cas("y"));
    c.run_for(Duration::from_millis(20));
    let record = |c: &Cluster<Node>, node: usize| c.disks[node].durable[&Key::from("k")].clone();
    let (x, y) = (record(&c, 0), record(&c, 2));
    assert_eq!((x.value.clone(), y.value.clone()), (value("x"), value("y")));
    assert!(x.ts < y.ts && x.ts.version == y.ts.version);
    assert_eq!(record(&c, 1), y);
    for id in 1..=3 {
        c.crash(id);
    }
    c.heal();
    for id in 1..=3 {
        c.start(id, true);
    }
    for _ in 0..3_000 {
        c.run_for(Duration::from_millis(1));
        for id in 1..=3 {
            let entry = c.node(id).replica().key(b"k");
            let valid_at = entry
                .filter(|e| e.state == hermes_core::KeyState::Valid)
                .map(|e| e.ts);
            assert!(
                valid_at.is_none_or(|ts| ts == y.ts),
                "node {id} validated {valid_at:?} (x is {}, y is {})",
                x.ts,
                y.ts
            );
        }
    }
    for id in 1..=3 {
        assert_eq!(c.read(id, "k"), value("y"), "node {id}");
    }
}

#[test]
fn under_sync_a_node_restarted_without_its_records_rejoins_as_a_shadow() {
    let mut c = cluster(Durability::Sync);
    c.run_for(Duration::from_millis(200));
    c.write(1, "a", "a1");
    c.crash(3);
    c.start(3, false);
    c.run_for(Duration::from_secs(3));
    assert!(
        c.views.iter().any(|v| v.shadows.contains(&NodeId(3))),
        "{:?}",
        c.views
    );
    assert!(c.active(3));
    assert_eq!(c.read(3, "a"), value("a1"));
}

#[test]
fn under_async_a_restarted_node_copies_the_state_rather_than_trust_its_store() {
    let mut c = cluster(Durability::Async);
    c.run_for(Duration::from_millis(200));
    c.write(1, "a", "a1");
    c.crash(3);
    c.start(3, true);
    c.run_for(Duration::from_secs(3));
    assert!(
        c.views.iter().any(|v| v.shadows.contains(&NodeId(3))),
        "{:?}",
        c.views
    );
    assert!(c.active(3));
    assert_eq!(c.read(3, "a"), value("a1"));
}

#[test]
fn under_memory_a_cluster_whose_members_all_crash_stays_down() {
    let mut c = cluster(Durability::Memory);
    c.run_for(Duration::from_millis(200));
    c.write(1, "a", "a1");
    for id in 1..=3 {
        c.crash(id);
    }
    for id in 1..=3 {
        c.start(id, false);
    }
    c.run_for(Duration::from_secs(5));
    // Every node lost the data; none can vouch for it or hand it over, so none serves again.
    for id in 1..=3 {
        assert!(
            !c.node(id).may_serve(c.now),
            "node {id} serves without the data"
        );
        assert_ne!(c.node(id).state(c.now), NodeState::Active, "node {id}");
    }
}
