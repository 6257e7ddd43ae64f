//! The reliable membership service, sans-IO: views agreed by a majority through single-decree
//! Paxos per epoch, read leases renewed by heartbeats, failure detection, and joins.
//!
//! Safety rules (digest §3):
//! - A view for epoch `e + 1` is decided by a majority of the members of view `e`; each acceptor
//!   persists its promise and accepted view (an [`crate::Action::SaveMembership`]) before it
//!   answers.
//! - A node holds a read lease for its epoch from the sending time of a heartbeat round that a
//!   majority of members granted, for `lease_ms` by its own clock.
//! - An acceptor stops granting leases once it has promised a ballot for the next epoch, and it
//!   promises only after every lease it ever granted has run out by its own clock plus
//!   `clock_drift_margin_ms`. So a view that removes a node is decided only after that node's
//!   lease has expired, as long as clock rates differ by at most ρ with
//!   `2ρ / (1 − ρ) × lease_ms ≤ clock_drift_margin_ms`.
//! - Writes need no clock: they need ACKs from every replica of the epoch.
//!
//! The [`crate::Node`] drives this service together with the [`crate::Replica`].

mod lease;
mod message;
mod paxos;

pub use message::{Ballot, MembershipMessage, TransferEntry};

use crate::config::Config;
use crate::durability::Durability;
use crate::peer_numbers::{self, Verdict, INCARNATION_MAX};
use crate::rng::SeededRng;
use crate::timer::{Timer, TimerTable};
use crate::types::{Epoch, Instant, NodeId};
use crate::view::View;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// The membership state that must survive a restart (written before the node answers).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DurableMembership {
    /// The installed view.
    pub view: View,
    /// The ballot promised for the next epoch.
    pub promised: Ballot,
    /// The view accepted for the next epoch, with its ballot.
    pub accepted: Option<(Ballot, View)>,
    /// This process's incarnation.
    pub incarnation: u64,
    /// Under `sync` durability: whether this node's store holds every write acknowledged in a
    /// view that lists the node as a member. Set when the node's state transfer as a shadow is
    /// complete and durable, and when its current life is a member of an installed view (an
    /// initial member, or a restarted member taken back with its store); kept by
    /// [`crate::Node::recover`] (every ACK of a rejoining node waits for the disk too); cleared
    /// by [`crate::Node::restart`] (no records) and by installing a view without the node
    /// (writes may commit without it from then on). Always `false` in other modes.
    #[serde(default)]
    pub complete_store: bool,
}

/// What the membership service asks its node to do.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum MembershipOutput {
    Send(NodeId, MembershipMessage),
    Install(View),
    Save(DurableMembership),
    JoinRefused(String),
}

/// A proposal in flight.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Proposal {
    epoch: Epoch,
    ballot: Ballot,
    /// The view this node wants; replaced by an already accepted one if a promise carries it.
    view: View,
    promises: BTreeMap<NodeId, Option<(Ballot, View)>>,
    accepting: bool,
    accepts: BTreeSet<NodeId>,
}

/// One node's membership state; see the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Membership {
    me: NodeId,
    incarnation: u64,
    durability: Durability,
    /// See [`DurableMembership::complete_store`].
    complete_store: bool,
    heartbeat_interval: Duration,
    lease: Duration,
    grant_wait: Duration,
    suspicion_timeout: Duration,
    view: View,
    // Acceptor state for epoch `view.epoch + 1`.
    promised: Ballot,
    accepted: Option<(Ballot, View)>,
    /// Until when (own clock) leases this node granted may be held; it promises nothing before.
    grants_until: Instant,
    /// When this node first promised for the next epoch; from then on it grants no lease, so
    /// the epoch must be closed by some decided view (if need be, the same members again).
    frozen_since: Option<Instant>,
    /// Promises waiting for the leases this node granted to run out ([`Timer::PromiseRelease`]).
    queued_promises: Vec<(NodeId, Ballot)>,
    // Lease holder.
    round: u64,
    rounds: BTreeMap<u64, (Instant, BTreeSet<NodeId>)>,
    lease_until: Instant,
    // Failure detection.
    last_heard: BTreeMap<NodeId, Instant>,
    // Proposer.
    proposal: Option<Proposal>,
    round_seen: u64,
    /// Joiners waiting to be added, with their incarnation and whether their store holds every
    /// acknowledged write (`sync` durability, see [`MembershipMessage::Join`]).
    joiners: BTreeMap<NodeId, (u64, bool)>,
    /// Shadows that reported a complete state transfer.
    caught_up: BTreeSet<NodeId>,
    /// Nodes that asked to leave the cluster.
    leavers: BTreeSet<NodeId>,
    rng: SeededRng,
    /// Heartbeats, lease expiry, promise release, proposal timeout and back-off, frozen check.
    timers: TimerTable,
    /// Messages dropped because a number they carry is out of range ([`crate::peer_numbers`]).
    dropped_peer_numbers: u64,
    outputs: VecDeque<MembershipOutput>,
    #[cfg(feature = "planted-bugs")]
    planted_bug: Option<crate::replica::PlantedBug>,
}

impl Membership {
    /// A membership service starting in `view` (a fresh node, or one restored from a
    /// [`DurableMembership`] by [`Membership::restore`]).
    pub fn new(config: &Config, view: View, incarnation: u64, now: Instant) -> Self {
        let me = config.node_id;
        // A replica not heard from yet counts as heard at the end of the startup grace.
        let heard = now + Duration::from_millis(config.startup_grace_ms);
        let last_heard = view.replicas().map(|n| (n, heard)).collect();
        let complete_store = config.durability == Durability::Sync
            && view.is_member(me)
            && view.incarnation(me) == incarnation;
        let mut timers = TimerTable::default();
        timers.set(Timer::Heartbeat, now);
        Membership {
            me,
            incarnation,
            durability: config.durability,
            complete_store,
            heartbeat_interval: config.heartbeat_interval(),
            lease: config.lease(),
            grant_wait: config.grant_wait(),
            suspicion_timeout: config.suspicion_timeout(),
            view,
            promised: Ballot::default(),
            accepted: None,
            grants_until: Instant::ZERO,
            frozen_since: None,
            queued_promises: Vec::new(),
            round: 0,
            rounds: BTreeMap::new(),
            lease_until: Instant::ZERO,
            last_heard,
            proposal: None,
            round_seen: 0,
            joiners: BTreeMap::new(),
            caught_up: BTreeSet::new(),
            leavers: BTreeSet::new(),
            #[cfg(feature = "planted-bugs")]
            planted_bug: None,
            rng: SeededRng::new(u64::from(me.0) ^ (incarnation << 32)),
            timers,
            dropped_peer_numbers: 0,
            outputs: VecDeque::new(),
        }
    }

    /// A membership service restored after a restart. Leases this node granted before it stopped
    /// are assumed held for another full wait, so it promises nothing that could cut them short.
    pub fn restore(
        config: &Config,
        saved: DurableMembership,
        incarnation: u64,
        now: Instant,
    ) -> Self {
        let mut membership = Membership::new(config, saved.view, incarnation, now);
        membership.complete_store = saved.complete_store && config.durability == Durability::Sync;
        membership.promised = saved.promised;
        membership.accepted = saved.accepted;
        membership.round_seen = saved.promised.round;
        membership.grants_until = now + membership.grant_wait;
        if membership.promised != Ballot::default() {
            membership.freeze(now);
        }
        membership
    }

    /// The installed view.
    pub fn view(&self) -> &View {
        &self.view
    }

    /// This process's incarnation.
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// Until when (own clock) this node holds a read lease for its epoch.
    pub fn lease_until(&self) -> Instant {
        self.lease_until
    }

    /// Whether this node holds a lease at `now` and is a member of its view.
    pub fn has_lease(&self, now: Instant) -> bool {
        self.view.is_member(self.me) && now < self.lease_until
    }

    /// The replicas this node suspects at `now` (not heard from within the suspicion timeout).
    pub fn suspects(&self, now: Instant) -> BTreeSet<NodeId> {
        self.view
            .replicas()
            .filter(|n| *n != self.me)
            .filter(|n| {
                self.last_heard
                    .get(n)
                    .is_none_or(|t| now.saturating_since(*t) > self.suspicion_timeout)
            })
            .collect()
    }

    /// The durable part of the state.
    pub fn durable(&self) -> DurableMembership {
        DurableMembership {
            view: self.view.clone(),
            promised: self.promised,
            accepted: self.accepted.clone(),
            incarnation: self.incarnation,
            complete_store: self.complete_store,
        }
    }

    /// Plants a known bug (testing only).
    #[cfg(feature = "planted-bugs")]
    pub fn plant_bug(&mut self, bug: crate::replica::PlantedBug) {
        self.planted_bug = Some(bug);
    }

    #[cfg(feature = "planted-bugs")]
    pub(super) fn has_bug(&self, bug: crate::replica::PlantedBug) -> bool {
        self.planted_bug == Some(bug)
    }

    #[cfg(not(feature = "planted-bugs"))]
    pub(super) fn has_bug(&self, _bug: crate::replica::PlantedBug) -> bool {
        false
    }

    /// How many acceptors decide a view (a majority of the members).
    pub(super) fn quorum(&self) -> usize {
        if self.has_bug(crate::replica::PlantedBug::MinorityViews) {
            1
        } else {
            self.view.majority()
        }
    }

    /// Asks the members to remove this node (graceful leave); it keeps serving until the view
    /// without it is installed.
    pub fn leave(&mut self) {
        let members: Vec<NodeId> = self.view.members.iter().copied().collect();
        for to in members {
            if to == self.me {
                self.leavers.insert(to);
            } else {
                self.send(to, MembershipMessage::Leave);
            }
        }
    }

    /// Starts a new incarnation (after this node's state was discarded) and saves it; `None`
    /// when the incarnations are exhausted ([`INCARNATION_MAX`]): the node must not rejoin.
    pub(crate) fn bump_incarnation(&mut self) -> Option<u64> {
        let incarnation = self
            .incarnation
            .checked_add(1)
            .filter(|i| *i <= INCARNATION_MAX)?;
        self.incarnation = incarnation;
        self.complete_store = false;
        self.outputs
            .push_back(MembershipOutput::Save(self.durable()));
        Some(incarnation)
    }

    /// Messages dropped because a number they carry is out of range ([`crate::peer_numbers`]).
    pub fn dropped_peer_numbers(&self) -> u64 {
        self.dropped_peer_numbers
    }

    /// Checks the numbers of a message from `from` ([`crate::peer_numbers`]): returns whether
    /// to handle it; otherwise it is counted and, if this node lags, the sender is asked for
    /// its view.
    pub(crate) fn admit(&mut self, from: NodeId, msg: &MembershipMessage) -> bool {
        match peer_numbers::check_membership(msg, self.view.epoch) {
            Verdict::Admit => true,
            Verdict::Drop => {
                self.dropped_peer_numbers += 1;
                false
            }
            Verdict::DropAndAskView => {
                self.dropped_peer_numbers += 1;
                self.send(from, MembershipMessage::ViewRequest);
                false
            }
        }
    }

    /// This node restarted without its records: its store no longer vouches for anything.
    pub(crate) fn forget_records(&mut self) {
        self.complete_store = false;
    }

    /// This shadow's state transfer is complete and durable (`sync`): its store holds every
    /// write committed before it became a shadow, and it ACKs every later one durably. Saved at
    /// once, so that a restart before the promotion is installed still knows it.
    pub(crate) fn note_store_complete(&mut self) {
        if self.durability == Durability::Sync && !self.complete_store {
            self.complete_store = true;
            self.outputs
                .push_back(MembershipOutput::Save(self.durable()));
        }
    }

    /// Whether this node's store holds every write acknowledged in a view that lists it as a
    /// member (see [`DurableMembership::complete_store`]).
    pub fn complete_store(&self) -> bool {
        self.complete_store
    }

    /// Whether `node`, rejoining with a store that holds every write acknowledged in a view
    /// listing it as a member (`complete_store`), may come back as a member at once: if this
    /// view lists it as a member, no write committed without its durable ACK since it was
    /// (every commit of this view or an earlier one that listed it waited for that ACK), so it
    /// misses none. Only under `sync` durability.
    fn may_readmit(&self, node: NodeId, complete_store: bool) -> bool {
        self.durability == Durability::Sync && self.view.is_member(node) && complete_store
    }

    /// Marks `shadow` as done with its state transfer (it will be promoted).
    pub(crate) fn note_caught_up(&mut self, now: Instant, shadow: NodeId) {
        if self.view.shadows.contains(&shadow) {
            self.caught_up.insert(shadow);
            self.consider_proposing(now);
        }
    }

    pub(crate) fn poll_output(&mut self) -> Option<MembershipOutput> {
        self.outputs.pop_front()
    }

    /// The earliest instant at which [`handle_timeout`](Self::handle_timeout) has work (the
    /// next heartbeat at the latest).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next_timeout()
    }

    /// Sends heartbeats, answers promises whose wait is over, retries proposals and proposes view
    /// changes for suspected nodes, joiners and caught-up shadows.
    pub fn handle_timeout(&mut self, now: Instant) {
        let mut turn_came = false;
        for timer in self.timers.pop_expired(now) {
            match timer {
                // The node re-reads the lease after every input, so serving stops on time.
                Timer::LeaseExpiry => {}
                // `propose_when_due` below closes an epoch frozen for too long.
                Timer::FrozenCheck => {}
                Timer::Heartbeat => {
                    self.timers
                        .set(Timer::Heartbeat, now + self.heartbeat_interval);
                    self.send_heartbeats(now);
                }
                Timer::PromiseRelease => self.release_promises(now),
                Timer::ProposalTimeout => {
                    self.drop_proposal();
                    self.back_off(now);
                }
                Timer::ProposeTurn => turn_came = true,
                // Armed only in the replica's and the node's tables.
                Timer::Request(_) | Timer::Key(_) | Timer::JoinRetry | Timer::TransferRetry => {}
            }
        }
        self.propose_when_due(now, turn_came);
    }

    /// Handles a membership message from `from`.
    ///
    /// A message carrying a number out of range is dropped and counted
    /// ([`crate::peer_numbers`]); it still shows that its sender is alive.
    pub fn handle_message(&mut self, now: Instant, from: NodeId, msg: MembershipMessage) {
        self.last_heard.insert(from, now);
        if !self.admit(from, &msg) {
            return;
        }
        match msg {
            MembershipMessage::Heartbeat { epoch, round } => {
                self.on_heartbeat(now, from, epoch, round)
            }
            MembershipMessage::HeartbeatAck {
                epoch,
                round,
                granted,
            } => self.on_heartbeat_ack(from, epoch, round, granted),
            MembershipMessage::Prepare { epoch, ballot } => {
                self.on_prepare(now, from, epoch, ballot)
            }
            MembershipMessage::Promise {
                epoch,
                ballot,
                accepted,
            } => self.on_promise(now, from, epoch, ballot, accepted),
            MembershipMessage::Reject { epoch, promised } => self.on_reject(now, epoch, promised),
            MembershipMessage::Accept {
                epoch,
                ballot,
                view,
            } => self.on_accept(now, from, epoch, ballot, view),
            MembershipMessage::Accepted { epoch, ballot } => {
                self.on_accepted(now, from, epoch, ballot)
            }
            MembershipMessage::Decided { view } => self.install(now, view),
            MembershipMessage::ViewRequest => {
                let view = self.view.clone();
                self.send(from, MembershipMessage::Decided { view });
            }
            MembershipMessage::Join {
                incarnation,
                complete_store,
            } => self.on_join(now, from, incarnation, complete_store),
            MembershipMessage::JoinRefused { reason } => self
                .outputs
                .push_back(MembershipOutput::JoinRefused(reason)),
            MembershipMessage::Leave => {
                if self.view.contains(from) {
                    self.leavers.insert(from);
                    self.consider_proposing(now);
                }
            }
            MembershipMessage::CaughtUp { epoch, incarnation } => {
                if epoch <= self.view.epoch && self.view.incarnation(from) == incarnation {
                    self.note_caught_up(now, from);
                }
            }
            // State transfer is served by the node, which holds the data.
            MembershipMessage::TransferRequest { .. } | MembershipMessage::TransferChunk { .. } => {
            }
        }
    }

    fn send(&mut self, to: NodeId, msg: MembershipMessage) {
        self.outputs.push_back(MembershipOutput::Send(to, msg));
    }

    /// Installs a newer decided view.
    pub(crate) fn install(&mut self, now: Instant, view: View) {
        if view.epoch <= self.view.epoch {
            return;
        }
        let newly_shadow = view.shadows.contains(&self.me)
            && view.incarnation(self.me) == self.incarnation
            && !(self.view.shadows.contains(&self.me)
                && self.view.incarnation(self.me) == self.incarnation);
        if !view.contains(self.me) || newly_shadow {
            // Writes may commit without this node from now on, or it starts its copy over.
            self.complete_store = false;
        } else if self.durability == Durability::Sync
            && view.is_member(self.me)
            && view.incarnation(self.me) == self.incarnation
        {
            // A member in this life: initial, promoted after a durable transfer, or taken back.
            self.complete_store = true;
        }
        self.view = view.clone();
        self.promised = Ballot::default();
        self.accepted = None;
        self.frozen_since = None;
        self.timers.stop(Timer::FrozenCheck);
        self.queued_promises.clear();
        self.timers.stop(Timer::PromiseRelease);
        self.drop_proposal();
        self.timers.stop(Timer::ProposeTurn);
        self.rounds.clear();
        self.joiners
            .retain(|n, (inc, _)| !view.contains(*n) || view.incarnation(*n) < *inc);
        self.caught_up.retain(|n| view.shadows.contains(n));
        self.leavers.retain(|n| view.contains(*n));
        for node in view.replicas() {
            self.last_heard.insert(node, now);
        }
        self.outputs
            .push_back(MembershipOutput::Save(self.durable()));
        self.outputs.push_back(MembershipOutput::Install(view));
        // Renew the lease in the new epoch at once.
        self.timers.set(Timer::Heartbeat, now);
    }

    /// Forgets the proposal in flight, if any.
    pub(super) fn drop_proposal(&mut self) {
        self.proposal = None;
        self.timers.stop(Timer::ProposalTimeout);
    }

    /// How long a frozen acceptor waits for a decision before it proposes one itself.
    fn frozen_patience(&self) -> Duration {
        self.grant_wait * 2 + self.heartbeat_interval * 4
    }

    /// Notes that this node promised or accepted for the next epoch.
    pub(super) fn freeze(&mut self, now: Instant) {
        if self.frozen_since.is_none() {
            self.frozen_since = Some(now);
            self.timers
                .set(Timer::FrozenCheck, now + self.frozen_patience());
        }
    }

    /// Waits a randomised back-off before this node may propose again.
    fn back_off(&mut self, now: Instant) {
        let base = self.heartbeat_interval.as_micros() as u64;
        let jitter = self.rng.below(4 * base + 1);
        self.timers.set(
            Timer::ProposeTurn,
            now + Duration::from_micros(base + jitter),
        );
    }

    fn on_join(&mut self, now: Instant, from: NodeId, incarnation: u64, complete_store: bool) {
        if !self.view.is_member(self.me) {
            return;
        }
        let known = self.view.contains(from);
        let recorded = self.view.incarnation(from);
        if known && incarnation <= recorded {
            let reason = format!(
                "node {from} is already a {} of epoch {} with incarnation {recorded}",
                if self.view.is_member(from) {
                    "member"
                } else {
                    "shadow"
                },
                self.view.epoch.0
            );
            if incarnation < recorded {
                self.send(from, MembershipMessage::JoinRefused { reason });
            }
            return;
        }
        self.joiners.insert(from, (incarnation, complete_store));
        // A rejoining node starts its state transfer over.
        self.caught_up.remove(&from);
        self.consider_proposing(now);
    }

    /// The view this node would like next, if it differs from the installed one.
    fn desired_view(&self, now: Instant) -> Option<View> {
        let mut next = self.view.clone();
        next.epoch = self.view.epoch.next()?;
        let suspects = self.suspects(now);
        let alive_members = self
            .view
            .members
            .iter()
            .filter(|n| !suspects.contains(n))
            .count();
        if alive_members >= self.quorum() {
            for node in &suspects {
                next.members.remove(node);
                next.shadows.remove(node);
            }
        }
        for node in &self.leavers {
            next.members.remove(node);
            next.shadows.remove(node);
        }
        for (node, (incarnation, complete_store)) in &self.joiners {
            if self.may_readmit(*node, *complete_store) {
                next.shadows.remove(node);
                next.members.insert(*node);
            } else {
                next.members.remove(node);
                next.shadows.insert(*node);
            }
            next.incarnations.insert(*node, *incarnation);
        }
        // A restarted member holding its records takes itself back (after a restart of every
        // member at once, nobody else is there to do it).
        if self.incarnation != self.view.incarnation(self.me)
            && self.may_readmit(self.me, self.complete_store)
            && next.members.contains(&self.me)
        {
            next.incarnations.insert(self.me, self.incarnation);
        }
        for node in self
            .caught_up
            .iter()
            .filter(|n| !self.joiners.contains_key(n))
        {
            if next.shadows.remove(node) {
                next.members.insert(*node);
            }
        }
        let changed = next.members != self.view.members
            || next.shadows != self.view.shadows
            || next.incarnations != self.view.incarnations;
        (changed && next.members.len() >= next.majority() && !next.members.is_empty())
            .then_some(next)
    }

    /// Proposes a view change if one is wanted and it is this node's turn: the lowest-id member
    /// that is not suspected goes first, the others after a randomised back-off.
    fn consider_proposing(&mut self, now: Instant) {
        self.propose_when_due(now, false);
    }

    /// [`consider_proposing`](Self::consider_proposing); with `turn_came`, the back-off
    /// ([`Timer::ProposeTurn`]) has just run out.
    fn propose_when_due(&mut self, now: Instant, turn_came: bool) {
        if self.proposal.is_some() || !self.view.is_member(self.me) {
            self.timers.stop(Timer::ProposeTurn);
            return;
        }
        let target = match self.desired_view(now) {
            Some(target) => target,
            // Frozen without a decision for too long (a proposer gave up or failed): close the
            // epoch, with the same members if nothing else is wanted.
            None if self
                .frozen_since
                .is_some_and(|t| now.saturating_since(t) >= self.frozen_patience()) =>
            {
                let mut same = self.view.clone();
                match self.view.epoch.next() {
                    Some(next) => same.epoch = next,
                    None => {
                        // The last epoch: no view can follow it.
                        self.timers.stop(Timer::ProposeTurn);
                        return;
                    }
                }
                same
            }
            None => {
                self.timers.stop(Timer::ProposeTurn);
                return;
            }
        };
        let turn = self.timers.get(&Timer::ProposeTurn);
        let turn_came = turn_came || turn.is_some_and(|t| now >= t);
        if !turn_came {
            if turn.is_some() {
                return; // backing off
            }
            let suspects = self.suspects(now);
            let first = self.view.members.iter().find(|n| !suspects.contains(n));
            if first != Some(&self.me) {
                self.back_off(now);
                let extra = self.heartbeat_interval * 4;
                if let Some(turn) = self.timers.get(&Timer::ProposeTurn) {
                    self.timers.set(Timer::ProposeTurn, turn + extra);
                }
                return;
            }
        }
        self.timers.stop(Timer::ProposeTurn);
        self.propose(now, target);
    }
}
