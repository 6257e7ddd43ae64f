//! What [`crate::ClusterNode::status`] reports: view, lease, life-cycle state, peers, counters.

use std::sync::atomic::{AtomicU64, Ordering};

use hermes_core::NodeState;
use serde::{Deserialize, Serialize};

/// One other node as this node sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerStatus {
    /// Its id.
    pub id: u32,
    /// Its configured address, if known.
    pub addr: Option<String>,
    /// Whether a connection to it is open now.
    pub connected: bool,
    /// Whether it is a member of the installed view (shadows are not members).
    pub member: bool,
}

/// A node's counters since it started, as [`Status::counters`] reports them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeCounters {
    /// Reads answered (fast path and core).
    pub reads: u64,
    /// Reads answered on the fast path, without the driver.
    pub fast_reads: u64,
    /// Writes and deletes coordinated here that completed.
    pub writes: u64,
    /// Compare-and-swaps coordinated here that committed.
    pub cas: u64,
    /// Compare-and-swaps that compared a different value.
    pub cas_failed: u64,
    /// Compare-and-swaps answered `Aborted`.
    pub aborts: u64,
    /// Requests that could not run at once and waited (stalls).
    pub stalls: u64,
    /// Replays started.
    pub replays: u64,
    /// INV retransmissions after the message-loss timeout.
    pub retransmits: u64,
    /// Views installed.
    pub view_changes: u64,
    /// Times this node's lease ran out while it was a member.
    pub lease_expiries: u64,
    /// Requests that timed out.
    pub timeouts: u64,
    /// Requests refused because a bound was reached.
    pub overloaded: u64,
    /// Requests refused as malformed.
    pub invalid_arguments: u64,
    /// Messages the transport would not take (queue full, unknown peer).
    pub send_failures: u64,
    /// Peer messages dropped because a timestamp, epoch, ballot or incarnation in them was out
    /// of range (see `hermes_core::peer_numbers`).
    pub dropped_peer_numbers: u64,
}

/// A snapshot of one node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// This node's id.
    pub node_id: u32,
    /// Active, Suspected or Inactive.
    pub state: NodeState,
    /// The installed view's epoch.
    pub epoch: u64,
    /// The view's members.
    pub members: Vec<u32>,
    /// The view's shadows (joining nodes copying state).
    pub shadows: Vec<u32>,
    /// How much longer this node's read lease lasts, in milliseconds (0: none).
    pub lease_remaining_ms: u64,
    /// `memory`, `async` or `sync`.
    pub durability: String,
    /// The other configured nodes.
    pub peers: Vec<PeerStatus>,
    /// Requests waiting or being coordinated in the core.
    pub pending_requests: usize,
    /// Time since the node started, in milliseconds.
    pub uptime_ms: u64,
    /// Counters since the node started.
    pub counters: NodeCounters,
}

/// Counters kept by the runtime itself (the core keeps the rest).
#[derive(Debug, Default)]
pub(crate) struct RuntimeCounters {
    pub(crate) fast_reads: AtomicU64,
    pub(crate) lease_expiries: AtomicU64,
    pub(crate) send_failures: AtomicU64,
}

impl RuntimeCounters {
    pub(crate) fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn fill(&self, core: &hermes_core::Stats, counters: &mut NodeCounters) {
        let fast_reads = self.fast_reads.load(Ordering::Relaxed);
        counters.reads = core.reads + fast_reads;
        counters.fast_reads = fast_reads;
        counters.writes = core.writes;
        counters.cas = core.rmws;
        counters.cas_failed = core.cas_failed;
        counters.aborts = core.rmw_aborts;
        counters.stalls = core.stalls;
        counters.replays = core.replays;
        counters.retransmits = core.retransmits;
        counters.view_changes = core.view_changes;
        counters.lease_expiries = self.lease_expiries.load(Ordering::Relaxed);
        counters.timeouts = core.timeouts;
        counters.overloaded = core.overloaded;
        counters.invalid_arguments = core.invalid_arguments;
        counters.send_failures = self.send_failures.load(Ordering::Relaxed);
        counters.dropped_peer_numbers = core.dropped_peer_numbers;
    }
}
