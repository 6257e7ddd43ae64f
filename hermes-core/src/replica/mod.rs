//! One replica's protocol state machine: the coordinator and follower paths of Hermes.
//!
//! Inputs are `handle_*` calls carrying `now`; outputs are drained with [`Replica::poll_action`]
//! and [`Replica::poll_timeout`]. After any input, drain every action before the next input; the
//! earliest deadline may change with every input.
//!
//! The per-key transition table (digest §1.8) is implemented by one handler per message kind:
//! [`follower`] holds `on_inv` and `on_val`, [`coordinator`] holds `on_ack` and the update
//! lifecycle, [`requests`] admits and resumes client requests, [`view_change`] installs views and
//! [`timers`] drives retransmission, replays and request timeouts. `persist` emits the records to
//! write ([`Action::Persist`]) and, under `sync` durability, holds back what must wait for them
//! ([`Replica::handle_persisted`]).

mod coordinator;
mod follower;
mod key;
mod key_map;
mod persist;
mod requests;
mod timers;
mod transfer;
mod view_change;

pub use key::{KeyEntry, KeyState, Pending, UpdateKind};

use crate::action::Action;
use crate::config::Config;
use crate::error::CoreError;
use crate::message::{Ack, Inv, Message};
use crate::op::{Op, OpResult, RequestId};
use crate::types::{Instant, Key, NodeId, Value};
use crate::view::View;
use key_map::KeyMap;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Counters of what a replica did, for metrics and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Stats {
    /// Reads answered.
    pub reads: u64,
    /// Writes and deletes coordinated here that completed.
    pub writes: u64,
    /// Compare-and-swaps coordinated here that committed.
    pub rmws: u64,
    /// Compare-and-swaps that compared a different value.
    pub cas_failed: u64,
    /// Compare-and-swaps answered `Aborted`.
    pub rmw_aborts: u64,
    /// Requests that could not run at once and waited.
    pub stalls: u64,
    /// Replays started (lost VAL, departed coordinator).
    pub replays: u64,
    /// INV retransmissions after the message-loss timeout.
    pub retransmits: u64,
    /// Views installed.
    pub view_changes: u64,
    /// Messages dropped because their epoch differs from ours.
    pub dropped_wrong_epoch: u64,
    /// Messages dropped because their sender is not in our view.
    pub dropped_unknown_sender: u64,
    /// Requests refused because a bound was reached.
    pub overloaded: u64,
    /// Requests refused as malformed.
    pub invalid_arguments: u64,
    /// Requests that timed out.
    pub timeouts: u64,
    /// `Persist` actions emitted (`async` and `sync` durability).
    pub persists: u64,
    /// ACKs that waited for their record to become durable (`sync` durability).
    pub acks_after_persist: u64,
}

/// A bug that can be planted on purpose, to prove that the simulator and the checkers catch it.
///
/// Planting needs the `planted-bugs` cargo feature (enabled only by this crate's own tests);
/// without it [`Replica`] has no way to plant one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PlantedBug {
    /// Serve reads of Invalid keys (returning an uncommitted value).
    ReadInInvalid,
    /// Keep gathered ACKs across a view change (the lost-update bug of the original RMW spec).
    KeepAcksAcrossEpochs,
    /// Promise a new view without waiting for the leases granted so far to run out.
    SkipLeaseWait,
    /// Decide views with a single acceptor instead of a majority.
    MinorityViews,
    /// Under `sync` durability, ACK INVs and commit updates without waiting for their records to
    /// be durable (a crash of every node may then lose acknowledged writes).
    AckBeforeDurable,
}

/// A client request admitted and not yet answered.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PendingRequest {
    op: Op,
    deadline: Instant,
    /// Whether an update for it was started (its outcome is then unknown until answered).
    coordinating: bool,
}

/// The Hermes protocol state of one replica.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Replica {
    config: Config,
    /// The incarnation this replica creates timestamps under.
    incarnation: u32,
    view: View,
    serving: bool,
    keys: KeyMap,
    requests: BTreeMap<RequestId, PendingRequest>,
    request_deadlines: BTreeSet<(Instant, RequestId)>,
    key_deadlines: BTreeSet<(Instant, Key)>,
    /// Keys with stalled requests, re-examined when the view or the serving flag changes.
    stalled: BTreeSet<Key>,
    /// Keys whose stalled requests must be re-examined before the current input returns.
    to_resume: Vec<Key>,
    actions: VecDeque<Action>,
    durability_tracker: persist::DurabilityTracker,
    stats: Stats,
    #[cfg(feature = "planted-bugs")]
    planted_bug: Option<PlantedBug>,
}

impl Replica {
    /// Creates a replica with an initial view (a replica outside its view serves and coordinates
    /// nothing until a view includes it). It does not serve reads until
    /// [`set_serving`](Self::set_serving) says it may.
    pub fn new(config: Config, view: View) -> Result<Self, CoreError> {
        config.validate()?;
        Ok(Replica {
            config,
            incarnation: 0,
            view,
            serving: false,
            keys: KeyMap::default(),
            requests: BTreeMap::new(),
            request_deadlines: BTreeSet::new(),
            key_deadlines: BTreeSet::new(),
            stalled: BTreeSet::new(),
            to_resume: Vec::new(),
            actions: VecDeque::new(),
            durability_tracker: persist::DurabilityTracker::default(),
            stats: Stats::default(),
            #[cfg(feature = "planted-bugs")]
            planted_bug: None,
        })
    }

    /// Plants a known bug (testing only).
    #[cfg(feature = "planted-bugs")]
    pub fn plant_bug(&mut self, bug: PlantedBug) {
        self.planted_bug = Some(bug);
    }

    #[cfg(feature = "planted-bugs")]
    fn has_bug(&self, bug: PlantedBug) -> bool {
        self.planted_bug == Some(bug)
    }

    #[cfg(not(feature = "planted-bugs"))]
    #[inline(always)]
    fn has_bug(&self, _bug: PlantedBug) -> bool {
        false
    }

    // ----- inputs -------------------------------------------------------------------------

    /// Handles a message from `from` (authenticated by the transport).
    ///
    /// Messages from nodes outside the current view are dropped and counted; INVs and ACKs of
    /// another epoch are dropped and counted.
    pub fn handle_message(&mut self, now: Instant, from: NodeId, msg: Message) {
        if from == self.id() || !self.view.contains(from) {
            self.stats.dropped_unknown_sender += 1;
            return;
        }
        match msg {
            Message::Inv(inv) => self.on_inv(now, from, inv),
            Message::Ack(ack) => self.on_ack(now, from, ack),
            Message::Val(val) => self.on_val(now, from, val),
            Message::Membership(_) => return, // handled by the membership service
        }
        self.end_input(now);
    }

    /// Sets whether this replica may serve local reads (holds a lease in the current view).
    /// Turning it on resumes stalled reads.
    pub fn set_serving(&mut self, now: Instant, serving: bool) {
        if self.serving == serving {
            return;
        }
        self.serving = serving;
        if serving {
            self.to_resume.extend(self.stalled.iter().cloned());
            self.end_input(now);
        }
    }

    // ----- outputs ------------------------------------------------------------------------

    /// The next action to carry out, in order.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The earliest deadline at which [`handle_timeout`](Self::handle_timeout) has work; changes
    /// after every input.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let request = self.request_deadlines.first().map(|(t, _)| *t);
        let key = self.key_deadlines.first().map(|(t, _)| *t);
        match (request, key) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ----- getters ------------------------------------------------------------------------

    /// Sets the incarnation new timestamps are created under (a restarted node's is higher than
    /// any before, so it never reuses a timestamp it may have created and lost).
    pub fn set_incarnation(&mut self, incarnation: u32) {
        self.incarnation = incarnation;
    }

    /// The incarnation new timestamps are created under.
    pub fn incarnation(&self) -> u32 {
        self.incarnation
    }

    /// This replica's id.
    pub fn id(&self) -> NodeId {
        self.config.node_id
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The installed view.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// Whether this replica may serve local reads (a member holding a lease).
    pub fn is_serving(&self) -> bool {
        self.serving && self.view.is_member(self.id())
    }

    /// The read fast path: `Some(value)` (with `None` = not found) when a read of `key` can be
    /// answered locally right now, `None` when it would have to wait.
    pub fn read_local(&self, key: &[u8]) -> Option<Option<Value>> {
        if !self.is_serving() {
            return None;
        }
        match self.keys.get(key) {
            None => Some(None),
            Some(entry) if entry.state == KeyState::Valid && entry.waiting.is_empty() => {
                Some(entry.value.clone())
            }
            Some(entry)
                if entry.state == KeyState::Invalid && self.has_bug(PlantedBug::ReadInInvalid) =>
            {
                Some(entry.value.clone())
            }
            Some(_) => None,
        }
    }

    /// The entry of `key`, if this replica holds one.
    pub fn key(&self, key: &[u8]) -> Option<&KeyEntry> {
        self.keys.get(key)
    }

    /// Every key entry, in key order.
    pub fn keys(&self) -> impl Iterator<Item = (&Key, &KeyEntry)> {
        self.keys.iter()
    }

    /// The number of client requests admitted and not yet answered.
    pub fn pending_requests(&self) -> usize {
        self.requests.len()
    }

    /// The counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    // ----- shared plumbing ----------------------------------------------------------------

    fn send(&mut self, to: NodeId, msg: Message) {
        self.actions.push_back(Action::Send { to, msg });
    }

    fn send_ack(&mut self, to: NodeId, key: Key, ts: crate::Ts, held: crate::Ts) {
        let epoch = self.view.epoch;
        self.send(
            to,
            Message::Ack(Ack {
                key,
                ts,
                held,
                epoch,
            }),
        );
    }

    /// Sends `inv` to every replica of the view but this one, optionally skipping those in `skip`.
    fn broadcast_inv(&mut self, inv: &Inv, skip: Option<&BTreeSet<NodeId>>) {
        let me = self.id();
        let targets: Vec<NodeId> = self
            .view
            .replicas()
            .filter(|n| *n != me && skip.is_none_or(|s| !s.contains(n)))
            .collect();
        for to in targets {
            self.send(to, Message::Inv(inv.clone()));
        }
    }

    /// Answers request `id` and forgets it.
    fn answer(&mut self, id: RequestId, result: OpResult) {
        if let Some(request) = self.requests.remove(&id) {
            self.request_deadlines.remove(&(request.deadline, id));
        }
        self.actions.push_back(Action::Reply { id, result });
    }

    /// Re-arms (or disarms, with `None`) the deadline of `key`.
    fn set_key_deadline(&mut self, key: &Key, deadline: Option<Instant>) {
        let Some(entry) = self.keys.get_mut(key) else {
            return;
        };
        if entry.deadline == deadline {
            return;
        }
        if let Some(old) = entry.deadline.take() {
            self.key_deadlines.remove(&(old, key.clone()));
        }
        if let Some(new) = deadline {
            entry.deadline = Some(new);
            self.key_deadlines.insert((new, key.clone()));
        }
    }

    /// Marks `key` so that its stalled requests are re-examined before the input returns.
    fn mark_resume(&mut self, key: &Key) {
        self.to_resume.push(key.clone());
    }

    fn resume_marked(&mut self, now: Instant) {
        while let Some(key) = self.to_resume.pop() {
            self.run_waiting(now, &key);
        }
    }

    /// Finishes an input: resumes the requests it unblocked, then persists the records it changed
    /// (one `Persist` per input).
    fn end_input(&mut self, now: Instant) {
        self.resume_marked(now);
        self.flush_records();
    }
}
