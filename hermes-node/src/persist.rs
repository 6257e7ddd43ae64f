//! The records store of `async` and `sync` durability: a redb file in the data directory written
//! by a background [`AsyncWriter`] with group commit. The writer reports durable tokens to the
//! driver through a channel; the driver hands them to the core with `handle_persisted`.

use std::path::Path;
use std::sync::Arc;

use hermes_core::{Key, PersistToken, Record};
use hermes_store::{
    AsyncWriter, Durability, RedbStore, Store, StoreError, WriterConfig, WriterEvent,
};
use tokio::sync::mpsc;

use crate::NodeError;

/// In `async` mode, the shortest time between two commits of the store writer.
const ASYNC_GROUP_INTERVAL_MS: u64 = 10;

/// The file of the records store inside the data directory.
const RECORDS_FILE: &str = "records.redb";

/// The open records store (`records.redb`) and its background writer.
pub(crate) struct RecordsWriter {
    writer: Arc<AsyncWriter<RedbStore, PersistToken>>,
    /// What the writer thread reports; bounded by the writer's own queue (one event per group).
    pub(crate) events: mpsc::UnboundedReceiver<WriterEvent<PersistToken>>,
}

impl RecordsWriter {
    /// Opens (or creates) the store in `data_dir`, reads every record, and starts the writer.
    pub(crate) fn open(
        data_dir: &Path,
        durability: Durability,
    ) -> Result<(Self, Vec<(Key, Record)>), NodeError> {
        let store = RedbStore::open(data_dir.join(RECORDS_FILE))?;
        let records = store.load_all()?;
        let (tx, events) = mpsc::unbounded_channel();
        let config = WriterConfig {
            // Nothing waits for an `async` record: gather more of them into each commit.
            group_interval_ms: if durability == Durability::Async {
                ASYNC_GROUP_INTERVAL_MS
            } else {
                0
            },
            ..WriterConfig::default()
        };
        let writer = AsyncWriter::spawn(store, config, move |event| {
            let _ = tx.send(event);
        })?;
        Ok((
            RecordsWriter {
                writer: Arc::new(writer),
                events,
            },
            records,
        ))
    }

    /// Queues `records` under `token`. When the writer's queue is full the driver waits for
    /// room (on a blocking thread, so the runtime keeps running): backpressure, never loss.
    pub(crate) async fn submit(
        &self,
        records: Vec<(Key, Record)>,
        token: PersistToken,
    ) -> Result<(), NodeError> {
        // Cloning a batch clones reference counts, not values.
        match self.writer.try_submit(records.clone(), token) {
            Ok(()) => Ok(()),
            Err(StoreError::Overloaded { .. }) => {
                let writer = Arc::clone(&self.writer);
                tokio::task::spawn_blocking(move || writer.submit(records, token))
                    .await
                    .map_err(|err| NodeError::Store(format!("store writer: {err}")))??;
                Ok(())
            }
            Err(err) => Err(err.into()),
        }
    }

    /// Writes everything queued and closes the store.
    pub(crate) fn close(self) -> Result<(), NodeError> {
        match Arc::try_unwrap(self.writer) {
            Ok(writer) => writer.shutdown()?.close()?,
            Err(writer) => writer.flush()?,
        }
        Ok(())
    }
}
