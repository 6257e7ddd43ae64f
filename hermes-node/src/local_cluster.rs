//! The files of a cluster on 127.0.0.1 with one process per node, as `hermes dev` and the
//! process tests write them.
//!
//! In one directory:
//!
//! ```text
//! certs/        ca.pem, ca.key, node-N.pem/.key for every node, client-NAME.pem/.key
//! nodeN.toml    node N: a free port of 127.0.0.1, the other nodes as peers, data in nodeN/
//! client.toml   every node, the client certificate
//! ```
//!
//! Paths inside the files are relative to the directory, so it can be moved. Every setting not
//! named here is left at its default. Starting the nodes (`hermes start --config nodeN.toml`,
//! by convention with its output in `nodeN.log`) is up to the caller.

use std::path::{Path, PathBuf};

use hermes_core::NodeId;
use hermes_net::certs::CA_CERT_FILE;
use hermes_net::Identity;
use hermes_store::Durability;

use crate::config::{ProtocolConfig, RuntimeConfig};
use crate::{ClientConfig, NodeConfig, NodeError, PeerConfig, TlsPaths};

/// The certificate directory, relative to the cluster's directory.
const CERTS_DIR: &str = "certs";
/// The client configuration, relative to the cluster's directory.
const CLIENT_CONFIG_FILE: &str = "client.toml";

/// The files of a local cluster in one directory (see the module documentation): where
/// they are, and [`LocalCluster::write`] to write them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalCluster {
    dir: PathBuf,
}

impl LocalCluster {
    /// The local cluster in `dir` (nothing is read or written yet).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        LocalCluster { dir: dir.into() }
    }

    /// Writes the files of a cluster of nodes `1..=nodes` with `durability`, and of the client
    /// `client`, each node on a free port of 127.0.0.1; returns the nodes and their addresses
    /// (the UDP port for peers and QUIC clients, the TCP port of the same number for TCP
    /// clients), in id order. The directory is created if missing. Certificates that already
    /// exist are kept, so an existing CA is reused; configuration files are overwritten; data
    /// directories are left alone.
    ///
    /// # Errors
    /// [`NodeError::Io`] naming what could not be created or written.
    pub fn write(
        &self,
        nodes: u32,
        durability: Durability,
        client: &str,
    ) -> Result<Vec<PeerConfig>, NodeError> {
        std::fs::create_dir_all(&self.dir).map_err(|err| {
            NodeError::Io(format!("{}: cannot create: {err}", self.dir.display()))
        })?;
        let ids: Vec<NodeId> = (1..=nodes).map(NodeId).collect();
        write_missing_certs(&self.dir.join(CERTS_DIR), &ids, client)?;
        let addrs = hermes_net::free_loopback_addrs(ids.len())
            .map_err(|err| NodeError::Io(format!("free ports on 127.0.0.1: {err}")))?;
        let nodes: Vec<PeerConfig> = ids
            .iter()
            .zip(addrs)
            .map(|(&id, addr)| PeerConfig { id, addr })
            .collect();
        for node in &nodes {
            let config = node_config(node, &nodes, durability);
            write_file(&self.node_config_path(node.id), &config.to_toml()?)?;
        }
        let client_config = ClientConfig::new(
            nodes.clone(),
            tls_paths(&Identity::Client(client.to_owned())),
        );
        write_file(&self.client_config_path(), &client_config.to_toml()?)?;
        Ok(nodes)
    }

    /// The cluster's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `DIR/nodeN.toml`.
    pub fn node_config_path(&self, id: NodeId) -> PathBuf {
        self.dir.join(format!("node{}.toml", id.0))
    }

    /// `DIR/nodeN`: node `id`'s data directory.
    pub fn data_dir(&self, id: NodeId) -> PathBuf {
        self.dir.join(data_dir_name(id))
    }

    /// `DIR/nodeN.log`: where node `id`'s output goes by convention.
    pub fn log_path(&self, id: NodeId) -> PathBuf {
        self.dir.join(format!("node{}.log", id.0))
    }

    /// `DIR/client.toml`.
    pub fn client_config_path(&self) -> PathBuf {
        self.dir.join(CLIENT_CONFIG_FILE)
    }
}

/// The configuration of `node` in the cluster of `nodes`, with paths relative to the cluster's
/// directory.
fn node_config(node: &PeerConfig, nodes: &[PeerConfig], durability: Durability) -> NodeConfig {
    NodeConfig {
        node_id: node.id,
        listen: node.addr,
        peers: nodes.iter().filter(|n| n.id != node.id).cloned().collect(),
        data_dir: data_dir_name(node.id).into(),
        durability,
        tls: tls_paths(&Identity::Node(node.id)),
        protocol: ProtocolConfig::default(),
        network: hermes_net::QuicOptions::default(),
        runtime: RuntimeConfig::default(),
    }
}

fn data_dir_name(id: NodeId) -> String {
    format!("node{}", id.0)
}

/// The certificate paths of `identity`, relative to the cluster's directory.
fn tls_paths(identity: &Identity) -> TlsPaths {
    let certs = Path::new(CERTS_DIR);
    let stem = identity.file_stem();
    TlsPaths {
        ca: certs.join(CA_CERT_FILE),
        cert: certs.join(format!("{stem}.pem")),
        key: certs.join(format!("{stem}.key")),
    }
}

/// Writes the CA (unless there is one) and the certificates of `nodes` and `client` that are
/// missing from `dir`.
fn write_missing_certs(dir: &Path, nodes: &[NodeId], client: &str) -> Result<(), NodeError> {
    let missing = |identity: &Identity| !dir.join(format!("{}.pem", identity.file_stem())).exists();
    let nodes: Vec<NodeId> = nodes
        .iter()
        .copied()
        .filter(|&id| missing(&Identity::Node(id)))
        .collect();
    let clients: Vec<&str> = if missing(&Identity::Client(client.to_owned())) {
        vec![client]
    } else {
        Vec::new()
    };
    if nodes.is_empty() && clients.is_empty() {
        return Ok(());
    }
    hermes_net::gen_certs(dir, &nodes, &clients, false)
        .map_err(|err| NodeError::Io(format!("certificates in {}: {err}", dir.display())))?;
    Ok(())
}

fn write_file(path: &Path, text: &str) -> Result<(), NodeError> {
    std::fs::write(path, text)
        .map_err(|err| NodeError::Io(format!("{}: cannot write: {err}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_files_load_and_name_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let cluster = LocalCluster::new(dir.path());
        let nodes = cluster.write(3, Durability::Sync, "test").unwrap();
        assert_eq!(nodes.len(), 3);
        for node in &nodes {
            let config = NodeConfig::load(&cluster.node_config_path(node.id)).unwrap();
            assert_eq!(config.node_id, node.id);
            assert_eq!(config.listen, node.addr);
            assert_eq!(config.durability, Durability::Sync);
            assert_eq!(config.data_dir, cluster.data_dir(node.id));
            assert_eq!(config.cluster(), vec![NodeId(1), NodeId(2), NodeId(3)]);
            assert_eq!(config.protocol, ProtocolConfig::default());
            config.tls.load().unwrap();
        }
        let client = ClientConfig::load(&cluster.client_config_path()).unwrap();
        assert_eq!(client.nodes, nodes);
        client.tls.load().unwrap();
        // Writing again keeps the certificates, so nodes of the first cluster stay trusted.
        let ca = std::fs::read(dir.path().join("certs/ca.pem")).unwrap();
        cluster.write(4, Durability::Memory, "test").unwrap();
        assert_eq!(std::fs::read(dir.path().join("certs/ca.pem")).unwrap(), ca);
        assert!(dir.path().join("certs/node-4.pem").exists());
    }
}
