//! State transfer: a donor's ordered snapshot of key ranges, and a joiner installing them.

use super::{KeyEntry, KeyState, Replica};
use crate::membership::TransferEntry;
use crate::op::RequestError;
use crate::types::{Instant, Key, NodeId};
use std::ops::Bound;

impl Replica {
    /// Up to `limit` entries after `after` (from the first key when `None`), in key order, and
    /// whether they reach the last key.
    pub fn snapshot(&self, after: Option<&Key>, limit: usize) -> (Vec<TransferEntry>, bool) {
        let start = match after {
            Some(key) => Bound::Excluded(key.clone()),
            None => Bound::Unbounded,
        };
        let mut entries = Vec::new();
        let mut range = self.keys.range_from(start);
        for (key, entry) in range.by_ref() {
            if entry.ts == crate::Ts::ZERO {
                continue; // never written: nothing to transfer
            }
            entries.push(TransferEntry {
                key: key.clone(),
                ts: entry.ts,
                value: entry.value.clone(),
                valid: entry.state == KeyState::Valid,
                is_rmw: entry.is_rmw,
                last_writer: entry.last_writer,
            });
            if entries.len() >= limit {
                break;
            }
        }
        let done = range.next().is_none();
        (entries, done)
    }

    /// Installs a donor's entries: only those newer than what this replica holds, Valid when the
    /// donor held them Valid (every update committing from now on needs this replica's ACK), and
    /// Invalid otherwise. An entry at this replica's own timestamp that the donor holds Valid
    /// validates it.
    pub fn install_transferred(&mut self, now: Instant, entries: Vec<TransferEntry>) {
        for incoming in entries {
            let entry = self
                .keys
                .entry(incoming.key.clone())
                .or_insert_with(KeyEntry::absent);
            let newer = incoming.ts > entry.ts;
            let validates = incoming.ts == entry.ts
                && incoming.valid
                && entry.state == KeyState::Invalid
                && entry.pending.is_none();
            if newer && entry.pending.is_none() {
                let previous = entry.ts;
                entry.ts = incoming.ts;
                entry.value = incoming.value;
                entry.is_rmw = incoming.is_rmw;
                entry.last_writer = incoming.last_writer;
                entry.state = if incoming.valid {
                    KeyState::Valid
                } else {
                    KeyState::Invalid
                };
                entry.known_max = entry.known_max.max(incoming.ts);
                self.record_changed(&incoming.key, previous);
            } else if validates {
                entry.state = KeyState::Valid;
            } else {
                continue;
            }
            self.mark_resume(&incoming.key);
        }
        self.end_input(now);
    }

    /// Answers every request in flight (with a timeout whose outcome is unknown for started
    /// updates) and forgets all state: the replica starts over empty. With `async` or `sync`
    /// durability the store follows: every key held is persisted as never written
    /// ([`Ts::ZERO`](crate::Ts::ZERO)), so that no record the replica no longer vouches for is
    /// recovered after a restart.
    pub fn abandon_all(&mut self) {
        let ids: Vec<_> = self.requests.keys().copied().collect();
        for id in ids {
            let outcome_unknown = self.requests.get(&id).is_some_and(|r| r.coordinating);
            self.stats.timeouts += 1;
            self.answer(id, Err(RequestError::Timeout { outcome_unknown }));
        }
        let held: Vec<Key> = self
            .keys
            .iter()
            .filter(|(_, e)| e.ts != crate::Ts::ZERO)
            .map(|(key, _)| key.clone())
            .collect();
        self.keys.clear();
        self.forget_durability();
        self.erase_records(held);
        self.timers.clear();
        self.stalled.clear();
        self.to_resume.clear();
    }

    /// The node that sent the INV this replica adopted last for `key`.
    pub fn last_writer(&self, key: &[u8]) -> Option<NodeId> {
        self.keys.get(key).map(|e| e.last_writer)
    }
}
