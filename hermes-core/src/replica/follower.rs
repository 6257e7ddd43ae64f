//! The follower path: F_INV, F_ACK and F_VAL, one handler per message kind.
//!
//! Each handler is one `match` on the key's state (and, for INVs, on how the INV's timestamp
//! compares with the local one); every arm names its cells of the transition table (see the
//! table in the [module docs](super)).

use super::{KeyEntry, KeyState, Replica, UpdateKind};
use crate::message::{Inv, Message, Val};
use crate::types::{Instant, Key, NodeId, Ts, Value};
use std::cmp::Ordering::{Equal, Greater, Less};

impl KeyEntry {
    /// Ai: adopts the timestamp and value of an INV from `from` and moves to `state`; returns
    /// the timestamp held before.
    fn adopt(
        &mut self,
        from: NodeId,
        ts: Ts,
        value: Option<Value>,
        is_rmw: bool,
        state: KeyState,
    ) -> Ts {
        let previous = self.ts;
        self.ts = ts;
        self.value = value;
        self.last_writer = from;
        self.is_rmw = is_rmw;
        self.state = state;
        previous
    }
}

impl Replica {
    /// F_INV + F_ACK: adopt a higher timestamp, ACK every write-INV with the INV's timestamp, and
    /// answer a lower RMW-INV with an INV of the local state (which aborts that RMW).
    pub(super) fn on_inv(&mut self, now: Instant, from: NodeId, inv: Inv) {
        if inv.epoch != self.view.epoch {
            self.stats.dropped_wrong_epoch += 1;
            return;
        }
        let Inv {
            key,
            ts,
            value,
            is_rmw,
            epoch: _,
        } = inv;
        let entry = self
            .keys
            .entry(key.clone())
            .or_insert_with(KeyEntry::absent);
        match (ts.cmp(&entry.ts), entry.state) {
            // V × INV>, I × INV>: Ai, →I, !ACK.
            (Greater, KeyState::Valid | KeyState::Invalid) => {
                let previous = entry.adopt(from, ts, value, is_rmw, KeyState::Invalid);
                self.adopted(now, from, key, ts, previous, KeyState::Invalid);
            }
            // Trans × INV>: Ai, !ACK; the superseded own update still gathers its ACKs.
            (Greater, KeyState::Trans) => {
                let previous = entry.adopt(from, ts, value, is_rmw, KeyState::Trans);
                self.adopted(now, from, key, ts, previous, KeyState::Trans);
            }
            // W × INV>, R × INV> while the pending update is an RMW (or a replay of one): the RMW
            // aborts (§2): Ai, →I, !ACK. Its client is answered once a higher update is known
            // committed (see `became_valid`).
            (Greater, KeyState::Write | KeyState::Replay)
                if entry.pending.as_ref().is_some_and(|p| p.is_rmw) =>
            {
                if let Some(pending) = entry.pending.take() {
                    if pending.kind == UpdateKind::Rmw {
                        entry.aborted_rmw = pending.client;
                    }
                }
                let previous = entry.adopt(from, ts, value, is_rmw, KeyState::Invalid);
                self.adopted(now, from, key, ts, previous, KeyState::Invalid);
            }
            // W × INV>, R × INV>: Ai, →Trans, !ACK.
            (Greater, KeyState::Write | KeyState::Replay) => {
                let previous = entry.adopt(from, ts, value, is_rmw, KeyState::Trans);
                self.adopted(now, from, key, ts, previous, KeyState::Trans);
            }
            // W × INV= (× in the table, reachable when another replica replays this replica's
            // pending update after its message-loss timeout). While an own RMW is pending only
            // this replica may commit it, so that an abort it reports is final: no ACK.
            (Equal, KeyState::Write)
                if entry
                    .pending
                    .as_ref()
                    .is_some_and(|p| p.kind == UpdateKind::Rmw) => {}
            // W × INV= of a write: !ACK; the last writer stays this replica.
            (Equal, KeyState::Write) => self.ack_when_durable(from, key, ts, ts),
            // V, I, Trans, R × INV=: Ai (the replayer becomes the last writer), !ACK.
            (Equal, KeyState::Valid | KeyState::Invalid | KeyState::Trans | KeyState::Replay) => {
                entry.last_writer = from;
                self.ack_when_durable(from, key, ts, ts);
            }
            // Any state × RMW-INV<: answer with an INV of the local state (the abort-INV, §2).
            (Less, _) if is_rmw => {
                let reply = Inv {
                    key,
                    ts: entry.ts,
                    value: entry.value.clone(),
                    is_rmw: entry.is_rmw,
                    epoch: self.view.epoch,
                };
                self.send(from, Message::Inv(reply));
            }
            // Any state × INV<: !ACK with the INV's timestamp, saying which one is held.
            (Less, _) => {
                let held = entry.ts;
                self.ack_when_durable(from, key, ts, held);
            }
        }
    }

    /// After Ai: persist the adopted record, ACK it, and on an Invalid key give the new update a
    /// full message-loss timeout before a waiting request replays it.
    fn adopted(
        &mut self,
        now: Instant,
        from: NodeId,
        key: Key,
        ts: Ts,
        previous: Ts,
        state: KeyState,
    ) {
        self.record_changed(&key, previous);
        if state == KeyState::Invalid {
            self.set_key_deadline(&key, None);
            self.arm_replay(now, &key);
            self.mark_resume(&key);
        }
        self.ack_when_durable(from, key, ts, ts);
    }

    /// F_VAL: the update with exactly the local timestamp is committed; become Valid and finish
    /// whatever local update it completes. A VAL of any other timestamp changes nothing.
    pub(super) fn on_val(&mut self, _now: Instant, _from: NodeId, val: Val) {
        let Some(entry) = self.keys.get_mut(&val.key) else {
            return;
        };
        if val.ts != entry.ts {
            return;
        }
        match entry.state {
            // V × VAL: –.
            KeyState::Valid => {}
            // I × VAL=: →V. Trans × VAL=: done-W, →V (the superseded own update completes with
            // the higher one). R × VAL=: Arr, →V. W × VAL= (× in the table, reachable when
            // another replica's replay of this replica's write committed first): done-W, →V.
            KeyState::Invalid | KeyState::Trans | KeyState::Replay | KeyState::Write => {
                let pending = entry.pending.take();
                entry.state = KeyState::Valid;
                entry.known_max = entry.known_max.max(val.highest);
                self.set_key_deadline(&val.key, None);
                if let Some(pending) = pending {
                    self.finish_update(&val.key, &pending);
                }
                self.became_valid(&val.key);
                self.mark_resume(&val.key);
            }
        }
    }
}
