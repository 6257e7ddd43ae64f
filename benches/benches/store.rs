//! Benchmarks of the store write path.
//!
//! - `store_apply`: `Store::apply` of batches of 1, 16 and 256 records of 256 bytes, with no sync
//!   (what `async` mode pays per group before its sync, and what `memory` mode would pay with a
//!   `MemStore`).
//! - `store_apply_sync`: `apply` then `sync` per batch (what `sync` mode pays per group).
//! - `store_sync`: the cost of one `sync` after a one-record `apply`.
//! - `async_writer`: one thread (as a node's driver) submits 20,000 one-record batches to an
//!   `AsyncWriter` (blocking while its queue is full), then flushes: the records per second the
//!   background writer sustains with group commit, over a `MemStore` and over a `RedbStore`.
//!
//! Throughput is reported in records per second. Set `HERMES_BENCH_DIR` to put the redb files on
//! another file system (default: the system temp directory).

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hermes_core::{Key, NodeId, Record, Ts};
use hermes_store::{AsyncWriter, MemStore, RedbStore, Store, WriterConfig, WriterEvent};
use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

const VALUE_BYTES: usize = 256;
const KEY_SPACE: u64 = 1 << 16;
const BATCH_SIZES: [usize; 3] = [1, 16, 256];

fn bench_dir() -> tempfile::TempDir {
    let base = std::env::var_os("HERMES_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    tempfile::tempdir_in(base).expect("cannot create the bench directory")
}

/// Batches of `size` records over a key space of `KEY_SPACE` keys, enough to cycle through.
fn batches(size: usize) -> Vec<Vec<(Key, Record)>> {
    let value = Bytes::from(vec![0x5a; VALUE_BYTES]);
    let count = (4096 / size).max(16);
    (0..count)
        .map(|b| {
            (0..size)
                .map(|i| {
                    let n = (b * size + i) as u64;
                    let key = Bytes::from(format!("key-{:08}", (n * 7919) % KEY_SPACE));
                    let ts = Ts::new(2 * n + 2, NodeId(1));
                    (
                        key,
                        Record {
                            ts,
                            value: Some(value.clone()),
                        },
                    )
                })
                .collect()
        })
        .collect()
}

fn redb(dir: &tempfile::TempDir, name: &str) -> RedbStore {
    RedbStore::open(dir.path().join(name)).expect("cannot open the bench store")
}

fn bench_apply(c: &mut Criterion, sync_each: bool) {
    let name = if sync_each {
        "store_apply_sync"
    } else {
        "store_apply"
    };
    let dir = bench_dir();
    let mut group = c.benchmark_group(name);
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    for size in BATCH_SIZES {
        let batches = batches(size);
        group.throughput(Throughput::Elements(size as u64));
        let stores: [(&str, Box<dyn Store>); 2] = [
            ("mem", Box::new(MemStore::new())),
            ("redb", Box::new(redb(&dir, &format!("{name}-{size}.redb")))),
        ];
        for (store_name, mut store) in stores {
            let mut next = 0;
            group.bench_with_input(BenchmarkId::new(store_name, size), &size, |b, _| {
                b.iter(|| {
                    let batch = &batches[next % batches.len()];
                    next += 1;
                    store.apply(black_box(batch)).expect("apply failed");
                    if sync_each {
                        store.sync().expect("sync failed");
                    }
                })
            });
            store.sync().expect("sync failed");
        }
    }
    group.finish();
}

fn store_apply(c: &mut Criterion) {
    bench_apply(c, false);
}

fn store_apply_sync(c: &mut Criterion) {
    bench_apply(c, true);
}

fn store_sync(c: &mut Criterion) {
    let dir = bench_dir();
    let mut group = c.benchmark_group("store_sync");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20);
    let mut store = redb(&dir, "sync.redb");
    let batches = batches(1);
    let mut next = 0;
    group.bench_function("redb", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                store
                    .apply(&batches[next % batches.len()])
                    .expect("apply failed");
                next += 1;
                let start = Instant::now();
                store.sync().expect("sync failed");
                total += start.elapsed();
            }
            total
        })
    });
    group.finish();
}

/// One thread (as a node's driver) submits `records` one-record batches, blocking while the
/// queue is full; returns the time until all of them are durable.
fn run_driver<S: Store + 'static>(writer: &AsyncWriter<S>, records: &[(Key, Record)]) -> Duration {
    let start = Instant::now();
    for record in records {
        writer
            .submit(vec![record.clone()], ())
            .expect("submit failed");
    }
    writer.flush().expect("flush failed");
    start.elapsed()
}

fn async_writer(c: &mut Criterion) {
    const RECORDS: usize = 20_000;
    let dir = bench_dir();
    let records: Vec<(Key, Record)> = batches(1)
        .into_iter()
        .flatten()
        .cycle()
        .take(RECORDS)
        .collect();
    let mut group = c.benchmark_group("async_writer");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10)
        .throughput(Throughput::Elements(RECORDS as u64));
    let ignore = |_: WriterEvent<()>| {};
    let mem = AsyncWriter::spawn(MemStore::new(), WriterConfig::default(), ignore)
        .expect("cannot start the writer");
    group.bench_function("mem", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| run_driver(&mem, &records)).sum())
    });
    let redb = AsyncWriter::spawn(redb(&dir, "writer.redb"), WriterConfig::default(), ignore)
        .expect("cannot start the writer");
    group.bench_function("redb", |b| {
        b.iter_custom(|iters| (0..iters).map(|_| run_driver(&redb, &records)).sum())
    });
    group.finish();
}

criterion_group!(
    benches,
    store_apply,
    store_apply_sync,
    store_sync,
    async_writer
);
criterion_main!(benches);
