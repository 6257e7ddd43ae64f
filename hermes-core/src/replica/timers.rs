//! Deadlines: request timeouts, INV retransmission and replays (the message-loss timeout).

use super::{KeyState, ReplayCause, Replica};
use crate::message::Inv;
use crate::timer::Timer;
use crate::types::{Instant, Key};

impl Replica {
    /// Fires every timer due at `now` ([`Timer::Request`] and [`Timer::Key`]): times out overdue
    /// requests, retransmits the INV of updates still missing ACKs, and replays Invalid keys that
    /// requests have waited on for the message-loss timeout. Each timer fires once per call.
    pub fn handle_timeout(&mut self, now: Instant) {
        for timer in self.timers.pop_expired(now) {
            match timer {
                Timer::Request(id) => self.time_out(id),
                Timer::Key(key) => {
                    self.set_key_deadline(&key, None);
                    self.on_key_timeout(now, &key);
                }
                // Armed only in the membership's and the node's tables.
                Timer::LeaseExpiry
                | Timer::FrozenCheck
                | Timer::Heartbeat
                | Timer::PromiseRelease
                | Timer::ProposalTimeout
                | Timer::ProposeTurn
                | Timer::JoinRetry
                | Timer::TransferRetry => {}
            }
        }
        self.end_input(now);
    }

    /// The message-loss timeout of `key` ran out.
    fn on_key_timeout(&mut self, now: Instant, key: &Key) {
        let Some(entry) = self.keys.get(key) else {
            return;
        };
        match entry.state {
            // W, R, Trans × message-loss timeout: a message was lost; retransmit the pending INV
            // to the replicas that have not ACKed. Never give up on an ACK: only a view change
            // shrinks the set.
            KeyState::Write | KeyState::Replay | KeyState::Trans => {
                let Some(pending) = &entry.pending else {
                    return;
                };
                if pending.epoch != self.view.epoch || !self.view.contains(self.id()) {
                    return;
                }
                let inv = Inv {
                    key: key.clone(),
                    ts: pending.ts,
                    value: pending.value.clone(),
                    is_rmw: pending.is_rmw,
                    epoch: self.view.epoch,
                };
                let acked = pending.acks.clone();
                self.stats.retransmits += 1;
                self.broadcast_inv(&inv, Some(&acked));
                let mlt = self.config.message_loss_timeout();
                self.set_key_deadline(key, Some(now + mlt));
            }
            // I × message-loss timeout: a request has waited a whole message-loss timeout on the
            // key (the timer is armed only then; the request may have timed out since): the VAL
            // or the coordinator was lost. Replay the update with its original timestamp and
            // value (Abr, →R, !INV).
            KeyState::Invalid => {
                self.start_replay(now, key, ReplayCause::MessageLoss);
            }
            // V: nothing to do (the timer is disarmed when the key becomes Valid).
            KeyState::Valid => {}
        }
    }
}
