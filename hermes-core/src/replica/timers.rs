//! Deadlines: request timeouts, INV retransmission and replays (the message-loss timeout).

use super::{KeyState, Replica};
use crate::message::Inv;
use crate::types::{Instant, Key};

impl Replica {
    /// Fires every deadline at or before `now`: times out overdue requests, retransmits the INV of
    /// updates still missing ACKs, and replays Invalid keys that requests have waited on for the
    /// message-loss timeout. Each deadline fires once per call.
    pub fn handle_timeout(&mut self, now: Instant) {
        let overdue: Vec<_> = self
            .request_deadlines
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, id)| *id)
            .collect();
        for id in overdue {
            self.time_out(id);
        }
        let expired: Vec<Key> = self
            .key_deadlines
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, key)| key.clone())
            .collect();
        for key in expired {
            self.set_key_deadline(&key, None);
            self.on_key_deadline(now, &key);
        }
        self.end_input(now);
    }

    fn on_key_deadline(&mut self, now: Instant, key: &Key) {
        let Some(entry) = self.keys.get(key) else {
            return;
        };
        let mlt = self.config.message_loss_timeout();
        if let Some(pending) = &entry.pending {
            if pending.epoch != self.view.epoch || !self.view.contains(self.id()) {
                return;
            }
            // Suspected loss: retransmit to the replicas that have not ACKed. Never give up on
            // an ACK; only a view change shrinks the set.
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
            self.set_key_deadline(key, Some(now + mlt));
        } else if entry.state == KeyState::Invalid && self.view.is_member(self.id()) {
            // A request has waited a whole message-loss timeout on an Invalid key (the deadline
            // is armed only then; it may have timed out since): the VAL or the coordinator was
            // lost. Replay the write with its original timestamp and value.
            self.start_replay(now, key);
        }
    }
}
