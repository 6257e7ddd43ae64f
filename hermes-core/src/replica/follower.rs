//! The follower path: F_INV, F_ACK and F_VAL, one handler per message kind.
//!
//! The arms mirror the transition table of the protocol digest (§1.8), with the RMW rules (§2)
//! and the reset-and-replay rule for view changes.

use super::{KeyEntry, KeyState, Replica, UpdateKind};
use crate::message::{Inv, Message, Val};
use crate::types::{Instant, NodeId};
use std::cmp::Ordering;

impl Replica {
    /// F_INV + F_ACK: adopt a higher timestamp, ACK every write-INV with the INV's timestamp, and
    /// answer a lower RMW-INV with an INV of the local state (which aborts that RMW).
    pub(super) fn on_inv(&mut self, now: Instant, from: NodeId, inv: Inv) {
        if inv.epoch != self.view.epoch {
            self.stats.dropped_wrong_epoch += 1;
            return;
        }
        let entry = self
            .keys
            .entry(inv.key.clone())
            .or_insert_with(KeyEntry::absent);
        match inv.ts.cmp(&entry.ts) {
            Ordering::Greater => {
                let previous = entry.ts;
                entry.ts = inv.ts;
                entry.value = inv.value;
                entry.last_writer = from;
                entry.is_rmw = inv.is_rmw;
                let mut lost_rmw = false;
                entry.state = match entry.state {
                    KeyState::Valid | KeyState::Invalid => KeyState::Invalid,
                    KeyState::Trans => KeyState::Trans,
                    KeyState::Write | KeyState::Replay => {
                        if entry.pending.as_ref().is_some_and(|p| p.is_rmw) {
                            lost_rmw = true;
                            KeyState::Invalid
                        } else {
                            KeyState::Trans
                        }
                    }
                };
                if lost_rmw {
                    // An RMW (or a replay of one) aborts on a higher INV. Its client is answered
                    // once a higher update is known committed (see `became_valid`).
                    if let Some(pending) = entry.pending.take() {
                        if pending.kind == UpdateKind::Rmw {
                            entry.aborted_rmw = pending.client;
                        }
                    }
                }
                let invalid = entry.state == KeyState::Invalid;
                self.record_changed(&inv.key, previous);
                self.ack_when_durable(from, inv.key.clone(), inv.ts, inv.ts);
                if invalid {
                    // A new update is in flight: give it a full timeout before replaying.
                    self.set_key_deadline(&inv.key, None);
                    self.arm_replay(now, &inv.key);
                    self.mark_resume(&inv.key);
                }
            }
            Ordering::Equal => {
                if let Some(pending) = &entry.pending {
                    if pending.kind == UpdateKind::Rmw && pending.ts == inv.ts {
                        // Another node replays our own pending RMW. While it is pending only we
                        // may commit it, so that an abort we report is final: no ACK.
                        return;
                    }
                }
                if entry.state != KeyState::Write {
                    entry.last_writer = from;
                }
                self.ack_when_durable(from, inv.key, inv.ts, inv.ts);
            }
            Ordering::Less => {
                if inv.is_rmw {
                    let reply = Inv {
                        key: inv.key,
                        ts: entry.ts,
                        value: entry.value.clone(),
                        is_rmw: entry.is_rmw,
                        epoch: self.view.epoch,
                    };
                    self.send(from, Message::Inv(reply));
                } else {
                    let held = entry.ts;
                    self.ack_when_durable(from, inv.key, inv.ts, held);
                }
            }
        }
    }

    /// F_VAL: the update with exactly the local timestamp is committed; become Valid and finish
    /// whatever local update it completes.
    pub(super) fn on_val(&mut self, _now: Instant, _from: NodeId, val: Val) {
        let Some(entry) = self.keys.get_mut(&val.key) else {
            return;
        };
        if val.ts != entry.ts || entry.state == KeyState::Valid {
            return;
        }
        let pending = entry.pending.take();
        entry.state = KeyState::Valid;
        entry.known_max = entry.known_max.max(val.highest);
        self.set_key_deadline(&val.key, None);
        if let Some(pending) = pending {
            // Trans: our superseded update completes with the higher one. Write/Replay: someone
            // replayed our own update to completion.
            self.finish_update(&val.key, &pending);
        }
        self.became_valid(&val.key);
        self.mark_resume(&val.key);
    }
}
