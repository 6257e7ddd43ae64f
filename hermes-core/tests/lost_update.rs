//! The lost-update scenario of the original RMW specification (digest §5.2), step by step.
//!
//! Nodes 1, 2, 3 hold key `k` absent. Node 1 starts CAS(absent -> "a") at (1,1) and gathers node
//! 2's ACK; node 3 starts CAS(absent -> "b") at (1,3), which node 2 adopts; node 3 crashes before
//! its INV reaches node 1, and a view {1, 2} is installed. With the ACK-reset rule node 1's RMW
//! aborts and exactly one RMW commits; keeping node 2's old ACK would commit both.

use hermes_core::{
    Action, Config, Epoch, Instant, Message, NodeId, Op, OpResult, Outcome, PlantedBug, Replica,
    RequestError, RequestId, View,
};
use std::collections::VecDeque;

struct Cluster {
    replicas: Vec<Replica>,
    /// Messages in flight: (from, to, message).
    network: VecDeque<(NodeId, NodeId, Message)>,
    replies: Vec<(NodeId, RequestId, OpResult)>,
}

impl Cluster {
    fn new(bug: Option<PlantedBug>) -> Self {
        let view = View::new(Epoch(1), [NodeId(1), NodeId(2), NodeId(3)]);
        let replicas = (1..=3)
            .map(|id| {
                let mut replica = Replica::new(Config::for_node(NodeId(id)), view.clone()).unwrap();
                if let Some(bug) = bug {
                    replica.plant_bug(bug);
                }
                replica.set_serving(Instant::ZERO, true);
                replica
            })
            .collect();
        Cluster {
            replicas,
            network: VecDeque::new(),
            replies: Vec::new(),
        }
    }

    fn node(&mut self, id: u32) -> &mut Replica {
        &mut self.replicas[id as usize - 1]
    }

    fn drain(&mut self, id: u32) {
        while let Some(action) = self.node(id).poll_action() {
            match action {
                Action::Send { to, msg } => self.network.push_back((NodeId(id), to, msg)),
                Action::Reply {
                    id: request,
                    result,
                } => self.replies.push((NodeId(id), request, result)),
                other => panic!("a bare replica emits no {other:?}"),
            }
        }
    }

    /// Delivers the first message in flight matching `from -> to`.
    fn deliver(&mut self, from: u32, to: u32) {
        let index = self
            .network
            .iter()
            .position(|(f, t, _)| *f == NodeId(from) && *t == NodeId(to))
            .unwrap_or_else(|| panic!("no message in flight from {from} to {to}"));
        let (_, _, msg) = self.network.remove(index).unwrap();
        self.node(to)
            .handle_message(Instant::ZERO, NodeId(from), msg);
        self.drain(to);
    }

    /// Delivers everything in flight between live nodes until the network is quiet.
    fn settle(&mut self, live: &[u32]) {
        while let Some((from, to, msg)) = self.network.pop_front() {
            if live.contains(&to.0) && live.contains(&from.0) {
                self.node(to.0).handle_message(Instant::ZERO, from, msg);
                self.drain(to.0);
            }
        }
    }

    fn cas(&mut self, id: u32, request: u64, new: &'static str) {
        let op = Op::Cas {
            key: "k".into(),
            expected: None,
            new: new.into(),
        };
        self.node(id)
            .handle_request(Instant::ZERO, RequestId(request), op);
        self.drain(id);
    }
}

/// Runs the scenario and returns node 1's answer to its CAS and the value node 2 finally holds.
fn run(bug: Option<PlantedBug>) -> (Option<OpResult>, Option<bytes::Bytes>) {
    let mut c = Cluster::new(bug);
    c.cas(1, 1, "a"); // (1,1): INV to 2 and 3
    c.deliver(1, 2); // node 2 adopts (1,1) and ACKs
    c.deliver(2, 1); // node 1 counts node 2's ACK
    c.cas(3, 3, "b"); // (1,3): INV to 1 and 2
    c.deliver(3, 2); // node 2 adopts (1,3)
                     // Node 3 crashes: everything it sent or would receive is lost.
    c.network.retain(|(f, t, _)| f.0 != 3 && t.0 != 3);
    let view = View::new(Epoch(2), [NodeId(1), NodeId(2)]);
    for id in [1, 2] {
        c.node(id).install_view(Instant::ZERO, view.clone());
        c.drain(id);
    }
    c.settle(&[1, 2]);
    let answer = c
        .replies
        .iter()
        .find(|(node, request, _)| *node == NodeId(1) && *request == RequestId(1))
        .map(|(_, _, result)| result.clone());
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
