//! The [`Transport`] trait shared by the in-memory and the QUIC transport.

use std::sync::Arc;

use hermes_core::NodeId;
use tokio::sync::mpsc;

use crate::NetError;

/// A batch of messages received from one peer, in the order that peer sent them.
///
/// Transports deliver whole batches so that the receiving driver task pays one channel hop per
/// batch, not per message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerBatch<M> {
    /// The sender.
    pub from: NodeId,
    /// The messages, in sending order. Never empty.
    pub messages: Vec<M>,
}

/// The receiving end of a transport: a bounded channel of batches from all peers.
///
/// Handed out when the transport is created. When the application stops draining it, the
/// transport stops reading from the network, flow control pushes back, and the senders' queues
/// fill up ([`NetError::QueueFull`]) — memory stays bounded on both sides.
pub type Inbox<M> = mpsc::Receiver<PeerBatch<M>>;

/// Sends messages of type `M` to peers identified by [`NodeId`].
///
/// Implementations: [`crate::MemTransport`] (in-process, for tests and benches) and
/// [`crate::QuicTransport`]. Both hand out an [`Inbox`] for receiving, so a node is written once
/// against `T: Transport<M>` plus an `Inbox<M>` and runs on either.
///
/// Guarantees of every implementation:
/// - `send` never blocks and never awaits: it enqueues onto a bounded per-peer queue, or returns
///   [`NetError::QueueFull`].
/// - Messages from one sender to one receiver that are delivered are delivered in sending order.
/// - Delivery is not guaranteed: messages queued or in flight when a connection is lost may be
///   lost. The protocol above retransmits.
/// - A message that reached the receiver's [`Inbox`] is never lost by the transport.
pub trait Transport<M>: Send + Sync {
    /// This endpoint's node id.
    fn local_id(&self) -> NodeId;

    /// Enqueues `msg` for `to`.
    ///
    /// # Errors
    /// [`NetError::QueueFull`] when the queue to `to` is full, [`NetError::UnknownPeer`] when `to`
    /// is not a peer, [`NetError::Closed`] after shutdown.
    fn send(&self, to: NodeId, msg: M) -> Result<(), NetError>;
}

impl<M, T: Transport<M> + ?Sized> Transport<M> for Arc<T> {
    fn local_id(&self) -> NodeId {
        (**self).local_id()
    }

    fn send(&self, to: NodeId, msg: M) -> Result<(), NetError> {
        (**self).send(to, msg)
    }
}

impl<M, T: Transport<M> + ?Sized> Transport<M> for &T {
    fn local_id(&self) -> NodeId {
        (**self).local_id()
    }

    fn send(&self, to: NodeId, msg: M) -> Result<(), NetError> {
        (**self).send(to, msg)
    }
}
