//! The QUIC transport: peers and QUIC clients on one UDP endpoint, told apart by ALPN, and
//! clients over TLS on the TCP port of the same number (`tcp`, the clients' default).
//!
//! # Connections
//!
//! Between two nodes there is one long-lived connection. **The node with the lower id dials; the
//! higher id accepts.** The dialer reconnects after a loss with exponential back-off
//! (`reconnect_backoff_min_ms` doubling up to `reconnect_backoff_max_ms`); the acceptor waits for
//! it. If a peer dials again while an older connection from it is still open (it restarted), the
//! newer connection replaces and closes the older one. Keep-alives (`keep_alive_ms`, below
//! `idle_timeout_ms`) keep idle connections open and detect dead ones.
//!
//! Each side sends on its own unidirectional stream: a hello frame naming its node id, then batch
//! frames (see [`crate::frame`]). A per-peer sender task drains everything queued for the peer
//! into one frame (up to `batch_messages_max` messages and `frame_bytes_max` bytes), so under load
//! many messages share one write and one datagram.
//!
//! # Identity
//!
//! The dialer asks for server name `node-<id>.hermes`, so rustls refuses a server whose
//! certificate does not chain to the cluster CA or does not name the dialed node. The acceptor
//! requires a client certificate chaining to the cluster CA during the handshake, then checks that
//! the certificate names the node id claimed in the hello, that the id is a configured peer, and
//! that it is lower than its own. Anything else is refused: logged, counted, and only that
//! connection is closed.
//!
//! # Backpressure
//!
//! [`Transport::send`] enqueues onto a bounded per-peer queue. When the receiving application
//! stops draining its [`Inbox`], the receiver stops reading, QUIC flow control stops the sender,
//! the queue fills and `send` returns [`NetError::QueueFull`] — for that peer only. Messages still
//! queued while a peer is unreachable are sent after it reconnects; a frame in flight when a
//! connection breaks may be lost.

mod client;
mod link;
mod options;
mod peer;
mod server;
mod socket;
mod tasks;
mod tcp;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hermes_core::NodeId;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, watch, Semaphore};

pub use client::Client;
pub use options::{ClientOptions, ClientTransport, QuicOptions};
pub use server::{ClientRequest, Requests, Responder};
pub use socket::free_loopback_addrs;

use crate::stats::{ErrorLog, NetCounters};
use crate::tls::{self, CLIENT_ALPN, PEER_ALPN};
use crate::{Inbox, NetError, NetStats, PeerBatch, TlsConfig, Transport};
use tasks::Tasks;

/// Types that can travel in frames: serializable, deserializable, sendable between tasks.
///
/// Implemented for every type with those properties.
pub trait Wire: Serialize + DeserializeOwned + Send + 'static {}

impl<T: Serialize + DeserializeOwned + Send + 'static> Wire for T {}

/// QUIC application close codes.
pub(crate) mod close {
    use quinn::VarInt;
    /// Orderly shutdown.
    pub(crate) const SHUTDOWN: VarInt = VarInt::from_u32(0);
    /// The remote side was refused as a peer.
    pub(crate) const REFUSED: VarInt = VarInt::from_u32(1);
    /// The remote side sent a bad frame.
    pub(crate) const BAD_FRAME: VarInt = VarInt::from_u32(2);
    /// A newer connection from the same peer replaced this one.
    pub(crate) const REPLACED: VarInt = VarInt::from_u32(3);
    /// A stream failed; both sides start over on a new connection.
    pub(crate) const STREAM_FAILED: VarInt = VarInt::from_u32(4);
    /// A client connection was idle for `client_idle_timeout_ms`.
    pub(crate) const IDLE: VarInt = VarInt::from_u32(5);
}

/// What [`QuicTransport::bind_with_clients`] returns: the transport, its peer inbox, and the
/// channel of client requests.
pub type BoundWithClients<M, Req, Resp> = (QuicTransport<M>, Inbox<M>, Requests<Req, Resp>);

/// Configuration of a [`QuicTransport`]: who this node is, where it listens, its peers and
/// certificates, and its [`QuicOptions`].
#[derive(Debug, Clone)]
pub struct QuicConfig {
    /// This node's id; its certificate must name it (`node-<id>.hermes`).
    pub node_id: NodeId,
    /// The address to listen on: peers and QUIC clients on its UDP port and, with
    /// [`QuicOptions::client_tcp`](crate::QuicOptions::client_tcp), TLS clients on the TCP port of the same number; port 0 picks a
    /// free port (see [`QuicTransport::local_addr`]).
    pub listen: SocketAddr,
    /// The other nodes and their addresses. An entry for `node_id` itself is ignored.
    pub peers: BTreeMap<NodeId, SocketAddr>,
    /// Certificates and key.
    pub tls: TlsConfig,
    /// Limits, timeouts and switches.
    pub options: QuicOptions,
}

impl QuicConfig {
    /// A configuration with default options and no peers.
    pub fn new(node_id: NodeId, listen: SocketAddr, tls: TlsConfig) -> Self {
        QuicConfig {
            node_id,
            listen,
            peers: BTreeMap::new(),
            tls,
            options: QuicOptions::default(),
        }
    }
}

/// Numeric limits shared by the tasks of a transport.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub(crate) queue_len_max: usize,
    pub(crate) frame_bytes_max: usize,
    pub(crate) batch_messages_max: usize,
    pub(crate) handshake_timeout: Duration,
    pub(crate) backoff_min: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) client_inflight_max: usize,
    pub(crate) client_idle_timeout: Duration,
}

/// State shared by all tasks of a transport that does not depend on the message type.
pub(crate) struct Common {
    pub(crate) limits: Limits,
    pub(crate) counters: NetCounters,
    pub(crate) errors: ErrorLog,
    pub(crate) tasks: Tasks,
    /// One permit per client connection being served.
    pub(crate) client_slots: Arc<Semaphore>,
}

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Serves one client connection (type-erased over the request and response types).
pub(crate) type ClientService =
    Arc<dyn Fn(link::ClientConn, Arc<Common>) -> BoxFuture + Send + Sync>;

/// One configured peer.
pub(crate) struct PeerSlot<M> {
    pub(crate) addr: SocketAddr,
    pub(crate) queue: mpsc::Sender<M>,
    /// The current connection to the peer, if any.
    pub(crate) conn: watch::Sender<Option<quinn::Connection>>,
}

/// The state of one QUIC endpoint that the [`QuicTransport`] handle shares with its tasks: the
/// endpoint, the peers and their queues, the inbox and the client service.
pub(crate) struct EndpointState<M> {
    pub(crate) id: NodeId,
    pub(crate) endpoint: quinn::Endpoint,
    pub(crate) peer_dial: quinn::ClientConfig,
    pub(crate) peers: Mutex<HashMap<NodeId, PeerSlot<M>>>,
    pub(crate) inbox: mpsc::Sender<PeerBatch<M>>,
    pub(crate) clients: Option<ClientService>,
    pub(crate) common: Arc<Common>,
}

impl<M> EndpointState<M> {
    pub(crate) fn peers(&self) -> MutexGuard<'_, HashMap<NodeId, PeerSlot<M>>> {
        self.peers.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A [`Transport`] over QUIC with mutual TLS; optionally also serves the client protocol.
///
/// Create it with [`QuicTransport::bind`] (peers only) or [`QuicTransport::bind_with_clients`]
/// within a Tokio runtime (a `current_thread` runtime is fine and fastest). Dropping it closes the
/// endpoint and stops its tasks; [`QuicTransport::shutdown`] does the same and waits until they
/// have stopped.
pub struct QuicTransport<M> {
    shared: Arc<EndpointState<M>>,
}

impl<M: Wire> QuicTransport<M> {
    /// Binds the endpoint and starts connecting to the configured peers.
    ///
    /// # Errors
    /// [`NetError::Config`] for invalid limits or outside a Tokio runtime, [`NetError::Tls`] for
    /// unusable TLS material, [`NetError::Io`] if the address cannot be bound.
    pub fn bind(config: QuicConfig) -> Result<(Self, Inbox<M>), NetError> {
        Self::bind_inner(config, None)
    }

    /// Like [`QuicTransport::bind`], and also accepts clients (ALPN [`CLIENT_ALPN`]) whose
    /// requests arrive on the returned [`Requests`] channel: over QUIC on the endpoint, and with
    /// [`QuicOptions::client_tcp`] also over TLS on the TCP port of the same number.
    ///
    /// # Errors
    /// As [`QuicTransport::bind`]; [`NetError::Io`] also if the TCP port cannot be bound.
    pub fn bind_with_clients<Req, Resp>(
        config: QuicConfig,
    ) -> Result<BoundWithClients<M, Req, Resp>, NetError>
    where
        Req: DeserializeOwned + Send + 'static,
        Resp: Serialize + Send + 'static,
    {
        config.options.validate()?;
        let (tx, rx) = mpsc::channel(config.options.client_queue_max);
        let (transport, inbox) = Self::bind_inner(config, Some(server::service(tx)))?;
        Ok((transport, inbox, rx))
    }

    fn bind_inner(
        config: QuicConfig,
        clients: Option<ClientService>,
    ) -> Result<(Self, Inbox<M>), NetError> {
        config.options.validate()?;
        let options = &config.options;
        let runtime = Handle::try_current()
            .map_err(|_| NetError::Config("QuicTransport::bind needs a Tokio runtime".into()))?;
        let transport = Arc::new(tls::transport_config(
            options.keep_alive_ms,
            options.idle_timeout_ms,
        )?);
        let alpn: &[&[u8]] = if clients.is_some() {
            &[PEER_ALPN, CLIENT_ALPN]
        } else {
            &[PEER_ALPN]
        };
        let server = tls::quinn_server_config(&config.tls, alpn, Arc::clone(&transport))?;
        let peer_dial = tls::quinn_client_config_with(&config.tls, PEER_ALPN, transport)?;
        let endpoint = socket::endpoint(
            config.listen,
            options.socket_buffer_bytes,
            Some(server),
            socket::stable_endpoint_config(&config.tls),
        )?;
        let tcp_clients = match (&clients, options.client_tcp) {
            (Some(service), true) => {
                let bound = endpoint
                    .local_addr()
                    .map_err(|e| NetError::io("cannot read the local address", e))?;
                let listener = tcp::bind(bound)?;
                let tls = tls::rustls_server_config(&config.tls, &[CLIENT_ALPN])?;
                let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
                Some((listener, acceptor, Arc::clone(service)))
            }
            _ => None,
        };
        let (inbox_tx, inbox_rx) = mpsc::channel(options.inbox_batches_max);
        let limits = Limits {
            queue_len_max: options.queue_len_max,
            frame_bytes_max: options.frame_bytes_max,
            batch_messages_max: options.batch_messages_max,
            handshake_timeout: Duration::from_millis(options.handshake_timeout_ms),
            backoff_min: Duration::from_millis(options.reconnect_backoff_min_ms),
            backoff_max: Duration::from_millis(options.reconnect_backoff_max_ms),
            client_inflight_max: options.client_inflight_max,
            client_idle_timeout: Duration::from_millis(options.client_idle_timeout_ms),
        };
        let shared = Arc::new(EndpointState {
            id: config.node_id,
            endpoint,
            peer_dial,
            peers: Mutex::new(HashMap::new()),
            inbox: inbox_tx,
            clients,
            common: Arc::new(Common {
                limits,
                counters: NetCounters::default(),
                errors: ErrorLog::default(),
                tasks: Tasks::new(runtime),
                client_slots: Arc::new(Semaphore::new(options.client_connections_max)),
            }),
        });
        if let Some((listener, acceptor, service)) = tcp_clients {
            let common = Arc::clone(&shared.common);
            let accept =
                tcp::accept_loop(listener, acceptor, service, options.keep_alive_ms, common);
            shared.common.tasks.spawn(accept);
        }
        shared
            .common
            .tasks
            .spawn(peer::accept_loop(Arc::clone(&shared)));
        for (&id, &addr) in &config.peers {
            if id != config.node_id {
                peer::add_peer(&shared, id, addr);
            }
        }
        tracing::info!(node = %config.node_id, addr = ?shared.endpoint.local_addr().ok(), "QUIC transport bound");
        Ok((QuicTransport { shared }, inbox_rx))
    }

    /// Adds a peer, or changes the address of an existing one (used from the next dial on).
    ///
    /// # Errors
    /// [`NetError::Config`] if `id` is this node's own id.
    pub fn add_peer(&self, id: NodeId, addr: SocketAddr) -> Result<(), NetError> {
        if id == self.shared.id {
            return Err(NetError::Config(format!("{id} is this node itself")));
        }
        peer::add_peer(&self.shared, id, addr);
        Ok(())
    }
}

impl<M> QuicTransport<M> {
    /// The address the endpoint is bound to (with the real port if `listen` had port 0).
    ///
    /// # Errors
    /// [`NetError::Io`] if the socket cannot report it.
    pub fn local_addr(&self) -> Result<SocketAddr, NetError> {
        self.shared
            .endpoint
            .local_addr()
            .map_err(|e| NetError::io("cannot read the local address", e))
    }

    /// The configured peers, in id order.
    pub fn peers(&self) -> Vec<NodeId> {
        let mut peers: Vec<NodeId> = self.shared.peers().keys().copied().collect();
        peers.sort();
        peers
    }

    /// Whether a connection to `peer` is currently open.
    pub fn is_connected(&self, peer: NodeId) -> bool {
        self.shared.peers().get(&peer).is_some_and(|slot| {
            slot.conn
                .borrow()
                .as_ref()
                .is_some_and(|c| c.close_reason().is_none())
        })
    }

    /// A snapshot of the counters.
    pub fn stats(&self) -> NetStats {
        self.shared.common.counters.snapshot()
    }

    /// The most recent errors about remote sides (refusals, bad frames, failed handshakes, lost
    /// connections), oldest first; at most 64 are kept.
    pub fn recent_errors(&self) -> Vec<NetError> {
        self.shared.common.errors.recent()
    }

    /// Closes the endpoint and every connection, stops all tasks and waits until they have
    /// stopped and the connections have been closed cleanly.
    pub async fn shutdown(self) {
        self.shared.endpoint.close(close::SHUTDOWN, b"shutdown");
        if let Some(mut tasks) = self.shared.common.tasks.take() {
            while tasks.join_next().await.is_some() {}
        }
        self.shared.endpoint.wait_idle().await;
    }
}

impl<M> Drop for QuicTransport<M> {
    fn drop(&mut self) {
        self.shared.endpoint.close(close::SHUTDOWN, b"shutdown");
        drop(self.shared.common.tasks.take());
    }
}

impl<M: Wire> Transport<M> for QuicTransport<M> {
    fn local_id(&self) -> NodeId {
        self.shared.id
    }

    fn send(&self, to: NodeId, msg: M) -> Result<(), NetError> {
        let peers = self.shared.peers();
        let slot = peers.get(&to).ok_or(NetError::UnknownPeer { peer: to })?;
        slot.queue.try_send(msg).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => NetError::QueueFull { peer: to },
            mpsc::error::TrySendError::Closed(_) => NetError::Closed,
        })
    }
}
