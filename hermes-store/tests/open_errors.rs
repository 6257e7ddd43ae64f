//! Opening something that is not a hermes store fails with a one-line error naming the path.

use hermes_store::redb::{Database, TableDefinition};
use hermes_store::{RedbStore, Store, StoreError};
use std::path::Path;

/// Opens `path`, expects `Corrupt`, and checks the message is one line naming the path.
fn expect_corrupt(path: &Path) -> String {
    let err = RedbStore::open(path).expect_err("opening a foreign file must fail");
    assert!(
        matches!(err, StoreError::Corrupt { .. }),
        "expected Corrupt, got {err:?}"
    );
    let text = err.to_string();
    assert!(!text.contains('\n'), "message is not one line: {text:?}");
    assert!(
        text.contains(&path.display().to_string()),
        "message does not name the path: {text}"
    );
    text
}

#[test]
fn random_bytes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("random.redb");
    let mut state = 0x1234_5678_9abc_def0u64;
    let bytes: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    std::fs::write(&path, &bytes).unwrap();
    expect_corrupt(&path);
    // The file was not touched.
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn a_text_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.toml");
    std::fs::write(&path, "[node]\nid = 1\ndata = \"/var/lib/hermes\"\n").unwrap();
    expect_corrupt(&path);
}

#[test]
fn a_sqlite_header_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    let mut bytes = b"SQLite format 3\0".to_vec();
    bytes.resize(8192, 0);
    std::fs::write(&path, &bytes).unwrap();
    expect_corrupt(&path);
}

#[test]
fn a_redb_database_of_another_program_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("foreign.redb");
    {
        let db = Database::create(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let table: TableDefinition<u64, u64> = TableDefinition::new("counters");
            let mut t = txn.open_table(table).unwrap();
            t.insert(1, 2).unwrap();
        }
        txn.commit().unwrap();
    }
    let text = expect_corrupt(&path);
    assert!(text.contains("another program"), "{text}");
}

#[test]
fn a_newer_store_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.redb");
    drop(RedbStore::open(&path).unwrap());
    {
        let db = Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let info: TableDefinition<&str, u64> = TableDefinition::new("hermes_info");
            txn.open_table(info).unwrap().insert("format", 99).unwrap();
        }
        txn.commit().unwrap();
    }
    let text = expect_corrupt(&path);
    assert!(text.contains("format version 99"), "{text}");
}

#[test]
fn a_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    expect_corrupt(dir.path());
}

#[test]
fn a_missing_directory_is_an_io_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-dir").join("n1.redb");
    let err = RedbStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()) && !text.contains('\n'));
}

#[test]
fn an_empty_file_becomes_a_new_store() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("empty.redb");
    std::fs::write(&path, b"").unwrap();
    let store = RedbStore::open(&path).unwrap();
    assert!(store.load_all().unwrap().is_empty());
}

#[test]
fn a_store_open_twice_is_refused_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.redb");
    let _first = RedbStore::open(&path).unwrap();
    let err = RedbStore::open(&path).unwrap_err();
    let text = err.to_string();
    assert!(text.contains(&path.display().to_string()) && !text.contains('\n'));
}

#[test]
fn a_new_store_is_created_aside_and_renamed_into_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("n1.redb");
    let leftover = dir.path().join("n1.redb.creating");
    // What a crash while creating the store would leave behind.
    std::fs::write(&leftover, b"half-made").unwrap();
    let mut store = RedbStore::open(&path).unwrap();
    assert!(
        !leftover.exists(),
        "the leftover is replaced, then renamed away"
    );
    store
        .apply(&[("k".into(), hermes_store::testing::rec(2, 1, Some(b"v")))])
        .unwrap();
    store.close().unwrap();
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["n1.redb".to_string()]);
    assert_eq!(RedbStore::open(&path).unwrap().load_all().unwrap().len(), 1);
}
