//! Three [`ClusterNode`]s in one process over the in-memory transport, for the runtime's tests.
//!
//! Every test runs on a Tokio runtime whose clock is paused (`start_paused = true`): time moves
//! only when every task waits, straight to the next timer. Heartbeats, leases and timeouts
//! therefore run in virtual time — a test that waits for a lease to lapse takes no real time,
//! and a test that would hang instead runs into its bound and fails. Waits poll for a condition
//! with a bound ([`eventually`]); nothing sleeps and hopes.
//!
//! Every node's transport records each message the driver hands to it, in order ([`Wire`]), so a
//! test can check the order in which the driver carried out the core's sends.
#![allow(dead_code)]

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use hermes_core::{Config, Message, NodeId, Ts};
use hermes_net::{MemConfig, MemNetwork, MemTransport, NetError, Transport};
use hermes_node::ClusterNode;

/// The ids of the three nodes.
pub const IDS: [NodeId; 3] = [NodeId(1), NodeId(2), NodeId(3)];

/// How long a test waits for anything before it fails.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// One message a driver handed to its transport.
#[derive(Clone, Debug)]
pub struct Sent {
    /// The sending node.
    pub from: NodeId,
    /// The addressee.
    pub to: NodeId,
    /// The message.
    pub msg: Message,
}

/// Every message every driver handed to its transport, in the order they did.
#[derive(Clone, Default)]
pub struct Wire(Arc<Mutex<Vec<Sent>>>);

impl Wire {
    fn lock(&self) -> MutexGuard<'_, Vec<Sent>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// What was sent so far.
    pub fn sent(&self) -> Vec<Sent> {
        self.lock().clone()
    }

    /// Where in [`Wire::sent`] the first message matching `what` is.
    pub fn position(&self, what: impl Fn(&Sent) -> bool) -> Option<usize> {
        self.lock().iter().position(what)
    }
}

/// The in-memory transport of one node, recording what it is asked to send.
pub struct RecordingTransport {
    inner: MemTransport<Message>,
    wire: Wire,
}

impl Transport<Message> for RecordingTransport {
    fn local_id(&self) -> NodeId {
        self.inner.local_id()
    }

    fn send(&self, to: NodeId, msg: Message) -> Result<(), NetError> {
        self.wire.lock().push(Sent {
            from: self.inner.local_id(),
            to,
            msg: msg.clone(),
        });
        self.inner.send(to, msg)
    }
}

/// The configuration the tests start from: the defaults, but no node is ever suspected (so a
/// cut link makes writes wait instead of changing the view), and requests wait a minute.
pub fn config(id: NodeId) -> Config {
    Config {
        suspicion_timeout_ms: 600_000,
        request_timeout_ms: 60_000,
        ..Config::for_node(id)
    }
}

/// Three running nodes, the network between them and the record of what they sent.
pub struct Cluster {
    /// The hub, for cutting links.
    pub network: MemNetwork<Message>,
    /// Node `i + 1` at index `i`.
    pub nodes: Vec<ClusterNode>,
    /// What the drivers sent.
    pub wire: Wire,
}

impl Cluster {
    /// Starts nodes 1, 2 and 3 configured by `configure` and waits until all are Active.
    pub async fn start(configure: impl Fn(NodeId) -> Config) -> Cluster {
        let network = MemNetwork::<Message>::new(MemConfig::default()).expect("a valid network");
        let wire = Wire::default();
        let mut nodes = Vec::new();
        for id in IDS {
            let (inner, inbox) = network.endpoint(id).expect("an endpoint");
            let transport = RecordingTransport {
                inner,
                wire: wire.clone(),
            };
            let node = ClusterNode::start_with_transport(configure(id), &IDS, transport, inbox)
                .expect("a valid node");
            nodes.push(node);
        }
        for node in &nodes {
            node.wait_active(PATIENCE.as_millis() as u64)
                .await
                .expect("every node becomes Active");
        }
        Cluster {
            network,
            nodes,
            wire,
        }
    }

    /// Node `id`.
    pub fn node(&self, id: u32) -> &ClusterNode {
        &self.nodes[id as usize - 1]
    }

    /// Cuts (`up == false`) or restores every link between node `id` and the others.
    pub fn connect(&self, id: u32, up: bool) {
        for other in IDS.into_iter().filter(|n| n.0 != id) {
            self.network.set_links(NodeId(id), other, up);
        }
    }

    /// Shuts every node down.
    pub async fn shutdown(&self) {
        for node in &self.nodes {
            node.shutdown().await.expect("a clean shutdown");
        }
    }
}

/// Polls `condition` every 5 ms (virtual time) until it holds; fails the test after
/// [`PATIENCE`].
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {PATIENCE:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Awaits `future` for at most [`PATIENCE`]; fails the test if it does not finish.
pub async fn bounded<F: Future>(what: &str, future: F) -> F::Output {
    tokio::time::timeout(PATIENCE, future)
        .await
        .unwrap_or_else(|_| panic!("not within {PATIENCE:?}: {what}"))
}

/// The kind, key and timestamp of a protocol message (`None` for membership messages).
pub fn update_of(msg: &Message) -> Option<(&'static str, &[u8], Ts)> {
    match msg {
        Message::Inv(inv) => Some(("INV", &inv.key[..], inv.ts)),
        Message::Ack(ack) => Some(("ACK", &ack.key[..], ack.ts)),
        Message::Val(val) => Some(("VAL", &val.key[..], val.ts)),
        Message::Membership(_) => None,
    }
}

/// Whether `sent` is the `kind` of the update `ts` of `key` from `from` to `to`.
pub fn is(sent: &Sent, kind: &str, key: &[u8], ts: Ts, from: u32, to: u32) -> bool {
    sent.from == NodeId(from)
        && sent.to == NodeId(to)
        && update_of(&sent.msg) == Some((kind, key, ts))
}

/// Polls `future` once: its output if it finished without waiting for anything (no other task,
/// no timer, no message), `None` if it would have to wait.
pub fn poll_once<F: Future>(future: F) -> Option<F::Output> {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => Some(output),
        Poll::Pending => None,
    }
}
