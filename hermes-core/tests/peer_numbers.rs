//! Numbers from a peer cannot panic or wrap a node (`hermes_core::peer_numbers`).
//!
//! Three nodes run with a hand-driven clock and network. Node 2 (a member, so its messages are
//! not dropped as coming from outside the view) sends node 1 every message that carries a
//! timestamp, epoch, ballot round or incarnation, with the numbers at `u64::MAX` or just past
//! their limit. Node 1 drops and counts each one, and afterwards still commits a write and
//! serves a read.

use bytes::Bytes;
use hermes_core::membership::{Ballot, TransferEntry};
use hermes_core::peer_numbers::INCARNATION_MAX;
use hermes_core::{
    Ack, Action, Config, Epoch, Instant, Inv, MembershipMessage, Message, Node, NodeId, NodeState,
    Op, OpResult, Outcome, RequestError, RequestId, Ts, Val, View,
};
use std::collections::VecDeque;
use std::time::Duration;

const MAX: u64 = u64::MAX;

struct Cluster {
    nodes: Vec<Node>,
    now: Instant,
    network: VecDeque<(NodeId, NodeId, Message)>,
    replies: Vec<(NodeId, RequestId, OpResult)>,
}

impl Cluster {
    fn new() -> Self {
        let view = View::new(Epoch(1), [NodeId(1), NodeId(2), NodeId(3)]);
        let nodes = (1..=3)
            .map(|id| Node::new(Config::for_node(NodeId(id)), view.clone(), Instant::ZERO).unwrap())
            .collect();
        let mut cluster = Cluster {
            nodes,
            now: Instant::ZERO,
            network: VecDeque::new(),
            replies: Vec::new(),
        };
        cluster.run_for(Duration::from_millis(200));
        for id in 1..=3 {
            assert_eq!(cluster.node(id).state(cluster.now), NodeState::Active);
        }
        cluster
    }

    fn node(&self, id: u32) -> &Node {
        &self.nodes[id as usize - 1]
    }

    fn drain(&mut self, index: usize) {
        let from = self.nodes[index].id();
        while let Some(action) = self.nodes[index].poll_action() {
            match action {
                Action::Send { to, msg } => self.network.push_back((from, to, msg)),
                Action::Reply { id, result } => self.replies.push((from, id, result)),
                _ => {}
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

    /// Node 2 sends `msg` to node 1, which handles it at once.
    fn hostile(&mut self, msg: Message) {
        let now = self.now;
        self.nodes[0].handle_message(now, NodeId(2), msg);
        self.drain(0);
    }

    /// Sends `op` to node 1 and returns its answer, once the cluster has run a little.
    fn request(&mut self, id: u64, op: Op) -> OpResult {
        let now = self.now;
        self.nodes[0].handle_request(now, RequestId(id), op);
        self.run_for(Duration::from_millis(50));
        let index = self
            .replies
            .iter()
            .position(|(node, rid, _)| *node == NodeId(1) && *rid == RequestId(id))
            .expect("node 1 answered the request");
        self.replies.remove(index).2
    }

    /// Node 1 commits a write of `key` and then reads it back.
    fn assert_serves(&mut self, id: u64, key: &'static str) {
        let key = Bytes::from_static(key.as_bytes());
        let written = self.request(
            id,
            Op::Write {
                key: key.clone(),
                value: Bytes::from_static(b"v"),
            },
        );
        assert!(
            matches!(written, Ok(Outcome::Written { .. })),
            "{written:?}"
        );
        let read = self.request(id + 1, Op::Read { key });
        assert_eq!(read, Ok(Outcome::Value(Some(Bytes::from_static(b"v")))));
        assert_eq!(self.node(1).state(self.now), NodeState::Active);
    }
}

fn ts(version: u64) -> Ts {
    Ts::new(version, NodeId(2))
}

fn key() -> Bytes {
    Bytes::from_static(b"k")
}

fn ballot(round: u64) -> Ballot {
    Ballot {
        round,
        node: NodeId(2),
    }
}

fn view(epoch: u64) -> View {
    View::new(Epoch(epoch), [NodeId(1), NodeId(2), NodeId(3)])
}

/// Every replication message carrying a timestamp past [`Ts::VERSION_MAX`].
fn replication_messages(epoch: Epoch) -> Vec<Message> {
    let inv = |version| Inv {
        key: key(),
        ts: ts(version),
        value: Some(Bytes::from_static(b"x")),
        is_rmw: false,
        epoch,
    };
    vec![
        Message::Inv(inv(MAX)),
        Message::Inv(inv(Ts::VERSION_MAX + 1)),
        Message::Inv(Inv {
            is_rmw: true,
            ..inv(MAX)
        }),
        Message::Ack(Ack {
            key: key(),
            ts: ts(MAX),
            held: ts(MAX),
            epoch,
        }),
        Message::Ack(Ack {
            key: key(),
            ts: ts(2),
            held: ts(MAX),
            epoch,
        }),
        Message::Val(Val {
            key: key(),
            ts: ts(MAX),
            highest: ts(MAX),
            epoch,
        }),
        Message::Val(Val {
            key: key(),
            ts: ts(0),
            highest: ts(MAX),
            epoch: Epoch(MAX),
        }),
    ]
}

/// Every membership message carrying an epoch, ballot round, incarnation or timestamp out of
/// range.
fn membership_messages() -> Vec<MembershipMessage> {
    let mut huge_incarnation = view(2);
    huge_incarnation
        .incarnations
        .insert(NodeId(2), INCARNATION_MAX + 1);
    vec![
        // Paxos messages for an epoch beyond the next one.
        MembershipMessage::Prepare {
            epoch: Epoch(MAX),
            ballot: ballot(1),
        },
        MembershipMessage::Accept {
            epoch: Epoch(MAX),
            ballot: ballot(1),
            view: view(MAX),
        },
        MembershipMessage::Promise {
            epoch: Epoch(MAX),
            ballot: ballot(1),
            accepted: None,
        },
        MembershipMessage::Reject {
            epoch: Epoch(MAX),
            promised: ballot(1),
        },
        MembershipMessage::Accepted {
            epoch: Epoch(MAX),
            ballot: ballot(1),
        },
        // Ballot rounds that leave no room for the next round.
        MembershipMessage::Prepare {
            epoch: Epoch(2),
            ballot: ballot(MAX),
        },
        MembershipMessage::Accept {
            epoch: Epoch(2),
            ballot: ballot(MAX),
            view: view(2),
        },
        MembershipMessage::Reject {
            epoch: Epoch(2),
            promised: ballot(MAX),
        },
        // A view inside a Paxos message of another epoch than its own.
        MembershipMessage::Accept {
            epoch: Epoch(2),
            ballot: ballot(1),
            view: view(MAX),
        },
        MembershipMessage::Promise {
            epoch: Epoch(2),
            ballot: ballot(1),
            accepted: Some((ballot(1), view(MAX))),
        },
        // Decided views with no successor epoch, or an incarnation past the limit.
        MembershipMessage::Decided { view: view(MAX) },
        MembershipMessage::Decided {
            view: huge_incarnation,
        },
        // A join under an incarnation timestamps cannot carry.
        MembershipMessage::Join {
            incarnation: MAX,
            complete_store: true,
        },
        // A state-transfer chunk with a timestamp past the limit.
        MembershipMessage::TransferChunk {
            epoch: Epoch(1),
            after: None,
            entries: vec![TransferEntry {
                key: key(),
                ts: ts(MAX),
                value: None,
                valid: true,
                is_rmw: false,
                last_writer: NodeId(2),
            }],
            done: true,
        },
    ]
}

#[test]
fn numbers_out_of_range_are_dropped_counted_and_the_node_still_serves() {
    let mut c = Cluster::new();
    let epoch = c.node(1).membership().view().epoch;
    let replication = replication_messages(epoch);
    let membership = membership_messages();
    let expected = (replication.len() + membership.len()) as u64;
    for msg in replication {
        c.hostile(msg);
    }
    for msg in membership {
        c.hostile(Message::Membership(msg));
    }
    assert_eq!(c.node(1).stats().dropped_peer_numbers, expected);
    assert_eq!(c.node(1).membership().view().epoch, epoch, "no jump");
    assert!(c.node(1).replica().key(b"k").is_none(), "nothing adopted");
    c.run_for(Duration::from_millis(200));
    c.assert_serves(1, "k");
    assert_eq!(c.node(1).stats().dropped_peer_numbers, expected);
}

#[test]
fn numbers_that_are_only_compared_or_echoed_change_nothing() {
    let mut c = Cluster::new();
    let harmless = [
        MembershipMessage::Heartbeat {
            epoch: Epoch(MAX),
            round: MAX,
        },
        MembershipMessage::HeartbeatAck {
            epoch: Epoch(MAX),
            round: MAX,
            granted: true,
        },
        MembershipMessage::CaughtUp {
            epoch: Epoch(MAX),
            incarnation: MAX,
        },
        MembershipMessage::TransferRequest {
            epoch: Epoch(MAX),
            after: None,
        },
    ];
    for msg in harmless {
        c.hostile(Message::Membership(msg));
    }
    assert_eq!(c.node(1).stats().dropped_peer_numbers, 0);
    c.run_for(Duration::from_millis(200));
    c.assert_serves(1, "k");
}

#[test]
fn a_key_at_the_last_version_refuses_updates_and_keeps_serving() {
    let mut c = Cluster::new();
    let epoch = c.node(1).membership().view().epoch;
    // Node 2's update at the highest version a peer may send commits at node 1.
    let last = ts(Ts::VERSION_MAX);
    c.hostile(Message::Inv(Inv {
        key: key(),
        ts: last,
        value: Some(Bytes::from_static(b"last")),
        is_rmw: false,
        epoch,
    }));
    c.hostile(Message::Val(Val {
        key: key(),
        ts: last,
        highest: last,
        epoch,
    }));
    assert_eq!(c.node(1).stats().dropped_peer_numbers, 0);
    let refused = c.request(
        1,
        Op::Write {
            key: key(),
            value: Bytes::from_static(b"w"),
        },
    );
    assert!(
        matches!(refused, Err(RequestError::InvalidArgument(_))),
        "{refused:?}"
    );
    let cas = c.request(
        2,
        Op::Cas {
            key: key(),
            expected: Some(Bytes::from_static(b"last")),
            new: Bytes::from_static(b"w"),
        },
    );
    assert!(
        matches!(cas, Err(RequestError::InvalidArgument(_))),
        "{cas:?}"
    );
    let read = c.request(3, Op::Read { key: key() });
    assert_eq!(read, Ok(Outcome::Value(Some(Bytes::from_static(b"last")))));
    c.assert_serves(4, "other");
}
