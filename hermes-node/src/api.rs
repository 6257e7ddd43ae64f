//! [`ClientApi`]: the requests a node answers, the same in process and over the network.

use std::future::Future;

use bytes::Bytes;
use hermes_core::{Op, Outcome, Ts};

use crate::{RequestError, Status};

/// The requests a client sends to a Hermes node. [`crate::ClusterNode`] answers them in process,
/// [`crate::RemoteClient`] sends them to a node over the client protocol; code written against
/// this trait runs against either.
///
/// Both types also offer these methods inherently (callable without importing the trait).
pub trait ClientApi: Sync {
    /// Runs one operation; a read of an absent key is `Ok(Outcome::Value(None))`.
    ///
    /// # Errors
    /// The request's outcome: see [`RequestError`] (for updates, check
    /// [`RequestError::outcome_unknown`]).
    fn execute(&self, op: Op) -> impl Future<Output = Result<Outcome, RequestError>> + Send;

    /// The node's status: view, epoch, lease, state, peers, counters.
    ///
    /// # Errors
    /// [`RequestError::NetworkError`] or [`RequestError::Timeout`] when the node is remote.
    fn status(&self) -> impl Future<Output = Result<Status, RequestError>> + Send;

    /// Writes `value` under `key`; returns the write's timestamp once every live replica has it.
    ///
    /// # Errors
    /// As [`ClientApi::execute`].
    fn write(
        &self,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
    ) -> impl Future<Output = Result<Ts, RequestError>> + Send {
        let op = Op::Write {
            key: key.into(),
            value: value.into(),
        };
        async move { committed(self.execute(op).await?) }
    }

    /// Reads `key`.
    ///
    /// # Errors
    /// [`RequestError::ValueNotFound`] if the key does not exist, or as [`ClientApi::execute`].
    fn read(
        &self,
        key: impl Into<Bytes>,
    ) -> impl Future<Output = Result<Bytes, RequestError>> + Send {
        let op = Op::Read { key: key.into() };
        async move { found(self.execute(op).await?) }
    }

    /// Deletes `key` (a tombstone write); returns its timestamp.
    ///
    /// # Errors
    /// As [`ClientApi::execute`].
    fn delete(
        &self,
        key: impl Into<Bytes>,
    ) -> impl Future<Output = Result<Ts, RequestError>> + Send {
        let op = Op::Delete { key: key.into() };
        async move { committed(self.execute(op).await?) }
    }

    /// Compare-and-swap: sets `new` if `key` holds `expected` (`None`: the key must be absent).
    ///
    /// # Errors
    /// [`RequestError::CasFailed`] if the key holds something else, [`RequestError::Aborted`] if
    /// a concurrent update won the race, or as [`ClientApi::execute`].
    fn cas(
        &self,
        key: impl Into<Bytes>,
        expected: Option<Bytes>,
        new: impl Into<Bytes>,
    ) -> impl Future<Output = Result<Ts, RequestError>> + Send {
        let op = Op::Cas {
            key: key.into(),
            expected,
            new: new.into(),
        };
        async move { committed(self.execute(op).await?) }
    }
}

/// The timestamp of a committed update, from its outcome.
fn committed(outcome: Outcome) -> Result<Ts, RequestError> {
    match outcome {
        Outcome::Written { ts } | Outcome::Swapped { ts } => Ok(ts),
        Outcome::Value(_) => Err(RequestError::NetworkError(
            "unexpected answer to an update: a value".into(),
        )),
    }
}

/// The value a read found; an absent key is [`RequestError::ValueNotFound`].
pub(crate) fn found(outcome: Outcome) -> Result<Bytes, RequestError> {
    match outcome {
        Outcome::Value(Some(value)) => Ok(value),
        Outcome::Value(None) => Err(RequestError::ValueNotFound),
        other => Err(RequestError::NetworkError(format!(
            "unexpected answer to a read: {other:?}"
        ))),
    }
}
