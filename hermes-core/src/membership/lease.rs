//! Heartbeats: liveness for failure detection, and read leases granted by a majority.

use super::{Membership, MembershipMessage};
use crate::types::{Epoch, Instant, NodeId};
use std::collections::BTreeSet;

/// Heartbeat rounds remembered while their grants arrive.
const ROUNDS_KEPT: usize = 8;

impl Membership {
    /// Starts a heartbeat round: asks every other replica of the view to grant a lease.
    pub(super) fn send_heartbeats(&mut self, now: Instant) {
        let epoch = self.view.epoch;
        self.round += 1;
        let round = self.round;
        let mut grants = BTreeSet::new();
        if self.may_grant(self.me, epoch) {
            grants.insert(self.me);
            self.grants_until = self.grants_until.max(now + self.grant_wait);
        }
        self.rounds.insert(round, (now, grants));
        while self.rounds.len() > ROUNDS_KEPT {
            self.rounds.pop_first();
        }
        self.count_grants(round);
        let others: Vec<NodeId> = self.view.replicas().filter(|n| *n != self.me).collect();
        for to in others {
            self.send(to, MembershipMessage::Heartbeat { epoch, round });
        }
    }

    /// Whether this node may grant `holder` a lease for `epoch` now: both are members of the
    /// installed view of that epoch, and this node has promised nothing for the next epoch.
    fn may_grant(&self, holder: NodeId, epoch: Epoch) -> bool {
        epoch == self.view.epoch
            && self.view.is_member(self.me)
            && self.view.is_member(holder)
            && self.promised == super::Ballot::default()
    }

    pub(super) fn on_heartbeat(&mut self, now: Instant, from: NodeId, epoch: Epoch, round: u64) {
        if epoch < self.view.epoch {
            let view = self.view.clone();
            self.send(from, MembershipMessage::Decided { view });
        } else if epoch > self.view.epoch {
            self.send(from, MembershipMessage::ViewRequest);
        }
        let granted = self.may_grant(from, epoch);
        if granted {
            self.grants_until = self.grants_until.max(now + self.grant_wait);
        }
        self.send(
            from,
            MembershipMessage::HeartbeatAck {
                epoch,
                round,
                granted,
            },
        );
    }

    pub(super) fn on_heartbeat_ack(
        &mut self,
        from: NodeId,
        epoch: Epoch,
        round: u64,
        granted: bool,
    ) {
        if !granted || epoch != self.view.epoch || !self.view.is_member(from) {
            return;
        }
        if let Some((_, grants)) = self.rounds.get_mut(&round) {
            grants.insert(from);
            self.count_grants(round);
        }
    }

    /// Extends the lease if a majority of members granted `round`.
    fn count_grants(&mut self, round: u64) {
        let Some((sent, grants)) = self.rounds.get(&round) else {
            return;
        };
        if grants.len() >= self.view.majority() && self.view.is_member(self.me) {
            let until = *sent + self.lease;
            if until > self.lease_until {
                self.lease_until = until;
                self.timers.set(crate::timer::Timer::LeaseExpiry, until);
            }
        }
    }
}
