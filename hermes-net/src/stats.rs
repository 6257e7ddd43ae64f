//! The live counters and the recent-error log of a transport.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::NetError;

/// How many errors [`ErrorLog`] keeps.
const RECENT_ERRORS_MAX: usize = 64;

/// A snapshot of a transport's counters (monotonic since it was created).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NetStats {
    /// Peer frames written.
    pub frames_sent: u64,
    /// Peer messages written (in `frames_sent` frames).
    pub messages_sent: u64,
    /// Peer frames received and decoded.
    pub frames_received: u64,
    /// Peer messages received (delivered to the inbox).
    pub messages_received: u64,
    /// Peer connections established (dialed or accepted and identified).
    pub peer_connections: u64,
    /// Peer connections lost or closed.
    pub peer_disconnects: u64,
    /// Incoming handshakes that failed (e.g. a certificate from another CA).
    pub handshakes_failed: u64,
    /// Connections refused after the handshake (wrong identity, unknown peer, no hello).
    pub peers_refused: u64,
    /// Streams closed because of a bad frame.
    pub frames_rejected: u64,
    /// Messages dropped because they could never fit into a frame.
    pub messages_dropped: u64,
    /// Client connections accepted.
    pub client_connections: u64,
    /// Client requests handed to the application.
    pub client_requests: u64,
    /// Client requests refused with [`crate::ServerError::Overloaded`].
    pub client_requests_refused: u64,
}

/// The live counters of a transport, bumped by its tasks; [`NetCounters::snapshot`] reads them
/// into a [`NetStats`].
#[derive(Default)]
pub(crate) struct NetCounters {
    pub(crate) frames_sent: AtomicU64,
    pub(crate) messages_sent: AtomicU64,
    pub(crate) frames_received: AtomicU64,
    pub(crate) messages_received: AtomicU64,
    pub(crate) peer_connections: AtomicU64,
    pub(crate) peer_disconnects: AtomicU64,
    pub(crate) handshakes_failed: AtomicU64,
    pub(crate) peers_refused: AtomicU64,
    pub(crate) frames_rejected: AtomicU64,
    pub(crate) messages_dropped: AtomicU64,
    pub(crate) client_connections: AtomicU64,
    pub(crate) client_requests: AtomicU64,
    pub(crate) client_requests_refused: AtomicU64,
}

/// Adds `n` to a counter.
pub(crate) fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl NetCounters {
    /// The current values (each read on its own, so not one atomic snapshot of all).
    pub(crate) fn snapshot(&self) -> NetStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        NetStats {
            frames_sent: get(&self.frames_sent),
            messages_sent: get(&self.messages_sent),
            frames_received: get(&self.frames_received),
            messages_received: get(&self.messages_received),
            peer_connections: get(&self.peer_connections),
            peer_disconnects: get(&self.peer_disconnects),
            handshakes_failed: get(&self.handshakes_failed),
            peers_refused: get(&self.peers_refused),
            frames_rejected: get(&self.frames_rejected),
            messages_dropped: get(&self.messages_dropped),
            client_connections: get(&self.client_connections),
            client_requests: get(&self.client_requests),
            client_requests_refused: get(&self.client_requests_refused),
        }
    }
}

/// The most recent errors about remote sides, oldest first; every entry is also logged.
#[derive(Default)]
pub(crate) struct ErrorLog {
    recent: Mutex<VecDeque<NetError>>,
}

impl ErrorLog {
    /// Logs `err` with `tracing::warn!` and keeps it.
    pub(crate) fn record(&self, err: NetError) {
        tracing::warn!(error = %err, "hermes-net");
        self.keep(err);
    }

    /// Keeps `err` without logging at warn level (for errors expected in normal operation, such as
    /// a peer that is down; logged at debug).
    pub(crate) fn record_quiet(&self, err: NetError) {
        tracing::debug!(error = %err, "hermes-net");
        self.keep(err);
    }

    fn keep(&self, err: NetError) {
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() == RECENT_ERRORS_MAX {
            recent.pop_front();
        }
        recent.push_back(err);
    }

    pub(crate) fn recent(&self) -> Vec<NetError> {
        let recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.iter().cloned().collect()
    }
}
