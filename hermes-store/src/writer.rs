//! [`AsyncWriter`]: a background thread that writes batches to a store with group commit.

use crate::{Store, StoreError};
use hermes_core::{Key, Record};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

/// Bounds of an [`AsyncWriter`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriterConfig {
    /// The most submitted batches that may wait in the queue. When it is full,
    /// [`AsyncWriter::try_submit`] fails with [`StoreError::Overloaded`] and
    /// [`AsyncWriter::submit`] blocks. It also bounds how much one group can take while the
    /// previous group syncs, so a larger queue means larger groups and fewer fsyncs per record.
    /// Default 8192; at least 1 is used.
    pub queue_batches_max: usize,
    /// The writer stops taking queued batches into one group once it holds this many records (a
    /// single larger batch is still written whole). Default 16384.
    pub group_records_max: usize,
    /// The shortest time from the start of one group to the start of the next, in
    /// milliseconds: batches that arrive meanwhile wait and join the next group, so a busy
    /// writer commits fewer, larger groups. 0 (the default) writes as soon as the previous group
    /// is durable, which is what `sync` durability wants; `async` durability trades a few
    /// milliseconds of staleness on disk for less commit work.
    pub group_interval_ms: u64,
}

impl Default for WriterConfig {
    fn default() -> Self {
        WriterConfig {
            queue_batches_max: 8192,
            group_records_max: 16384,
            group_interval_ms: 0,
        }
    }
}

/// What the writer thread reports through the callback given to [`AsyncWriter::spawn`].
#[derive(Debug)]
pub enum WriterEvent<T> {
    /// The batches submitted with these tokens are durable (applied and synced), in submission
    /// order.
    Durable(Vec<T>),
    /// The store failed; the writer has stopped and will write nothing more. The node must stop
    /// (fail-stop). Reported once, before any later call returns the same error.
    Failed(StoreError),
}

enum Msg<T> {
    Batch(Vec<(Key, Record)>, T),
    Flush(SyncSender<Result<(), StoreError>>),
}

/// The first store error, shared between the handle and the writer thread and kept for every
/// later caller.
struct FirstFailure {
    error: Mutex<Option<StoreError>>,
}

impl FirstFailure {
    fn get(&self) -> Option<StoreError> {
        self.error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, err: StoreError) {
        *self.error.lock().unwrap_or_else(PoisonError::into_inner) = Some(err);
    }
}

/// A background writer with group commit: batches submitted from any thread are queued, and one
/// thread repeatedly takes everything queued (up to [`WriterConfig::group_records_max`] records),
/// applies it as **one** [`Store::apply`] and then calls [`Store::sync`] once.
///
/// This is the write path of `async` durability mode, and serves `sync` mode as well: each batch
/// carries a caller token `T` (for example the core's persist token), and the callback given to
/// [`AsyncWriter::spawn`] receives [`WriterEvent::Durable`] with the tokens of the batches that
/// are now durable, so a node can call `handle_persisted` for each without ever blocking its
/// driver. In `async` mode `T` is usually `()` and the callback can ignore durability.
///
/// # Ordering and durability
///
/// Batches are applied in the order the queue received them (for one submitting thread, the order
/// of its calls). Every group is atomic, so after a crash the store holds a prefix of the
/// submitted batches: a batch is lost only if it was not yet reported durable.
///
/// # Bounds and backpressure
///
/// The queue holds at most [`WriterConfig::queue_batches_max`] batches. When it is full,
/// [`AsyncWriter::try_submit`] returns [`StoreError::Overloaded`] at once (the batch is not
/// taken; nothing else changes), and [`AsyncWriter::submit`] blocks the calling thread until
/// there is room. A node's async driver uses `try_submit`; `submit` is for threads that may block.
///
/// # Failure (fail-stop)
///
/// On the first error from the store (or a panic inside it) the writer stops for good: it
/// reports [`WriterEvent::Failed`], and every later call — `submit`, `try_submit`, `flush`,
/// `shutdown` — returns that same error. Batches still queued or accepted in the meantime are
/// dropped unwritten; none of them was reported durable.
///
/// # Shutdown
///
/// [`AsyncWriter::shutdown`] (and `Drop`, which cannot report errors) writes and syncs everything
/// queued, stops the thread, and returns the store.
pub struct AsyncWriter<S: Store + 'static, T: Send + 'static = ()> {
    tx: Option<SyncSender<Msg<T>>>,
    first_failure: Arc<FirstFailure>,
    thread: Option<JoinHandle<Option<S>>>,
    queue_batches_max: usize,
}

impl<S: Store + 'static, T: Send + 'static> std::fmt::Debug for AsyncWriter<S, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncWriter")
            .field("queue_batches_max", &self.queue_batches_max)
            .field("failure", &self.first_failure.get())
            .field("running", &self.thread.is_some())
            .finish()
    }
}

impl<S: Store + 'static, T: Send + 'static> AsyncWriter<S, T> {
    /// Starts the writer thread (named `hermes-store-writer`) that owns `store`.
    ///
    /// `on_event` runs on the writer thread after every durable group and once on failure; it
    /// must be quick and must not call back into this writer (hand the event to another thread,
    /// for example through a channel).
    pub fn spawn(
        store: S,
        config: WriterConfig,
        on_event: impl FnMut(WriterEvent<T>) + Send + 'static,
    ) -> Result<Self, StoreError> {
        let queue_batches_max = config.queue_batches_max.max(1);
        let (tx, rx) = mpsc::sync_channel(queue_batches_max);
        let first_failure = Arc::new(FirstFailure {
            error: Mutex::new(None),
        });
        let worker = Worker {
            store,
            rx,
            first_failure: Arc::clone(&first_failure),
            on_event: Box::new(on_event),
            group_records_max: config.group_records_max.max(1),
            group_interval: std::time::Duration::from_millis(config.group_interval_ms),
        };
        let thread = std::thread::Builder::new()
            .name("hermes-store-writer".to_string())
            .spawn(move || worker.run())
            .map_err(|err| StoreError::thread(format!("cannot start the writer thread: {err}")))?;
        Ok(AsyncWriter {
            tx: Some(tx),
            first_failure,
            thread: Some(thread),
            queue_batches_max,
        })
    }

    /// Queues `batch` without blocking. Fails with [`StoreError::Overloaded`] if the queue is
    /// full (nothing is queued; retry later), or with the writer's first store error once it has
    /// failed.
    pub fn try_submit(&self, batch: Vec<(Key, Record)>, token: T) -> Result<(), StoreError> {
        let tx = self.sender()?;
        match tx.try_send(Msg::Batch(batch, token)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(StoreError::Overloaded {
                queue_batches_max: self.queue_batches_max,
            }),
            Err(TrySendError::Disconnected(_)) => Err(self.stopped()),
        }
    }

    /// Queues `batch`, blocking the calling thread while the queue is full. Fails only with the
    /// writer's first store error once it has failed.
    pub fn submit(&self, batch: Vec<(Key, Record)>, token: T) -> Result<(), StoreError> {
        let tx = self.sender()?;
        tx.send(Msg::Batch(batch, token))
            .map_err(|_| self.stopped())
    }

    /// Blocks until every batch submitted before this call is durable, or returns the writer's
    /// first store error.
    pub fn flush(&self) -> Result<(), StoreError> {
        let tx = self.sender()?;
        let (done_tx, done_rx) = mpsc::sync_channel(1);
        tx.send(Msg::Flush(done_tx)).map_err(|_| self.stopped())?;
        done_rx.recv().unwrap_or_else(|_| Err(self.stopped()))
    }

    /// The writer's first store error, if it has failed.
    pub fn failure(&self) -> Option<StoreError> {
        self.first_failure.get()
    }

    /// Writes and syncs everything queued, stops the writer thread and returns the store; or
    /// returns the writer's first store error.
    pub fn shutdown(mut self) -> Result<S, StoreError> {
        self.stop()
    }

    fn sender(&self) -> Result<&SyncSender<Msg<T>>, StoreError> {
        if let Some(failure) = self.first_failure.get() {
            return Err(failure);
        }
        self.tx.as_ref().ok_or(StoreError::Closed)
    }

    /// The error to report once the writer thread has gone away.
    fn stopped(&self) -> StoreError {
        self.first_failure.get().unwrap_or_else(|| {
            StoreError::thread("the writer thread ended without reporting an error")
        })
    }

    fn stop(&mut self) -> Result<S, StoreError> {
        // Closing the channel tells the thread to drain the queue, sync and return.
        self.tx = None;
        let thread = self.thread.take().ok_or(StoreError::Closed)?;
        let store = thread
            .join()
            .map_err(|_| StoreError::thread("the writer thread panicked"))?;
        match (store, self.first_failure.get()) {
            (Some(store), None) => Ok(store),
            (_, Some(failure)) => Err(failure),
            (None, None) => Err(self.stopped()),
        }
    }
}

impl<S: Store + 'static, T: Send + 'static> Drop for AsyncWriter<S, T> {
    /// Writes and syncs everything queued and stops the thread. Errors cannot be reported here:
    /// call [`AsyncWriter::shutdown`] to see them.
    fn drop(&mut self) {
        if self.thread.is_some() {
            let _ = self.stop();
        }
    }
}

/// The writer thread's state.
struct Worker<S, T> {
    store: S,
    rx: Receiver<Msg<T>>,
    first_failure: Arc<FirstFailure>,
    on_event: Box<dyn FnMut(WriterEvent<T>) + Send>,
    group_records_max: usize,
    group_interval: std::time::Duration,
}

impl<S: Store, T> Worker<S, T> {
    /// Runs until the handle closes the channel (returns the store) or the store fails (returns
    /// `None`; the receiver is dropped so that blocked submitters wake up).
    fn run(mut self) -> Option<S> {
        let mut records: Vec<(Key, Record)> = Vec::new();
        let mut tokens: Vec<T> = Vec::new();
        let mut flushes: Vec<SyncSender<Result<(), StoreError>>> = Vec::new();
        let mut last_group: Option<std::time::Instant> = None;
        // `recv` fails only once the handle is gone and the queue is empty.
        while let Ok(first) = self.rx.recv() {
            if let (Msg::Batch(..), Some(started)) = (&first, last_group) {
                // Let more batches gather into this group (flushes are never held back).
                if let Some(rest) = self.group_interval.checked_sub(started.elapsed()) {
                    std::thread::sleep(rest);
                }
            }
            last_group = Some(std::time::Instant::now());
            let mut next = Some(first);
            while let Some(msg) = next.take() {
                match msg {
                    Msg::Batch(batch, token) => {
                        if records.is_empty() {
                            records = batch;
                        } else {
                            records.extend(batch);
                        }
                        tokens.push(token);
                    }
                    Msg::Flush(done) => flushes.push(done),
                }
                if records.len() < self.group_records_max {
                    // Empty or disconnected: the group is complete.
                    next = self.rx.try_recv().ok();
                }
            }
            let result = self.write_group(&records);
            records.clear();
            match result {
                Ok(()) => {
                    if !tokens.is_empty() {
                        (self.on_event)(WriterEvent::Durable(std::mem::take(&mut tokens)));
                    }
                    for done in flushes.drain(..) {
                        let _ = done.send(Ok(()));
                    }
                }
                Err(err) => {
                    self.first_failure.set(err.clone());
                    (self.on_event)(WriterEvent::Failed(err.clone()));
                    for done in flushes.drain(..) {
                        let _ = done.send(Err(err.clone()));
                    }
                    return None;
                }
            }
        }
        Some(self.store)
    }

    /// One group: one apply and one sync. A group of flushes only has nothing to write: every
    /// earlier group was synced before it was reported.
    fn write_group(&mut self, records: &[(Key, Record)]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let store = &mut self.store;
        catch_unwind(AssertUnwindSafe(|| {
            store.apply(records)?;
            store.sync()
        }))
        .unwrap_or_else(|panic| {
            let detail = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(StoreError::thread(format!(
                "the store panicked while writing: {detail}"
            )))
        })
    }
}
