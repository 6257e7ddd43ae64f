//! [`MemStore`]: the store that keeps everything in memory.

use crate::store::range_is_empty;
use crate::{Store, StoreError};
use hermes_core::{Key, Record};
use std::collections::BTreeMap;
use std::ops::Bound;

/// A [`Store`] that keeps records and metadata in ordered maps in memory.
///
/// Nothing survives the process: `sync` and `save_meta` are durable only in the sense that
/// nothing is lost while the value lives. It never fails. Useful as the store of `memory`
/// durability mode, in tests, and as the reference behaviour the conformance suite
/// ([`crate::testing`]) holds other stores to.
///
/// Cloning a `MemStore` copies its contents (values are reference-counted [`bytes::Bytes`], so
/// a clone shares their memory).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MemStore {
    records: BTreeMap<Key, Record>,
    meta: BTreeMap<String, Vec<u8>>,
}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        MemStore::default()
    }

    /// The number of records (tombstones included).
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether the store holds no record.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }
}

impl Store for MemStore {
    fn load_each(&self, visit: &mut dyn FnMut(Key, Record)) -> Result<(), StoreError> {
        for (key, record) in &self.records {
            visit(key.clone(), record.clone());
        }
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Record>, StoreError> {
        Ok(self.records.get(key).cloned())
    }

    fn apply(&mut self, batch: &[(Key, Record)]) -> Result<(), StoreError> {
        for (key, record) in batch {
            self.records.insert(key.clone(), record.clone());
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        Ok(())
    }

    fn scan(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Key, Record)>, StoreError> {
        if limit == 0 || range_is_empty(start, end) {
            return Ok(Vec::new());
        }
        Ok(self
            .records
            .range::<[u8], _>((start, end))
            .take(limit)
            .map(|(key, record)| (key.clone(), record.clone()))
            .collect())
    }

    fn save_meta(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.meta.insert(name.to_string(), bytes.to_vec());
        Ok(())
    }

    fn load_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta.get(name).cloned())
    }
}
