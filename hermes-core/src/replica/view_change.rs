//! Installing a new view: the epoch-change recipe (digest §3.5).

use super::{KeyState, ReplayCause, Replica};
use crate::message::Inv;
use crate::types::{Instant, Key};
use crate::view::View;

impl Replica {
    /// Installs a newer view (ignored unless its epoch is higher than the current one).
    ///
    /// From now on INVs and ACKs of other epochs are dropped. Every pending update loses the ACKs
    /// it gathered (an ACK is evidence only within its epoch) and is re-broadcast in the new
    /// epoch with the same timestamp and value; Invalid keys whose last writer left are replayed;
    /// stalled requests are re-examined.
    pub fn install_view(&mut self, now: Instant, view: View) {
        if view.epoch <= self.view.epoch {
            return;
        }
        self.view = view;
        self.stats.view_changes += 1;
        self.forget_owed_acks();
        let me = self.id();
        let epoch = self.view.epoch;
        let in_view = self.view.contains(me);
        let keep_acks = self.has_bug(super::PlantedBug::KeepAcksAcrossEpochs);
        let mut rebroadcast: Vec<(Key, Inv)> = Vec::new();
        let mut invalid: Vec<Key> = Vec::new();
        for (key, entry) in self.keys.iter_mut() {
            // W, R, Trans × follower failed (the reset-and-replay rule, digest §3.5): clear the
            // ACKs and re-send the INV in the new epoch; completion then comes through the ACK
            // column (or at once, below, if this replica is now alone). I × follower failed: –,
            // unless the last writer left (then I × Read with a failed coordinator applies:
            // replay). V × follower failed: –.
            if let Some(pending) = entry.pending.as_mut() {
                if !keep_acks {
                    pending.acks.clear();
                }
                pending.acks.retain(|n| self.view.contains(*n));
                pending.epoch = epoch;
                rebroadcast.push((
                    key.clone(),
                    Inv {
                        key: key.clone(),
                        ts: pending.ts,
                        value: pending.value.clone(),
                        is_rmw: pending.is_rmw,
                        epoch,
                    },
                ));
            } else if entry.state == KeyState::Invalid {
                invalid.push(key.clone());
            }
        }
        if in_view {
            let deadline = now + self.config.message_loss_timeout();
            for (key, inv) in rebroadcast {
                self.broadcast_inv(&inv, None);
                self.set_key_deadline(&key, Some(deadline));
                self.check_complete(now, &key);
            }
            for key in invalid {
                self.start_replay(now, &key, ReplayCause::WriterLeft);
            }
        }
        self.to_resume.extend(self.stalled.iter().cloned());
        self.end_input(now);
    }
}
