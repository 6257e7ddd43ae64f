//! Membership scenarios on three nodes with a hand-driven clock and network.

mod support;

use hermes_core::{Action, Config, Epoch, MembershipMessage, Message, NodeId, NodeState};
use std::time::Duration;
use support::cluster::Cluster;

/// Nodes 1, 2, 3 with the default configuration.
fn cluster() -> Cluster<hermes_core::Node> {
    Cluster::nodes(3, Config::default())
}

#[test]
fn heartbeats_grant_leases_and_every_member_becomes_active() {
    let mut c = cluster();
    assert!(!c.node(1).may_serve(c.now), "no lease before any heartbeat");
    c.run_for(Duration::from_millis(200));
    for id in 1..=3 {
        assert_eq!(c.node(id).state(c.now), NodeState::Active, "node {id}");
    }
}

#[test]
fn an_isolated_node_stops_serving_within_a_lease_and_is_removed() {
    let mut c = cluster();
    c.run_for(Duration::from_millis(200));
    c.isolate(3);
    let lease = Duration::from_millis(Config::default().lease_ms);
    c.run_for(lease + Duration::from_millis(10));
    assert!(
        !c.node(3).may_serve(c.now),
        "the isolated node still serves"
    );
    c.run_for(Duration::from_secs(3));
    for id in [1, 2] {
        let view = c.node(id).membership().view();
        assert!(
            !view.contains(NodeId(3)),
            "node {id} still has node 3: {view:?}"
        );
        assert!(c.node(id).may_serve(c.now));
    }
    // Healed, the removed node learns it, starts a new incarnation, rejoins and is promoted.
    c.heal();
    c.run_for(Duration::from_secs(5));
    let view = c.node(1).membership().view().clone();
    assert!(view.is_member(NodeId(3)), "{view:?}");
    assert_eq!(view.incarnation(NodeId(3)), 1);
    assert_eq!(c.node(3).state(c.now), NodeState::Active);
}

#[test]
fn a_minority_never_installs_a_view() {
    let mut c = cluster();
    c.run_for(Duration::from_millis(200));
    c.isolate(1);
    c.run_for(Duration::from_secs(5));
    assert_eq!(c.node(1).membership().view().epoch, Epoch(1));
    assert!(!c.node(1).may_serve(c.now));
}

#[test]
fn a_node_that_leaves_is_removed_and_does_not_rejoin() {
    let mut c = cluster();
    c.run_for(Duration::from_millis(200));
    c.act(3, |node, now| node.leave(now));
    c.run_for(Duration::from_secs(5));
    for id in 1..=3 {
        assert!(
            !c.node(id).membership().view().contains(NodeId(3)),
            "node {id}"
        );
    }
    assert!(c.node(3).has_left());
    assert_eq!(c.node(3).state(c.now), NodeState::Inactive);
}

#[test]
fn acceptor_state_is_saved_before_it_answers() {
    let mut c = cluster();
    c.run_for(Duration::from_millis(200));
    c.isolate(3);
    // Every node's actions: each Promise/Accepted it sends follows a SaveMembership. (Node 2
    // proposes here; node 1 is the acceptor that answers.)
    let since = c.log.len();
    c.run_for(Duration::from_secs(3));
    let mut answers = 0;
    for id in 1..=3 {
        let mut saved_since_last_answer = false;
        for action in c.actions_of(id, since) {
            match action {
                Action::SaveMembership(_) => saved_since_last_answer = true,
                Action::Send {
                    msg: Message::Membership(m),
                    ..
                } => {
                    let answer = matches!(
                        m,
                        MembershipMessage::Promise { .. } | MembershipMessage::Accepted { .. }
                    );
                    if answer {
                        assert!(
                            saved_since_last_answer,
                            "node {id} answered {m:?} before saving"
                        );
                        saved_since_last_answer = false;
                        answers += 1;
                    }
                }
                _ => {}
            }
        }
    }
    assert!(answers > 0, "no acceptor answered a proposal");
    assert!(!c.node(2).membership().view().contains(NodeId(3)));
}
