//! Transports for Hermes: how replicas exchange protocol messages and how clients reach a node.
//!
//! - [`Transport`]: send a message to a peer without blocking (bounded per-peer queues, typed
//!   [`NetError::QueueFull`]); receive [`PeerBatch`]es from an [`Inbox`]. Generic over the message
//!   type — this crate knows nothing about the protocol.
//! - [`MemTransport`] / [`MemNetwork`]: in-process, with the same queueing and batching
//!   semantics, for tests and benches.
//! - [`QuicTransport`]: QUIC (quinn) with mutual TLS (rustls, ring) from a cluster CA,
//!   one long-lived connection per peer pair, batched length-prefixed postcard frames
//!   ([`frame`]), reconnect with back-off, and the client protocol ([`Client`],
//!   [`ClientRequest`]) under its own ALPN: over QUIC on the same endpoint, and over TLS on the
//!   TCP port of the same number (the clients' default, see [`ClientTransport`]).
//! - [`certs`]: `hermes gen-certs` — a cluster CA and per-node / per-client certificates.
//!
//! ```
//! use hermes_core::NodeId;
//! use hermes_net::{MemConfig, MemNetwork, Transport};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), hermes_net::NetError> {
//! let network = MemNetwork::<String>::new(MemConfig::default())?;
//! let (a, _a_inbox) = network.endpoint(NodeId(1))?;
//! let (_b, mut b_inbox) = network.endpoint(NodeId(2))?;
//!
//! a.send(NodeId(2), "INV".to_string())?;
//! a.send(NodeId(2), "VAL".to_string())?;
//!
//! let mut received = Vec::new();
//! while received.len() < 2 {
//!     let batch = b_inbox.recv().await.expect("network alive");
//!     assert_eq!(batch.from, NodeId(1));
//!     received.extend(batch.messages);
//! }
//! assert_eq!(received, ["INV", "VAL"]);
//! # Ok(())
//! # }
//! ```
//!
//! Swapping in QUIC changes only construction: [`QuicTransport::bind`] returns a transport and
//! an [`Inbox`] of the same types.
//!
//! ```no_run
//! use std::net::SocketAddr;
//!
//! use hermes_core::NodeId;
//! use hermes_net::{Identity, QuicConfig, QuicTransport, TlsConfig, Transport};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), hermes_net::NetError> {
//! // Certificates written by `hermes gen-certs --out certs --nodes 1,2` (or `gen_certs`).
//! let tls = TlsConfig::from_dir("certs".as_ref(), &Identity::Node(NodeId(1)))?;
//! let listen: SocketAddr = "127.0.0.1:7001".parse().expect("an address");
//! let mut config = QuicConfig::new(NodeId(1), listen, tls);
//! config.peers.insert(NodeId(2), "127.0.0.1:7002".parse().expect("an address"));
//! let (transport, mut inbox) = QuicTransport::<String>::bind(config)?;
//! transport.send(NodeId(2), "INV".to_string())?;
//! if let Some(batch) = inbox.recv().await {
//!     println!("{} sent {:?}", batch.from, batch.messages);
//! }
//! transport.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

pub mod certs;
mod error;
pub mod frame;
mod mem;
mod protocol;
mod quic;
mod stats;
pub mod tls;
mod transport;

pub use certs::{gen_certs, Identity, TlsConfig};
pub use error::{FrameError, NetError, RefuseReason, ServerError};
pub use mem::{MemConfig, MemNetwork, MemTransport};
pub use protocol::{RequestEnvelope, ResponseEnvelope};
pub use quic::{
    free_loopback_addrs, BoundWithClients, Client, ClientOptions, ClientRequest, ClientTransport,
    QuicConfig, QuicOptions, QuicTransport, Requests, Responder, Wire,
};
pub use stats::NetStats;
pub use tls::{CLIENT_ALPN, PEER_ALPN};
pub use transport::{Inbox, PeerBatch, Transport};
