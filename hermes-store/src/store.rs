//! The [`Store`] trait every storage implementation provides.

use crate::StoreError;
use hermes_core::{Key, Record};
use std::ops::Bound;

/// Durable per-key records of one Hermes replica.
///
/// The latest [`Record`] (timestamp and value, or a tombstone) of every key is the whole durable
/// state of a replica; there is no log. A node loads every record when it starts, applies batches
/// of records as the protocol commits them, calls [`Store::sync`] when it needs them durable, and
/// scans key ranges in order to send its state to a joining replica.
///
/// The store knows nothing of the protocol: it does not compare timestamps and never refuses an
/// older record. Deciding which record wins is the replica's job.
///
/// # To ensure correctness
///
/// An implementation must guarantee all of the following; the conformance suite in
/// [`crate::testing`] checks the parts a test can observe.
///
/// - **Apply is atomic.** After [`Store::apply`] returns `Ok`, every record of the batch is
///   visible to [`Store::get`], [`Store::scan`] and [`Store::load_each`]; after it returns `Err`,
///   either all of them or none are (and the caller stops anyway, see below). Within one batch a
///   key that appears more than once takes its **last** record.
/// - **Records are replaced whole.** Applying a record for a key replaces the key's previous
///   record entirely; nothing is merged.
/// - **Tombstones are records.** A record whose `value` is `None` is stored, loaded and scanned
///   like any other, with its timestamp; it is not a removal of the key.
/// - **Sync makes everything durable.** Once [`Store::sync`] returns `Ok`, every batch applied
///   before the call survives a crash of the process or a power loss.
/// - **A crash leaves a prefix.** After a crash and reopen, the store holds exactly the state
///   after some prefix of the applied batches, at least every batch covered by a completed
///   `sync` (or [`Store::save_meta`]), and never a torn or partly written record.
/// - **Scans are ordered.** [`Store::scan`] returns records in ascending order of the key bytes
///   (lexicographic, as `[u8]` compares), so a transfer can resume after the last key it got.
/// - **Metadata is durable at once.** [`Store::save_meta`] returns only after the entry is durable,
///   whatever the durability mode, and it makes earlier applied batches durable too.
/// - **Errors are fatal.** An `Err` from any method means the store can no longer be trusted: the
///   caller stops the node (fail-stop) and never calls the store again. Implementations report
///   every failure they see and never swallow one.
///
/// A store is used from one thread at a time (it is `Send` so that a node can move it to a writer
/// thread); methods that read take `&self`, methods that change take `&mut self`.
pub trait Store: Send {
    /// Calls `visit` once for every record in the store, in key order.
    ///
    /// A node calls this once at start to rebuild its replica. Records are handed out one at a
    /// time, so loading a large store never needs a second copy of it in memory.
    fn load_each(&self, visit: &mut dyn FnMut(Key, Record)) -> Result<(), StoreError>;

    /// Every record in the store, in key order. A convenience over [`Store::load_each`].
    fn load_all(&self) -> Result<Vec<(Key, Record)>, StoreError> {
        let mut all = Vec::new();
        self.load_each(&mut |key, record| all.push((key, record)))?;
        Ok(all)
    }

    /// The record of `key`, if the store holds one (a tombstone is `Some` with `value: None`).
    fn get(&self, key: &[u8]) -> Result<Option<Record>, StoreError>;

    /// Applies `batch` atomically: every record is stored, or none is. A key that appears more
    /// than once takes its last record. An empty batch does nothing.
    ///
    /// The batch is not necessarily durable until [`Store::sync`] returns; an implementation
    /// applies many records in one transaction (group commit).
    fn apply(&mut self, batch: &[(Key, Record)]) -> Result<(), StoreError>;

    /// Makes every batch applied so far durable. Cheap when nothing was applied since the last
    /// `sync`.
    fn sync(&mut self) -> Result<(), StoreError>;

    /// Up to `limit` records with keys in `(start, end)`, in ascending key order.
    ///
    /// For resumable, chunked state transfer: start with `Bound::Unbounded` (or the first key of
    /// the range), then continue with `Bound::Excluded(last key returned)` until fewer than
    /// `limit` records come back. `limit == 0` returns nothing; an empty or inverted range returns
    /// nothing.
    fn scan(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Key, Record)>, StoreError>;

    /// Stores `bytes` under `name` in the metadata slot, replacing what was there, and returns
    /// only once it is durable (whatever the durability mode). Used by the membership layer for
    /// its current view and acceptor state, which must be on disk before it answers.
    fn save_meta(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError>;

    /// The metadata stored under `name`, if any.
    fn load_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
}

impl<S: Store + ?Sized> Store for Box<S> {
    fn load_each(&self, visit: &mut dyn FnMut(Key, Record)) -> Result<(), StoreError> {
        (**self).load_each(visit)
    }

    fn load_all(&self) -> Result<Vec<(Key, Record)>, StoreError> {
        (**self).load_all()
    }

    fn get(&self, key: &[u8]) -> Result<Option<Record>, StoreError> {
        (**self).get(key)
    }

    fn apply(&mut self, batch: &[(Key, Record)]) -> Result<(), StoreError> {
        (**self).apply(batch)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        (**self).sync()
    }

    fn scan(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Key, Record)>, StoreError> {
        (**self).scan(start, end, limit)
    }

    fn save_meta(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        (**self).save_meta(name, bytes)
    }

    fn load_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        (**self).load_meta(name)
    }
}

/// Whether the key range `(start, end)` holds no key at all (so that a scan returns nothing and
/// never hands an inverted range to an ordered map, which would panic).
pub(crate) fn range_is_empty(start: Bound<&[u8]>, end: Bound<&[u8]>) -> bool {
    match (start, end) {
        (Bound::Included(s), Bound::Included(e)) => s > e,
        (Bound::Included(s), Bound::Excluded(e))
        | (Bound::Excluded(s), Bound::Included(e))
        | (Bound::Excluded(s), Bound::Excluded(e)) => s >= e,
        (Bound::Unbounded, Bound::Excluded(e)) => e.is_empty(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Bound::{Excluded, Included, Unbounded};

    #[test]
    fn empty_ranges() {
        assert!(range_is_empty(Included(b"b"), Included(b"a")));
        assert!(!range_is_empty(Included(b"a"), Included(b"a")));
        assert!(range_is_empty(Included(b"a"), Excluded(b"a")));
        assert!(range_is_empty(Excluded(b"a"), Included(b"a")));
        assert!(range_is_empty(Unbounded, Excluded(b"")));
        assert!(!range_is_empty(Unbounded, Unbounded));
        assert!(!range_is_empty(Excluded(b"a"), Unbounded));
    }
}
