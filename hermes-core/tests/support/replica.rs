//! One replica driven input by input, for the transition-table and persistence tests.
//!
//! [`TestReplica`] wraps replica 1 of the view `{1, 2, 3}` (epoch 1, serving). Every input returns the
//! actions it produced, drained in order, so a test can compare them exactly. The builders below
//! produce the messages, operations and replies those comparisons use; all of them are about the
//! one key [`KEY`] unless they say otherwise.

use hermes_core::replica::KeyEntry;
use hermes_core::{
    Ack, Action, Config, Epoch, Instant, Inv, Key, KeyState, Message, NodeId, Op, OpResult,
    Outcome, Replica, RequestId, Ts, Val, Value, View,
};

/// The key every test works on.
pub const KEY: &[u8] = b"k";

/// The replica under test.
pub const ME: NodeId = NodeId(1);

/// Every action queued on `r`, in order.
pub fn drain(r: &mut Replica) -> Vec<Action> {
    std::iter::from_fn(|| r.poll_action()).collect()
}

/// The timestamp `(version, node)`.
pub fn ts(version: u64, node: u32) -> Ts {
    Ts::new(version, NodeId(node))
}

/// A value (or key) made of the bytes of `s`.
pub fn bytes(s: &str) -> Value {
    Value::copy_from_slice(s.as_bytes())
}

// ----- operations ---------------------------------------------------------------------------

/// Read [`KEY`].
pub fn read() -> Op {
    Op::Read {
        key: Key::from_static(KEY),
    }
}

/// Write `value` to [`KEY`].
pub fn write(value: &str) -> Op {
    write_to("k", value)
}

/// Write `value` to `key`.
pub fn write_to(key: &str, value: &str) -> Op {
    Op::Write {
        key: bytes(key),
        value: bytes(value),
    }
}

/// Compare-and-swap on [`KEY`]: install `new` if the key holds `expected` (`None` = absent).
pub fn cas(expected: Option<&str>, new: &str) -> Op {
    Op::Cas {
        key: Key::from_static(KEY),
        expected: expected.map(bytes),
        new: bytes(new),
    }
}

// ----- replies ------------------------------------------------------------------------------

/// The answer `result` to request `id`.
pub fn reply(id: u64, result: OpResult) -> Action {
    Action::Reply {
        id: RequestId(id),
        result,
    }
}

/// A read's result.
pub fn value(v: Option<&str>) -> OpResult {
    Ok(Outcome::Value(v.map(bytes)))
}

/// A write's result.
pub fn written(ts: Ts) -> OpResult {
    Ok(Outcome::Written { ts })
}

/// A committed compare-and-swap's result.
pub fn swapped(ts: Ts) -> OpResult {
    Ok(Outcome::Swapped { ts })
}

// ----- messages -----------------------------------------------------------------------------

/// Anything that is, or wraps into, a [`Message`].
pub trait IntoMessage {
    /// The message.
    fn into_message(self) -> Message;
}

impl IntoMessage for Message {
    fn into_message(self) -> Message {
        self
    }
}

impl IntoMessage for Inv {
    fn into_message(self) -> Message {
        Message::Inv(self)
    }
}

impl IntoMessage for Ack {
    fn into_message(self) -> Message {
        Message::Ack(self)
    }
}

impl IntoMessage for Val {
    fn into_message(self) -> Message {
        Message::Val(self)
    }
}

/// Sending `msg` to node `to`.
pub fn send(to: u32, msg: impl IntoMessage) -> Action {
    Action::Send {
        to: NodeId(to),
        msg: msg.into_message(),
    }
}

// ----- the replica under test ---------------------------------------------------------------

impl Default for TestReplica {
    fn default() -> Self {
        Self::new()
    }
}

/// Replica 1 and the current time of the test; inputs happen at `now`.
pub struct TestReplica {
    /// The replica under test.
    pub r: Replica,
    /// The time inputs are given at; only [`TestReplica::fire_timeout`] moves it.
    pub now: Instant,
}

impl TestReplica {
    /// Replica 1 with the default configuration, in the view `{1, 2, 3}` of epoch 1, serving.
    pub fn new() -> Self {
        Self::with_config(Config::for_node(ME))
    }

    /// Replica 1 with `config`, in the view `{1, 2, 3}` of epoch 1, serving.
    pub fn with_config(config: Config) -> Self {
        let view = View::new(Epoch(1), [NodeId(1), NodeId(2), NodeId(3)]);
        let mut r = Replica::new(config, view).expect("a valid replica");
        r.set_serving(Instant::ZERO, true);
        assert_eq!(drain(&mut r), vec![]);
        TestReplica {
            r,
            now: Instant::ZERO,
        }
    }

    /// The installed epoch.
    pub fn epoch(&self) -> Epoch {
        self.r.view().epoch
    }

    /// The other replicas of the installed view, in id order.
    pub fn peers(&self) -> Vec<u32> {
        self.r
            .view()
            .replicas()
            .filter(|n| *n != ME)
            .map(|n| n.0)
            .collect()
    }

    /// A write-INV of [`KEY`] in the installed epoch.
    pub fn inv(&self, ts: Ts, value: &str) -> Inv {
        Inv {
            key: Key::from_static(KEY),
            ts,
            value: Some(bytes(value)),
            is_rmw: false,
            epoch: self.epoch(),
        }
    }

    /// An RMW-INV of [`KEY`] in the installed epoch.
    pub fn rmw_inv(&self, ts: Ts, value: &str) -> Inv {
        Inv {
            is_rmw: true,
            ..self.inv(ts, value)
        }
    }

    /// An ACK of the INV `ts` by a replica that holds `held`, in the installed epoch.
    pub fn ack(&self, ts: Ts, held: Ts) -> Ack {
        Ack {
            key: Key::from_static(KEY),
            ts,
            held,
            epoch: self.epoch(),
        }
    }

    /// A VAL of `ts` (ACKed by replicas holding at most `highest`), in the installed epoch.
    pub fn val(&self, ts: Ts, highest: Ts) -> Val {
        Val {
            key: Key::from_static(KEY),
            ts,
            highest,
            epoch: self.epoch(),
        }
    }

    /// Sending `msg` to every other replica of the view, in id order.
    pub fn to_peers(&self, msg: impl IntoMessage) -> Vec<Action> {
        let msg = msg.into_message();
        self.peers()
            .into_iter()
            .map(|to| send(to, msg.clone()))
            .collect()
    }

    /// A client request.
    pub fn request(&mut self, id: u64, op: Op) -> Vec<Action> {
        self.r.handle_request(self.now, RequestId(id), op);
        drain(&mut self.r)
    }

    /// A message from node `from`.
    pub fn recv(&mut self, from: u32, msg: impl IntoMessage) -> Vec<Action> {
        self.r
            .handle_message(self.now, NodeId(from), msg.into_message());
        drain(&mut self.r)
    }

    /// An ACK of `ts` (holding `ts`) from every peer; all but the last must change nothing
    /// visible. Returns the actions of the last one.
    pub fn acks_from_peers(&mut self, ts: Ts) -> Vec<Action> {
        let peers = self.peers();
        let (last, first) = peers.split_last().expect("at least one peer");
        for &p in first {
            let ack = self.ack(ts, ts);
            assert_eq!(self.recv(p, ack), vec![], "ACK from {p}");
        }
        let ack = self.ack(ts, ts);
        self.recv(*last, ack)
    }

    /// Installs the view `members` at `epoch`.
    pub fn install(&mut self, epoch: u64, members: &[u32]) -> Vec<Action> {
        let view = View::new(Epoch(epoch), members.iter().map(|&n| NodeId(n)));
        self.r.install_view(self.now, view);
        drain(&mut self.r)
    }

    /// Moves time to the earliest deadline and fires it.
    pub fn fire_timeout(&mut self) -> Vec<Action> {
        self.now = self.r.poll_timeout().expect("a deadline is armed");
        self.r.handle_timeout(self.now);
        drain(&mut self.r)
    }

    /// The entry of [`KEY`], if the replica keeps one.
    pub fn entry(&self) -> Option<&KeyEntry> {
        self.r.key(KEY)
    }

    /// The entry of [`KEY`].
    pub fn key(&self) -> &KeyEntry {
        self.entry()
            .expect("the replica keeps an entry for the key")
    }

    /// The protocol-visible state of [`KEY`].
    pub fn snap(&self) -> Snap {
        let e = self.key();
        Snap {
            state: e.state,
            ts: e.ts,
            value: e.value.clone(),
            last_writer: e.last_writer,
            pending: e.pending.as_ref().map(|p| p.ts),
        }
    }

    /// The replicas whose ACKs the pending update of [`KEY`] has counted.
    pub fn acks(&self) -> Vec<u32> {
        let pending = self.key().pending.as_ref().expect("a pending update");
        pending.acks.iter().map(|n| n.0).collect()
    }

    /// The requests stalled on [`KEY`], in arrival order.
    pub fn waiting(&self) -> Vec<u64> {
        self.key().waiting.iter().map(|id| id.0).collect()
    }
}

/// The state of a key as the transition table sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snap {
    /// The key state.
    pub state: KeyState,
    /// The timestamp held.
    pub ts: Ts,
    /// The value held.
    pub value: Option<Value>,
    /// The node whose INV was adopted last (or this node when it coordinates or replays).
    pub last_writer: NodeId,
    /// The timestamp of the local update in flight, if any.
    pub pending: Option<Ts>,
}

/// The key is in `state` at `ts` holding `value`, adopted from `last_writer`, nothing pending.
pub fn snap(state: KeyState, ts: Ts, value: &str, last_writer: u32) -> Snap {
    Snap {
        state,
        ts,
        value: Some(bytes(value)),
        last_writer: NodeId(last_writer),
        pending: None,
    }
}

impl Snap {
    /// The same, with a local update at `ts` in flight.
    pub fn pending(self, ts: Ts) -> Snap {
        Snap {
            pending: Some(ts),
            ..self
        }
    }
}
