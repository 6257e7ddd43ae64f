//! Node and client configuration, read from TOML and validated before anything starts.
//!
//! A node file names the node, its address, its peers, its data directory, its durability
//! mode and its certificates; optional tables tune the protocol (`[protocol]`: the core's
//! [`hermes_core::Config`], see [`ProtocolConfig`]), the QUIC transport (`[network]`:
//! [`hermes_net::QuicOptions`]) and the runtime (`[runtime]`: [`RuntimeConfig`]). Every default is
//! a `*_DEFAULT` constant beside its type. Durations end in `_ms`. Unknown fields and invalid
//! values are refused with a message that names the file and the field.
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
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};

use hermes_core::NodeId;
use hermes_net::frame::FRAME_BYTES_MAX_DEFAULT;
use hermes_net::{ClientOptions, ClientTransport, QuicConfig, QuicOptions, TlsConfig};
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
    /// Its address: peers reach it over QUIC on the UDP port, clients over TLS on the TCP port
    /// of the same number (or over QUIC on the UDP port).
    pub addr: SocketAddr,
}

/// The `[protocol]` table: the core's [`hermes_core::Config`] as it is, with a node's default for
/// `startup_grace_ms` ([`ProtocolConfig::STARTUP_GRACE_MS_DEFAULT`]) where the core's differs.
///
/// The table holds neither `node_id` nor `durability`: a node file names them once, at its top,
/// and [`NodeConfig::core_config`] puts them into the core configuration (the copies in here keep
/// the core's defaults and are not used).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ProtocolConfig(pub hermes_core::Config);

impl ProtocolConfig {
    /// Default `startup_grace_ms` of a node: 2 s. The processes of a cluster, started together
    /// by hand or by `hermes dev`, need a moment to connect to each other; without it the first
    /// ones up would suspect and remove the others. Replicas in one program (the simulator)
    /// start at once and keep the core's [`hermes_core::Config::STARTUP_GRACE_MS_DEFAULT`].
    pub const STARTUP_GRACE_MS_DEFAULT: u64 = 2_000;
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        ProtocolConfig(hermes_core::Config {
            startup_grace_ms: Self::STARTUP_GRACE_MS_DEFAULT,
            ..hermes_core::Config::default()
        })
    }
}

impl Deref for ProtocolConfig {
    type Target = hermes_core::Config;

    fn deref(&self) -> &hermes_core::Config {
        &self.0
    }
}

impl DerefMut for ProtocolConfig {
    fn deref_mut(&mut self) -> &mut hermes_core::Config {
        &mut self.0
    }
}

/// Room for the key, the timestamp and the framing around a value in one frame.
const FRAME_OVERHEAD_BYTES: usize = 4096;

// The default frame carries the largest default value with the largest default key.
const _: () = assert!(
    hermes_core::Config::VALUE_BYTES_MAX_DEFAULT
        + hermes_core::Config::KEY_BYTES_MAX_DEFAULT
        + FRAME_OVERHEAD_BYTES
        <= FRAME_BYTES_MAX_DEFAULT
);

/// Bounds of the runtime around the core.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RuntimeConfig {
    /// Requests from the in-process API queued for the driver before new ones get
    /// [`crate::RequestError::Overloaded`].
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
            commands_max: Self::COMMANDS_MAX_DEFAULT,
            drain_inputs_max: Self::DRAIN_INPUTS_MAX_DEFAULT,
            shutdown_timeout_ms: Self::SHUTDOWN_TIMEOUT_MS_DEFAULT,
            worker_threads: Self::WORKER_THREADS_DEFAULT,
        }
    }
}

impl RuntimeConfig {
    /// Default [`RuntimeConfig::commands_max`].
    pub const COMMANDS_MAX_DEFAULT: usize = 4096;
    /// Default [`RuntimeConfig::drain_inputs_max`].
    pub const DRAIN_INPUTS_MAX_DEFAULT: usize = 256;
    /// Default [`RuntimeConfig::shutdown_timeout_ms`].
    pub const SHUTDOWN_TIMEOUT_MS_DEFAULT: u64 = 5_000;
    /// Default [`RuntimeConfig::worker_threads`]: one thread (see the field).
    pub const WORKER_THREADS_DEFAULT: usize = 1;

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

/// The configuration of one node (`hermes start --config node.toml`). Read it with
/// [`NodeConfig::load`] or [`NodeConfig::from_toml`], which also give a `[protocol]` table
/// without `startup_grace_ms` the node's default.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This node's id; its certificate must name it.
    pub node_id: NodeId,
    /// The address to listen on (port 0 picks a free port): peers and QUIC clients on its UDP
    /// port, TLS-over-TCP clients on the TCP port of the same number (`network.client_tcp`, on
    /// by default).
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
    /// Protocol timeouts and limits (`[protocol]`).
    #[serde(default)]
    pub protocol: ProtocolConfig,
    /// Transport limits (`[network]`).
    #[serde(default)]
    pub network: QuicOptions,
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
        let mut config = parse_node(&read_file(path)?).map_err(|err| toml_error(path, &err))?;
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
        let config =
            parse_node(text).map_err(|err| NodeError::Config(one_line(&err.to_string())))?;
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
        self.network
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

    /// The core configuration: the `[protocol]` table with this node's id and durability.
    pub fn core_config(&self) -> hermes_core::Config {
        hermes_core::Config {
            node_id: self.node_id,
            durability: self.durability,
            ..self.protocol.0.clone()
        }
    }

    /// The transport configuration with the given TLS material.
    pub fn quic_config(&self, tls: TlsConfig) -> QuicConfig {
        QuicConfig {
            node_id: self.node_id,
            listen: self.listen,
            peers: self.peers.iter().map(|p| (p.id, p.addr)).collect(),
            tls,
            options: self.network.clone(),
        }
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
    /// Default [`ClientConfig::REQUEST_TIMEOUT_MS_DEFAULT`].
    #[serde(default = "default_client_timeout_ms")]
    pub request_timeout_ms: u64,
    /// How long a client waits for a connection. Default
    /// [`ClientOptions::CONNECT_TIMEOUT_MS_DEFAULT`].
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Largest frame body, in bytes; must be at least the nodes' `network.frame_bytes_max` to
    /// send values that large. Default [`FRAME_BYTES_MAX_DEFAULT`], as for nodes.
    #[serde(default = "default_frame_bytes_max")]
    pub frame_bytes_max: usize,
    /// `tcp` (TLS over TCP, the default) or `quic`: how to reach the nodes, at the same addresses.
    #[serde(default)]
    pub transport: ClientTransport,
}

fn default_client_timeout_ms() -> u64 {
    ClientConfig::REQUEST_TIMEOUT_MS_DEFAULT
}

fn default_connect_timeout_ms() -> u64 {
    ClientOptions::CONNECT_TIMEOUT_MS_DEFAULT
}

fn default_frame_bytes_max() -> usize {
    FRAME_BYTES_MAX_DEFAULT
}

impl ClientConfig {
    /// Default [`ClientConfig::request_timeout_ms`]: 10 s, longer than a node's default request
    /// timeout ([`hermes_core::Config::REQUEST_TIMEOUT_MS_DEFAULT`]), so that the node's own
    /// answer arrives first.
    pub const REQUEST_TIMEOUT_MS_DEFAULT: u64 = 10_000;

    /// A configuration for the given nodes and certificates, with default timeouts, frame size
    /// and transport.
    pub fn new(nodes: Vec<PeerConfig>, tls: TlsPaths) -> Self {
        ClientConfig {
            nodes,
            tls,
            request_timeout_ms: Self::REQUEST_TIMEOUT_MS_DEFAULT,
            connect_timeout_ms: ClientOptions::CONNECT_TIMEOUT_MS_DEFAULT,
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            transport: ClientTransport::default(),
        }
    }

    /// Reads and validates a client configuration file; relative paths in it are resolved
    /// against its directory.
    ///
    /// # Errors
    /// [`NodeError::Config`] naming the file and, where it can, the field.
    pub fn load(path: &Path) -> Result<Self, NodeError> {
        let text = read_file(path)?;
        let mut config: ClientConfig =
            toml::from_str(&text).map_err(|err| toml_error(path, &err))?;
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

/// Parses a node file: serde reads every field, then a `[protocol]` table that leaves out
/// `startup_grace_ms` gets the node's default ([`ProtocolConfig::STARTUP_GRACE_MS_DEFAULT`])
/// rather than the core's, which serde would have filled in.
fn parse_node(text: &str) -> Result<NodeConfig, toml::de::Error> {
    let mut config: NodeConfig = toml::from_str(text)?;
    let document: toml::Table = toml::from_str(text)?;
    let grace_given = document
        .get("protocol")
        .and_then(|protocol| protocol.get("startup_grace_ms"))
        .is_some();
    if !grace_given {
        config.protocol.startup_grace_ms = ProtocolConfig::STARTUP_GRACE_MS_DEFAULT;
    }
    Ok(config)
}

fn read_file(path: &Path) -> Result<String, NodeError> {
    std::fs::read_to_string(path)
        .map_err(|err| NodeError::Config(format!("{}: cannot read: {err}", path.display())))
}

/// A TOML error in file `path`, in one line.
fn toml_error(path: &Path, err: &toml::de::Error) -> NodeError {
    NodeError::Config(format!(
        "{}: {}",
        path.display(),
        one_line(&err.to_string())
    ))
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

    #[test]
    fn protocol_table_is_the_core_config_with_a_node_startup_grace() {
        let text = format!("{MINIMAL}\n[protocol]\nlease_ms = 2000\n");
        let config = NodeConfig::from_toml(&text).unwrap();
        let expected = hermes_core::Config {
            node_id: NodeId(1),
            lease_ms: 2000,
            startup_grace_ms: ProtocolConfig::STARTUP_GRACE_MS_DEFAULT,
            ..hermes_core::Config::default()
        };
        assert_eq!(config.core_config(), expected);
        let text = format!("{MINIMAL}\n[protocol]\nstartup_grace_ms = 0\n");
        let config = NodeConfig::from_toml(&text).unwrap();
        assert_eq!(config.core_config().startup_grace_ms, 0);
        let text = MINIMAL.replace("node_id = 1", "node_id = 3\ndurability = \"sync\"");
        let config = NodeConfig::from_toml(&text).unwrap();
        assert_eq!(config.core_config().node_id, NodeId(3));
        assert_eq!(config.core_config().durability, Durability::Sync);
        // The node and its storage are named once, at the top of the file.
        for (field, line) in [
            ("node_id", "node_id = 1"),
            ("durability", "durability = \"sync\""),
        ] {
            let text = format!("{MINIMAL}\n[protocol]\n{line}\n");
            let err = NodeConfig::from_toml(&text).unwrap_err().to_string();
            assert!(err.contains(&format!("unknown field `{field}`")), "{err}");
        }
    }

    #[test]
    fn network_table_is_the_transport_options_with_one_frame_default() {
        let config = NodeConfig::from_toml(MINIMAL).unwrap();
        assert_eq!(config.network, QuicOptions::default());
        let quic = config.quic_config(TlsConfig::empty());
        assert_eq!(quic.options, QuicOptions::default());
        assert_eq!(quic.peers.len(), 1);
        assert_eq!(quic.options.frame_bytes_max, FRAME_BYTES_MAX_DEFAULT);
        assert_eq!(
            ClientOptions::default().frame_bytes_max,
            FRAME_BYTES_MAX_DEFAULT
        );
        let client = ClientConfig::new(config.peers.clone(), config.tls.clone());
        assert_eq!(client.client_options(), ClientOptions::default());
        let text = format!("{MINIMAL}\n[network]\nframe_bytes_max = 100\n");
        let err = NodeConfig::from_toml(&text).unwrap_err().to_string();
        assert!(err.contains("network.frame_bytes_max"), "{err}");
    }
}
