//! [`RedbStore`]: a persistent store on [redb](https://docs.rs/redb), a pure-Rust, crash-safe,
//! copy-on-write B-tree database in one file.

use crate::codec;
use crate::store::range_is_empty;
use crate::{Store, StoreError};
use bytes::Bytes;
use hermes_core::{Key, Record};
use redb::{
    Database, Durability as RedbDurability, MultimapTableHandle, ReadableDatabase, ReadableTable,
    StorageBackend, TableDefinition, TableHandle,
};
use std::ops::Bound;
use std::path::{Path, PathBuf};

/// Records: key bytes to an encoded record (see the `codec` module for the layout).
const RECORDS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("hermes_records");
/// Metadata entries of [`Store::save_meta`]: name to bytes.
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("hermes_meta");
/// What this file is: `format` names the store format version.
const INFO: TableDefinition<&str, u64> = TableDefinition::new("hermes_info");
/// The key of the store format version in [`INFO`].
const FORMAT_KEY: &str = "format";
/// The store format this build writes and reads.
const STORE_FORMAT: u64 = 1;

/// Tuning of a [`RedbStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedbOptions {
    /// The most memory redb may use to cache pages of the file, in bytes. Default 64 MiB.
    pub cache_size_bytes: usize,
    /// Save redb's allocator state with every durable commit ("quick repair"). A durable commit
    /// then uses two-phase commit (two fsyncs instead of one), and reopening after a crash is
    /// almost instant; without it, reopening after a crash walks the whole file to rebuild the
    /// allocator state (a clean close needs no repair either way). Default `false`.
    pub quick_repair: bool,
}

impl Default for RedbOptions {
    fn default() -> Self {
        RedbOptions {
            cache_size_bytes: 64 << 20,
            quick_repair: false,
        }
    }
}

/// A [`Store`] in one redb database file.
///
/// The file holds three tables: `hermes_records` (key bytes to the record: an 18-byte header with a
/// format byte, a tombstone flag, the timestamp's version and node, then the value's bytes),
/// `hermes_meta` (the metadata slot) and `hermes_info` (the store format version, checked on
/// open).
///
/// # Group commit and durability
///
/// [`Store::apply`] writes its whole batch in one redb write transaction committed with
/// `Durability::None`: the batch is atomic and visible at once, but redb does not fsync.
/// [`Store::sync`] commits an empty transaction with `Durability::Immediate`, which makes every
/// earlier non-durable commit durable with a single fsync (redb's one-phase commit with
/// checksums). So any number of `apply` calls, each of any size, cost one fsync at the next
/// `sync`. After a crash redb rolls back to the last durable commit; since commits are ordered
/// and each is atomic, what survives is a prefix of the applied batches.
///
/// Call `sync` regularly even when durability is not needed (the [`AsyncWriter`](crate::AsyncWriter)
/// syncs after every group): until the next durable commit redb keeps the bookkeeping of the
/// non-durable ones in memory and cannot reuse the pages the last durable commit still names.
///
/// [`Store::save_meta`] commits with `Durability::Immediate`, so it is durable on return and makes
/// earlier batches durable too.
///
/// # Errors
///
/// Opening a file that is not a hermes store (random bytes, another format, a redb database of
/// another program, a newer store format) fails with [`StoreError::Corrupt`], whose one-line
/// message names the path. Any later error is fatal to the caller (see [`Store`]); the store
/// itself also refuses every write after its first failed one, returning that first error again,
/// so a `sync` after a failed `apply` can never report success.
#[derive(Debug)]
pub struct RedbStore {
    db: Database,
    path: PathBuf,
    options: RedbOptions,
    /// Whether a non-durable commit happened since the last durable one.
    dirty: bool,
    /// The first error of a write, returned by every later write: a store that failed once is
    /// never written to again (fail-stop), so a `sync` after a failed `apply` cannot succeed.
    failed: Option<StoreError>,
    /// Reused buffer for encoding records.
    scratch: Vec<u8>,
}

impl RedbStore {
    /// Opens the store at `path`, creating it if the file does not exist or is empty, with
    /// [`RedbOptions::default`]. See [`RedbStore::open_with`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, RedbOptions::default())
    }

    /// Opens the store at `path` with `options`, creating it if the file does not exist or is
    /// empty. The directory must exist.
    ///
    /// A new store is created atomically: it is built and made durable in `<path>.creating`,
    /// then renamed to `path` (and the directory fsynced), so a crash while creating leaves no
    /// half-made file at `path`; a leftover `.creating` file is replaced by the next open.
    ///
    /// One process at a time may open a path: a second open fails with
    /// [`StoreError::Backend`] while the first holds the file's lock.
    pub fn open_with(path: impl AsRef<Path>, options: RedbOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_path_buf();
        if path.is_dir() {
            return Err(StoreError::corrupt(
                &path,
                "is a directory; the data path must name a file",
            ));
        }
        let exists = match std::fs::metadata(&path) {
            Ok(meta) => meta.len() > 0,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => false,
            Err(err) => return Err(StoreError::io(&path, err)),
        };
        if !exists {
            create_atomically(&path, &options)?;
        }
        let db = redb::Builder::new()
            .set_cache_size(options.cache_size_bytes)
            .open(&path)
            .map_err(|err| engine_error(&path, err))?;
        Self::init(db, path, options)
    }

    /// Opens a store on a custom redb storage backend (for example
    /// [`redb::backends::InMemoryBackend`], or a fault-injecting backend in tests). `label`
    /// stands in for the path in error messages.
    pub fn open_backend(
        backend: impl StorageBackend,
        label: impl Into<PathBuf>,
        options: RedbOptions,
    ) -> Result<Self, StoreError> {
        let path = label.into();
        let db = redb::Builder::new()
            .set_cache_size(options.cache_size_bytes)
            .create_with_backend(backend)
            .map_err(|err| engine_error(&path, err))?;
        Self::init(db, path, options)
    }

    /// The path (or backend label) this store was opened with.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes everything durable and closes the database, reporting any error (dropping a
    /// `RedbStore` also closes it, but cannot report errors).
    pub fn close(mut self) -> Result<(), StoreError> {
        self.sync()?;
        let path = self.path;
        self.db.close().map_err(|err| engine_error(&path, err))
    }

    /// Checks that the database is a hermes store of a format this build reads, or makes an
    /// empty database one.
    fn init(db: Database, path: PathBuf, options: RedbOptions) -> Result<Self, StoreError> {
        let err = |e: redb::Error| engine_error(&path, e);
        let read = db.begin_read().map_err(|e| err(e.into()))?;
        let mut tables: Vec<String> = read
            .list_tables()
            .map_err(|e| err(e.into()))?
            .map(|t| t.name().to_string())
            .collect();
        tables.extend(
            read.list_multimap_tables()
                .map_err(|e| err(e.into()))?
                .map(|t| t.name().to_string()),
        );
        if tables.is_empty() {
            drop(read);
            let txn = db.begin_write().map_err(|e| err(e.into()))?;
            {
                let mut info = txn.open_table(INFO).map_err(|e| err(e.into()))?;
                info.insert(FORMAT_KEY, STORE_FORMAT)
                    .map_err(|e| err(e.into()))?;
                txn.open_table(RECORDS).map_err(|e| err(e.into()))?;
                txn.open_table(META).map_err(|e| err(e.into()))?;
            }
            txn.commit().map_err(|e| err(e.into()))?;
        } else {
            if !tables.iter().any(|t| t == INFO.name()) {
                tables.sort();
                return Err(StoreError::corrupt(
                    &path,
                    format!(
                        "a redb database of another program (its tables: {})",
                        tables.join(", ")
                    ),
                ));
            }
            let info = read.open_table(INFO).map_err(|e| err(e.into()))?;
            let format = info
                .get(FORMAT_KEY)
                .map_err(|e| err(e.into()))?
                .map(|v| v.value());
            match format {
                Some(STORE_FORMAT) => {}
                Some(other) => {
                    return Err(StoreError::corrupt(
                        &path,
                        format!(
                        "store format version {other}, but this build reads version {STORE_FORMAT}"
                    ),
                    ))
                }
                None => return Err(StoreError::corrupt(&path, "no store format version")),
            }
            read.open_table(RECORDS).map_err(|e| err(e.into()))?;
            read.open_table(META).map_err(|e| err(e.into()))?;
        }
        Ok(RedbStore {
            db,
            path,
            options,
            dirty: false,
            failed: None,
            scratch: Vec::new(),
        })
    }

    fn err(&self, err: impl Into<redb::Error>) -> StoreError {
        engine_error(&self.path, err)
    }

    fn durable_commit(&mut self, meta: Option<(&str, &[u8])>) -> Result<(), StoreError> {
        let mut txn = self.db.begin_write().map_err(|e| self.err(e))?;
        txn.set_durability(RedbDurability::Immediate)
            .map_err(|e| self.err(e))?;
        txn.set_quick_repair(self.options.quick_repair);
        if let Some((name, bytes)) = meta {
            let mut table = txn.open_table(META).map_err(|e| self.err(e))?;
            table.insert(name, bytes).map_err(|e| self.err(e))?;
        }
        txn.commit().map_err(|e| self.err(e))?;
        self.dirty = false;
        Ok(())
    }

    /// One write transaction with `Durability::None` for the whole batch.
    fn apply_inner(&mut self, batch: &[(Key, Record)]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let path = &self.path;
        let mut txn = self.db.begin_write().map_err(|e| engine_error(path, e))?;
        txn.set_durability(RedbDurability::None)
            .map_err(|e| engine_error(path, e))?;
        {
            let mut table = txn.open_table(RECORDS).map_err(|e| engine_error(path, e))?;
            // Inserting in key order touches each B-tree page once, in order. The sort is stable,
            // so a key that appears more than once still ends with its last record.
            let mut sorted: Vec<&(Key, Record)> = batch.iter().collect();
            if sorted.len() > 1 {
                sorted.sort_by(|a, b| a.0.cmp(&b.0));
            }
            for (key, record) in sorted {
                codec::encode(record, &mut self.scratch);
                table
                    .insert(key.as_ref(), self.scratch.as_slice())
                    .map_err(|e| engine_error(path, e))?;
            }
        }
        txn.commit().map_err(|e| engine_error(path, e))?;
        self.dirty = true;
        Ok(())
    }

    fn check_failed(&self) -> Result<(), StoreError> {
        match &self.failed {
            Some(err) => Err(err.clone()),
            None => Ok(()),
        }
    }

    fn remember(&mut self, result: Result<(), StoreError>) -> Result<(), StoreError> {
        if let Err(err) = &result {
            self.failed.get_or_insert_with(|| err.clone());
        }
        result
    }

    fn decode(&self, bytes: &[u8]) -> Result<Record, StoreError> {
        codec::decode(bytes).map_err(|detail| StoreError::corrupt(&self.path, detail))
    }
}

impl Store for RedbStore {
    fn load_each(&self, visit: &mut dyn FnMut(Key, Record)) -> Result<(), StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(RECORDS).map_err(|e| self.err(e))?;
        for entry in table.iter().map_err(|e| self.err(e))? {
            let (key, value) = entry.map_err(|e| self.err(e))?;
            let record = self.decode(value.value())?;
            visit(Bytes::copy_from_slice(key.value()), record);
        }
        Ok(())
    }

    fn get(&self, key: &[u8]) -> Result<Option<Record>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(RECORDS).map_err(|e| self.err(e))?;
        let value = table.get(key).map_err(|e| self.err(e))?;
        value.map(|v| self.decode(v.value())).transpose()
    }

    fn apply(&mut self, batch: &[(Key, Record)]) -> Result<(), StoreError> {
        self.check_failed()?;
        let result = self.apply_inner(batch);
        self.remember(result)
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        self.check_failed()?;
        if !self.dirty {
            return Ok(());
        }
        let result = self.durable_commit(None);
        self.remember(result)
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
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(RECORDS).map_err(|e| self.err(e))?;
        let mut out = Vec::with_capacity(limit.min(1024));
        for entry in table
            .range::<&[u8]>((start, end))
            .map_err(|e| self.err(e))?
        {
            let (key, value) = entry.map_err(|e| self.err(e))?;
            out.push((
                Bytes::copy_from_slice(key.value()),
                self.decode(value.value())?,
            ));
            if out.len() == limit {
                break;
            }
        }
        Ok(out)
    }

    fn save_meta(&mut self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        self.check_failed()?;
        let result = self.durable_commit(Some((name, bytes)));
        self.remember(result)
    }

    fn load_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let txn = self.db.begin_read().map_err(|e| self.err(e))?;
        let table = txn.open_table(META).map_err(|e| self.err(e))?;
        let value = table.get(name).map_err(|e| self.err(e))?;
        Ok(value.map(|v| v.value().to_vec()))
    }
}

/// Builds a new, empty store in `<path>.creating`, makes it durable and renames it to `path`.
fn create_atomically(path: &Path, options: &RedbOptions) -> Result<(), StoreError> {
    let Some(name) = path.file_name() else {
        return Err(StoreError::corrupt(
            path,
            "the data path does not name a file",
        ));
    };
    let mut tmp_name = name.to_os_string();
    tmp_name.push(".creating");
    let tmp = path.with_file_name(tmp_name);
    match std::fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(StoreError::io(&tmp, err)),
    }
    let db = redb::Builder::new()
        .set_cache_size(options.cache_size_bytes)
        .create(&tmp)
        .map_err(|err| engine_error(&tmp, err))?;
    // `init` makes the empty store a hermes store with one durable commit.
    let store = RedbStore::init(db, tmp.clone(), options.clone())?;
    store.db.close().map_err(|err| engine_error(&tmp, err))?;
    std::fs::rename(&tmp, path).map_err(|err| StoreError::io(path, err))?;
    // Make the rename itself durable.
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|err| StoreError::io(dir, err))
}

/// Sorts an error of redb into the variants of [`StoreError`], naming the path.
fn engine_error(path: &Path, err: impl Into<redb::Error>) -> StoreError {
    match err.into() {
        // redb reports "this is not a redb database" as an I/O error of kind InvalidData.
        redb::Error::Io(io) if io.kind() == std::io::ErrorKind::InvalidData => {
            StoreError::corrupt(path, io)
        }
        redb::Error::Io(io) => StoreError::io(path, io),
        redb::Error::Corrupted(detail) => StoreError::corrupt(path, detail),
        err @ (redb::Error::UpgradeRequired(_)
        | redb::Error::TableTypeMismatch { .. }
        | redb::Error::TypeDefinitionChanged { .. }
        | redb::Error::TableIsMultimap(_)
        | redb::Error::TableIsNotMultimap(_)
        | redb::Error::TableDoesNotExist(_)) => StoreError::corrupt(path, err),
        err => StoreError::backend(path, err),
    }
}
