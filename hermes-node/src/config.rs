//! Node and client configuration, read from TOML and validated before anything starts.
//!
//! A node file names the node, its address, its peers, its data directory, its durability
//! mode and its certificates; optional tables tune the protocol (`[protocol]`), the QUIC
//! transport (`[network]`) and the runtime (`[runtime]`). Durations end in `_ms`. Unknown fields
//! and invalid values are refused with a message that names the file and the field.
//!
//! ```toml
//! node_id = 1
//! listen = "127.0.0.1:7001"
//! data_dir = "node1"
//! durability = "memory"
//!
//! [tls]
//! ca = "certs/ca.pem"
//! cert = "certs/node-1.pem"
//! key = "certs/node-1.key"
//!
//! [[peers]]
//! id = 2
//! addr = "127.0.0.1:7002"
//!
//! [protocol]
//! lease_ms = 1000
//! ```
//!
//! Relative paths are resolved against the directory of the file they are written in.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hermes_core::NodeId;
use hermes_net::{ClientOptions, ClientTransport, QuicConfig, TlsConfig};
use hermes_store::Durability;
use serde::{Deserialize, Serialize};

use crate::NodeError;

/// Paths of the PEM files of one node or client: the cluster CA, the own certificate and key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsPaths {
    /// The cluster CA certificate (`ca.pem`).
    pub ca: PathBuf,
    /// The own certificate chain.
    pub cert: PathBuf,
    /// The own private key.
    pub key: PathBuf,
}

impl TlsPaths {
    /// Loads the three files.
    ///
    /// # Errors
    /// [`NodeError::Config`] naming the file that cannot be read or parsed.
    pub fn load(&self) -> Result<TlsConfig, NodeError> {
        TlsConfig::load(&self.ca, &self.cert, &self.key)
            .map_err(|err| NodeError::Config(format!("tls: {err}")))
    }

    fn resolve(&mut self, base: &Path) {
        for path in [&mut self.ca, &mut self.cert, &mut self.key] {
            *path = resolve(base, path);
        }
    }
}

/// Another node of the cluster.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PeerConfig {
    /// Its node id.
    pub id: NodeId,
    /// Its UDP address.
    pub addr: SocketAddr,
}

/// Timeouts and limits of the replication protocol and membership (see [`hermes_core::Config`],
/// whose fields these are, without the node id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProtocolConfig {
    /// See [`hermes_core::Config::message_loss_timeout_ms`].
    pub message_loss_timeout_ms: u64,
    /// See [`hermes_core::Config::request_timeout_ms`].
    pub request_timeout_ms: u64,
    /// See [`hermes_core::Config::key_bytes_max`].
    pub key_bytes_max: usize,
    /// See [`hermes_core::Config::value_bytes_max`].
    pub value_bytes_max: usize,
    /// See [`hermes_core::Config::requests_per_key_max`].
    pub requests_per_key_max: usize,
    /// See [`hermes_core::Config::requests_max`].
    pub requests_max: usize,
    /// See [`hermes_core::Config::heartbeat_interval_ms`].
    pub heartbeat_interval_ms: u64,
    /// See [`hermes_core::Config::lease_ms`].
    pub lease_ms: u64,
    /// See [`hermes_core::Config::suspicion_timeout_ms`].
    pub suspicion_timeout_ms: u64,
    /// See [`hermes_core::Config::clock_drift_margin_ms`].
    pub clock_drift_margin_ms: u64,
    /// See [`hermes_core::Config::transfer_chunk_keys_max`].
    pub transfer_chunk_keys_max: usize,
    /// See [`hermes_core::Config::startup_grace_ms`].
    pub startup_grace_ms: u64,
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        let core = hermes_core::Config::default();
        ProtocolConfig {
            message_loss_timeout_ms: core.message_loss_timeout_ms,
            request_timeout_ms: core.request_timeout_ms,
            key_bytes_max: core.key_bytes_max,
            value_bytes_max: core.value_bytes_max,
            requests_per_key_max: core.requests_per_key_max,
            requests_max: core.requests_max,
            heartbeat_interval_ms: core.heartbeat_interval_ms,
            lease_ms: core.lease_ms,
            suspicion_timeout_ms: core.suspicion_timeout_ms,
            clock_drift_margin_ms: core.clock_drift_margin_ms,
            transfer_chunk_keys_max: core.transfer_chunk_keys_max,
            // Processes started together by hand or by `hermes dev` need a moment to connect.
            startup_grace_ms: STARTUP_GRACE_MS_DEFAULT,
        }
    }
}

impl ProtocolConfig {
    /// The core configuration of node `node_id`.
    pub fn to_core(&self, node_id: NodeId) -> hermes_core::Config {
        hermes_core::Config {
            node_id,
            message_loss_timeout_ms: self.message_loss_timeout_ms,
            request_timeout_ms: self.request_timeout_ms,
            key_bytes_max: self.key_bytes_max,
            value_bytes_max: self.value_bytes_max,
            requests_per_key_max: self.requests_per_key_max,
            requests_max: self.requests_max,
            heartbeat_interval_ms: self.heartbeat_interval_ms,
            lease_ms: self.lease_ms,
            suspicion_timeout_ms: self.suspicion_timeout_ms,
            clock_drift_margin_ms: self.clock_drift_margin_ms,
            transfer_chunk_keys_max: self.transfer_chunk_keys_max,
            startup_grace_ms: self.startup_grace_ms,
            ..hermes_core::Config::default()
        }
    }
}

/// Limits of the QUIC transport (see [`hermes_net::QuicConfig`], whose fields these are).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Capacity of each per-peer send queue, in messages.
    pub queue_len_max: usize,
    /// Capacity of the inbox from all peers, in batches.
    pub inbox_batches_max: usize,
    /// Largest frame body, in bytes.
    pub frame_bytes_max: usize,
    /// Most messages per frame.
    pub batch_messages_max: usize,
    /// Interval of QUIC keep-alives.
    pub keep_alive_ms: u64,
    /// A connection silent for this long is closed.
    pub idle_timeout_ms: u64,
    /// Time allowed for a handshake and the peer's hello.
    pub handshake_timeout_ms: u64,
    /// First delay before redialing a lost peer.
    pub reconnect_backoff_min_ms: u64,
    /// Largest delay between redials.
    pub reconnect_backoff_max_ms: u64,
    /// UDP socket buffers to ask the kernel for (0: system default).
    pub socket_buffer_bytes: usize,
    /// Client requests queued at the node before new ones are refused as overloaded.
    pub client_queue_max: usize,
    /// Most unanswered requests per client connection.
    pub client_inflight_max: usize,
    /// Most client connections served at once; more are refused.
    pub client_connections_max: usize,
    /// Also serve clients over TLS on TCP, on the TCP port with the number of `listen`'s port.
    pub client_tcp: bool,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        let quic = QuicConfig::new(
            NodeId(0),
            SocketAddr::from(([127, 0, 0, 1], 0)),
            empty_tls(),
        );
        NetworkConfig {
            queue_len_max: quic.queue_len_max,
            inbox_batches_max: quic.inbox_batches_max,
            frame_bytes_max: FRAME_BYTES_DEFAULT,
            batch_messages_max: quic.batch_messages_max,
            keep_alive_ms: quic.keep_alive_ms,
            idle_timeout_ms: quic.idle_timeout_ms,
            handshake_timeout_ms: quic.handshake_timeout_ms,
            reconnect_backoff_min_ms: quic.reconnect_backoff_min_ms,
            reconnect_backoff_max_ms: quic.reconnect_backoff_max_ms,
            socket_buffer_bytes: quic.socket_buffer_bytes,
            client_queue_max: quic.client_queue_max,
            client_inflight_max: quic.client_inflight_max,
            client_connections_max: quic.client_connections_max,
            client_tcp: quic.client_tcp,
        }
    }
}

/// How long a started node waits before suspecting peers it has not heard from yet.
const STARTUP_GRACE_MS_DEFAULT: u64 = 2_000;

/// Frames of 4 MiB carry the largest default value (1 MiB) with room to spare.
const FRAME_BYTES_DEFAULT: usize = 4 << 20;

/// Room for the key, the timestamp and the framing around a value in one frame.
const FRAME_OVERHEAD_BYTES: usize = 4096;

fn empty_tls() -> TlsConfig {
    TlsConfig::empty()
}

/// Bounds of the runtime around the core.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Requests from the in-process API queued for the driver before new ones get
    /// [`NodeError::Overloaded`].
    pub commands_max: usize,
    /// Most inputs (messages, requests) the driver handles under one lock of the core.
    pub drain_inputs_max: usize,
    /// How long [`crate::ClusterNode::shutdown`] waits for pending requests and the store.
    pub shutdown_timeout_ms: u64,
    /// Threads of the Tokio runtime that `hermes start` builds for the node (at most
    /// [`WORKER_THREADS_LIMIT`]). 1, the default, runs the node on one thread (a current-thread
    /// runtime): tasks hand work to each other without waking other threads, which is fastest
    /// when nodes share cores. More threads use a multi-threaded runtime. Not used when a
    /// program starts [`crate::ClusterNode`] on its own runtime.
    pub worker_threads: usize,
}

/// Most runtime threads a node may ask for.
pub const WORKER_THREADS_LIMIT: usize = 256;

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            commands_max: 4096,
            drain_inputs_max: 256,
            shutdown_timeout_ms: 5_000,
            worker_threads: 1,
        }
    }
}

impl RuntimeConfig {
    /// A Tokio runtime builder for [`RuntimeConfig::worker_threads`] threads (current-thread for
    /// one), with I/O and time enabled.
    pub fn runtime_builder(&self) -> tokio::runtime::Builder {
        runtime_builder(self.worker_threads)
    }
}

/// A Tokio runtime builder with I/O and time enabled: a current-thread runtime for one thread,
/// a multi-threaded one with `threads` workers otherwise.
pub fn runtime_builder(threads: usize) -> tokio::runtime::Builder {
    let mut builder = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut builder = tokio::runtime::Builder::new_multi_thread();
        builder.worker_threads(threads);
        builder
    };
    builder.enable_all();
    builder
}

/// The configuration of one node (`hermes start --config node.toml`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's id; its certificate must name it.
    pub node_id: NodeId,
    /// The UDP address to listen on for peers and clients (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The other nodes of the cluster. At the first start, the initial view is these nodes
    /// plus this one.
    #[serde(default)]
    pub peers: Vec<PeerConfig>,
    /// Where this node keeps its membership state (always) and its records (in `async` and
    /// `sync` mode). Created if missing.
    pub data_dir: PathBuf,
    /// `memory` (the default), `async` or `sync`.
    #[serde(default)]
    pub durability: Durability,
    /// Certificates and key.
    pub tls: TlsPaths,
    /// Protocol timeouts and limits.
    #[serde(default)]
    pub protocol: ProtocolConfig,
    /// Transport limits.
    #[serde(default)]
    pub network: NetworkConfig,
    /// Runtime bounds.
    #[serde(default)]
    pub runtime: RuntimeConfig,
}

impl NodeConfig {
    /// Reads and validates a node configuration file; relative paths in it are resolved against
    /// its directory.
    ///
    /// # Errors
    /// [`NodeError::Config`] naming the file and, where it can, the field.
    pub fn load(path: &Path) -> Result<Self, NodeError> {
        let mut config: NodeConfig = read_toml(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.data_dir = resolve(base, &config.data_dir);
        config.tls.resolve(base);
        config
            .validate()
            .map_err(|err| NodeError::Config(format!("{}: {err}", path.display())))?;
        Ok(config)
    }

    /// Parses a configuration from TOML text (paths stay as written).
    ///
    /// # Errors
    /// [`NodeError::Config`] naming the field.
    pub fn from_toml(text: &str) -> Result<Self, NodeError> {
        let config: NodeConfig =
            toml::from_str(text).map_err(|err| NodeError::Config(one_line(&err.to_string())))?;
        config.validate().map_err(NodeError::Config)?;
        Ok(config)
    }

    /// The configuration as TOML text.
    ///
    /// # Errors
    /// [`NodeError::Config`] if it cannot be written as TOML.
    pub fn to_toml(&self) -> Result<String, NodeError> {
        toml::to_string(self).map_err(|err| NodeError::Config(err.to_string()))
    }

    /// Checks every field and the relations between them.
    ///
    /// # Errors
    /// A one-line message naming the offending field.
    pub fn validate(&self) -> Result<(), String> {
        if self.node_id.0 == 0 {
            return Err("node_id: must be at least 1".into());
        }
        let mut seen = BTreeMap::new();
        for peer in &self.peers {
            if peer.id.0 == 0 {
                return Err("peers: node ids start at 1".into());
            }
            if seen.insert(peer.id, peer.addr).is_some() {
                return Err(format!("peers: node {} is listed twice", peer.id.0));
            }
            if peer.id == self.node_id {
                return Err(format!(
                    "peers: node {} is this node itself (node_id)",
                    peer.id.0
                ));
            }
        }
        self.core_config().validate().map_err(|err| match err {
            hermes_core::CoreError::InvalidConfig { field, reason } => {
                format!("protocol.{field}: {reason}")
            }
            other => other.to_string(),
        })?;
        self.quic_config(empty_tls())
            .validate()
            .map_err(|err| format!("network: {err}"))?;
        let largest = self.protocol.value_bytes_max + self.protocol.key_bytes_max;
        if largest + FRAME_OVERHEAD_BYTES > self.network.frame_bytes_max {
            return Err(format!(
                "network.frame_bytes_max: {} cannot carry a value of protocol.value_bytes_max ({}) \
                 with its key; raise it to at least {}",
                self.network.frame_bytes_max,
                self.protocol.value_bytes_max,
                largest + FRAME_OVERHEAD_BYTES
            ));
        }
        for (field, value) in [
            ("runtime.commands_max", self.runtime.commands_max),
            ("runtime.drain_inputs_max", self.runtime.drain_inputs_max),
        ] {
            if value == 0 {
                return Err(format!("{field}: must be at least 1"));
            }
        }
        if !(1..=WORKER_THREADS_LIMIT).contains(&self.runtime.worker_threads) {
            return Err(format!(
                "runtime.worker_threads: must be in 1..={WORKER_THREADS_LIMIT}"
            ));
        }
        Ok(())
    }

    /// The core configuration.
    pub fn core_config(&self) -> hermes_core::Config {
        hermes_core::Config {
            durability: self.durability,
            ..self.protocol.to_core(self.node_id)
        }
    }

    /// The transport configuration with the given TLS material.
    pub fn quic_config(&self, tls: TlsConfig) -> QuicConfig {
        let net = &self.network;
        let mut quic = QuicConfig::new(self.node_id, self.listen, tls);
        quic.peers = self.peers.iter().map(|p| (p.id, p.addr)).collect();
        quic.queue_len_max = net.queue_len_max;
        quic.inbox_batches_max = net.inbox_batches_max;
        quic.frame_bytes_max = net.frame_bytes_max;
        quic.batch_messages_max = net.batch_messages_max;
        quic.keep_alive_ms = net.keep_alive_ms;
        quic.idle_timeout_ms = net.idle_timeout_ms;
        quic.handshake_timeout_ms = net.handshake_timeout_ms;
        quic.reconnect_backoff_min_ms = net.reconnect_backoff_min_ms;
        quic.reconnect_backoff_max_ms = net.reconnect_backoff_max_ms;
        quic.socket_buffer_bytes = net.socket_buffer_bytes;
        quic.client_queue_max = net.client_queue_max;
        quic.client_inflight_max = net.client_inflight_max;
        quic.client_connections_max = net.client_connections_max;
        quic.client_tcp = net.client_tcp;
        quic
    }

    /// Every node of the configured cluster (the peers and this node), in id order.
    pub fn cluster(&self) -> Vec<NodeId> {
        let mut ids: Vec<NodeId> = self.peers.iter().map(|p| p.id).collect();
        ids.push(self.node_id);
        ids.sort();
        ids
    }
}

/// The configuration of a client (`hermes put`, `hermes bench`, [`crate::RemoteClient`]): the
/// nodes it may talk to and its certificate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// The nodes, by id.
    pub nodes: Vec<PeerConfig>,
    /// Certificates and key of this client.
    pub tls: TlsPaths,
    /// How long a client waits for one answer before giving up (outcome unknown for updates).
    #[serde(default = "default_client_timeout_ms")]
    pub request_timeout_ms: u64,
    /// How long a client waits for a connection.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Largest frame body, in bytes; must be at least the nodes' `network.frame_bytes_max` to
    /// send values that large.
    #[serde(default = "default_frame_bytes_max")]
    pub frame_bytes_max: usize,
    /// `tcp` (TLS over TCP, the default) or `quic`: how to reach the nodes, at the same addresses.
    #[serde(default)]
    pub transport: ClientTransport,
}

fn default_client_timeout_ms() -> u64 {
    10_000
}

fn default_connect_timeout_ms() -> u64 {
    3_000
}

fn default_frame_bytes_max() -> usize {
    FRAME_BYTES_DEFAULT
}

impl ClientConfig {
    /// Reads and validates a client configuration file; relative paths in it are resolved
    /// against its directory.
    ///
    /// # Errors
    /// [`NodeError::Config`] naming the file and, where it can, the field.
    pub fn load(path: &Path) -> Result<Self, NodeError> {
        let mut config: ClientConfig = read_toml(path)?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.tls.resolve(base);
        config
            .validate()
            .map_err(|err| NodeError::Config(format!("{}: {err}", path.display())))?;
        Ok(config)
    }

    /// The configuration as TOML text.
    ///
    /// # Errors
    /// [`NodeError::Config`] if it cannot be written as TOML.
    pub fn to_toml(&self) -> Result<String, NodeError> {
        toml::to_string(self).map_err(|err| NodeError::Config(err.to_string()))
    }

    /// Checks the fields.
    ///
    /// # Errors
    /// A one-line message naming the offending field.
    pub fn validate(&self) -> Result<(), String> {
        if self.nodes.is_empty() {
            return Err("nodes: at least one node is needed".into());
        }
        let mut seen = BTreeMap::new();
        for node in &self.nodes {
            if seen.insert(node.id, node.addr).is_some() {
                return Err(format!("nodes: node {} is listed twice", node.id.0));
            }
        }
        if self.request_timeout_ms == 0 {
            return Err("request_timeout_ms: must be greater than zero".into());
        }
        if self.connect_timeout_ms == 0 {
            return Err("connect_timeout_ms: must be greater than zero".into());
        }
        Ok(())
    }

    /// The address of node `id`, if the configuration lists it.
    pub fn addr_of(&self, id: NodeId) -> Option<SocketAddr> {
        self.nodes.iter().find(|n| n.id == id).map(|n| n.addr)
    }

    /// The options for [`hermes_net::Client`].
    pub fn client_options(&self) -> ClientOptions {
        ClientOptions {
            frame_bytes_max: self.frame_bytes_max,
            connect_timeout_ms: self.connect_timeout_ms,
            transport: self.transport,
            ..ClientOptions::default()
        }
    }
}

fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, NodeError> {
    let text = std::fs::read_to_string(path)
        .map_err(|err| NodeError::Config(format!("{}: cannot read: {err}", path.display())))?;
    toml::from_str(&text).map_err(|err| {
        NodeError::Config(format!(
            "{}: {}",
            path.display(),
            one_line(&err.to_string())
        ))
    })
}

/// TOML errors span several lines (a snippet with a caret); keep the location and the message.
fn one_line(message: &str) -> String {
    let lines: Vec<&str> = message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let location = lines.first().copied().unwrap_or_default();
    let reason = lines.last().copied().unwrap_or_default();
    if lines.len() <= 1 {
        return location.to_string();
    }
    format!("{location}: {reason}")
}

fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        base.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
node_id = 1
listen = "127.0.0.1:7001"
data_dir = "n1"
[tls]
ca = "ca.pem"
cert = "node-1.pem"
key = "node-1.key"
[[peers]]
id = 2
addr = "127.0.0.1:7002"
"#;

    #[test]
    fn minimal_config_takes_defaults() {
        let config = NodeConfig::from_toml(MINIMAL).unwrap();
        assert_eq!(config.durability, Durability::Memory);
        assert_eq!(config.cluster(), vec![NodeId(1), NodeId(2)]);
        assert_eq!(config.protocol, ProtocolConfig::default());
        let again = NodeConfig::from_toml(&config.to_toml().unwrap()).unwrap();
        assert_eq!(again, config);
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let text = format!("{MINIMAL}\n[protocol]\nlease_millis = 5\n");
        let err = NodeConfig::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains("lease_millis"), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }

    #[test]
    fn invalid_values_name_the_field() {
        let text = format!("{MINIMAL}\n[protocol]\nheartbeat_interval_ms = 5000\n");
        let err = NodeConfig::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains("protocol.heartbeat_interval_ms"), "{err}");
        let text = MINIMAL.replace("id = 2", "id = 1");
        let err = NodeConfig::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains("peers"), "{err}");
        let text = MINIMAL.replace("durability", "x").replace(
            "data_dir = \"n1\"",
            "data_dir = \"n1\"\ndurability = \"fast\"",
        );
        let err = NodeConfig::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains("durability") || err.contains("fast"), "{err}");
    }
}
