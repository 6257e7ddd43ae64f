//! The Hermes node runtime: [`ClusterNode`] drives the sans-IO core (`hermes-core`) from one
//! tokio task and carries out its actions over a transport (`hermes-net`: QUIC with mutual TLS
//! between nodes, or in memory) and a data directory (`hermes-store`).
//!
//! - [`ClusterNode::start`] runs a node from a [`NodeConfig`] (TOML, see [`config`]);
//!   [`ClusterNode::start_with_transport`] runs one over any [`hermes_net::Transport`].
//! - The API: [`ClusterNode::write`], [`ClusterNode::read`], [`ClusterNode::delete`],
//!   [`ClusterNode::cas`], [`ClusterNode::status`], [`ClusterNode::shutdown`].
//! - [`RemoteClient`] talks to a node from another process, over TLS on TCP (the default) or
//!   QUIC (what `hermes put` uses). It offers the same requests as [`ClusterNode`]: both
//!   implement [`ClientApi`].
//! - Two error types: a request answers a [`RequestError`] (`NotResponsible`, `ValueNotFound`,
//!   `Timeout`, ...: what travels on the wire and what clients match on); starting, running or
//!   stopping a node fails with a [`NodeError`] (configuration, store, files and sockets).
//! - [`LocalCluster`] writes the certificates and configuration files of a cluster on 127.0.0.1
//!   (what `hermes dev` and the process tests use).
//! - Reads of Valid keys under a valid lease are answered on the caller's task without waiting
//!   for the driver (the read fast path).
//!
//! Three nodes in one process over the in-memory transport:
//!
//! ```
//! use hermes_core::{Config, Message, NodeId};
//! use hermes_net::{MemConfig, MemNetwork};
//! use hermes_node::ClusterNode;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let network = MemNetwork::<Message>::new(MemConfig::default())?;
//! let ids = [NodeId(1), NodeId(2), NodeId(3)];
//! let mut nodes = Vec::new();
//! for id in ids {
//!     let (transport, inbox) = network.endpoint(id)?;
//!     nodes.push(ClusterNode::start_with_transport(Config::for_node(id), &ids, transport, inbox)?);
//! }
//! for node in &nodes {
//!     node.wait_active(10_000).await?;
//! }
//! nodes[0].write("greeting", "hello").await?;
//! assert_eq!(nodes[2].read("greeting").await?, "hello");
//! for node in &nodes {
//!     node.shutdown().await?;
//! }
//! # Ok(())
//! # }
//! ```
//!
//! From another process, against a running cluster (`hermes dev` writes `client.toml`):
//!
//! ```no_run
//! use hermes_node::{ClientConfig, RemoteClient};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ClientConfig::load("hermes-dev/client.toml".as_ref())?;
//! let tls = config.tls.load()?;
//! let client = RemoteClient::connect_any(&config, &tls, None).await?;
//! client.write("greeting", "hello").await?;
//! assert_eq!(client.read("greeting").await?, "hello");
//! client.close();
//! # Ok(())
//! # }
//! ```
#![warn(missing_docs)]

mod api;
mod client;
pub mod config;
mod data_dir;
mod driver;
mod error;
mod local_cluster;
mod node;
mod persist;
mod status;
mod wire;

pub use api::ClientApi;
pub use client::RemoteClient;
pub use config::{ClientConfig, NodeConfig, PeerConfig, TlsPaths};
pub use error::{NodeError, RequestError};
pub use hermes_core::NodeState;
pub use local_cluster::LocalCluster;
pub use node::ClusterNode;
pub use status::{NodeCounters, PeerStatus, Status};
pub use wire::{ClientAnswer, ClientCall};
