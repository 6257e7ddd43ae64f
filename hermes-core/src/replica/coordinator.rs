//! The coordinator path: Coord_TS, Coord_INV, Coord_ACK, Coord_VAL, and replays (one entry
//! point, [`Replica::start_replay`], whatever triggered the replay).

use super::{KeyState, Pending, ReplayCause, Replica, UpdateKind};
use crate::message::{Ack, Inv, Message, Val};
use crate::op::{Outcome, RequestError, RequestId};
use crate::types::{Instant, Key, NodeId, Value};
use std::collections::BTreeSet;

impl Replica {
    /// V × Write (and V × CAS): new timestamp (Coord_TS), apply locally, move to Write and
    /// broadcast the INV with the value (Coord_INV). A key whose next version would pass
    /// [`Ts::VERSION_MAX`](crate::Ts::VERSION_MAX) can no longer be updated: the request is
    /// refused as an invalid argument.
    pub(super) fn begin_update(
        &mut self,
        now: Instant,
        key: &Key,
        id: RequestId,
        kind: UpdateKind,
        value: Option<Value>,
    ) {
        let me = self.id();
        let epoch = self.view.epoch;
        let incarnation = self.incarnation;
        let Some(entry) = self.keys.get_mut(key) else {
            return;
        };
        let is_rmw = kind == UpdateKind::Rmw;
        let next = if is_rmw {
            entry.ts.next_rmw(me)
        } else {
            entry.ts.next_write(me)
        };
        let Some(ts) = next.map(|ts| ts.with_incarnation(incarnation)) else {
            self.stats.invalid_arguments += 1;
            let reason = format!(
                "the key's version {} leaves no room for another update",
                entry.ts.version
            );
            self.answer(id, Err(RequestError::InvalidArgument(reason)));
            return;
        };
        let previous = entry.ts;
        entry.ts = ts;
        entry.value = value.clone();
        entry.state = KeyState::Write;
        entry.last_writer = me;
        entry.is_rmw = is_rmw;
        entry.pending = Some(Pending {
            ts,
            value: value.clone(),
            is_rmw,
            kind,
            acks: BTreeSet::new(),
            epoch,
            client: Some(id),
            highest_acked: ts,
        });
        if let Some(request) = self.requests.get_mut(&id) {
            request.coordinating = true;
        }
        self.record_changed(key, previous);
        let inv = Inv {
            key: key.clone(),
            ts,
            value,
            is_rmw,
            epoch,
        };
        self.broadcast_inv(&inv, None);
        self.set_key_deadline(key, Some(now + self.config.message_loss_timeout()));
        self.check_complete(now, key);
    }

    /// The one place a replay starts, whatever triggered it (see [`ReplayCause`]): an Invalid
    /// key that no local update drives moves to Replay (I × Read with a failed coordinator:
    /// Abr, →R, !INV) and its update is re-broadcast with its original timestamp and value.
    /// Only a member replays; a replay for [`ReplayCause::WriterLeft`] starts only if the key's
    /// last writer has indeed left the view. Returns whether a replay started.
    pub(super) fn start_replay(&mut self, now: Instant, key: &Key, cause: ReplayCause) -> bool {
        let me = self.id();
        let epoch = self.view.epoch;
        let Some(entry) = self.keys.get_mut(key) else {
            return false;
        };
        let triggered = match cause {
            ReplayCause::MessageLoss | ReplayCause::Recovered => true,
            ReplayCause::WriterLeft => !self.view.contains(entry.last_writer),
        };
        if !triggered
            || entry.state != KeyState::Invalid
            || entry.pending.is_some()
            || !self.view.is_member(me)
        {
            return false;
        }
        entry.state = KeyState::Replay;
        entry.last_writer = me;
        entry.pending = Some(Pending {
            ts: entry.ts,
            value: entry.value.clone(),
            is_rmw: entry.is_rmw,
            kind: UpdateKind::Replay,
            acks: BTreeSet::new(),
            epoch,
            client: None,
            highest_acked: entry.ts,
        });
        let inv = Inv {
            key: key.clone(),
            ts: entry.ts,
            value: entry.value.clone(),
            is_rmw: entry.is_rmw,
            epoch,
        };
        self.stats.replays += 1;
        self.broadcast_inv(&inv, None);
        self.set_key_deadline(key, Some(now + self.config.message_loss_timeout()));
        self.check_complete(now, key);
        true
    }

    /// Replays every Invalid key that no local update drives, with its original timestamp and
    /// value. A node restarted with its records calls this once it is a member again: nobody
    /// else may hold its recovered records, and the replays settle them (a higher timestamp held
    /// elsewhere wins through the usual rules). Only a member replays.
    pub fn replay_invalid_keys(&mut self, now: Instant) {
        if !self.view.is_member(self.id()) {
            return;
        }
        let invalid: Vec<Key> = self
            .keys
            .iter()
            .filter(|(_, e)| e.state == KeyState::Invalid && e.pending.is_none())
            .map(|(key, _)| key.clone())
            .collect();
        for key in invalid {
            self.start_replay(now, &key, ReplayCause::Recovered);
        }
        self.end_input(now);
    }

    /// Coord_ACK: counts an ACK that matches the pending update's exact timestamp and epoch.
    pub(super) fn on_ack(&mut self, now: Instant, from: NodeId, ack: Ack) {
        if ack.epoch != self.view.epoch {
            self.stats.dropped_wrong_epoch += 1;
            return;
        }
        let epoch = self.view.epoch;
        let Some(entry) = self.keys.get_mut(&ack.key) else {
            return;
        };
        match entry.state {
            // V × ACK, I × ACK: – (no update of this replica is pending on the key).
            KeyState::Valid | KeyState::Invalid => {}
            // W, R, Trans × ACK (ts = local_write.ts): Ala; the last one completes the update
            // (`complete`). An ACK of another timestamp or epoch is not counted.
            KeyState::Write | KeyState::Replay | KeyState::Trans => {
                let Some(pending) = entry.pending.as_mut() else {
                    return;
                };
                if pending.ts != ack.ts || pending.epoch != epoch {
                    return;
                }
                pending.acks.insert(from);
                pending.highest_acked = pending.highest_acked.max(ack.held);
                self.check_complete(now, &ack.key);
            }
        }
    }

    /// Completes the pending update of `key` if every replica of the view has ACKed it and (under
    /// `sync` durability) its record is durable here.
    pub(super) fn check_complete(&mut self, now: Instant, key: &Key) {
        let me = self.id();
        let Some(pending) = self.keys.get(key).and_then(|e| e.pending.as_ref()) else {
            return;
        };
        if pending.epoch != self.view.epoch || !self.view.contains(me) {
            return;
        }
        let all_acked = self
            .view
            .replicas()
            .all(|n| n == me || pending.acks.contains(&n));
        if all_acked && self.is_durable(key, pending.ts) {
            self.complete(now, key);
        }
    }

    /// The pending update of `key` has every ACK: it is committed. Answer its client and validate
    /// (Coord_VAL), or, in Trans, fall back to Invalid without a VAL ([O1]).
    fn complete(&mut self, now: Instant, key: &Key) {
        let epoch = self.view.epoch;
        let Some(entry) = self.keys.get_mut(key) else {
            return;
        };
        let Some(pending) = entry.pending.take() else {
            return;
        };
        // W × last ACK: done-W, →V, !VAL. R × last ACK: Arr, →V, !VAL. Trans × last ACK: done-W,
        // →I without a VAL ([O1]: the replicas hold the higher update). Only these three states
        // hold a pending update.
        let validate = entry.state != KeyState::Trans;
        if validate {
            entry.state = KeyState::Valid;
            entry.known_max = entry.known_max.max(pending.highest_acked);
        } else {
            entry.state = KeyState::Invalid;
        }
        self.set_key_deadline(key, None);
        if validate {
            let val = Message::Val(Val {
                key: key.clone(),
                ts: pending.ts,
                highest: pending.highest_acked,
                epoch,
            });
            let me = self.id();
            let targets: Vec<NodeId> = self.view.replicas().filter(|n| *n != me).collect();
            for to in targets {
                self.send(to, val.clone());
            }
        }
        self.finish_update(key, &pending);
        if validate {
            self.became_valid(key);
        } else {
            self.start_replay(now, key, ReplayCause::WriterLeft);
        }
        self.mark_resume(key);
    }

    /// Answers the client of a finished (committed or superseded-and-complete) update of `key`,
    /// once (under `sync` durability) its record is durable here.
    pub(super) fn finish_update(&mut self, key: &Key, pending: &Pending) {
        let Some(client) = pending.client else {
            return;
        };
        let outcome = match pending.kind {
            UpdateKind::Rmw => {
                self.stats.rmws += 1;
                Outcome::Swapped { ts: pending.ts }
            }
            UpdateKind::Write | UpdateKind::Replay => {
                self.stats.writes += 1;
                Outcome::Written { ts: pending.ts }
            }
        };
        self.answer_when_durable(key, pending.ts, client, outcome);
    }

    /// The key just became Valid (at a timestamp above any RMW that lost here): answer the lost
    /// RMW, which can no longer commit anywhere.
    pub(super) fn became_valid(&mut self, key: &Key) {
        let Some(entry) = self.keys.get_mut(key) else {
            return;
        };
        if let Some(id) = entry.aborted_rmw.take() {
            self.stats.rmw_aborts += 1;
            self.answer(id, Err(RequestError::Aborted));
        }
    }
}
