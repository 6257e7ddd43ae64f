//! The conformance suite against every store of this crate.

use hermes_store::redb::backends::InMemoryBackend;
use hermes_store::{testing, MemStore, RedbOptions, RedbStore};

fn small_cache() -> RedbOptions {
    RedbOptions {
        cache_size_bytes: 4 << 20,
        ..RedbOptions::default()
    }
}

#[test]
fn mem_store_passes_the_suite() {
    testing::run_suite(MemStore::new);
}

#[test]
fn boxed_dyn_store_passes_the_suite() {
    testing::run_suite(|| -> Box<dyn hermes_store::Store> { Box::new(MemStore::new()) });
}

#[test]
fn redb_store_passes_the_suite() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    testing::run_suite(|| {
        n += 1;
        RedbStore::open_with(dir.path().join(format!("s{n}.redb")), small_cache()).unwrap()
    });
}

#[test]
fn redb_store_on_a_memory_backend_passes_the_suite() {
    testing::run_suite(|| {
        RedbStore::open_backend(InMemoryBackend::new(), "<memory>", small_cache()).unwrap()
    });
}

#[test]
fn redb_store_passes_the_reopen_suite() {
    let dir = tempfile::tempdir().unwrap();
    testing::run_reopen_suite(dir.path(), |path| RedbStore::open_with(path, small_cache()));
}

#[test]
fn redb_store_with_quick_repair_passes_the_reopen_suite() {
    let dir = tempfile::tempdir().unwrap();
    let options = RedbOptions {
        quick_repair: true,
        ..small_cache()
    };
    testing::run_reopen_suite(dir.path(), |path| {
        RedbStore::open_with(path, options.clone())
    });
}
