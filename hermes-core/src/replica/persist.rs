//! Durability of records: `Persist` actions, and under `sync` the ACKs, commits and answers that
//! wait for [`Replica::handle_persisted`].
//!
//! Whenever a key takes a newer record (a coordinator starts an update, a follower adopts a higher
//! INV, a shadow installs a transferred entry) the key is noted; when the input ends, every noted
//! key's latest record goes out in one [`Action::Persist`] with the next token (`async` and
//! `sync`; nothing in `memory` mode).
//!
//! Under `sync` the replica tracks, per key whose latest record is not yet known durable, the
//! highest durable timestamp. The rule everything follows is: **something that vouches for
//! timestamp `ts` of a key leaves this replica only once a record of that key with a timestamp of
//! at least `ts` is durable here.** So an ACK for `ts` waits (it is owed, and sent as soon as the
//! rule holds, unless the epoch changed in between: then the INV is re-sent in the new epoch and
//! ACKed there); a pending update commits (VAL and client answer) only once its own record is
//! durable; an answer to a client for an update completed by someone else's VAL waits likewise.
//! A duplicate INV whose record is already durable is ACKed at once.

use super::{KeyEntry, KeyState, Replica};
use crate::action::Action;
use crate::durability::{Durability, PersistToken};
use crate::op::{Outcome, RequestId};
use crate::types::{Epoch, Instant, Key, NodeId, Record, Ts};
use std::collections::{BTreeMap, BTreeSet};

/// A replica's bookkeeping of what it asked to persist and what is durable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct DurabilityTracker {
    /// The last token emitted (0: none yet).
    last_token: u64,
    /// Every `Persist` up to this token is durable.
    durable_token: u64,
    /// Keys whose record changed during the current input, persisted when it ends.
    batch: BTreeSet<Key>,
    /// `sync` only: keys whose latest record is not yet known durable.
    unsettled: BTreeMap<Key, Unsettled>,
    /// `sync` only: the keys each token in flight covers.
    in_flight: BTreeMap<u64, Vec<Key>>,
}

/// One key whose latest record is not yet known durable (`sync`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Unsettled {
    /// The highest timestamp of the key known durable.
    durable: Ts,
    /// The key's records in flight, as `(token, ts)`, in token order.
    persisting: Vec<(u64, Ts)>,
    /// ACKs owed once `durable >= ts`: `(ts, to)` → `(held, epoch)`.
    owed_acks: BTreeMap<(Ts, NodeId), (Ts, Epoch)>,
    /// Client answers owed once `durable >= ts`, in the order they were due.
    owed_replies: Vec<(Ts, RequestId, Outcome)>,
}

impl Unsettled {
    fn new(durable: Ts) -> Self {
        Unsettled {
            durable,
            persisting: Vec::new(),
            owed_acks: BTreeMap::new(),
            owed_replies: Vec::new(),
        }
    }
}

impl Replica {
    /// Reports that every [`Action::Persist`] with a token up to `token` is durable (the driver
    /// may report only the highest token of a group commit). Under `sync` this sends the ACKs,
    /// commits and answers that waited for those records; otherwise it changes nothing. A token
    /// above the last one emitted counts as the last one emitted; an old token does nothing.
    pub fn handle_persisted(&mut self, now: Instant, token: PersistToken) {
        let token = token.0.min(self.durability_tracker.last_token);
        if token <= self.durability_tracker.durable_token {
            return;
        }
        self.durability_tracker.durable_token = token;
        if self.config.durability != Durability::Sync {
            return;
        }
        let mut touched = BTreeSet::new();
        while let Some(entry) = self.durability_tracker.in_flight.first_entry() {
            if *entry.key() > token {
                break;
            }
            touched.extend(entry.remove());
        }
        for key in touched {
            self.on_key_persisted(now, &key, token);
        }
        self.end_input(now);
    }

    /// The last token emitted in a [`Action::Persist`] (`PersistToken(0)` if none).
    pub fn last_persist_token(&self) -> PersistToken {
        PersistToken(self.durability_tracker.last_token)
    }

    /// The highest token reported durable through [`handle_persisted`](Self::handle_persisted).
    pub fn durable_token(&self) -> PersistToken {
        PersistToken(self.durability_tracker.durable_token)
    }

    /// Installs records loaded from this node's store after a restart. Each becomes an Invalid
    /// entry: a recovered record may never have committed, so it is not served before it is
    /// replayed. The records are durable already, so no `Persist` is emitted; records at
    /// [`Ts::ZERO`] carry nothing and are skipped, and of two records for one key the higher
    /// timestamp is kept. The store does not keep the RMW flag, so every recovered record is
    /// flagged as an RMW: its replay then gives way to a higher record held elsewhere, as a
    /// lost RMW must, and a write that gives way is simply overwritten (see
    /// `docs/ARCHITECTURE.md`, "Durability and total restart").
    pub fn load_recovered(&mut self, records: Vec<(Key, Record)>) {
        for (key, record) in records {
            if record.ts == Ts::ZERO {
                continue;
            }
            let entry = self.keys.entry(key).or_insert_with(KeyEntry::absent);
            if record.ts <= entry.ts || entry.pending.is_some() {
                continue;
            }
            entry.ts = record.ts;
            entry.value = record.value;
            entry.state = KeyState::Invalid;
            entry.last_writer = record.ts.node;
            entry.is_rmw = true;
        }
    }

    /// Notes that `key` took a newer record, replacing one at `previous` (durable unless noted
    /// before). Its latest record is persisted when the input ends.
    pub(super) fn record_changed(&mut self, key: &Key, previous: Ts) {
        if !self.config.durability.persists() {
            return;
        }
        self.durability_tracker.batch.insert(key.clone());
        if self.config.durability == Durability::Sync {
            self.durability_tracker
                .unsettled
                .entry(key.clone())
                .or_insert_with(|| Unsettled::new(previous));
        }
    }

    /// Whether a record of `key` with a timestamp of at least `ts` is durable (always, unless the
    /// mode is `sync`).
    pub(super) fn is_durable(&self, key: &Key, ts: Ts) -> bool {
        if self.config.durability != Durability::Sync
            || self.has_bug(super::PlantedBug::AckBeforeDurable)
        {
            return true;
        }
        let durable = match self.durability_tracker.unsettled.get(key) {
            Some(unsettled) => unsettled.durable,
            None => self.keys.get(key).map_or(Ts::ZERO, |e| e.ts),
        };
        durable >= ts
    }

    /// Sends the ACK of the INV `ts` of `key` to `to` now if the record is durable, or once it is.
    pub(super) fn ack_when_durable(&mut self, to: NodeId, key: Key, ts: Ts, held: Ts) {
        if self.is_durable(&key, ts) {
            self.send_ack(to, key, ts, held);
            return;
        }
        let epoch = self.view.epoch;
        if let Some(unsettled) = self.durability_tracker.unsettled.get_mut(&key) {
            unsettled.owed_acks.insert((ts, to), (held, epoch));
            self.stats.acks_after_persist += 1;
        }
    }

    /// Answers the client `id` of an update at `ts` of `key` now if the record is durable, or
    /// once it is.
    pub(super) fn answer_when_durable(
        &mut self,
        key: &Key,
        ts: Ts,
        id: RequestId,
        outcome: Outcome,
    ) {
        if self.is_durable(key, ts) {
            self.answer(id, Ok(outcome));
            return;
        }
        if let Some(unsettled) = self.durability_tracker.unsettled.get_mut(key) {
            unsettled.owed_replies.push((ts, id, outcome));
        }
    }

    /// A view change: owed ACKs belong to the old epoch, where nobody counts them any more (the
    /// pending updates are re-sent in the new epoch and ACKed there).
    pub(super) fn forget_owed_acks(&mut self) {
        for unsettled in self.durability_tracker.unsettled.values_mut() {
            unsettled.owed_acks.clear();
        }
    }

    /// Forgets every record noted or in flight (the replica starts over empty); tokens keep
    /// counting, so those in flight still settle.
    pub(super) fn forget_durability(&mut self) {
        self.durability_tracker.batch.clear();
        self.durability_tracker.unsettled.clear();
        self.durability_tracker.in_flight.clear();
    }

    /// Persists `keys` as never written (the replica dropped them), at once.
    pub(super) fn erase_records(&mut self, keys: Vec<Key>) {
        if !self.config.durability.persists() || keys.is_empty() {
            return;
        }
        self.durability_tracker.batch.extend(keys);
        self.flush_records();
    }

    /// Emits one `Persist` with the latest record of every key noted during this input (a key
    /// the replica no longer holds is persisted as never written).
    pub(super) fn flush_records(&mut self) {
        if self.durability_tracker.batch.is_empty() {
            return;
        }
        let keys = std::mem::take(&mut self.durability_tracker.batch);
        let token = self.durability_tracker.last_token + 1;
        let mut records = Vec::with_capacity(keys.len());
        let mut covered = Vec::with_capacity(keys.len());
        for key in keys {
            let record = match self.keys.get(&key) {
                Some(entry) => Record {
                    ts: entry.ts,
                    value: entry.value.clone(),
                },
                None => Record {
                    ts: Ts::ZERO,
                    value: None,
                },
            };
            if let Some(unsettled) = self.durability_tracker.unsettled.get_mut(&key) {
                unsettled.persisting.push((token, record.ts));
                covered.push(key.clone());
            }
            records.push((key, record));
        }
        self.durability_tracker.last_token = token;
        if !covered.is_empty() {
            self.durability_tracker.in_flight.insert(token, covered);
        }
        self.stats.persists += 1;
        self.actions.push_back(Action::Persist {
            records,
            token: PersistToken(token),
        });
    }

    /// Every record of `key` up to `token` is durable: send what waited for it.
    fn on_key_persisted(&mut self, now: Instant, key: &Key, token: u64) {
        let epoch = self.view.epoch;
        let noted = self.durability_tracker.batch.contains(key);
        let held = self.keys.get(key).map_or(Ts::ZERO, |e| e.ts);
        let Some(unsettled) = self.durability_tracker.unsettled.get_mut(key) else {
            return;
        };
        let done = unsettled.persisting.partition_point(|(t, _)| *t <= token);
        for (_, ts) in unsettled.persisting.drain(..done) {
            unsettled.durable = unsettled.durable.max(ts);
        }
        let settled = unsettled.persisting.is_empty() && !noted;
        if settled {
            // Nothing newer is in flight or noted: the latest record is the one held.
            unsettled.durable = unsettled.durable.max(held);
        }
        let durable = unsettled.durable;
        let ready: Vec<((Ts, NodeId), (Ts, Epoch))> = unsettled
            .owed_acks
            .range(..=(durable, NodeId(u32::MAX)))
            .map(|(k, v)| (*k, *v))
            .collect();
        for (k, _) in &ready {
            unsettled.owed_acks.remove(k);
        }
        let (replies, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut unsettled.owed_replies)
            .into_iter()
            .partition(|(ts, _, _)| *ts <= durable);
        unsettled.owed_replies = waiting;
        if settled && unsettled.owed_acks.is_empty() && unsettled.owed_replies.is_empty() {
            self.durability_tracker.unsettled.remove(key);
        }
        for ((ts, to), (held, ack_epoch)) in ready {
            if ack_epoch == epoch {
                self.send_ack(to, key.clone(), ts, held);
            }
        }
        for (_, id, outcome) in replies {
            if self.requests.contains_key(&id) {
                self.answer(id, Ok(outcome));
            }
        }
        self.check_complete(now, key);
    }
}
