//! The conformance suite every [`Store`] implementation must pass.
//!
//! Always compiled (it needs nothing beyond this crate), so that a store in another crate can run
//! it from its own tests:
//!
//! ```
//! use hermes_store::{testing, MemStore};
//!
//! testing::run_suite(MemStore::new);
//! ```
//!
//! A persistent store also runs [`run_reopen_suite`], whose factory opens (creating if absent)
//! the store at a path it is given:
//!
//! ```
//! use hermes_store::{testing, RedbStore};
//!
//! let dir = tempfile::tempdir().unwrap();
//! testing::run_reopen_suite(dir.path(), |path| RedbStore::open(path));
//! ```
//!
//! Every case panics with a message naming what went wrong; every case is also public on its own.
//! The suite checks the observable parts of the contract in the [`Store`] docs; crash behaviour
//! needs a fault-injecting backend and is tested per implementation.

use crate::{Store, StoreError};
use bytes::Bytes;
use hermes_core::{Key, NodeId, Record, Ts};
use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;

/// A record with timestamp `version.node` and `value` (`None` for a tombstone).
pub fn rec(version: u64, node: u32, value: Option<&[u8]>) -> Record {
    Record {
        ts: Ts::new(version, NodeId(node)),
        value: value.map(Bytes::copy_from_slice),
    }
}

/// A key from bytes.
pub fn key(bytes: &[u8]) -> Key {
    Bytes::copy_from_slice(bytes)
}

/// Asserts that `store` holds exactly `expected`, through every read path: `load_each`,
/// `load_all`, `get` of every key, and a full `scan` in chunks of 7.
pub fn assert_store_equals<S: Store + ?Sized>(store: &S, expected: &BTreeMap<Key, Record>) {
    let want: Vec<(Key, Record)> = expected
        .iter()
        .map(|(k, r)| (k.clone(), r.clone()))
        .collect();
    let mut visited = Vec::new();
    store
        .load_each(&mut |k, r| visited.push((k, r)))
        .expect("load_each failed");
    assert_eq!(visited, want, "load_each differs from the expected records");
    assert_eq!(
        store.load_all().expect("load_all failed"),
        want,
        "load_all differs from the expected records"
    );
    for (k, r) in expected {
        assert_eq!(
            store.get(k).expect("get failed").as_ref(),
            Some(r),
            "get({k:?}) differs"
        );
    }
    assert_eq!(
        scan_all(store, 7),
        want,
        "a chunked scan differs from the expected records"
    );
}

/// Every record, by resumable scans of `chunk` records each.
pub fn scan_all<S: Store + ?Sized>(store: &S, chunk: usize) -> Vec<(Key, Record)> {
    let mut out: Vec<(Key, Record)> = Vec::new();
    loop {
        let last = out.last().map(|(k, _)| k.clone());
        let start = match &last {
            Some(k) => Bound::Excluded(k.as_ref()),
            None => Bound::Unbounded,
        };
        let got = store
            .scan(start, Bound::Unbounded, chunk)
            .expect("scan failed");
        assert!(got.len() <= chunk, "scan returned more than its limit");
        let done = got.len() < chunk;
        out.extend(got);
        if done {
            return out;
        }
    }
}

/// Runs every case that needs no reopen against fresh stores from `make`.
pub fn run_suite<S: Store>(mut make: impl FnMut() -> S) {
    empty_store_holds_nothing(&mut make);
    apply_then_read_roundtrips(&mut make);
    overwrite_replaces_whole_record(&mut make);
    tombstones_are_records(&mut make);
    duplicate_keys_in_a_batch_last_wins(&mut make);
    empty_batch_changes_nothing(&mut make);
    scan_is_ordered_limited_and_resumable(&mut make);
    scan_respects_bounds(&mut make);
    meta_roundtrips(&mut make);
    sync_is_idempotent(&mut make);
    random_batches_match_a_model(&mut make);
}

/// A fresh store loads, gets, scans and finds no metadata.
pub fn empty_store_holds_nothing<S: Store>(make: &mut dyn FnMut() -> S) {
    let store = make();
    assert_store_equals(&store, &BTreeMap::new());
    assert_eq!(store.get(b"k").expect("get failed"), None);
    assert_eq!(
        store
            .scan(Bound::Unbounded, Bound::Unbounded, 10)
            .expect("scan failed"),
        vec![]
    );
    assert_eq!(store.load_meta("view").expect("load_meta failed"), None);
}

/// Applied records read back exactly: binary keys, empty and large values.
pub fn apply_then_read_roundtrips<S: Store>(make: &mut dyn FnMut() -> S) {
    let mut store = make();
    let big = vec![0xa5u8; 64 * 1024];
    let batch = vec![
        (key(b"a"), rec(2, 1, Some(b"alpha"))),
        (key(b"\x00"), rec(4, 2, Some(b""))),
        (key(b"\xff\xfe"), rec(u64::MAX, u32::MAX, Some(&big))),
        (key(b"b\x00c"), rec(6, 3, Some(b"\x00\x01\x02"))),
    ];
    store.apply(&batch).expect("apply failed");
    let expected: BTreeMap<Key, Record> = batch.into_iter().collect();
    assert_store_equals(&store, &expected);
    store.sync().expect("sync failed");
    assert_store_equals(&store, &expected);
}

/// A later record replaces the earlier one whole, even with a lower timestamp (the store does not
/// compare timestamps), and a value replaces a longer one without leftovers.
pub fn overwrite_replaces_whole_record<S: Store>(make: &mut dyn FnMut() -> S) {
    let mut store = make();
    store
        .apply(&[(key(b"k"), rec(8, 1, Some(b"a long first value")))])
        .expect("apply failed");
    store
        .apply(&[(key(b"k"), rec(2, 3, Some(b"short")))])
        .expect("apply failed");
    let expected = BTreeMap::from([(key(b"k"), rec(2, 3, Some(b"short")))]);
    assert_store_equals(&store, &expected);
}

/// A tombstone is stored, read and scanned with its timestamp, and a value can follow it.
pub fn tombstones_are_records<S: Store>(make: &mut dyn FnMut() -> S) {
    let mut store = make();
    store
        .apply(&[
            (key(b"a"), rec(2, 1, Some(b"x"))),
            (key(b"b"), rec(2, 1, Some(b"y"))),
        ])
        .expect("apply failed");
    store
        .apply(&[(key(b"a"), rec(4, 2, None)), (key(b"c"), rec(6, 1, None))])
        .expect("apply failed");
    let mut expected = BTreeMap::from([
        (key(b"a"), rec(4, 2, None)),
        (key(b"b"), rec(2, 1, Some(b"y"))),
        (key(b"c"), rec(6, 1, None)),
    ]);
    assert_store_equals(&store, &expected);
    assert_eq!(
        store.get(b"a").expect("get failed"),
        Some(rec(4, 2, None)),
        "a tombstone must read back as a record without a value"
    );
    store
        .apply(&[(key(b"a"), rec(6, 1, Some(b"back")))])
        .expect("apply failed");
    expected.insert(key(b"a"), rec(6, 1, Some(b"back")));
    assert_store_equals(&store, &expected);
}

/// A key that appears more than once in one batch takes the batch's last record.
pub fn duplicate_keys_in_a_batch_last_wins<S: Store>(make: &mut dyn FnMut() -> S) {
    let mut store = make();
    store
        .apply(&[
            (key(b"k"), rec(2, 1, Some(b"first"))),
            (key(b"j"), rec(2, 1, Some(b"other"))),
            (key(b"k"), rec(1, 9, Some(b"second"))),
            (key(b"k"), rec(4, 1, None)),
            (key(b"k"), rec(3, 2, Some(b"last"))),
        ])
        .expect("apply failed");
    let expected = BTreeMap::from([
        (key(b"j"), rec(2, 1, Some(b"other"))),
        (key(b"k"), rec(3, 2, Some(b"last"))),
    ]);
    assert_store_equals(&store, &expected);
}

/// An empty batch succeeds and changes nothing.
pub fn empty_batch_changes_nothing<S: Store>(make: &mut dyn FnMut() -> S) {
    let mut store = make();
    store.apply(&[]).expect("an empty apply failed");
    assert_store_equals(&store, &BTreeMap::new());
    store
        .apply(&[(key(b"k"), rec(2, 1, Some(b"v")))])
        .expect("apply failed");
    store.apply(&[]).expect("an empty apply failed");
    assert_store_equals(
        &store,
        &BTreeMap::from([(key(b"k"), rec(2, 1, Some(b"v")))]),
    );
}

/// Scans return records in byte order of the keys, at most `limit` at a time, and resume after
/// the last key returned; `limit == 0` returns nothing.
pub fn scan_is_ordered_limited_and_resumable<S: Store>(make: &mut dyn FnMut() -> S) {
    let mut store = make();
    let keys: [&[u8]; 9] = [
        b"b", b"ab", b"a", b"\xff", b"\x00", b"a\x00", b"ba", b"B", b"aa",
    ];
    let batch: Vec<(Key, Record)> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (key(k), rec(2 * i as u64 + 2, 1, Some(k))))
        .collect();
    store.apply(&batch).expect("apply failed");
    let mut sorted = batch.clone();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for chunk in [1, 2, 3, 8, 9, 10, 100] {
        assert_eq!(
            scan_all(&store, chunk),
            sorted,
            "chunked scan of {chunk} differs"
        );
    }
    assert_eq!(
        store
            .scan(Bound::Unbounded, Bound::Unbounded, 0)
            .expect("scan failed"),
        vec![],
        "a scan with limit 0 must return nothing"
    );
    assert_eq!(
        store
            .scan(Bound::Unbounded, Bound::Unbounded, 3)
            .expect("scan failed"),
        sorted[..3].to_vec()
    );
}

/// Scans honour included, excluded and unbounded ends, and an empty or inverted range returns
/// nothing.
pub fn scan_respects_bounds<S: Store>(make: &mut dyn FnMut() -> S) {
    use Bound::{Excluded, Included, Unbounded};
    let mut store = make();
    let batch: Vec<(Key, Record)> = [b"a", b"b", b"c", b"d", b"e"]
        .iter()
        .map(|k| (key(*k), rec(2, 1, Some(*k))))
        .collect();
    store.apply(&batch).expect("apply failed");
    let keys = |start: Bound<&[u8]>, end: Bound<&[u8]>| -> Vec<Key> {
        store
            .scan(start, end, 100)
            .expect("scan failed")
            .into_iter()
            .map(|(k, _)| k)
            .collect()
    };
    let ks = |list: &[&[u8]]| -> Vec<Key> { list.iter().map(|k| key(k)).collect() };
    assert_eq!(
        keys(Included(b"b"), Included(b"d")),
        ks(&[b"b", b"c", b"d"])
    );
    assert_eq!(keys(Excluded(b"b"), Excluded(b"d")), ks(&[b"c"]));
    assert_eq!(keys(Included(b"bb"), Unbounded), ks(&[b"c", b"d", b"e"]));
    assert_eq!(keys(Unbounded, Excluded(b"c")), ks(&[b"a", b"b"]));
    assert_eq!(keys(Excluded(b"e"), Unbounded), ks(&[]));
    assert_eq!(keys(Included(b"d"), Included(b"b")), ks(&[]));
    assert_eq!(keys(Excluded(b"c"), Excluded(b"c")), ks(&[]));
    assert_eq!(keys(Included(b"c"), Excluded(b"c")), ks(&[]));
    assert_eq!(keys(Included(b"c"), Included(b"c")), ks(&[b"c"]));
}

/// Metadata reads back, is replaced whole, and is separate from the records.
pub fn meta_roundtrips<S: Store>(make: &mut dyn FnMut() -> S) {
    let mut store = make();
    store
        .save_meta("view", b"epoch 1")
        .expect("save_meta failed");
    store
        .save_meta("acceptor", b"")
        .expect("save_meta of empty bytes failed");
    assert_eq!(
        store.load_meta("view").expect("load_meta failed"),
        Some(b"epoch 1".to_vec())
    );
    assert_eq!(
        store.load_meta("acceptor").expect("load_meta failed"),
        Some(Vec::new())
    );
    store
        .save_meta("view", b"e2")
        .expect("save_meta replace failed");
    assert_eq!(
        store.load_meta("view").expect("load_meta failed"),
        Some(b"e2".to_vec())
    );
    assert_eq!(store.load_meta("other").expect("load_meta failed"), None);
    assert_store_equals(&store, &BTreeMap::new());
    assert_eq!(store.get(b"view").expect("get failed"), None);
}

/// `sync` succeeds with nothing to do, and twice in a row.
pub fn sync_is_idempotent<S: Store>(make: &mut dyn FnMut() -> S) {
    let mut store = make();
    store.sync().expect("sync of an empty store failed");
    store
        .apply(&[(key(b"k"), rec(2, 1, Some(b"v")))])
        .expect("apply failed");
    store.sync().expect("sync failed");
    store.sync().expect("a second sync failed");
    assert_store_equals(
        &store,
        &BTreeMap::from([(key(b"k"), rec(2, 1, Some(b"v")))]),
    );
}

/// Many seeded random batches (overwrites, tombstones, duplicate keys, syncs in between) leave
/// the store equal to a model map.
pub fn random_batches_match_a_model<S: Store>(make: &mut dyn FnMut() -> S) {
    let mut store = make();
    let mut model = BTreeMap::new();
    let mut rng = SplitMix64(0x5eed);
    for step in 0..60u64 {
        let batch = random_batch(&mut rng, step, 40, 32);
        store.apply(&batch).expect("apply failed");
        model.extend(batch);
        if rng.below(4) == 0 {
            store.sync().expect("sync failed");
        }
        if step % 20 == 19 {
            assert_store_equals(&store, &model);
        }
    }
    assert_store_equals(&store, &model);
}

/// Runs every reopen case; each uses a fresh file under `dir`, and `open` opens (creating if
/// absent) the store at the path it is given.
pub fn run_reopen_suite<S: Store>(
    dir: &Path,
    mut open: impl FnMut(&Path) -> Result<S, StoreError>,
) {
    synced_records_survive_reopen(&dir.join("synced.store"), &mut open);
    meta_survives_reopen(&dir.join("meta.store"), &mut open);
    reopened_store_keeps_working(&dir.join("again.store"), &mut open);
}

/// Records, overwrites and tombstones synced before the store is dropped are all there after a
/// reopen.
pub fn synced_records_survive_reopen<S: Store>(
    path: &Path,
    open: &mut dyn FnMut(&Path) -> Result<S, StoreError>,
) {
    let mut model = BTreeMap::new();
    {
        let mut store = open(path).expect("open of a new store failed");
        let mut rng = SplitMix64(7);
        for step in 0..10 {
            let batch = random_batch(&mut rng, step, 20, 16);
            store.apply(&batch).expect("apply failed");
            model.extend(batch);
        }
        store.sync().expect("sync failed");
    }
    let store = open(path).expect("reopen failed");
    assert_store_equals(&store, &model);
}

/// Metadata is durable on return from `save_meta`, without a `sync`.
pub fn meta_survives_reopen<S: Store>(
    path: &Path,
    open: &mut dyn FnMut(&Path) -> Result<S, StoreError>,
) {
    {
        let mut store = open(path).expect("open of a new store failed");
        store
            .save_meta("view", b"epoch 7")
            .expect("save_meta failed");
        store
            .save_meta("acceptor", b"promised 8")
            .expect("save_meta failed");
    }
    let store = open(path).expect("reopen failed");
    assert_eq!(
        store.load_meta("view").expect("load_meta failed"),
        Some(b"epoch 7".to_vec())
    );
    assert_eq!(
        store.load_meta("acceptor").expect("load_meta failed"),
        Some(b"promised 8".to_vec())
    );
}

/// A reopened store takes new batches and survives further reopens.
pub fn reopened_store_keeps_working<S: Store>(
    path: &Path,
    open: &mut dyn FnMut(&Path) -> Result<S, StoreError>,
) {
    let mut model = BTreeMap::new();
    for round in 0..3u64 {
        let mut store = open(path).expect("open failed");
        assert_store_equals(&store, &model);
        let batch = vec![
            (key(b"k"), rec(2 * round + 2, 1, Some(&round.to_be_bytes()))),
            (key(&round.to_be_bytes()), rec(2, 2, None)),
        ];
        store.apply(&batch).expect("apply failed");
        store.sync().expect("sync failed");
        model.extend(batch);
    }
    let store = open(path).expect("reopen failed");
    assert_store_equals(&store, &model);
}

/// A small deterministic generator (SplitMix64), so that the suite needs no dependency and every
/// run is the same.
#[derive(Clone, Debug)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// A batch of 1 to `records_max` records over `keys` keys: values of 0 to 300 bytes, about one in
/// six a tombstone, duplicate keys likely. Timestamps grow with `step`.
pub fn random_batch(
    rng: &mut SplitMix64,
    step: u64,
    records_max: u64,
    keys: u64,
) -> Vec<(Key, Record)> {
    let len = 1 + rng.below(records_max);
    (0..len)
        .map(|i| {
            let k = format!("key-{:03}", rng.below(keys));
            let version = 2 * (step * records_max + i) + 2;
            let node = rng.below(5) as u32 + 1;
            let value = if rng.below(6) == 0 {
                None
            } else {
                let n = rng.below(301) as usize;
                let fill = (step as u8).wrapping_mul(31).wrapping_add(i as u8);
                Some(vec![fill; n])
            };
            (key(k.as_bytes()), rec(version, node, value.as_deref()))
        })
        .collect()
}
