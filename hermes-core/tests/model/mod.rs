//! A stateright model of hermes-core: the real [`Replica`] wrapped in stateright actors.
//!
//! Shared by `tests/model_check.rs` (bounded runs in the test suite) and
//! `examples/model_check.rs` (deeper bounds).
//!
//! # Actors
//!
//! * Actors `0..3` are replicas `n1..n3` (stateright `Id(i)` is `NodeId(i + 1)`), all members
//!   of epoch 1, all serving. Each wraps a [`Replica`]: a message or a client request is handed
//!   to `handle_message` / `handle_request`, and every [`Action`] it emits is carried out at once
//!   (`Send` becomes a network message, `Reply` a response to the client that asked).
//! * Actors `3..` are clients, each running a short fixed script of operations, one at a time;
//!   every operation names the replica it is sent to. A client's invocations and responses are
//!   recorded in stateright's [`LinearizabilityTester`] against [`KvSpec`], a sequential map of
//!   registers with read, write, delete and compare-and-swap.
//!
//! # Faults and time
//!
//! Time is logical and kept per replica: inputs are handled at the replica's `now`, which only
//! moves when its message-loss timer fires (by the message-loss timeout, so every armed key
//! deadline is due). The request timeout is so large that no request ever times out. What the
//! timer may do, and so how the model represents message loss, depends on [`Faults`]:
//!
//! * [`Faults::Duplicating`]: an unordered duplicating network (the semantics of stateright's
//!   `Network::new_unordered_duplicating`, without its record of the last delivery; see
//!   [`HermesModel`]). A sent message stays deliverable forever, so every message may be
//!   delivered any number of times, in any order, or never: a lost message is one that is never
//!   delivered. An INV retransmission re-sends the INV the network already holds, so it adds no
//!   behaviour (the lossy model runs the retransmission code); the only behaviour the
//!   message-loss timeout adds here is the *replay* of an Invalid key a request waits on (the
//!   lost-VAL path). The timer is therefore armed only while
//!   such a replay can start, which keeps it from firing forever and the state space finite.
//! * [`Faults::Lossy`]: an unordered network that delivers each message at most once, or never
//!   (the semantics of stateright's `Network::new_unordered_nonduplicating`). Duplicates then
//!   come from the replicas themselves: the timer is armed whenever a key has a deadline, so a
//!   coordinator may retransmit its INV to the replicas that have not ACKed, and a waiting
//!   request may start a replay, at any time. Retransmission can repeat without end, so each
//!   replica's timer fires at most `timer_fires` times.
//!
//! In both, a lost message is one that is never delivered. An explicit drop step (stateright's
//! `LossyNetwork::Yes`) would add states but no behaviour: whatever can follow a drop can also
//! follow when the message just stays undelivered.
//!
//! With duplicating delivery a replica ignores a request id it has already accepted and a
//! client ignores a response it does not wait for, as a client session layer would.
#![allow(dead_code)]

use hermes_core::replica::KeyState;
use hermes_core::{
    invariants, Action, Config, Epoch, Instant, Key, Message, NodeId, Op, OpResult, Outcome,
    PlantedBug, Replica, RequestError, RequestId, Ts, Value, View,
};
use stateright::actor::{model_timeout, Actor, Command, Envelope, Id, Out};
use stateright::semantics::{ConsistencyTester, LinearizabilityTester, SequentialSpec};
use stateright::{Checker, Expectation, Model, Path, Property};
use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::Arc;
use std::time::Duration;

/// The number of replicas.
pub const REPLICAS: usize = 3;

/// The message-loss timeout of every replica; the logical clock advances by this on every fire.
const MESSAGE_LOSS_TIMEOUT_MS: u64 = 1;

/// Far beyond any logical time the model reaches: requests never time out.
const REQUEST_TIMEOUT_MS: u64 = 1_000_000_000;

/// The stateright id of replica `node`.
pub fn actor_of(node: NodeId) -> Id {
    Id::from(node.0 as usize - 1)
}

/// The replica behind stateright id `id`, if it is a replica.
pub fn node_of(id: Id) -> Option<NodeId> {
    let index = usize::from(id);
    (index < REPLICAS).then(|| NodeId(index as u32 + 1))
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn show_opt(value: &Option<Value>) -> String {
    value.as_ref().map_or_else(|| "⊥".to_string(), |v| show(v))
}

// ----- operations and the sequential specification ------------------------------------------

/// A client operation, as the linearizability tester sees it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KvOp {
    /// Read a key.
    Read(Key),
    /// Write a value.
    Write(Key, Value),
    /// Delete a key.
    Delete(Key),
    /// Compare-and-swap: `expected` (`None` = absent) to `new`.
    Cas(Key, Option<Value>, Value),
}

impl KvOp {
    /// Reads `key`.
    pub fn read(key: &'static str) -> Self {
        KvOp::Read(Key::from_static(key.as_bytes()))
    }

    /// Writes `value` to `key`.
    pub fn write(key: &'static str, value: &'static str) -> Self {
        KvOp::Write(
            Key::from_static(key.as_bytes()),
            Value::from_static(value.as_bytes()),
        )
    }

    /// Deletes `key`.
    pub fn delete(key: &'static str) -> Self {
        KvOp::Delete(Key::from_static(key.as_bytes()))
    }

    /// Swaps `key` from `expected` to `new`.
    pub fn cas(key: &'static str, expected: Option<&'static str>, new: &'static str) -> Self {
        KvOp::Cas(
            Key::from_static(key.as_bytes()),
            expected.map(|e| Value::from_static(e.as_bytes())),
            Value::from_static(new.as_bytes()),
        )
    }

    /// The hermes-core request.
    pub fn to_op(&self) -> Op {
        match self.clone() {
            KvOp::Read(key) => Op::Read { key },
            KvOp::Write(key, value) => Op::Write { key, value },
            KvOp::Delete(key) => Op::Delete { key },
            KvOp::Cas(key, expected, new) => Op::Cas { key, expected, new },
        }
    }

    fn is_cas(&self) -> bool {
        matches!(self, KvOp::Cas(..))
    }
}

impl fmt::Debug for KvOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvOp::Read(key) => write!(f, "Read({})", show(key)),
            KvOp::Write(key, value) => write!(f, "Write({}={})", show(key), show(value)),
            KvOp::Delete(key) => write!(f, "Delete({})", show(key)),
            KvOp::Cas(key, expected, new) => {
                write!(
                    f,
                    "Cas({}: {}->{})",
                    show(key),
                    show_opt(expected),
                    show(new)
                )
            }
        }
    }
}

/// A successful (or cleanly refused) return, as the linearizability tester sees it.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KvRet {
    /// A read's value (`None` = absent).
    Value(Option<Value>),
    /// A write or delete committed.
    Written,
    /// A compare-and-swap committed.
    Swapped,
    /// A compare-and-swap compared a different value.
    CasFailed,
    /// A compare-and-swap lost a race and did not take effect.
    Aborted,
}

impl fmt::Debug for KvRet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvRet::Value(value) => write!(f, "Value({})", show_opt(value)),
            KvRet::Written => f.write_str("Written"),
            KvRet::Swapped => f.write_str("Swapped"),
            KvRet::CasFailed => f.write_str("CasFailed"),
            KvRet::Aborted => f.write_str("Aborted"),
        }
    }
}

/// The sequential specification: a map of registers (absent keys read `None`).
///
/// A compare-and-swap answered `Aborted` did not take effect: it is a valid step from any state
/// and leaves the state unchanged. Every other return must equal what the operation returns when
/// applied to the current state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct KvSpec(BTreeMap<Key, Value>);

impl SequentialSpec for KvSpec {
    type Op = KvOp;
    type Ret = KvRet;

    fn invoke(&mut self, op: &KvOp) -> KvRet {
        match op {
            KvOp::Read(key) => KvRet::Value(self.0.get(key).cloned()),
            KvOp::Write(key, value) => {
                self.0.insert(key.clone(), value.clone());
                KvRet::Written
            }
            KvOp::Delete(key) => {
                self.0.remove(key);
                KvRet::Written
            }
            KvOp::Cas(key, expected, new) => {
                if self.0.get(key) == expected.as_ref() {
                    self.0.insert(key.clone(), new.clone());
                    KvRet::Swapped
                } else {
                    KvRet::CasFailed
                }
            }
        }
    }

    fn is_valid_step(&mut self, op: &KvOp, ret: &KvRet) -> bool {
        match (op, ret) {
            (KvOp::Cas(..), KvRet::Aborted) => true,
            _ => self.invoke(op) == *ret,
        }
    }
}

/// The history recorded by the model.
pub type History = LinearizabilityTester<Id, KvSpec>;

// ----- messages -----------------------------------------------------------------------------

/// What a replica answers a client.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reply {
    /// An answer the sequential specification judges.
    Ret(KvRet),
    /// The request timed out (never expected: the request timeout is out of reach).
    TimedOut {
        /// Whether the update may still take effect.
        outcome_unknown: bool,
    },
    /// Any other error (invalid argument, overload): a bug in the model or the replica.
    Unexpected(String),
}

impl Reply {
    fn from_result(result: OpResult) -> Reply {
        match result {
            Ok(Outcome::Value(value)) => Reply::Ret(KvRet::Value(value)),
            Ok(Outcome::Written { .. }) => Reply::Ret(KvRet::Written),
            Ok(Outcome::Swapped { .. }) => Reply::Ret(KvRet::Swapped),
            Err(RequestError::CasFailed) => Reply::Ret(KvRet::CasFailed),
            Err(RequestError::Aborted) => Reply::Ret(KvRet::Aborted),
            Err(RequestError::Timeout { outcome_unknown }) => Reply::TimedOut { outcome_unknown },
            Err(other) => Reply::Unexpected(other.to_string()),
        }
    }
}

/// A replication message between replicas. hermes-core's [`Message`] has no total order, which
/// stateright needs to sort actions; this wrapper orders by every field.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PeerMsg(pub Message);

type PeerKey<'a> = (u8, &'a Key, Ts, Ts, Option<&'a Value>, bool, Epoch);

impl PeerMsg {
    fn sort_key(&self) -> PeerKey<'_> {
        match &self.0 {
            Message::Inv(m) => (
                0,
                &m.key,
                m.ts,
                Ts::ZERO,
                m.value.as_ref(),
                m.is_rmw,
                m.epoch,
            ),
            Message::Ack(m) => (1, &m.key, m.ts, m.held, None, false, m.epoch),
            Message::Val(m) => (2, &m.key, m.ts, m.highest, None, false, m.epoch),
            Message::Membership(_) => unreachable!("the model runs bare replicas"),
        }
    }
}

impl PartialOrd for PeerMsg {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PeerMsg {
    fn cmp(&self, other: &Self) -> Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

impl fmt::Debug for PeerMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Message::Inv(m) => write!(
                f,
                "INV({} {} ={}{} {})",
                show(&m.key),
                m.ts,
                show_opt(&m.value),
                if m.is_rmw { " rmw" } else { "" },
                m.epoch
            ),
            Message::Ack(m) => {
                write!(
                    f,
                    "ACK({} {} held {} {})",
                    show(&m.key),
                    m.ts,
                    m.held,
                    m.epoch
                )
            }
            Message::Val(m) => write!(
                f,
                "VAL({} {} highest {} {})",
                show(&m.key),
                m.ts,
                m.highest,
                m.epoch
            ),
            Message::Membership(m) => write!(f, "{m:?}"),
        }
    }
}

/// Every message of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Msg {
    /// Client → replica.
    Request(RequestId, KvOp),
    /// Replica → client.
    Reply(RequestId, Reply),
    /// Replica → replica.
    Peer(PeerMsg),
}

// ----- actors -------------------------------------------------------------------------------

/// How the network misbehaves, and what the replicas' timers may do (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Faults {
    /// Unordered, duplicating network; a message may also never arrive. Timers only replay.
    Duplicating,
    /// Unordered, at-most-once network; a message may never arrive. Timers retransmit INVs and
    /// replay, each replica's at most `timer_fires` times.
    Lossy {
        /// How often each replica's message-loss timeout may fire.
        timer_fires: u64,
    },
}

/// The single timer of a replica: "the message-loss timeout elapsed".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LossTimeout;

/// An actor of the model.
#[derive(Clone, Debug)]
pub enum HermesActor {
    /// A replica.
    Replica {
        /// Its configuration.
        config: Config,
        /// The view it starts in (never changes).
        view: View,
        /// What its timer may do.
        faults: Faults,
        /// A bug planted in it (needs the `planted-bugs` feature).
        bug: Option<PlantedBug>,
    },
    /// A client running `script`: (replica index, operation) pairs, one at a time.
    Client {
        /// The operations and the replica each is sent to.
        script: Vec<(usize, KvOp)>,
        /// The request id of the first operation; the i-th uses `first_id + i`.
        first_id: u64,
    },
}

/// A replica actor's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ReplicaState {
    /// The protocol state.
    pub replica: Replica,
    /// The replica's logical time.
    pub now: Instant,
    /// The client behind every request id accepted so far.
    pub clients: BTreeMap<RequestId, Id>,
    /// Whether the message-loss timer is armed: the model offers a timeout step exactly then.
    /// (The actor also emits the matching stateright timer commands.)
    pub timer_armed: bool,
}

/// A client actor's state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ClientState {
    /// The index of the next operation to issue.
    pub next: usize,
    /// The request in flight.
    pub awaiting: Option<RequestId>,
    /// Whether the client gave up (a timeout) before the end of its script.
    pub stopped: bool,
    /// An unexpected reply, if one arrived.
    pub unexpected: Option<String>,
}

/// The state of any actor.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ActorState {
    /// A replica's.
    Replica(Box<ReplicaState>),
    /// A client's.
    Client(ClientState),
}

impl HermesActor {
    fn timer_wanted(faults: Faults, rs: &ReplicaState) -> bool {
        let replica = &rs.replica;
        match faults {
            Faults::Duplicating => {
                replica.view().is_member(replica.id())
                    && replica.keys().any(|(_, e)| {
                        e.state == KeyState::Invalid
                            && e.pending.is_none()
                            && !e.waiting.is_empty()
                            && e.deadline.is_some()
                    })
            }
            Faults::Lossy { timer_fires } => {
                rs.now < Instant::from_millis(timer_fires * MESSAGE_LOSS_TIMEOUT_MS)
                    && replica.keys().any(|(_, e)| e.deadline.is_some())
            }
        }
    }

    /// Carries out every action the replica emitted, then arms or disarms the timer.
    fn drain(faults: Faults, rs: &mut ReplicaState, o: &mut Out<Self>) {
        while let Some(action) = rs.replica.poll_action() {
            match action {
                Action::Send { to, msg } => o.send(actor_of(to), Msg::Peer(PeerMsg(msg))),
                Action::Reply { id, result } => {
                    let client = rs.clients[&id];
                    o.send(client, Msg::Reply(id, Reply::from_result(result)));
                }
                other => unreachable!("a bare replica emits no {other:?}"),
            }
        }
        let wanted = Self::timer_wanted(faults, rs);
        if wanted && !rs.timer_armed {
            o.set_timer(LossTimeout, model_timeout());
        } else if !wanted && rs.timer_armed {
            o.cancel_timer(LossTimeout);
        }
        rs.timer_armed = wanted;
    }

    fn issue(script: &[(usize, KvOp)], first_id: u64, client: &mut ClientState, o: &mut Out<Self>) {
        if let Some((replica, op)) = script.get(client.next) {
            let id = RequestId(first_id + client.next as u64);
            o.send(Id::from(*replica), Msg::Request(id, op.clone()));
            client.awaiting = Some(id);
            client.next += 1;
        }
    }
}

impl Actor for HermesActor {
    type Msg = Msg;
    type State = ActorState;
    type Timer = LossTimeout;
    type Random = ();
    type Storage = ();

    fn on_start(&self, _id: Id, _storage: &Option<()>, o: &mut Out<Self>) -> ActorState {
        match self {
            HermesActor::Replica {
                config, view, bug, ..
            } => {
                let mut replica =
                    Replica::new(config.clone(), view.clone()).expect("a valid replica");
                #[cfg(feature = "planted-bugs")]
                if let Some(bug) = bug {
                    replica.plant_bug(*bug);
                }
                #[cfg(not(feature = "planted-bugs"))]
                assert!(
                    bug.is_none(),
                    "planting a bug needs the `planted-bugs` feature"
                );
                replica.set_serving(Instant::ZERO, true);
                assert!(replica.poll_action().is_none());
                ActorState::Replica(Box::new(ReplicaState {
                    replica,
                    now: Instant::ZERO,
                    clients: BTreeMap::new(),
                    timer_armed: false,
                }))
            }
            HermesActor::Client { script, first_id } => {
                let mut client = ClientState {
                    next: 0,
                    awaiting: None,
                    stopped: false,
                    unexpected: None,
                };
                Self::issue(script, *first_id, &mut client, o);
                ActorState::Client(client)
            }
        }
    }

    fn on_msg(&self, _id: Id, state: &mut Cow<ActorState>, src: Id, msg: Msg, o: &mut Out<Self>) {
        match (self, &**state) {
            (HermesActor::Replica { faults, .. }, ActorState::Replica(current)) => {
                let mut rs = current.clone();
                match msg {
                    Msg::Request(id, op) => {
                        if rs.clients.contains_key(&id) {
                            return; // a duplicate of a request already accepted
                        }
                        rs.clients.insert(id, src);
                        let now = rs.now;
                        rs.replica.handle_request(now, id, op.to_op());
                    }
                    Msg::Peer(PeerMsg(message)) => {
                        let Some(from) = node_of(src) else {
                            return;
                        };
                        let now = rs.now;
                        rs.replica.handle_message(now, from, message);
                    }
                    Msg::Reply(..) => return,
                }
                Self::drain(*faults, &mut rs, o);
                if rs != *current {
                    *state = Cow::Owned(ActorState::Replica(rs));
                }
            }
            (HermesActor::Client { script, first_id }, ActorState::Client(current)) => {
                let Msg::Reply(id, reply) = msg else {
                    return;
                };
                if current.awaiting != Some(id) {
                    return; // a duplicate, or an answer to nothing
                }
                let mut client = current.clone();
                client.awaiting = None;
                match reply {
                    Reply::Ret(_) => Self::issue(script, *first_id, &mut client, o),
                    Reply::TimedOut { .. } => client.stopped = true,
                    Reply::Unexpected(error) => {
                        client.unexpected = Some(error);
                        client.stopped = true;
                    }
                }
                *state = Cow::Owned(ActorState::Client(client));
            }
            _ => unreachable!("actor and state kinds match"),
        }
    }

    fn on_timeout(
        &self,
        _id: Id,
        state: &mut Cow<ActorState>,
        _timer: &LossTimeout,
        o: &mut Out<Self>,
    ) {
        let (HermesActor::Replica { faults, .. }, ActorState::Replica(current)) = (self, &**state)
        else {
            return;
        };
        let mut rs = current.clone();
        rs.timer_armed = false; // stateright unsets a timer that fires
        rs.now = rs.now + Duration::from_millis(MESSAGE_LOSS_TIMEOUT_MS);
        let now = rs.now;
        rs.replica.handle_timeout(now);
        Self::drain(*faults, &mut rs, o);
        *state = Cow::Owned(ActorState::Replica(rs));
    }

    fn name(&self) -> String {
        match self {
            HermesActor::Replica { config, .. } => format!("{}", config.node_id),
            HermesActor::Client { first_id, .. } => {
                format!("client {}", char::from(b'A' - 1 + (first_id / 100) as u8))
            }
        }
    }
}

// ----- the model ----------------------------------------------------------------------------

/// The network: every message in flight, with its number of copies.
///
/// With [`Faults::Duplicating`] a message is never consumed (one copy stays deliverable
/// forever); with [`Faults::Lossy`] a delivery consumes one copy.
pub type InFlight = BTreeMap<Envelope<Msg>, u32>;

/// The model's global state.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct HermesState {
    /// Every actor's state, replicas first.
    pub actors: Vec<Arc<ActorState>>,
    /// The messages in flight.
    pub network: InFlight,
    /// The clients' invocations and returns.
    pub history: History,
}

/// A step of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Step {
    /// Deliver (a copy of) a message.
    Deliver(Envelope<Msg>),
    /// A replica's message-loss timeout fires.
    Timeout(Id),
}

/// One configuration of the model.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// A short name for reports.
    pub name: &'static str,
    /// The network and timer behaviour.
    pub faults: Faults,
    /// Each client's script: (replica index 0..3, operation).
    pub clients: Vec<Vec<(usize, KvOp)>>,
    /// A bug planted in every replica.
    pub bug: Option<PlantedBug>,
}

impl ModelConfig {
    /// One key, two clients: A writes `a1` then swaps `a1 → a2` at n1; B writes `b1` at n3 and
    /// then reads at n2.
    pub fn one_key(faults: Faults) -> Self {
        ModelConfig {
            name: "one key",
            faults,
            clients: vec![
                vec![
                    (0, KvOp::write("x", "a1")),
                    (0, KvOp::cas("x", Some("a1"), "a2")),
                ],
                vec![(2, KvOp::write("x", "b1")), (1, KvOp::read("x"))],
            ],
            bug: None,
        }
    }

    /// Two keys, two clients: A writes `x = a1` at n1 and then swaps `y` from absent to `a2` at
    /// n2; B writes `y = b1` at n3 and then reads `x` at n2.
    pub fn two_keys(faults: Faults) -> Self {
        ModelConfig {
            name: "two keys",
            faults,
            clients: vec![
                vec![(0, KvOp::write("x", "a1")), (1, KvOp::cas("y", None, "a2"))],
                vec![(2, KvOp::write("y", "b1")), (1, KvOp::read("x"))],
            ],
            bug: None,
        }
    }

    /// The smallest scenario that exposes reads served from Invalid: A writes `x = a1` at n1
    /// while B reads `x` at n3 and then at n2.
    pub fn read_in_invalid() -> Self {
        ModelConfig {
            name: "planted ReadInInvalid",
            faults: Faults::Duplicating,
            clients: vec![
                vec![(0, KvOp::write("x", "a1"))],
                vec![(2, KvOp::read("x")), (1, KvOp::read("x"))],
            ],
            bug: Some(PlantedBug::ReadInInvalid),
        }
    }

    fn has_cas(&self) -> bool {
        self.clients.iter().flatten().any(|(_, op)| op.is_cas())
    }
}

/// The model: the actors of a [`ModelConfig`] over its network.
///
/// It drives [`HermesActor`]s the way stateright's `ActorModel` does, with one difference:
/// `ActorModel`'s duplicating network also records the last message delivered, so two
/// interleavings of the same deliveries end in different states and the reduction that makes
/// breadth-first search tractable is lost (several times more states for the same behaviours).
/// This network holds only what is in flight.
pub struct HermesModel {
    /// The configuration.
    pub cfg: ModelConfig,
    /// Replicas `0..REPLICAS`, then the clients.
    pub actors: Vec<HermesActor>,
}

impl HermesModel {
    /// Builds the model of `cfg`.
    pub fn new(cfg: ModelConfig) -> Self {
        let view = View::new(Epoch(1), (1..=REPLICAS as u32).map(NodeId));
        let mut actors: Vec<HermesActor> = (1..=REPLICAS as u32)
            .map(|n| HermesActor::Replica {
                config: Config {
                    message_loss_timeout_ms: MESSAGE_LOSS_TIMEOUT_MS,
                    request_timeout_ms: REQUEST_TIMEOUT_MS,
                    ..Config::for_node(NodeId(n))
                },
                view: view.clone(),
                faults: cfg.faults,
                bug: cfg.bug,
            })
            .collect();
        actors.extend(
            cfg.clients
                .iter()
                .enumerate()
                .map(|(i, script)| HermesActor::Client {
                    script: script.clone(),
                    first_id: 100 * (i as u64 + 1),
                }),
        );
        HermesModel { cfg, actors }
    }

    /// Carries out the commands `src` emitted: sends (recording client invocations). Timer
    /// commands need no handling: a replica's state says whether its timer is armed.
    fn process(&self, src: Id, out: Out<HermesActor>, state: &mut HermesState) {
        for command in out {
            if let Command::Send(dst, msg) = command {
                if let Msg::Request(_, op) = &msg {
                    // An error marks the history invalid, which "linearizable" reports.
                    let _ = state.history.on_invoke(src, op.clone());
                }
                let copies = state.network.entry(Envelope { src, dst, msg }).or_insert(0);
                *copies = match self.cfg.faults {
                    Faults::Duplicating => 1,
                    Faults::Lossy { .. } => *copies + 1,
                };
            }
        }
    }

    fn consume(&self, state: &mut HermesState, env: &Envelope<Msg>) {
        if matches!(self.cfg.faults, Faults::Lossy { .. }) {
            if let Some(copies) = state.network.get_mut(env) {
                *copies -= 1;
                if *copies == 0 {
                    state.network.remove(env);
                }
            }
        }
    }

    /// The linearizability verdict and the invariants of `state`, for reports.
    pub fn verdicts(&self, state: &HermesState) -> String {
        format!(
            "linearization: {:?}\ninvariants: {:?}",
            state.history.serialized_history(),
            check_invariants(state)
        )
    }
}

impl Model for HermesModel {
    type State = HermesState;
    type Action = Step;

    fn init_states(&self) -> Vec<HermesState> {
        let mut state = HermesState {
            actors: Vec::with_capacity(self.actors.len()),
            network: InFlight::new(),
            history: LinearizabilityTester::new(KvSpec::default()),
        };
        for (index, actor) in self.actors.iter().enumerate() {
            let mut out = Out::new();
            let actor_state = actor.on_start(Id::from(index), &None, &mut out);
            state.actors.push(Arc::new(actor_state));
            self.process(Id::from(index), out, &mut state);
        }
        vec![state]
    }

    fn actions(&self, state: &HermesState, actions: &mut Vec<Step>) {
        for env in state.network.keys() {
            actions.push(Step::Deliver(env.clone()));
        }
        for (index, actor_state) in state.actors.iter().enumerate() {
            if let ActorState::Replica(rs) = &**actor_state {
                if rs.timer_armed {
                    actions.push(Step::Timeout(Id::from(index)));
                }
            }
        }
    }

    fn next_state(&self, last: &HermesState, action: Step) -> Option<HermesState> {
        match action {
            Step::Deliver(env) => {
                let index = usize::from(env.dst);
                let mut actor_state = Cow::Borrowed(&*last.actors[index]);
                let mut out = Out::new();
                self.actors[index].on_msg(
                    env.dst,
                    &mut actor_state,
                    env.src,
                    env.msg.clone(),
                    &mut out,
                );
                if matches!(actor_state, Cow::Borrowed(_)) && out.is_empty() {
                    return None; // ignored: the same as never delivering it
                }
                let mut next = last.clone();
                self.consume(&mut next, &env);
                if let Msg::Reply(_, Reply::Ret(ret)) = &env.msg {
                    // A client changes state only on the response it waits for.
                    let _ = next.history.on_return(env.dst, ret.clone());
                }
                if let Cow::Owned(actor_state) = actor_state {
                    next.actors[index] = Arc::new(actor_state);
                }
                self.process(env.dst, out, &mut next);
                Some(next)
            }
            Step::Timeout(id) => {
                let index = usize::from(id);
                let mut actor_state = Cow::Borrowed(&*last.actors[index]);
                let mut out = Out::new();
                self.actors[index].on_timeout(id, &mut actor_state, &LossTimeout, &mut out);
                let mut next = last.clone();
                if let Cow::Owned(actor_state) = actor_state {
                    next.actors[index] = Arc::new(actor_state);
                }
                self.process(id, out, &mut next);
                Some(next)
            }
        }
    }

    fn properties(&self) -> Vec<Property<Self>> {
        let mut properties = vec![
            Property::always("linearizable", |_, s: &HermesState| {
                s.history.serialized_history().is_some()
            }),
            Property::always("invariants", |_, s: &HermesState| {
                check_invariants(s).is_ok()
            }),
            Property::always("expected replies", |_, s: &HermesState| {
                clients_of(s).all(|c| c.unexpected.is_none() && !c.stopped)
            }),
            Property::sometimes("every client finished", |m: &Self, s: &HermesState| {
                clients_of(s)
                    .zip(&m.cfg.clients)
                    .all(|(c, script)| c.next == script.len() && c.awaiting.is_none())
            }),
        ];
        properties.push(match self.cfg.faults {
            Faults::Duplicating => Property::sometimes("a replay ran", |_, s: &HermesState| {
                replicas_of(s).any(|r| r.stats().replays > 0)
            }),
            Faults::Lossy { .. } => {
                Property::sometimes("an inv was retransmitted", |_, s: &HermesState| {
                    replicas_of(s).any(|r| r.stats().retransmits > 0)
                })
            }
        });
        if self.cfg.has_cas() {
            properties.push(Property::sometimes(
                "a cas swapped",
                |_, s: &HermesState| replicas_of(s).any(|r| r.stats().rmws > 0),
            ));
            properties.push(Property::sometimes(
                "a cas failed or aborted",
                |_, s: &HermesState| {
                    replicas_of(s).any(|r| r.stats().cas_failed + r.stats().rmw_aborts > 0)
                },
            ));
        }
        properties
    }
}

/// The replicas' protocol states, in node order.
pub fn replicas_of(state: &HermesState) -> impl Iterator<Item = &Replica> {
    state.actors.iter().filter_map(|s| match &**s {
        ActorState::Replica(rs) => Some(&rs.replica),
        ActorState::Client(_) => None,
    })
}

/// The clients' states, in client order.
pub fn clients_of(state: &HermesState) -> impl Iterator<Item = &ClientState> {
    state.actors.iter().filter_map(|s| match &**s {
        ActorState::Client(c) => Some(c),
        ActorState::Replica(_) => None,
    })
}

/// hermes-core's per-step invariants over the three replicas.
pub fn check_invariants(state: &HermesState) -> Result<(), String> {
    let replicas: Vec<Option<&Replica>> = replicas_of(state).map(Some).collect();
    invariants::check_all(&replicas)
}

/// A readable account of a path: one line per step, then the history, the verdicts and every
/// replica's keys in the last state.
pub fn explain(model: &HermesModel, path: &Path<HermesState, Step>) -> String {
    let name = |id: &Id| -> String {
        model
            .actors
            .get(usize::from(*id))
            .map_or_else(|| format!("{id:?}"), Actor::name)
    };
    let mut out = String::new();
    for (i, action) in path.clone().into_actions().iter().enumerate() {
        let line = match action {
            Step::Deliver(env) => format!("{} → {}: {:?}", name(&env.src), name(&env.dst), env.msg),
            Step::Timeout(id) => format!("{}: message-loss timeout", name(id)),
        };
        let _ = writeln!(out, "{:>3}. {line}", i + 1);
    }
    let last = path.last_state();
    let _ = writeln!(out, "history: {:?}", last.history);
    let _ = writeln!(out, "{}", model.verdicts(last));
    for replica in replicas_of(last) {
        for (key, entry) in replica.keys() {
            let _ = writeln!(
                out,
                "{} {}: {:?} at {} ={}{}",
                replica.id(),
                show(key),
                entry.state,
                entry.ts,
                show_opt(&entry.value),
                entry
                    .pending
                    .as_ref()
                    .map_or_else(String::new, |p| format!(", pending {}", p.ts))
            );
        }
    }
    out
}

// ----- running ------------------------------------------------------------------------------

/// The outcome of one breadth-first run.
#[derive(Debug)]
pub struct RunReport {
    /// The step bound: every state reachable in at most this many steps was checked (`None`:
    /// every reachable state).
    pub max_steps: Option<usize>,
    /// States generated (including those one step past the bound, generated but not checked).
    pub states: usize,
    /// Distinct states among them.
    pub unique_states: usize,
    /// The most steps on a path the search generated.
    pub deepest: usize,
    /// Wall time.
    pub elapsed: Duration,
    /// A readable counterexample per violated `Always` property.
    pub violations: Vec<(&'static str, String)>,
    /// `Sometimes` properties without an example within the bound.
    pub unwitnessed: Vec<&'static str>,
}

/// Explores `cfg` breadth-first on `threads` threads, checking every property in every state
/// reachable in at most `max_steps` steps (`None`: in every reachable state; the models are
/// finite).
///
/// Only a single-threaded bounded run is exact: with more threads the search is only roughly
/// breadth-first, and a state first reached by a longer path may have successors cut off at the
/// bound. Unbounded runs are exact either way.
///
/// stateright keeps the last violating state it checks, not the first, so a violation is then
/// searched again with smaller bounds (single-threaded) to report a shortest counterexample.
pub fn run(cfg: ModelConfig, max_steps: Option<usize>, threads: usize) -> RunReport {
    let started = std::time::Instant::now();
    let checker = search(&cfg, max_steps, threads);
    let elapsed = started.elapsed();
    let mut violations = Vec::new();
    let mut unwitnessed = Vec::new();
    for property in checker.model().properties() {
        let found = checker.discovery(property.name);
        match (property.expectation, found) {
            (Expectation::Sometimes, None) => unwitnessed.push(property.name),
            (Expectation::Sometimes, Some(_)) => {}
            (_, Some(path)) => {
                let path = shortest(&cfg, property.name, path);
                violations.push((property.name, explain(checker.model(), &path)));
            }
            (_, None) => {}
        }
    }
    RunReport {
        max_steps,
        states: checker.state_count(),
        unique_states: checker.unique_state_count(),
        deepest: checker.max_depth().saturating_sub(1),
        elapsed,
        violations,
        unwitnessed,
    }
}

fn search(
    cfg: &ModelConfig,
    max_steps: Option<usize>,
    threads: usize,
) -> impl Checker<HermesModel> {
    let mut builder = HermesModel::new(cfg.clone()).checker().threads(threads);
    if let Some(steps) = max_steps {
        // stateright counts the initial state as depth 1 and neither checks nor expands states
        // at the target depth.
        builder = builder.target_max_depth(steps + 2);
    }
    let checker = builder.spawn_bfs().join();
    assert!(checker.is_done(), "the checker stopped early");
    checker
}

/// A shortest path to a state violating `property`, given a path to one.
fn shortest(
    cfg: &ModelConfig,
    property: &'static str,
    found: Path<HermesState, Step>,
) -> Path<HermesState, Step> {
    // Invariant: a violation exists within `high` steps, none within `low - 1`.
    let mut best = found;
    let (mut low, mut high) = (0, best.clone().into_actions().len());
    while low < high {
        let middle = (low + high) / 2;
        match search(cfg, Some(middle), 1).discovery(property) {
            Some(path) => {
                high = path.clone().into_actions().len().min(middle);
                best = path;
            }
            None => low = middle + 1,
        }
    }
    best
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.max_steps {
            Some(steps) => write!(f, "all states within {steps} steps")?,
            None => write!(
                f,
                "all reachable states (paths up to {} steps)",
                self.deepest
            )?,
        }
        write!(
            f,
            ": {} states generated, {} unique, {:.1?}",
            self.states, self.unique_states, self.elapsed
        )?;
        if !self.unwitnessed.is_empty() {
            write!(f, "; no example of {:?}", self.unwitnessed)?;
        }
        for (name, path) in &self.violations {
            write!(f, "\nviolated: {name}\n{path}")?;
        }
        Ok(())
    }
}
