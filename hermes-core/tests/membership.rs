//! Membership scenarios on three nodes with a hand-driven clock and network.

use hermes_core::{Action, Config, Epoch, Instant, Message, Node, NodeId, NodeState, View};
use std::collections::{BTreeSet, VecDeque};
use std::time::Duration;

struct Cluster {
    nodes: Vec<Node>,
    now: Instant,
    network: VecDeque<(NodeId, NodeId, Message)>,
    /// Nodes cut off from everyone.
    isolated: BTreeSet<NodeId>,
}

impl Cluster {
    fn new() -> Self {
        let view = View::new(Epoch(1), [NodeId(1), NodeId(2), NodeId(3)]);
        let nodes = (1..=3)
            .map(|id| Node::new(Config::for_node(NodeId(id)), view.clone(), Instant::ZERO).unwrap())
            .collect();
        Cluster {
            nodes,
            now: Instant::ZERO,
            network: VecDeque::new(),
            isolated: BTreeSet::new(),
        }
    }

    fn node(&self, id: u32) -> &Node {
        &self.nodes[id as usize - 1]
    }

    fn drain(&mut self, index: usize) {
        let from = self.nodes[index].id();
        while let Some(action) = self.nodes[index].poll_action() {
            if let Action::Send { to, msg } = action {
                if !self.isolated.contains(&from) && !self.isolated.contains(&to) {
                    self.network.push_back((from, to, msg));
                }
            }
        }
    }

    /// Runs for `duration`: messages are delivered at once, timers fire on time.
    fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        loop {
            for i in 0..self.nodes.len() {
                self.drain(i);
            }
            if let Some((from, to, msg)) = self.network.pop_front() {
                let index = to.0 as usize - 1;
                self.nodes[index].handle_message(self.now, from, msg);
                continue;
            }
            let next = self.nodes.iter().filter_map(Node::poll_timeout).min();
            match next {
                Some(t) if t <= end => {
                    self.now = self.now.max(t);
                    for i in 0..self.nodes.len() {
                        if self.nodes[i].poll_timeout().is_some_and(|d| d <= self.now) {
                            self.nodes[i].handle_timeout(self.now);
                        }
                    }
                }
                _ => break,
            }
        }
        self.now = end;
    }
}

#[test]
fn heartbeats_grant_leases_and_every_member_becomes_active() {
    let mut c = Cluster::new();
    assert!(!c.node(1).may_serve(c.now), "no lease before any heartbeat");
    c.run_for(Duration::from_millis(200));
    for id in 1..=3 {
        assert_eq!(c.node(id).state(c.now), NodeState::Active, "node {id}");
    }
}

#[test]
fn an_isolated_node_stops_serving_within_a_lease_and_is_removed() {
    let mut c = Cluster::new();
    c.run_for(Duration::from_millis(200));
    c.isolated.insert(NodeId(3));
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
    c.isolated.clear();
    c.run_for(Duration::from_secs(5));
    let view = c.node(1).membership().view().clone();
    assert!(view.is_member(NodeId(3)), "{view:?}");
    assert_eq!(view.incarnation(NodeId(3)), 1);
    assert_eq!(c.node(3).state(c.now), NodeState::Active);
}

#[test]
fn a_minority_never_installs_a_view() {
    let mut c = Cluster::new();
    c.run_for(Duration::from_millis(200));
    c.isolated.insert(NodeId(1));
    c.run_for(Duration::from_secs(5));
    assert_eq!(c.node(1).membership().view().epoch, Epoch(1));
    assert!(!c.node(1).may_serve(c.now));
}

#[test]
fn a_node_that_leaves_is_removed_and_does_not_rejoin() {
    let mut c = Cluster::new();
    c.run_for(Duration::from_millis(200));
    let now = c.now;
    c.nodes[2].leave(now);
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
    let mut c = Cluster::new();
    c.run_for(Duration::from_millis(200));
    c.isolated.insert(NodeId(3));
    // Watch node 2's actions: every Promise/Accepted it sends follows a SaveMembership.
    let mut saved_since_last_answer = false;
    let end = c.now + Duration::from_secs(3);
    while c.now < end {
        c.run_for(Duration::from_millis(1));
        while let Some(action) = c.nodes[1].poll_action() {
            match &action {
                Action::SaveMembership(_) => saved_since_last_answer = true,
                Action::Send {
                    msg: Message::Membership(m),
                    ..
                } => {
                    let answer = matches!(
                        m,
                        hermes_core::MembershipMessage::Promise { .. }
                            | hermes_core::MembershipMessage::Accepted { .. }
                    );
                    if answer {
                        assert!(saved_since_last_answer, "answered {m:?} before saving");
                        saved_since_last_answer = false;
                    }
                }
                _ => {}
            }
            if let Action::Send { to, msg } = action {
                c.network.push_back((NodeId(2), to, msg));
            }
        }
    }
    assert!(!c.node(2).membership().view().contains(NodeId(3)));
}
