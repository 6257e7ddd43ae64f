//! The lost-update scenario of the original RMW specification (digest §5.2), step by step.
//!
//! Nodes 1, 2, 3 hold key `k` absent. Node 1 starts CAS(absent -> "a") at (1,1) and gathers node
//! 2's ACK; node 3 starts CAS(absent -> "b") at (1,3), which node 2 adopts; node 3 crashes before
//! its INV reaches node 1, and a view {1, 2} is installed. With the ACK-reset rule node 1's RMW
//! aborts and exactly one RMW commits; keeping node 2's old ACK would commit both.

mod support;

use hermes_core::{
    Action, Config, Epoch, NodeId, Op, OpResult, Outcome, PlantedBug, RequestError, View,
};
use support::cluster::Cluster;

/// CAS(absent -> `new`) on `k`.
fn cas_from_absent(new: &'static str) -> Op {
    Op::Cas {
        key: "k".into(),
        expected: None,
        new: new.into(),
    }
}

/// Runs the scenario and returns node 1's answer to its CAS and the value node 2 finally holds.
fn run(bug: Option<PlantedBug>) -> (Option<OpResult>, Option<bytes::Bytes>) {
    let mut c = Cluster::replicas(3, Config::default(), bug);
    let cas_at_1 = c.submit(1, cas_from_absent("a")); // (1,1): INV to 2 and 3
    c.deliver(1, 2); // node 2 adopts (1,1) and ACKs
    c.deliver(2, 1); // node 1 counts node 2's ACK
    c.submit(3, cas_from_absent("b")); // (1,3): INV to 1 and 2
    c.deliver(3, 2); // node 2 adopts (1,3)
                     // Node 3 crashes: everything it sent or would receive is lost.
    c.crash(3);
    let view = View::new(Epoch(2), [NodeId(1), NodeId(2)]);
    for id in [1, 2] {
        c.act(id, |replica, now| replica.install_view(now, view.clone()));
    }
    c.deliver_all();
    for (node, action) in &c.log {
        assert!(
            matches!(action, Action::Send { .. } | Action::Reply { .. }),
            "a bare replica emits no {action:?} (node {node})"
        );
    }
    let answer = c.take_reply(1, cas_at_1);
    let held = c.node(2).key(b"k").and_then(|e| e.value.clone());
    (answer, held)
}

#[test]
fn with_ack_reset_exactly_one_rmw_commits() {
    let (answer, held) = run(None);
    // Node 3's RMW (replayed by node 2) wins; node 1's aborts.
    assert_eq!(answer, Some(Err(RequestError::Aborted)));
    assert_eq!(held.as_deref(), Some(&b"b"[..]));
}

#[test]
fn keeping_acks_across_epochs_commits_both() {
    let (answer, held) = run(Some(PlantedBug::KeepAcksAcrossEpochs));
    // Node 1 reports its CAS from "absent" as done, yet node 3's CAS from "absent" took effect
    // too: a lost update.
    assert!(
        matches!(answer, Some(Ok(Outcome::Swapped { .. }))),
        "{answer:?}"
    );
    assert_eq!(held.as_deref(), Some(&b"b"[..]));
}
