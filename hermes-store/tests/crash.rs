//! Crash consistency of [`RedbStore`]: a storage backend that can "crash" at any write, resize or
//! sync shows that after reopening, the store holds exactly the state after a prefix of its
//! commits (at least every commit covered by a completed `sync` or `save_meta`), never a torn
//! record.
//!
//! The backend keeps a `live` image (every write lands there) and a `durable` image (what a
//! completed `sync_data` has made durable). At the chosen operation the device dies: that
//! operation and every later one fail, so the store reports an error and the workload stops, as
//! a node would (fail-stop). The disk left behind is then either
//!
//! - the durable image alone (every write since the last sync lost), or
//! - the durable image plus every write and resize issued since the last sync (all reached the
//!   disk, the sync did not complete), or
//! - the durable image plus a seeded random subset of them, applied in order (some reached the
//!   disk, some did not), three different subsets per crash point.
//!
//! Every operation of a seeded workload is tried as the crash point, for both images.

use hermes_core::{Key, Record};
use hermes_store::redb::StorageBackend;
use hermes_store::testing::{random_batch, SplitMix64};
use hermes_store::{RedbOptions, RedbStore, Store, StoreError};
use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex};

#[derive(Clone, Debug)]
enum Pending {
    Write(u64, Vec<u8>),
    SetLen(u64),
}

#[derive(Debug, Default)]
struct Disk {
    live: Vec<u8>,
    durable: Vec<u8>,
    /// Writes and resizes since the last completed sync, in order.
    pending: Vec<Pending>,
    /// Writes, resizes and syncs so far.
    ops: u64,
    /// The operation (counted from 1) at which the device dies.
    crash_at: Option<u64>,
    crashed: bool,
}

impl Disk {
    /// Counts one mutating operation and says whether the device is dead.
    fn dead_at_next_op(&mut self) -> bool {
        self.ops += 1;
        if self.crash_at.is_some_and(|at| self.ops >= at) {
            self.crashed = true;
        }
        self.crashed
    }
}

fn set_len(image: &mut Vec<u8>, len: u64) {
    image.resize(usize::try_from(len).unwrap(), 0);
}

fn write_at(image: &mut Vec<u8>, offset: u64, data: &[u8]) {
    let offset = usize::try_from(offset).unwrap();
    if image.len() < offset + data.len() {
        image.resize(offset + data.len(), 0);
    }
    image[offset..offset + data.len()].copy_from_slice(data);
}

fn crashed() -> io::Error {
    io::Error::other("simulated crash: the device is gone")
}

#[derive(Clone, Debug, Default)]
struct CrashBackend(Arc<Mutex<Disk>>);

impl CrashBackend {
    /// A disk holding `image` (all of it durable) that dies at operation `op`.
    fn dying_at(image: &[u8], op: Option<u64>) -> Self {
        let backend = CrashBackend::from_image(image.to_vec());
        backend.0.lock().unwrap().crash_at = op;
        backend
    }

    fn from_image(image: Vec<u8>) -> Self {
        let backend = CrashBackend::default();
        {
            let mut disk = backend.0.lock().unwrap();
            disk.live = image.clone();
            disk.durable = image;
        }
        backend
    }

    fn ops(&self) -> u64 {
        self.0.lock().unwrap().ops
    }

    /// What the disk holds after the crash: the durable image, plus the pending operations that
    /// `keep` selects.
    fn image_after_crash(&self, mut keep: impl FnMut() -> bool) -> Vec<u8> {
        let disk = self.0.lock().unwrap();
        let mut image = disk.durable.clone();
        for op in &disk.pending {
            if keep() {
                match op {
                    Pending::Write(offset, data) => write_at(&mut image, *offset, data),
                    Pending::SetLen(len) => set_len(&mut image, *len),
                }
            }
        }
        image
    }
}

impl StorageBackend for CrashBackend {
    fn len(&self) -> Result<u64, io::Error> {
        let disk = self.0.lock().unwrap();
        if disk.crashed {
            return Err(crashed());
        }
        Ok(disk.live.len() as u64)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        let disk = self.0.lock().unwrap();
        if disk.crashed {
            return Err(crashed());
        }
        let offset = usize::try_from(offset).unwrap();
        let Some(data) = disk.live.get(offset..offset + out.len()) else {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof));
        };
        out.copy_from_slice(data);
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let mut disk = self.0.lock().unwrap();
        if disk.dead_at_next_op() {
            return Err(crashed());
        }
        set_len(&mut disk.live, len);
        disk.pending.push(Pending::SetLen(len));
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        let mut disk = self.0.lock().unwrap();
        if disk.dead_at_next_op() {
            return Err(crashed());
        }
        disk.durable = disk.live.clone();
        disk.pending.clear();
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let mut disk = self.0.lock().unwrap();
        if disk.dead_at_next_op() {
            return Err(crashed());
        }
        write_at(&mut disk.live, offset, data);
        disk.pending.push(Pending::Write(offset, data.to_vec()));
        Ok(())
    }
}

fn options() -> RedbOptions {
    RedbOptions {
        cache_size_bytes: 1 << 20,
        ..RedbOptions::default()
    }
}

/// The whole observable state: records and the metadata entry.
type State = (BTreeMap<Key, Record>, Option<Vec<u8>>);

/// One step of the workload.
enum Step {
    Apply(Vec<(Key, Record)>),
    Sync,
    SaveMeta(Vec<u8>),
}

/// A seeded workload, and the state after each of its commits (`states[0]` is the empty store;
/// an `Apply` or `SaveMeta` is one commit, a `Sync` changes no state).
struct Workload {
    steps: Vec<Step>,
    states: Vec<State>,
}

impl Workload {
    fn new(seed: u64, batches: u64, sync_one_in: u64) -> Self {
        let mut rng = SplitMix64(seed);
        let mut steps = Vec::new();
        let mut state: State = (BTreeMap::new(), None);
        let mut states = vec![state.clone()];
        for step in 0..batches {
            let mut batch = random_batch(&mut rng, step, 24, 40);
            if rng.below(8) == 0 {
                // A large value makes the file grow.
                let big = vec![step as u8; 12 * 1024];
                batch.push((
                    format!("big-{}", rng.below(3)).into(),
                    hermes_store::testing::rec(2 * step + 1_000_000, 1, Some(&big)),
                ));
            }
            state.0.extend(batch.iter().cloned());
            states.push(state.clone());
            steps.push(Step::Apply(batch));
            match rng.below(sync_one_in) {
                0 => steps.push(Step::Sync),
                1 => {
                    let meta = format!("meta after batch {step}").into_bytes();
                    state.1 = Some(meta.clone());
                    states.push(state.clone());
                    steps.push(Step::SaveMeta(meta));
                }
                _ => {}
            }
        }
        Workload { steps, states }
    }
}

/// How far a run got before the device died.
#[derive(Debug)]
struct Outcome {
    /// Commits that returned `Ok`.
    committed: usize,
    /// Commits covered by a durable commit (a `sync` or `save_meta`) that returned `Ok`.
    durable: usize,
    /// Whether an error stopped the run.
    failed: Option<StoreError>,
    /// Backend operations when the workload ended, before the store was closed.
    ops_before_close: u64,
}

fn run(workload: &Workload, backend: CrashBackend) -> Outcome {
    let mut outcome = Outcome {
        committed: 0,
        durable: 0,
        failed: None,
        ops_before_close: 0,
    };
    let mut store = match RedbStore::open_backend(backend.clone(), "crash-disk", options()) {
        Ok(store) => store,
        Err(err) => {
            outcome.failed = Some(err);
            return outcome;
        }
    };
    for step in &workload.steps {
        let result = match step {
            Step::Apply(batch) => store.apply(batch).map(|()| outcome.committed += 1),
            Step::Sync => store.sync().map(|()| outcome.durable = outcome.committed),
            Step::SaveMeta(bytes) => store.save_meta("m", bytes).map(|()| {
                outcome.committed += 1;
                outcome.durable = outcome.committed;
            }),
        };
        if let Err(err) = result {
            outcome.failed = Some(err);
            return outcome;
        }
    }
    outcome.ops_before_close = backend.ops();
    // Dropping the store closes it, which writes too; a crash there is only reported by
    // `close`, so close explicitly.
    if let Err(err) = store.close() {
        outcome.failed = Some(err);
    }
    outcome
}

/// Reopens `image` and checks it holds the state after a commit in `durable..=committed + 1`
/// (the commit in flight at the crash may or may not have landed).
fn check_recovered(workload: &Workload, outcome: &Outcome, image: Vec<u8>, what: &str) -> usize {
    let store = RedbStore::open_backend(CrashBackend::from_image(image), "recovered", options())
        .unwrap_or_else(|err| panic!("{what}: reopening after the crash failed: {err}"));
    let records: BTreeMap<Key, Record> = store
        .load_all()
        .unwrap_or_else(|err| panic!("{what}: load after the crash failed: {err}"))
        .into_iter()
        .collect();
    let meta = store.load_meta("m").unwrap();
    let recovered = (records, meta);
    let last = (outcome.committed + 1).min(workload.states.len() - 1);
    let found = (outcome.durable..=last).find(|&c| workload.states[c] == recovered);
    match found {
        Some(c) => c,
        None => {
            let anywhere = workload.states.iter().position(|s| *s == recovered);
            panic!(
                "{what}: the recovered store is not the state after any commit in {}..={last} \
                 (matches commit {anywhere:?}; outcome {outcome:?})",
                outcome.durable
            )
        }
    }
}

/// The disk image of a new, empty store (closed cleanly).
///
/// Creating a store is not part of the crash points: on a file path, [`RedbStore::open`] creates
/// a new store atomically (built aside, then renamed into place), which a storage backend cannot
/// express.
fn new_store_image() -> Vec<u8> {
    let backend = CrashBackend::default();
    let store = RedbStore::open_backend(backend.clone(), "new", options()).unwrap();
    store.close().unwrap();
    backend.image_after_crash(|| false)
}

fn crash_at_every_operation(seed: u64, batches: u64, sync_one_in: u64) {
    let workload = Workload::new(seed, batches, sync_one_in);
    let start = new_store_image();
    // A run without a crash, to count the operations (opening the store included).
    let probe = CrashBackend::dying_at(&start, None);
    let clean = run(&workload, probe.clone());
    assert!(clean.failed.is_none(), "{:?}", clean.failed);
    let total_ops = probe.ops();
    assert!(total_ops > clean.ops_before_close, "closing writes nothing");
    assert!(total_ops > 20, "the workload is too small: {total_ops} ops");

    let mut coin = SplitMix64(seed ^ 0xc0ff_ee00);
    let mut recovered_commits = Vec::new();
    let mut newest = 0;
    for crash_at in 1..=total_ops {
        let backend = CrashBackend::dying_at(&start, Some(crash_at));
        let outcome = run(&workload, backend.clone());
        assert!(
            outcome.failed.is_some(),
            "crash at op {crash_at}: the store did not report the dead device"
        );
        let durable_only = backend.image_after_crash(|| false);
        let c = check_recovered(
            &workload,
            &outcome,
            durable_only,
            &format!("seed {seed}, crash at op {crash_at}, unsynced writes lost"),
        );
        recovered_commits.push(c);
        let everything = backend.image_after_crash(|| true);
        let c_all = check_recovered(
            &workload,
            &outcome,
            everything,
            &format!("seed {seed}, crash at op {crash_at}, every unsynced write kept"),
        );
        newest = newest.max(c_all);
        for round in 0..3 {
            let torn = backend.image_after_crash(|| coin.below(2) == 0);
            check_recovered(
                &workload,
                &outcome,
                torn,
                &format!(
                    "seed {seed}, crash at op {crash_at}, some unsynced writes kept (round {round})"
                ),
            );
        }
    }
    // The crash points cover the whole workload: from nothing to everything durable.
    assert_eq!(recovered_commits.first(), Some(&0));
    assert!(recovered_commits.windows(2).all(|w| w[0] <= w[1]));
    assert!(*recovered_commits.last().unwrap() >= clean.durable);
    assert_eq!(newest, workload.states.len() - 1);
}

#[test]
fn crash_at_any_operation_leaves_a_prefix_with_frequent_syncs() {
    crash_at_every_operation(1, 24, 3);
}

#[test]
fn crash_at_any_operation_leaves_a_prefix_with_rare_syncs() {
    crash_at_every_operation(2, 30, 8);
}

#[test]
fn a_store_recovered_after_a_crash_keeps_working() {
    let workload = Workload::new(3, 20, 3);
    let start = new_store_image();
    let probe = CrashBackend::dying_at(&start, None);
    run(&workload, probe.clone());
    let crash_at = probe.ops() / 2;
    let backend = CrashBackend::dying_at(&start, Some(crash_at));
    let outcome = run(&workload, backend.clone());
    let image = backend.image_after_crash(|| false);
    let c = check_recovered(&workload, &outcome, image.clone(), "half-way crash");

    let disk = CrashBackend::from_image(image);
    let mut store = RedbStore::open_backend(disk.clone(), "recovered", options()).unwrap();
    let mut expected = workload.states[c].0.clone();
    let batch = random_batch(&mut SplitMix64(99), 1_000, 30, 40);
    store.apply(&batch).unwrap();
    store.sync().unwrap();
    expected.extend(batch);
    drop(store);
    let store = RedbStore::open_backend(disk, "recovered again", options()).unwrap();
    hermes_store::testing::assert_store_equals(&store, &expected);
}

#[test]
fn after_a_failed_write_every_later_write_fails_with_the_same_error() {
    let start = new_store_image();
    let probe = CrashBackend::dying_at(&start, None);
    let opened = RedbStore::open_backend(probe.clone(), "probe", options()).unwrap();
    let ops_to_open = probe.ops();
    drop(opened);
    // Dies at the first operation after opening: the first durable commit.
    let backend = CrashBackend::dying_at(&start, Some(ops_to_open + 1));
    let mut store = RedbStore::open_backend(backend.clone(), "dying", options()).unwrap();
    let batch = random_batch(&mut SplitMix64(5), 0, 10, 10);
    // A non-durable commit does no I/O, so the failure shows at the sync.
    let _ = store.apply(&batch);
    let first = store.sync().expect_err("the device is dead");
    assert!(first.to_string().contains("simulated crash"), "{first}");
    for later in [
        store.apply(&batch),
        store.sync(),
        store.save_meta("m", b"x"),
    ] {
        assert_eq!(later.unwrap_err().to_string(), first.to_string());
    }
}
