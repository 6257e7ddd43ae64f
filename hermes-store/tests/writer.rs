//! The background group-commit writer.

use hermes_core::{Key, Record};
use hermes_store::testing::{key, rec};
use hermes_store::{
    AsyncWriter, MemStore, RedbStore, Store, StoreError, WriterConfig, WriterEvent,
};
use std::ops::Bound;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the probe store saw.
#[derive(Default)]
struct Seen {
    store: MemStore,
    applies: Vec<usize>,
    syncs: usize,
}

/// A store that records its calls into shared state, can hold its first `apply` until released,
/// and can fail (or panic) on a chosen `apply`.
struct Probe {
    seen: Arc<Mutex<Seen>>,
    gate: Option<mpsc::Receiver<()>>,
    entered: Option<mpsc::Sender<()>>,
    fail_on_apply: Option<usize>,
    panic_on_apply: Option<usize>,
}

impl Probe {
    fn new(seen: &Arc<Mutex<Seen>>) -> Self {
        Probe {
            seen: Arc::clone(seen),
            gate: None,
            entered: None,
            fail_on_apply: None,
            panic_on_apply: None,
        }
    }

    /// Holds the first apply until the returned sender sends; the receiver learns it was entered.
    fn gated(mut self) -> (Self, mpsc::Sender<()>, mpsc::Receiver<()>) {
        let (open_tx, open_rx) = mpsc::channel();
        let (entered_tx, entered_rx) = mpsc::channel();
        self.gate = Some(open_rx);
        self.entered = Some(entered_tx);
        (self, open_tx, entered_rx)
    }
}

impl Store for Probe {
    fn load_each(&self, visit: &mut dyn FnMut(Key, Record)) -> Result<(), StoreError> {
        self.seen.lock().unwrap().store.load_each(visit)
    }
    fn get(&self, key: &[u8]) -> Result<Option<Record>, StoreError> {
        self.seen.lock().unwrap().store.get(key)
    }
    fn apply(&mut self, batch: &[(Key, Record)]) -> Result<(), StoreError> {
        if let Some(entered) = self.entered.take() {
            entered.send(()).unwrap();
        }
        if let Some(gate) = self.gate.take() {
            gate.recv().unwrap();
        }
        let mut seen = self.seen.lock().unwrap();
        let n = seen.applies.len() + 1;
        if self.fail_on_apply == Some(n) {
            return Err(StoreError::Backend {
                path: "probe".into(),
                detail: "disk on fire".into(),
            });
        }
        if self.panic_on_apply == Some(n) {
            drop(seen);
            panic!("probe panics");
        }
        seen.applies.push(batch.len());
        seen.store.apply(batch)
    }
    fn sync(&mut self) -> Result<(), StoreError> {
        self.seen.lock().unwrap().syncs += 1;
        Ok(())
    }
    fn scan(
        &self,
        start: Bound<&[u8]>,
        end: Bound<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Key, Record)>, StoreError> {
        self.seen.lock().unwrap().store.scan(start, end, limit)
    }
    fn save_meta(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.seen.lock().unwrap().store.save_meta(name, bytes)
    }
    fn load_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.seen.lock().unwrap().store.load_meta(name)
    }
}

fn one(i: u64) -> Vec<(Key, Record)> {
    vec![(
        key(format!("k{i:05}").as_bytes()),
        rec(2 * i + 2, 1, Some(&i.to_be_bytes())),
    )]
}

fn collect_events<T: Send + 'static>() -> (
    impl FnMut(WriterEvent<T>) + Send + 'static,
    mpsc::Receiver<WriterEvent<T>>,
) {
    let (tx, rx) = mpsc::channel();
    (move |event| drop(tx.send(event)), rx)
}

#[test]
fn a_group_interval_loses_nothing_and_keeps_the_order() {
    let (on_event, events) = collect_events::<u64>();
    let config = WriterConfig {
        group_interval_ms: 5,
        ..WriterConfig::default()
    };
    let writer = AsyncWriter::spawn(MemStore::new(), config, on_event).unwrap();
    for n in 0..200u64 {
        writer.submit(one(n), n).unwrap();
        if n % 50 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    writer.flush().unwrap();
    let mut durable = Vec::new();
    while let Ok(event) = events.try_recv() {
        match event {
            WriterEvent::Durable(tokens) => durable.extend(tokens),
            WriterEvent::Failed(err) => panic!("{err}"),
        }
    }
    assert_eq!(durable, (0..200).collect::<Vec<u64>>());
    let store = writer.shutdown().unwrap();
    assert_eq!(store.load_all().unwrap().len(), 200);
}

#[test]
fn every_batch_is_written_and_reported_durable_in_order() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (on_event, events) = collect_events::<u64>();
    let writer = AsyncWriter::spawn(Probe::new(&seen), WriterConfig::default(), on_event).unwrap();
    let writer = Arc::new(writer);
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let writer = Arc::clone(&writer);
            std::thread::spawn(move || {
                for i in 0..250 {
                    let n = t * 1000 + i;
                    writer.submit(one(n), n).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    writer.flush().unwrap();
    let mut durable = Vec::new();
    while let Ok(event) = events.try_recv() {
        match event {
            WriterEvent::Durable(tokens) => durable.extend(tokens),
            WriterEvent::Failed(err) => panic!("{err}"),
        }
    }
    assert_eq!(durable.len(), 1000);
    for t in 0..4 {
        let mine: Vec<u64> = durable.iter().copied().filter(|n| n / 1000 == t).collect();
        let want: Vec<u64> = (0..250).map(|i| t * 1000 + i).collect();
        assert_eq!(mine, want, "thread {t}'s batches out of order");
    }
    let writer = Arc::try_unwrap(writer).unwrap();
    let store = writer.shutdown().unwrap();
    assert_eq!(store.load_all().unwrap().len(), 1000);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.applies.iter().sum::<usize>(), 1000);
    assert_eq!(seen.syncs, seen.applies.len(), "one sync per group");
}

#[test]
fn queued_batches_are_coalesced_into_one_apply_and_sync() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (probe, open, entered) = Probe::new(&seen).gated();
    let (on_event, events) = collect_events::<u64>();
    let writer = AsyncWriter::spawn(probe, WriterConfig::default(), on_event).unwrap();
    writer.submit(one(0), 0).unwrap();
    entered.recv().unwrap();
    // The writer is inside its first apply: everything below queues up.
    for i in 1..=100 {
        writer.try_submit(one(i), i).unwrap();
    }
    open.send(()).unwrap();
    writer.flush().unwrap();
    {
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.applies,
            vec![1, 100],
            "the queued batches form one group"
        );
        assert_eq!(seen.syncs, 2);
    }
    let events: Vec<_> = events.try_iter().collect();
    assert!(matches!(&events[0], WriterEvent::Durable(t) if t == &vec![0]));
    assert!(matches!(&events[1], WriterEvent::Durable(t) if *t == (1..=100).collect::<Vec<_>>()));
    writer.shutdown().unwrap();
}

#[test]
fn group_size_is_bounded() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (probe, open, entered) = Probe::new(&seen).gated();
    let config = WriterConfig {
        queue_batches_max: 64,
        group_records_max: 10,
        group_interval_ms: 0,
    };
    let writer = AsyncWriter::spawn(probe, config, |_: WriterEvent<()>| {}).unwrap();
    writer.submit(one(0), ()).unwrap();
    entered.recv().unwrap();
    for i in 1..=25 {
        writer.try_submit(one(i), ()).unwrap();
    }
    open.send(()).unwrap();
    writer.flush().unwrap();
    assert_eq!(seen.lock().unwrap().applies, vec![1, 10, 10, 5]);
    writer.shutdown().unwrap();
}

#[test]
fn a_full_queue_gives_overloaded_then_recovers() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (probe, open, entered) = Probe::new(&seen).gated();
    let config = WriterConfig {
        queue_batches_max: 2,
        ..WriterConfig::default()
    };
    let writer = AsyncWriter::spawn(probe, config, |_: WriterEvent<()>| {}).unwrap();
    writer.submit(one(0), ()).unwrap();
    entered.recv().unwrap();
    writer.try_submit(one(1), ()).unwrap();
    writer.try_submit(one(2), ()).unwrap();
    let err = writer.try_submit(one(3), ()).unwrap_err();
    assert!(err.is_overloaded(), "{err:?}");
    assert_eq!(
        err.to_string(),
        "store writer overloaded: its queue of 2 batches is full"
    );
    assert!(writer.failure().is_none(), "overload is not a failure");
    open.send(()).unwrap();
    writer.submit(one(3), ()).unwrap();
    writer.flush().unwrap();
    let store = writer.shutdown().unwrap();
    assert_eq!(store.load_all().unwrap().len(), 4);
}

#[test]
fn the_first_store_error_stops_the_writer_and_is_reported_everywhere() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut probe = Probe::new(&seen);
    probe.fail_on_apply = Some(2);
    let (on_event, events) = collect_events::<u64>();
    let writer = AsyncWriter::spawn(probe, WriterConfig::default(), on_event).unwrap();
    writer.submit(one(1), 1).unwrap();
    writer.flush().unwrap();
    writer.submit(one(2), 2).unwrap();
    let err = writer.flush().unwrap_err();
    assert!(err.to_string().contains("disk on fire"), "{err}");
    let events: Vec<_> = events.try_iter().collect();
    assert!(matches!(&events[0], WriterEvent::Durable(t) if t == &vec![1]));
    assert!(matches!(&events[1], WriterEvent::Failed(e) if e.to_string().contains("disk on fire")));
    assert_eq!(
        events.len(),
        2,
        "the failed batch is never reported durable"
    );
    for result in [
        writer.submit(one(3), 3),
        writer.try_submit(one(4), 4),
        writer.flush(),
    ] {
        let err = result.unwrap_err();
        assert!(err.to_string().contains("disk on fire"), "{err}");
    }
    assert!(writer.failure().is_some());
    let Err(err) = writer.shutdown() else {
        panic!("shutdown after a failure must fail")
    };
    assert!(err.to_string().contains("disk on fire"), "{err}");
    assert_eq!(
        seen.lock().unwrap().store.len(),
        1,
        "nothing after the failure"
    );
}

#[test]
fn a_blocked_submitter_wakes_when_the_writer_fails() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (mut probe, open, entered) = Probe::new(&seen).gated();
    probe.fail_on_apply = Some(1);
    let config = WriterConfig {
        queue_batches_max: 1,
        ..WriterConfig::default()
    };
    let writer = Arc::new(AsyncWriter::spawn(probe, config, |_: WriterEvent<()>| {}).unwrap());
    writer.submit(one(0), ()).unwrap();
    entered.recv().unwrap();
    writer.submit(one(1), ()).unwrap();
    let blocked = {
        let writer = Arc::clone(&writer);
        std::thread::spawn(move || writer.submit(one(2), ()))
    };
    std::thread::sleep(Duration::from_millis(20));
    open.send(()).unwrap();
    let result = blocked.join().unwrap();
    // The blocked batch either got in before the failure (and is dropped) or sees the error; in
    // both cases the writer reports the failure.
    if let Err(err) = result {
        assert!(err.to_string().contains("disk on fire"), "{err}");
    }
    let err = writer.flush().unwrap_err();
    assert!(err.to_string().contains("disk on fire"), "{err}");
}

#[test]
fn a_panicking_store_is_reported_as_a_failure() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut probe = Probe::new(&seen);
    probe.panic_on_apply = Some(1);
    let writer =
        AsyncWriter::spawn(probe, WriterConfig::default(), |_: WriterEvent<()>| {}).unwrap();
    writer.submit(one(1), ()).unwrap();
    let err = writer.flush().unwrap_err();
    assert!(matches!(err, StoreError::Thread { .. }), "{err:?}");
    assert!(err.to_string().contains("probe panics"), "{err}");
    assert!(writer.shutdown().is_err());
}

#[test]
fn drop_writes_everything_queued() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    {
        let writer = AsyncWriter::spawn(
            Probe::new(&seen),
            WriterConfig::default(),
            |_: WriterEvent<()>| {},
        )
        .unwrap();
        for i in 0..50 {
            writer.submit(one(i), ()).unwrap();
        }
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.store.len(), 50);
    assert!(seen.syncs >= 1);
}

#[test]
fn writes_through_to_a_redb_store_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n1.redb");
    let store = RedbStore::open(&path).unwrap();
    let writer =
        AsyncWriter::spawn(store, WriterConfig::default(), |_: WriterEvent<()>| {}).unwrap();
    for i in 0..200 {
        writer.try_submit(one(i), ()).unwrap();
    }
    let store = writer.shutdown().unwrap();
    store.close().unwrap();
    let store = RedbStore::open(&path).unwrap();
    assert_eq!(store.load_all().unwrap().len(), 200);
}
