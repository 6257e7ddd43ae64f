//! Single-decree Paxos per epoch: the acceptor and proposer roles of a view change.

use super::{Ballot, Membership, MembershipMessage, MembershipOutput, Proposal};
use crate::timer::Timer;
use crate::types::{Epoch, Instant, NodeId};
use crate::view::View;
use std::collections::{BTreeMap, BTreeSet};

impl Membership {
    /// Starts phase 1 for `target` with a ballot above every round seen.
    pub(super) fn propose(&mut self, now: Instant, target: View) {
        // Rounds received are below `u64::MAX` (see `peer_numbers`); a restored one may not be.
        let Some(round) = self.round_seen.checked_add(1) else {
            return;
        };
        self.round_seen = round;
        let ballot = Ballot {
            round,
            node: self.me,
        };
        let epoch = target.epoch;
        // Long enough for acceptors to wait out their lease grants.
        let deadline = now + self.grant_wait * 2 + self.heartbeat_interval * 4;
        self.timers.set(Timer::ProposalTimeout, deadline);
        self.proposal = Some(Proposal {
            epoch,
            ballot,
            view: target,
            promises: BTreeMap::new(),
            accepting: false,
            accepts: BTreeSet::new(),
        });
        let members: Vec<NodeId> = self.view.members.iter().copied().collect();
        for to in members {
            self.deliver_or_send(now, to, MembershipMessage::Prepare { epoch, ballot });
        }
    }

    /// Sends `msg` to `to`, or handles it at once when `to` is this node.
    fn deliver_or_send(&mut self, now: Instant, to: NodeId, msg: MembershipMessage) {
        if to == self.me {
            self.handle_message(now, to, msg);
        } else {
            self.send(to, msg);
        }
    }

    /// Checks the epoch of a Paxos message against ours and answers laggards. A message about
    /// an epoch beyond our next one never gets here: `peer_numbers` drops it, and we ask the
    /// sender for its view.
    fn paxos_epoch_ok(&mut self, from: NodeId, epoch: Epoch) -> bool {
        if self.view.epoch.next().is_none_or(|next| epoch < next) {
            if from != self.me {
                let view = self.view.clone();
                self.send(from, MembershipMessage::Decided { view });
            }
            return false;
        }
        self.view.is_member(self.me)
    }

    pub(super) fn on_prepare(&mut self, now: Instant, from: NodeId, epoch: Epoch, ballot: Ballot) {
        if !self.paxos_epoch_ok(from, epoch) {
            return;
        }
        self.round_seen = self.round_seen.max(ballot.round);
        if ballot < self.promised {
            let promised = self.promised;
            self.deliver_or_send(now, from, MembershipMessage::Reject { epoch, promised });
            return;
        }
        // From now on no lease is granted in this epoch; the promise itself waits until every
        // lease granted so far has run out.
        self.promised = ballot;
        self.freeze(now);
        self.outputs
            .push_back(MembershipOutput::Save(self.durable()));
        self.queued_promises.push((from, ballot));
        if now >= self.grants_until || self.has_bug(crate::replica::PlantedBug::SkipLeaseWait) {
            self.release_promises(now);
        } else {
            self.timers.set(Timer::PromiseRelease, self.grants_until);
        }
    }

    /// Sends the promises whose lease wait is over (only for ballots still promised).
    pub(super) fn release_promises(&mut self, now: Instant) {
        self.timers.stop(Timer::PromiseRelease);
        let queued = std::mem::take(&mut self.queued_promises);
        // Promises are queued only for the next epoch, which therefore exists.
        let Some(epoch) = self.view.epoch.next() else {
            return;
        };
        for (to, ballot) in queued {
            if ballot != self.promised {
                continue;
            }
            let accepted = self.accepted.clone();
            let msg = MembershipMessage::Promise {
                epoch,
                ballot,
                accepted,
            };
            self.deliver_or_send(now, to, msg);
        }
    }

    pub(super) fn on_promise(
        &mut self,
        now: Instant,
        from: NodeId,
        epoch: Epoch,
        ballot: Ballot,
        accepted: Option<(Ballot, View)>,
    ) {
        let majority = self.quorum();
        let Some(proposal) = self.proposal.as_mut() else {
            return;
        };
        if proposal.epoch != epoch || proposal.ballot != ballot || proposal.accepting {
            return;
        }
        proposal.promises.insert(from, accepted);
        if proposal.promises.len() < majority {
            return;
        }
        // Paxos: adopt the accepted view with the highest ballot, if any. Otherwise the value is
        // free: propose what is wanted now, so that joiners that asked while the acceptors waited
        // out their leases come in with this view change rather than the next.
        let accepted = proposal
            .promises
            .values()
            .flatten()
            .max_by_key(|(b, _)| *b)
            .map(|(_, view)| view.clone());
        let view = match accepted {
            Some(view) => Some(view),
            None => self.desired_view(now).filter(|v| v.epoch == epoch),
        };
        let Some(proposal) = self.proposal.as_mut() else {
            return;
        };
        if let Some(view) = view {
            proposal.view = view;
        }
        proposal.accepting = true;
        let view = proposal.view.clone();
        let members: Vec<NodeId> = self.view.members.iter().copied().collect();
        for to in members {
            let msg = MembershipMessage::Accept {
                epoch,
                ballot,
                view: view.clone(),
            };
            self.deliver_or_send(now, to, msg);
        }
    }

    pub(super) fn on_reject(&mut self, now: Instant, epoch: Epoch, promised: Ballot) {
        self.round_seen = self.round_seen.max(promised.round);
        if self
            .proposal
            .as_ref()
            .is_some_and(|p| p.epoch == epoch && p.ballot < promised)
        {
            self.drop_proposal();
            self.back_off(now);
        }
    }

    pub(super) fn on_accept(
        &mut self,
        now: Instant,
        from: NodeId,
        epoch: Epoch,
        ballot: Ballot,
        view: View,
    ) {
        if !self.paxos_epoch_ok(from, epoch) {
            return;
        }
        self.round_seen = self.round_seen.max(ballot.round);
        if ballot < self.promised {
            let promised = self.promised;
            self.deliver_or_send(now, from, MembershipMessage::Reject { epoch, promised });
            return;
        }
        self.promised = ballot;
        self.freeze(now);
        self.accepted = Some((ballot, view));
        self.outputs
            .push_back(MembershipOutput::Save(self.durable()));
        self.deliver_or_send(now, from, MembershipMessage::Accepted { epoch, ballot });
    }

    pub(super) fn on_accepted(&mut self, now: Instant, from: NodeId, epoch: Epoch, ballot: Ballot) {
        let majority = self.quorum();
        let Some(proposal) = self.proposal.as_mut() else {
            return;
        };
        if proposal.epoch != epoch || proposal.ballot != ballot || !proposal.accepting {
            return;
        }
        proposal.accepts.insert(from);
        if proposal.accepts.len() < majority {
            return;
        }
        let view = proposal.view.clone();
        self.drop_proposal();
        let mut audience: BTreeSet<NodeId> = self.view.replicas().collect();
        audience.extend(view.replicas());
        audience.remove(&self.me);
        for to in audience {
            self.send(to, MembershipMessage::Decided { view: view.clone() });
        }
        self.install(now, view);
    }
}
