//! A whole Hermes node, sans-IO: the replication protocol ([`Replica`]) under the membership
//! service ([`Membership`]), with joins, restarts and state transfer.
//!
//! The membership decides views and leases; the node installs each decided view in the replica,
//! lets the replica serve reads only while the lease holds, and keeps a restarted or removed node
//! from serving or coordinating until it has rejoined as a shadow, copied the state from a donor
//! and been promoted.
//!
//! Actions are carried out in order; a [`Action::SaveMembership`] must be durable before any
//! later action is carried out. With `async` or `sync` durability the node also emits
//! [`Action::Persist`]; the driver writes those records (in the background, in groups) and
//! reports them durable with [`Node::handle_persisted`].
//!
//! A node restarts in one of two ways: [`Node::restart`] with its saved membership state and no
//! data (`memory` durability, or a lost store), or [`Node::recover`] with its store's records
//! as well (`async` and `sync`). Under `sync` a recovered member of the installed view may be
//! taken back as a member at once, which lets a cluster whose members all crashed at once form
//! a view again without losing an acknowledged write (see `docs/ARCHITECTURE.md`, "Durability
//! and total restart").

use crate::action::Action;
use crate::config::Config;
use crate::durability::{Durability, PersistToken};
use crate::error::CoreError;
use crate::membership::{DurableMembership, Membership, MembershipMessage, MembershipOutput};
use crate::message::Message;
use crate::op::{Op, RequestId};
use crate::peer_numbers::INCARNATION_MAX;
use crate::replica::{Replica, Stats};
use crate::timer::{Timer, TimerTable};
use crate::types::{Epoch, Instant, Key, NodeId, Record, Value};
use crate::view::View;
use std::collections::VecDeque;

/// A state transfer in progress at a shadow.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Transfer {
    /// The epoch in which this node became a shadow; donors must have installed it.
    epoch: Epoch,
    /// Resume after this key.
    after: Option<Key>,
    donor: NodeId,
    done: bool,
    /// Under `sync` durability, the last `Persist` emitted when the copy completed: the shadow
    /// reports caught up only once it is durable.
    durable_at: PersistToken,
}

/// The node's own life-cycle state, as the seed describes it (reported by a node's status).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum NodeState {
    /// A member holding a valid lease: serves reads and coordinates writes.
    Active,
    /// A member that misses heartbeats from some replicas, or holds no lease.
    Suspected,
    /// Not a member: removed, joining, a shadow copying state, or restarting.
    Inactive,
}

impl std::fmt::Display for NodeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            NodeState::Active => "Active",
            NodeState::Suspected => "Suspected",
            NodeState::Inactive => "Inactive",
        })
    }
}

/// One Hermes node: replica plus membership.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Node {
    config: Config,
    replica: Replica,
    membership: Membership,
    /// The replica holds no trusted state (restart, removal) until this incarnation is in a view.
    rejoining: bool,
    transfer: Option<Transfer>,
    /// [`Timer::JoinRetry`] while this node needs to (re)join, [`Timer::TransferRetry`] while a
    /// state transfer is in progress.
    timers: TimerTable,
    /// This node asked to leave: once removed it does not rejoin.
    leaving: bool,
    /// Restarted with its store's records ([`Node::recover`]): once a member again, it replays
    /// the Invalid keys it holds.
    recovered: bool,
    actions: VecDeque<Action>,
}

impl Node {
    /// A node of a new cluster whose initial view is `view`.
    pub fn new(config: Config, view: View, now: Instant) -> Result<Self, CoreError> {
        let replica = Replica::new(config.clone(), view.clone())?;
        let membership = Membership::new(&config, view, 0, now);
        let mut actions = VecDeque::new();
        // The initial view is durable before anything else happens.
        actions.push_back(Action::SaveMembership(membership.durable()));
        let mut node = Node {
            config,
            replica,
            membership,
            rejoining: false,
            transfer: None,
            timers: TimerTable::default(),
            leaving: false,
            recovered: false,
            actions,
        };
        node.timers.set(Timer::JoinRetry, now);
        node.stop_join_unless_needed();
        Ok(node)
    }

    /// A node restarting from its saved membership state, with empty data: it serves and
    /// coordinates nothing until it has rejoined with a new incarnation.
    pub fn restart(
        config: Config,
        saved: DurableMembership,
        now: Instant,
    ) -> Result<Self, CoreError> {
        Node::start_again(config, saved, false, now)
    }

    /// A node starting a new incarnation from its saved membership state, rejoining; with
    /// `keeps_records`, its store still vouches for what [`DurableMembership::complete_store`]
    /// says.
    fn start_again(
        config: Config,
        saved: DurableMembership,
        keeps_records: bool,
        now: Instant,
    ) -> Result<Self, CoreError> {
        let incarnation = saved
            .incarnation
            .checked_add(1)
            .filter(|i| *i <= INCARNATION_MAX)
            .ok_or(CoreError::IncarnationsExhausted {
                incarnation: saved.incarnation,
            })?;
        let mut membership = Membership::restore(&config, saved, incarnation, now);
        if !keeps_records {
            // Without its records the store vouches for nothing: it rejoins as a shadow.
            membership.forget_records();
        }
        // Until this incarnation is in a view, the replica sees itself as a shadow: it ACKs INVs
        // but never coordinates (it could reuse a timestamp) and never serves.
        let mut view = membership.view().clone();
        if view.members.remove(&config.node_id) {
            view.shadows.insert(config.node_id);
        }
        let mut replica = Replica::new(config.clone(), view)?;
        replica.set_incarnation(u32::try_from(incarnation).unwrap_or(u32::MAX));
        let mut node = Node {
            config,
            replica,
            membership,
            rejoining: true,
            transfer: None,
            timers: TimerTable::default(),
            leaving: false,
            recovered: false,
            actions: VecDeque::new(),
        };
        node.timers.set(Timer::JoinRetry, now);
        node.actions
            .push_back(Action::SaveMembership(node.membership.durable()));
        Ok(node)
    }

    /// A node restarting from its saved membership state and the records of its store (`async`
    /// and `sync` durability; [`Node::restart`] stays the way back for `memory`).
    ///
    /// Like [`Node::restart`], it starts a new incarnation and serves and coordinates nothing
    /// until that incarnation is in a view. The records are not trusted: each key starts
    /// Invalid (see [`Replica::load_recovered`]). Under `sync` durability, a node that the
    /// current view still lists as a member is taken back as a member directly, because every
    /// acknowledged write is among its records; it then replays them before any read or write
    /// of those keys completes. Otherwise it comes back as a shadow, drops the records (one
    /// could be an RMW that lost while the cluster went on without it) and copies the state.
    /// `records` and `saved` must come from the same store: the saved state's
    /// [`DurableMembership::complete_store`] vouches for the records (a node that ran under
    /// another mode before does not, and rejoins as a shadow once).
    pub fn recover(
        config: Config,
        saved: DurableMembership,
        records: Vec<(Key, Record)>,
        now: Instant,
    ) -> Result<Self, CoreError> {
        let mut node = Node::start_again(config, saved, true, now)?;
        node.replica.load_recovered(records);
        node.recovered = true;
        Ok(node)
    }

    /// Plants a known bug in the replica (testing only).
    #[cfg(feature = "planted-bugs")]
    pub fn plant_bug(&mut self, bug: crate::replica::PlantedBug) {
        self.replica.plant_bug(bug);
        self.membership.plant_bug(bug);
    }

    /// Asks the cluster to remove this node (graceful leave).
    pub fn leave(&mut self, now: Instant) {
        self.leaving = true;
        self.membership.leave();
        self.sync(now);
    }

    // ----- inputs -------------------------------------------------------------------------

    /// Handles a client request (see [`Replica::handle_request`]).
    pub fn handle_request(&mut self, now: Instant, id: RequestId, op: Op) {
        self.refresh_serving(now);
        self.replica.handle_request(now, id, op);
        self.sync(now);
    }

    /// Handles a message from `from`. A message carrying a number out of range is dropped and
    /// counted ([`crate::peer_numbers`], [`Node::stats`]).
    pub fn handle_message(&mut self, now: Instant, from: NodeId, msg: Message) {
        self.refresh_serving(now);
        if let Message::Membership(
            m @ (MembershipMessage::TransferRequest { .. }
            | MembershipMessage::TransferChunk { .. }),
        ) = &msg
        {
            // The node serves state transfer itself; the membership service checks the numbers.
            if !self.membership.admit(from, m) {
                self.sync(now);
                return;
            }
        }
        match msg {
            Message::Membership(MembershipMessage::TransferRequest { epoch, after }) => {
                self.on_transfer_request(from, epoch, after)
            }
            Message::Membership(MembershipMessage::TransferChunk {
                epoch,
                after,
                entries,
                done,
            }) => self.on_transfer_chunk(now, from, epoch, after, entries, done),
            Message::Membership(m) => self.membership.handle_message(now, from, m),
            replication => self.replica.handle_message(now, from, replication),
        }
        self.sync(now);
    }

    /// Reports that every [`Action::Persist`] up to `token` is durable (see
    /// [`Replica::handle_persisted`]). Under `sync` durability this releases the ACKs, commits
    /// and answers that waited for those records, and a shadow's report that it caught up;
    /// otherwise it changes nothing.
    pub fn handle_persisted(&mut self, now: Instant, token: PersistToken) {
        self.refresh_serving(now);
        let before = self.replica.durable_token();
        self.replica.handle_persisted(now, token);
        let after = self.replica.durable_token();
        let copy_now_durable = self
            .transfer
            .as_ref()
            .is_some_and(|t| t.done && before < t.durable_at && t.durable_at <= after);
        if copy_now_durable && self.config.durability == Durability::Sync {
            self.announce_caught_up(now);
        }
        self.sync(now);
    }

    /// Fires every deadline at or before `now`: the membership's, the replica's, then the
    /// node's own ([`Timer::JoinRetry`], [`Timer::TransferRetry`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.membership.handle_timeout(now);
        self.replica.handle_timeout(now);
        for timer in self.timers.pop_expired(now) {
            match timer {
                Timer::JoinRetry => self.send_joins(now),
                Timer::TransferRetry => {
                    if self.transfer.as_ref().is_some_and(|t| t.done) {
                        // Not promoted yet: the CaughtUp may have been lost.
                        self.announce_caught_up(now);
                    } else {
                        self.request_chunk(now, true);
                    }
                }
                // Armed only in the replica's and the membership's tables.
                Timer::Request(_)
                | Timer::Key(_)
                | Timer::LeaseExpiry
                | Timer::FrozenCheck
                | Timer::Heartbeat
                | Timer::PromiseRelease
                | Timer::ProposalTimeout
                | Timer::ProposeTurn => {}
            }
        }
        self.sync(now);
    }

    /// Asks every other replica of the view to let this node (re)join, and again later.
    fn send_joins(&mut self, now: Instant) {
        if !self.needs_join() {
            return;
        }
        self.timers
            .set(Timer::JoinRetry, now + self.config.heartbeat_interval() * 4);
        let incarnation = self.membership.incarnation();
        let me = self.id();
        let peers: Vec<NodeId> = self
            .membership
            .view()
            .replicas()
            .filter(|n| *n != me)
            .collect();
        let complete_store = self.membership.complete_store();
        for to in peers {
            let msg = MembershipMessage::Join {
                incarnation,
                complete_store,
            };
            self.actions.push_back(Action::Send {
                to,
                msg: Message::Membership(msg),
            });
        }
    }

    /// Disarms [`Timer::JoinRetry`] while this node has no need to join (checked after every
    /// input, so it never wakes the driver for nothing).
    fn stop_join_unless_needed(&mut self) {
        if !self.needs_join() {
            self.timers.stop(Timer::JoinRetry);
        }
    }

    // ----- outputs and getters ------------------------------------------------------------

    /// The next action to carry out, in order.
    #[must_use]
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The earliest deadline at which [`handle_timeout`](Self::handle_timeout) has work.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.membership.poll_timeout(),
            self.replica.poll_timeout(),
            self.timers.next_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The replica's counters, with the messages the membership service dropped for numbers
    /// out of range added to [`Stats::dropped_peer_numbers`].
    pub fn stats(&self) -> Stats {
        let mut stats = self.replica.stats().clone();
        stats.dropped_peer_numbers += self.membership.dropped_peer_numbers();
        stats
    }

    /// The read fast path: the value (`None` = not found) if a read can be answered locally now.
    pub fn read_local(&self, now: Instant, key: &[u8]) -> Option<Option<Value>> {
        if !self.may_serve(now) {
            return None;
        }
        self.replica.read_local(key)
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.config.node_id
    }

    /// The replication state.
    pub fn replica(&self) -> &Replica {
        &self.replica
    }

    /// The membership state.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Whether this node may serve local reads at `now`: a member of its view holding a lease,
    /// not rejoining.
    pub fn may_serve(&self, now: Instant) -> bool {
        !self.rejoining && self.membership.has_lease(now)
    }

    /// Whether this node is restarting or was removed and has not yet been added back.
    pub fn is_rejoining(&self) -> bool {
        self.rejoining
    }

    /// Active, Suspected or Inactive at `now`.
    pub fn state(&self, now: Instant) -> NodeState {
        let view = self.membership.view();
        if self.rejoining || !view.is_member(self.id()) {
            NodeState::Inactive
        } else if self.may_serve(now) && self.membership.suspects(now).is_empty() {
            NodeState::Active
        } else {
            NodeState::Suspected
        }
    }

    // ----- plumbing -----------------------------------------------------------------------

    fn needs_join(&self) -> bool {
        !self.leaving && (self.rejoining || !self.membership.view().contains(self.id()))
    }

    /// Whether this node left the cluster (it asked to, and a view without it is installed).
    pub fn has_left(&self) -> bool {
        self.leaving && !self.membership.view().contains(self.id())
    }

    fn refresh_serving(&mut self, now: Instant) {
        let serving = self.may_serve(now);
        self.replica.set_serving(now, serving);
    }

    /// The view as the replica sees it: while rejoining, this node is only a shadow.
    fn replica_view(&self) -> View {
        let mut view = self.membership.view().clone();
        let me = self.id();
        if self.rejoining && view.members.remove(&me) {
            view.shadows.insert(me);
        }
        view
    }

    fn install_replica_view(&mut self, now: Instant) {
        let view = self.replica_view();
        self.replica.install_view(now, view);
    }

    /// Carries out the membership's outputs and collects the replica's actions.
    fn sync(&mut self, now: Instant) {
        while let Some(output) = self.membership.poll_output() {
            match output {
                MembershipOutput::Send(to, msg) => self.actions.push_back(Action::Send {
                    to,
                    msg: Message::Membership(msg),
                }),
                MembershipOutput::Save(state) => {
                    self.actions.push_back(Action::SaveMembership(state))
                }
                MembershipOutput::Install(view) => self.on_install(now, view),
                MembershipOutput::JoinRefused(reason) => {
                    self.actions.push_back(Action::JoinRefused(reason))
                }
            }
        }
        self.refresh_serving(now);
        self.stop_join_unless_needed();
        while let Some(action) = self.replica.poll_action() {
            self.actions.push_back(action);
        }
    }

    fn on_install(&mut self, now: Instant, view: View) {
        let me = self.id();
        self.actions.push_back(Action::ViewInstalled(view.clone()));
        if !view.contains(me) && !self.rejoining {
            // Removed: the old state must never be served again, and timestamps it may have
            // created and lost must never be created again.
            self.replica.abandon_all();
            match self.membership.bump_incarnation() {
                Some(incarnation) => {
                    self.replica
                        .set_incarnation(u32::try_from(incarnation).unwrap_or(u32::MAX));
                    self.timers.set(Timer::JoinRetry, now);
                }
                // No incarnation is left to rejoin under without reusing timestamps: stay out.
                None => self.leaving = true,
            }
            self.rejoining = true;
            self.recovered = false;
            self.transfer = None;
            self.timers.stop(Timer::TransferRetry);
        }
        if self.rejoining
            && view.contains(me)
            && view.incarnation(me) == self.membership.incarnation()
        {
            self.rejoining = false;
            if self.recovered && view.shadows.contains(&me) {
                // Back as a shadow: the cluster may have moved on without this node, so a
                // recovered record above what it committed since may be an update that lost
                // (an RMW whose rival committed): replaying it could commit both. The state
                // transfer brings everything that counts.
                self.recovered = false;
                self.replica.abandon_all();
            }
        }
        self.install_replica_view(now);
        if view.shadows.contains(&me) && !self.rejoining {
            if self.transfer.is_none() {
                self.transfer = Some(Transfer {
                    epoch: view.epoch,
                    after: None,
                    donor: me,
                    done: false,
                    durable_at: PersistToken(0),
                });
                self.timers.set(Timer::TransferRetry, now);
                self.request_chunk(now, true);
            }
        } else if view.is_member(me) {
            self.transfer = None;
            self.timers.stop(Timer::TransferRetry);
            if self.recovered && !self.rejoining {
                // Back as a member: settle the recovered records nobody validated.
                self.recovered = false;
                self.replica.replay_invalid_keys(now);
            }
        }
    }

    /// Asks a donor for the next chunk; with `rotate`, picks the next donor.
    fn request_chunk(&mut self, now: Instant, rotate: bool) {
        let me = self.id();
        let members: Vec<NodeId> = self
            .membership
            .view()
            .members
            .iter()
            .copied()
            .filter(|n| *n != me)
            .collect();
        let Some(transfer) = self.transfer.as_mut() else {
            return;
        };
        if members.is_empty() {
            return;
        }
        if rotate || !members.contains(&transfer.donor) {
            let next = members
                .iter()
                .find(|n| **n > transfer.donor)
                .or(members.first());
            if let Some(next) = next {
                transfer.donor = *next;
            }
        }
        let retry_at = now + self.config.heartbeat_interval() * 10;
        self.timers.set(Timer::TransferRetry, retry_at);
        let msg = MembershipMessage::TransferRequest {
            epoch: transfer.epoch,
            after: transfer.after.clone(),
        };
        self.actions.push_back(Action::Send {
            to: transfer.donor,
            msg: Message::Membership(msg),
        });
    }

    fn on_transfer_request(&mut self, from: NodeId, epoch: Epoch, after: Option<Key>) {
        let view = self.membership.view();
        // The snapshot must be taken in the epoch that made the requester a shadow or later.
        if view.epoch < epoch || !view.is_member(self.id()) || self.rejoining {
            return;
        }
        let limit = self.config.transfer_chunk_keys_max;
        let (entries, done) = self.replica.snapshot(after.as_ref(), limit);
        let msg = MembershipMessage::TransferChunk {
            epoch,
            after,
            entries,
            done,
        };
        self.actions.push_back(Action::Send {
            to: from,
            msg: Message::Membership(msg),
        });
    }

    fn on_transfer_chunk(
        &mut self,
        now: Instant,
        from: NodeId,
        epoch: Epoch,
        after: Option<Key>,
        entries: Vec<crate::membership::TransferEntry>,
        done: bool,
    ) {
        let Some(transfer) = self.transfer.as_mut() else {
            return;
        };
        if transfer.done
            || transfer.epoch != epoch
            || transfer.after != after
            || from != transfer.donor
        {
            return; // a duplicate or a late answer
        }
        if let Some(last) = entries.last() {
            transfer.after = Some(last.key.clone());
        }
        transfer.done = done;
        self.replica.install_transferred(now, entries);
        if done {
            if let Some(transfer) = self.transfer.as_mut() {
                transfer.durable_at = self.replica.last_persist_token();
            }
            self.announce_caught_up(now);
        } else {
            self.request_chunk(now, false);
        }
    }

    /// Tells the members this shadow has all the state, and again later until it is promoted.
    /// Under `sync` durability it waits until the copied state is durable (the records then
    /// count for the writes that committed before it became a shadow).
    fn announce_caught_up(&mut self, now: Instant) {
        let durable = self.replica.durable_token();
        let Some(transfer) = self.transfer.as_mut() else {
            return;
        };
        self.timers.set(
            Timer::TransferRetry,
            now + self.config.heartbeat_interval() * 4,
        );
        if self.config.durability == Durability::Sync {
            if durable < transfer.durable_at {
                return; // handle_persisted announces it
            }
            self.membership.note_store_complete();
        }
        let epoch = transfer.epoch;
        let incarnation = self.membership.incarnation();
        let members: Vec<NodeId> = self.membership.view().members.iter().copied().collect();
        for to in members {
            let msg = MembershipMessage::CaughtUp { epoch, incarnation };
            self.actions.push_back(Action::Send {
                to,
                msg: Message::Membership(msg),
            });
        }
    }
}
