//! The one error type of this crate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// An error from a [`Store`](crate::Store) or the [`AsyncWriter`](crate::AsyncWriter).
///
/// Every variant is fatal to the node that owns the store: a node stops (fail-stop) on the first
/// `StoreError` rather than continuing with a store whose contents it can no longer vouch for.
/// The only exception is [`StoreError::Overloaded`], which is backpressure from
/// [`AsyncWriter::try_submit`](crate::AsyncWriter::try_submit) and leaves the writer healthy.
///
/// `Display` is always one line and names the store's path (or label) where there is one, so a
/// node can print it as its last word. The error is `Clone` so that the background writer can
/// report the same first error to every caller.
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// An I/O operation on the store's file failed (open, read, write, fsync).
    #[error("store {}: I/O error: {source}", path.display())]
    Io {
        /// The store's path, or the label of a custom backend.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: Arc<std::io::Error>,
    },
    /// The data at the path is not a readable hermes store: random bytes, a file of another
    /// format, a redb database of another program, a newer store format, or a record that does
    /// not decode.
    #[error("store {}: corrupt or not a hermes store: {detail}", path.display())]
    Corrupt {
        /// The store's path, or the label of a custom backend.
        path: PathBuf,
        /// What was wrong, in one line.
        detail: String,
    },
    /// The storage engine reported an error that is neither I/O nor corruption (for example the
    /// database is already open in another process, or a value exceeds the engine's limit).
    #[error("store {}: storage engine error: {detail}", path.display())]
    Backend {
        /// The store's path, or the label of a custom backend.
        path: PathBuf,
        /// The engine's message, in one line.
        detail: String,
    },
    /// The background writer's queue is full; the batch was not accepted. Not fatal: retry later,
    /// or use the blocking [`AsyncWriter::submit`](crate::AsyncWriter::submit).
    #[error("store writer overloaded: its queue of {queue_batches_max} batches is full")]
    Overloaded {
        /// The configured queue bound.
        queue_batches_max: usize,
    },
    /// The background writer has been shut down and accepts nothing more.
    #[error("store writer is closed")]
    Closed,
    /// The background writer's thread could not be started, or a store call on it panicked.
    #[error("store writer thread failed: {detail}")]
    Thread {
        /// What happened, in one line.
        detail: String,
    },
}

impl StoreError {
    /// Whether this error is the (non-fatal) [`StoreError::Overloaded`] backpressure signal.
    pub fn is_overloaded(&self) -> bool {
        matches!(self, StoreError::Overloaded { .. })
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        StoreError::Io {
            path: path.to_path_buf(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn corrupt(path: &Path, detail: impl std::fmt::Display) -> Self {
        StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: one_line(&detail.to_string()),
        }
    }

    pub(crate) fn backend(path: &Path, detail: impl std::fmt::Display) -> Self {
        StoreError::Backend {
            path: path.to_path_buf(),
            detail: one_line(&detail.to_string()),
        }
    }

    pub(crate) fn thread(detail: impl std::fmt::Display) -> Self {
        StoreError::Thread {
            detail: one_line(&detail.to_string()),
        }
    }
}

/// Folds a message onto one line, so that every `Display` of [`StoreError`] is one line.
pub(crate) fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for part in text.split(['\n', '\r']).filter(|p| !p.trim().is_empty()) {
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(part.trim());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_is_one_line_and_names_the_path() {
        let err = StoreError::corrupt(Path::new("/data/n1.redb"), "bad\nthing\r\n  here");
        let text = err.to_string();
        assert_eq!(
            text,
            "store /data/n1.redb: corrupt or not a hermes store: bad; thing; here"
        );
        let err = StoreError::io(
            Path::new("/data/x"),
            std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied"),
        );
        assert_eq!(err.to_string(), "store /data/x: I/O error: denied");
        assert!(std::error::Error::source(&err).is_some());
    }

    #[test]
    fn overloaded_is_recognised() {
        assert!(StoreError::Overloaded {
            queue_batches_max: 4
        }
        .is_overloaded());
        assert!(!StoreError::Closed.is_overloaded());
    }
}
