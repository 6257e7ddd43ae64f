//! [`KeyMap`]: the replica's per-key state, with hashed lookups and ordered iteration.
//!
//! Every message and every read looks a key up, so lookups go through a hash map. Everything
//! that iterates (view changes, state transfer, invariants, `Hash`) goes through a sorted set of
//! the same keys, so the replica's behaviour never depends on hash order and stays
//! deterministic.

use std::collections::hash_map::{self, DefaultHasher};
use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hash, Hasher};
use std::ops::Bound;

use super::key::KeyEntry;
use crate::types::Key;

/// Keys and their entries: a hash map for lookups plus the sorted set of its keys.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyMap {
    map: HashMap<Key, KeyEntry, BuildHasherDefault<DefaultHasher>>,
    /// Exactly the keys of `map`, in order.
    order: BTreeSet<Key>,
}

/// A vacant or occupied place for one key (see [`KeyMap::entry`]).
pub(crate) struct Entry<'a> {
    map: &'a mut KeyMap,
    key: Key,
}

impl<'a> Entry<'a> {
    /// The entry, inserted from `make` if the key had none.
    pub(crate) fn or_insert_with(self, make: impl FnOnce() -> KeyEntry) -> &'a mut KeyEntry {
        let KeyMap { map, order } = self.map;
        match map.entry(self.key) {
            hash_map::Entry::Occupied(occupied) => occupied.into_mut(),
            hash_map::Entry::Vacant(vacant) => {
                order.insert(vacant.key().clone());
                vacant.insert(make())
            }
        }
    }
}

impl KeyMap {
    /// The entry of `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&KeyEntry> {
        self.map.get(key)
    }

    /// The entry of `key`, to change.
    pub(crate) fn get_mut(&mut self, key: &[u8]) -> Option<&mut KeyEntry> {
        self.map.get_mut(key)
    }

    /// The place of `key`, to insert an entry if there is none.
    pub(crate) fn entry(&mut self, key: Key) -> Entry<'_> {
        Entry { map: self, key }
    }

    /// Removes the entry of `key`.
    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<KeyEntry> {
        let removed = self.map.remove(key);
        if removed.is_some() {
            self.order.remove(key);
        }
        removed
    }

    /// Removes every entry.
    pub(crate) fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
    }

    /// Every entry, in key order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Key, &KeyEntry)> {
        self.order
            .iter()
            .filter_map(move |key| self.map.get(key).map(|entry| (key, entry)))
    }

    /// The entries with keys in `(start, ∞)`, in key order.
    pub(crate) fn range_from(&self, start: Bound<Key>) -> impl Iterator<Item = (&Key, &KeyEntry)> {
        self.order
            .range((start, Bound::Unbounded))
            .filter_map(move |key| self.map.get(key).map(|entry| (key, entry)))
    }

    /// Every entry, to change, in key order.
    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&Key, &mut KeyEntry)> {
        let mut entries: Vec<(&Key, &mut KeyEntry)> = self.map.iter_mut().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        entries.into_iter()
    }
}

impl Hash for KeyMap {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.map.len().hash(state);
        for (key, entry) in self.iter() {
            key.hash(state);
            entry.hash(state);
        }
    }
}

impl std::fmt::Debug for KeyMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iteration_follows_key_order_whatever_the_insertion_order() {
        let mut keys = KeyMap::default();
        for k in ["m", "a", "z", "c"] {
            keys.entry(Key::from(k)).or_insert_with(KeyEntry::absent);
        }
        keys.remove(b"z");
        let listed: Vec<&[u8]> = keys.iter().map(|(k, _)| &k[..]).collect();
        assert_eq!(listed, [&b"a"[..], b"c", b"m"]);
        let from: Vec<&[u8]> = keys
            .range_from(Bound::Excluded(Key::from("a")))
            .map(|(k, _)| &k[..])
            .collect();
        assert_eq!(from, [&b"c"[..], b"m"]);
        let changed: Vec<&[u8]> = keys.iter_mut().map(|(k, _)| &k[..]).collect();
        assert_eq!(changed, [&b"a"[..], b"c", b"m"]);
    }
}
