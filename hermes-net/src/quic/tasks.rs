//! The background tasks of one transport or client, aborted together at shutdown.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::runtime::Handle;
use tokio::task::JoinSet;

/// A shared set of tasks. Finished tasks are reaped on every spawn; after [`Tasks::take`] nothing
/// more is spawned.
#[derive(Clone)]
pub(crate) struct Tasks {
    set: Arc<Mutex<Option<JoinSet<()>>>>,
    runtime: Handle,
}

impl Tasks {
    pub(crate) fn new(runtime: Handle) -> Self {
        Tasks {
            set: Arc::new(Mutex::new(Some(JoinSet::new()))),
            runtime,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<JoinSet<()>>> {
        self.set.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Spawns `task` unless the set was taken (shut down).
    pub(crate) fn spawn<F: Future<Output = ()> + Send + 'static>(&self, task: F) {
        let mut guard = self.lock();
        if let Some(set) = guard.as_mut() {
            while let Some(done) = set.try_join_next() {
                if let Err(e) = done {
                    if e.is_panic() {
                        tracing::error!(error = %e, "hermes-net task panicked");
                    }
                }
            }
            set.spawn_on(task, &self.runtime);
        }
    }

    /// Takes the set out (nothing more will be spawned) with every task aborted. Dropping it or
    /// draining it with `join_next` completes the shutdown.
    pub(crate) fn take(&self) -> Option<JoinSet<()>> {
        let mut set = self.lock().take()?;
        set.abort_all();
        Some(set)
    }
}
