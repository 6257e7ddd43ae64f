//! One replica's protocol state machine: the coordinator and follower paths of Hermes.
//!
//! Inputs are `handle_*` calls carrying `now`; outputs are drained with [`Replica::poll_action`]
//! and [`Replica::poll_timeout`]. After any input, drain every action before the next input; the
//! earliest deadline may change with every input.
//!
//! The per-key transition table (digest §1.8) is implemented by one handler per message kind,
//! each one `match` on the key's state: `on_request` for client requests (`requests`),
//! `on_inv` and `on_val` (`follower`), `on_ack` and `complete` for the last ACK
//! (`coordinator`), `install_view` for "follower failed" (`view_change`) and
//! `on_key_timeout` for the message-loss timeout (`timers`). Every replay starts in
//! `start_replay` (`coordinator`), whatever triggered it. `persist` emits the records to write
//! ([`Action::Persist`]) and, under `sync` durability, holds back what must wait for them
//! ([`Replica::handle_persisted`]).
//!
//! # The transition table, cell by cell
//!
//! Each cell names its arm (handler, then the arm's pattern) and its tests in
//! `hermes-core/tests/transition_table.rs`. "Follower failed" is a view change that removes the
//! replica whose ACK is missing; it follows the reset-and-replay rule (digest §3.5): ACKs are
//! cleared and the INV re-sent in the new epoch, so completion comes through the ACK column.
//!
//! Row V (Valid):
//! - Read: `on_request` `(Read, Valid) if serving`: `valid_x_read_is_served_locally`.
//! - Write: `on_request` `(Write, Valid) if member`, then `begin_update`:
//!   `valid_x_write_takes_version_plus_two_moves_to_write_and_broadcasts_inv`.
//! - INV =: `on_inv` `(Equal, Valid | Invalid | Trans | Replay)`:
//!   `valid_x_inv_equal_acks_and_adopts_sender_as_last_writer`.
//! - INV >: `on_inv` `(Greater, Valid | Invalid)`: `valid_x_inv_higher_adopts_and_acks`.
//! - INV <: `on_inv` `(Less, _)`: `valid_x_inv_lower_acks_with_the_held_ts_and_keeps_state`.
//! - ACK: `on_ack` `Valid | Invalid`: `valid_x_ack_changes_nothing`.
//! - VAL: `on_val` `Valid`: `valid_x_val_changes_nothing`.
//! - Follower failed: `install_view` (no pending update): `valid_x_follower_failed_changes_nothing`.
//!
//! Row I (Invalid):
//! - Read, coordinator alive: `on_request` `(Read, _)`, then `on_stall` arms the message-loss
//!   timeout: `invalid_x_read_waits_while_the_coordinator_is_alive`.
//! - Read, coordinator failed: `on_stall`, then `start_replay` (`WriterLeft`):
//!   `invalid_x_read_with_a_failed_coordinator_replays`.
//! - Read past the message-loss timeout: `on_key_timeout` `Invalid`, then `start_replay`
//!   (`MessageLoss`): `invalid_x_read_past_the_message_loss_timeout_replays_with_the_original_ts`.
//! - Write: **left out on purpose.** The authors' artifact allows a write from Invalid as an
//!   optimisation; here `on_request` `(Write | Delete, _)` makes it wait until the key is Valid
//!   and then start above the validated timestamp. The paper's precondition for a write is a
//!   Valid key (digest §1.6), the TLA+ specification models only that (`HWrite` requires
//!   `valid`) and the optimisation's safety is not verified (digest §3.8, §5.2):
//!   `invalid_x_write_waits_for_valid_then_starts`.
//! - INV =: `on_inv` `(Equal, Valid | Invalid | Trans | Replay)`:
//!   `invalid_x_inv_equal_acks_and_adopts_sender_as_last_writer`.
//! - INV >: `on_inv` `(Greater, Valid | Invalid)`: `invalid_x_inv_higher_adopts_and_acks`.
//! - INV <: `on_inv` `(Less, _)`: `invalid_x_inv_lower_acks_with_the_held_ts_and_keeps_state`.
//! - ACK: `on_ack` `Valid | Invalid`: `invalid_x_ack_changes_nothing`.
//! - VAL =: `on_val` `Invalid | Trans | Replay | Write`: `invalid_x_val_equal_validates`.
//! - Follower failed: `install_view`, then `start_replay` (`WriterLeft`) only if the last
//!   writer left: `invalid_x_follower_failed_changes_nothing`,
//!   `view_change_replays_an_invalid_key_whose_last_writer_left_at_once`.
//!
//! Row Trans (a pending own update superseded by a higher INV):
//! - Read: `on_request` `(Read, _)`: `trans_x_read_waits_until_the_higher_update_is_valid`,
//!   `trans_x_read_after_the_own_write_completes_replays_the_higher_update_after_mlt`.
//! - Write: `on_request` `(Write | Delete, _)`: `trans_x_write_waits_until_the_key_is_valid`.
//! - INV =: `on_inv` `(Equal, Valid | Invalid | Trans | Replay)`:
//!   `trans_x_inv_equal_acks_and_adopts_sender_as_last_writer`.
//! - INV >: `on_inv` `(Greater, Trans)`: `trans_x_inv_higher_adopts_and_acks`.
//! - INV <: `on_inv` `(Less, _)`: `trans_x_inv_lower_acks_with_the_held_ts_and_keeps_state`.
//! - Last ACK: `on_ack` `Write | Replay | Trans`, then `complete` (→I, no VAL):
//!   `trans_x_last_ack_completes_the_write_and_goes_invalid_without_val`.
//! - VAL =: `on_val` `Invalid | Trans | Replay | Write`:
//!   `trans_x_val_of_the_higher_ts_completes_the_write_and_validates`.
//! - Follower failed: `install_view` (clear ACKs, re-send):
//!   `trans_x_follower_failed_rebroadcasts_and_completes_through_acks`.
//!
//! Row W (Write):
//! - Read: `on_request` `(Read, _)`: `write_x_read_waits_for_the_write_to_commit`.
//! - Write: `on_request` `(Write | Delete, _)`: `write_x_write_waits_for_the_pending_write`.
//! - INV = (× in the table, reachable when another replica replays this replica's write):
//!   `on_inv` `(Equal, Write)`: `write_x_inv_equal_from_a_replayer_is_acked_and_keeps_the_write`;
//!   of an own pending RMW, the guarded arm before it:
//!   `rmw_coordinator_does_not_ack_a_replay_of_its_own_pending_rmw`.
//! - INV >: `on_inv` `(Greater, Write | Replay)`: `write_x_inv_higher_moves_to_trans_and_acks`;
//!   with an RMW pending, the guarded arm before it (→I, the RMW aborts):
//!   `rmw_coordinator_aborts_on_a_higher_inv_and_answers_aborted_once_valid_higher`.
//! - INV <: `on_inv` `(Less, _)`: `write_x_inv_lower_acks_with_the_held_ts_and_keeps_state`;
//!   an RMW-INV, `(Less, _) if is_rmw`:
//!   `follower_answers_a_lower_rmw_inv_with_an_abort_inv_of_its_local_state`.
//! - Last ACK: `on_ack` `Write | Replay | Trans`, then `complete` (→V, !VAL):
//!   `write_x_last_ack_commits_validates_and_answers`.
//! - VAL = (× in the table, reachable when a replay of this replica's write committed first):
//!   `on_val` `Invalid | Trans | Replay | Write`:
//!   `write_x_val_equal_from_a_replayer_completes_the_write`.
//! - Follower failed: `install_view`:
//!   `write_x_follower_failed_rebroadcasts_and_completes_through_acks`.
//!
//! Row R (Replay):
//! - Read: `on_request` `(Read, _)`: `replay_x_read_waits`.
//! - Write: `on_request` `(Write | Delete, _)`: `replay_x_write_waits`.
//! - INV =: `on_inv` `(Equal, Valid | Invalid | Trans | Replay)`:
//!   `replay_x_inv_equal_acks_and_adopts_sender_as_last_writer`.
//! - INV >: `on_inv` `(Greater, Write | Replay)`: `replay_x_inv_higher_moves_to_trans_and_acks`;
//!   a replay of an RMW, the guarded arm before it:
//!   `replay_of_an_rmw_x_inv_higher_drops_the_replay_and_goes_invalid`.
//! - INV <: `on_inv` `(Less, _)`: `replay_x_inv_lower_acks_with_the_held_ts_and_keeps_state`.
//! - Last ACK: `on_ack` `Write | Replay | Trans`, then `complete` (→V, !VAL):
//!   `replay_x_last_ack_validates_and_resumes_the_read`.
//! - VAL =: `on_val` `Invalid | Trans | Replay | Write`:
//!   `replay_x_val_validates_and_resumes_the_read`.
//! - Follower failed: `install_view`:
//!   `replay_x_follower_failed_rebroadcasts_and_completes_through_acks`.
//!
//! Timers (not columns of the table):
//! - W, R, Trans × message-loss timeout: `on_key_timeout` `Write | Replay | Trans` (re-send
//!   the INV to the replicas that have not ACKed):
//!   `message_loss_timeout_retransmits_the_inv_only_to_replicas_that_have_not_acked`,
//!   `message_loss_timeout_in_trans_retransmits_the_own_lower_inv`.
//! - Request timeout: `handle_timeout` `Timer::Request`, then `time_out`:
//!   `request_timeout_answers_a_waiting_read_with_a_known_outcome`,
//!   `request_timeout_answers_a_started_write_with_an_unknown_outcome_and_a_waiting_one_known`.

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
use crate::peer_numbers;
use crate::timer::{Timer, TimerTable};
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
    /// Messages dropped because a number they carry (a timestamp version, an epoch, a ballot
    /// round, an incarnation) is out of the range the protocol allows ([`crate::peer_numbers`]).
    /// [`crate::Node::stats`] adds the membership service's drops to the replica's.
    pub dropped_peer_numbers: u64,
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

/// What triggered a replay; every replay starts in [`Replica::start_replay`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ReplayCause {
    /// A request waited a whole message-loss timeout on an Invalid key: the VAL, or the
    /// coordinator, was lost ([`Timer::Key`]).
    MessageLoss,
    /// The key's last writer left the view: found by a stalled request, by a view change, or
    /// when an own superseded update completes and leaves the key Invalid.
    WriterLeft,
    /// A restarted node is a member again and settles the records it recovered from its store.
    Recovered,
}

/// A client request admitted and not yet answered.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PendingRequest {
    op: Op,
    /// When [`Timer::Request`] answers it with a timeout.
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
    /// Per-request timeouts and per-key message-loss timeouts.
    timers: TimerTable,
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
            timers: TimerTable::default(),
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
    /// Messages from nodes outside the current view are dropped and counted, and so are
    /// messages carrying a timestamp out of range ([`crate::peer_numbers`]) and INVs and ACKs
    /// of another epoch. Membership messages are for the membership service and change nothing
    /// here.
    pub fn handle_message(&mut self, now: Instant, from: NodeId, msg: Message) {
        if from == self.id() || !self.view.contains(from) {
            self.stats.dropped_unknown_sender += 1;
            return;
        }
        if !peer_numbers::replication_ok(&msg) {
            self.stats.dropped_peer_numbers += 1;
            return;
        }
        match msg {
            Message::Inv(inv) => self.on_inv(now, from, inv),
            Message::Ack(ack) => self.on_ack(now, from, ack),
            Message::Val(val) => self.on_val(now, from, val),
            Message::Membership(_) => return,
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
        self.timers.next_timeout()
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
            self.timers
                .reschedule(Timer::Request(id), Some(request.deadline), None);
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
        let armed = std::mem::replace(&mut entry.deadline, deadline);
        self.timers
            .reschedule(Timer::Key(key.clone()), armed, deadline);
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
