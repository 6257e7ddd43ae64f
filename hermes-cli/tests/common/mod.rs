//! Real `hermes` processes on 127.0.0.1 for the integration tests: certificates, configuration
//! files, nodes that are always stopped, readiness polled with a bound.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hermes_core::NodeId;
use hermes_node::config::{NetworkConfig, ProtocolConfig, RuntimeConfig};
use hermes_node::{
    ClientConfig, NodeConfig, NodeState, PeerConfig, RemoteClient, RequestError, TlsPaths,
};

/// The `hermes` binary under test.
pub fn hermes() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hermes"))
}

/// Runs `hermes` with `args` and returns its output.
pub fn run(args: &[&str]) -> Output {
    hermes()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the hermes binary runs")
}

/// stdout of a run, as text.
pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// stderr of a run, as text.
pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A child process that is killed when dropped.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    /// Sends SIGKILL and reaps the process.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits up to `grace` before killing.
    pub fn terminate(&mut self, grace: Duration) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on a child of this process that has not been reaped.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A cluster of `hermes start` processes with its files in a temporary directory.
pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub node_configs: Vec<PathBuf>,
    pub client_config: PathBuf,
    pub nodes: Vec<Option<Proc>>,
}

impl TestCluster {
    /// Writes certificates and configurations for `n` nodes (ids 1..=n) and starts them, with
    /// `memory` durability.
    pub fn start(n: u32) -> TestCluster {
        Self::start_with(n, hermes_core::Durability::Memory)
    }

    /// As [`TestCluster::start`], with the given durability mode.
    pub fn start_with(n: u32, durability: hermes_core::Durability) -> TestCluster {
        let dir = tempfile::tempdir().expect("temporary directory");
        let ids: Vec<u32> = (1..=n).collect();
        let certs = dir.path().join("certs");
        let node_ids: Vec<NodeId> = ids.iter().map(|i| NodeId(*i)).collect();
        hermes_net::gen_certs(&certs, &node_ids, &["test"], false).expect("certificates");
        let addrs = free_addrs(ids.len());
        let mut node_configs = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            let config = NodeConfig {
                node_id: NodeId(*id),
                listen: addrs[i],
                peers: peers(&ids, &addrs, *id),
                data_dir: format!("node{id}").into(),
                durability,
                tls: tls_paths(&format!("node-{id}")),
                protocol: ProtocolConfig::default(),
                network: NetworkConfig::default(),
                runtime: RuntimeConfig::default(),
            };
            let path = dir.path().join(format!("node{id}.toml"));
            std::fs::write(&path, config.to_toml().expect("toml")).expect("write config");
            node_configs.push(path);
        }
        let client = ClientConfig {
            nodes: peers(&ids, &addrs, 0),
            tls: tls_paths("client-test"),
            request_timeout_ms: 10_000,
            connect_timeout_ms: 3_000,
            frame_bytes_max: 4 << 20,
            transport: Default::default(),
        };
        let client_config = dir.path().join("client.toml");
        std::fs::write(&client_config, client.to_toml().expect("toml")).expect("write config");
        let mut cluster = TestCluster {
            dir,
            node_configs,
            client_config,
            nodes: Vec::new(),
        };
        for id in ids {
            let proc = cluster.spawn_node(id);
            cluster.nodes.push(Some(proc));
        }
        cluster
    }

    /// Starts `hermes start` for node `id` (its log goes to `nodeN.log`).
    pub fn spawn_node(&self, id: u32) -> Proc {
        let log_path = self.dir.path().join(format!("node{id}.log"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("log file");
        let child = hermes()
            .arg("start")
            .arg("--config")
            .arg(&self.node_configs[(id - 1) as usize])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start a node");
        Proc { child }
    }

    /// The client configuration.
    pub fn client(&self) -> ClientConfig {
        ClientConfig::load(&self.client_config).expect("client config")
    }

    /// The path of the client configuration, as a string for `--cluster`.
    pub fn cluster_arg(&self) -> String {
        self.client_config.display().to_string()
    }

    /// The log of node `id`.
    pub fn log(&self, id: u32) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("node{id}.log"))).unwrap_or_default()
    }

    /// Waits (bounded) until node `id` reports `Active` in a view with `members` members.
    pub async fn wait_active(&self, id: u32, members: usize, timeout: Duration) {
        let config = self.client();
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no answer");
        while Instant::now() < deadline {
            if let Ok(client) = connect(&config, NodeId(id)).await {
                match client.status().await {
                    Ok(status)
                        if status.state == NodeState::Active && status.members.len() == members =>
                    {
                        client.close();
                        return;
                    }
                    Ok(status) => last = format!("{status:?}"),
                    Err(err) => last = err.to_string(),
                }
                client.close();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "node {id} not Active with {members} members after {timeout:?}: {last}\nlog:\n{}",
            self.log(id)
        );
    }

    /// Stops every node with SIGTERM.
    pub fn stop(&mut self) {
        for proc in self.nodes.iter_mut().flatten() {
            proc.terminate(Duration::from_secs(5));
        }
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for proc in self.nodes.iter_mut().flatten() {
            proc.kill9();
        }
    }
}

fn tls_paths(stem: &str) -> TlsPaths {
    TlsPaths {
        ca: "certs/ca.pem".into(),
        cert: format!("certs/{stem}.pem").into(),
        key: format!("certs/{stem}.key").into(),
    }
}

fn peers(ids: &[u32], addrs: &[SocketAddr], me: u32) -> Vec<PeerConfig> {
    ids.iter()
        .zip(addrs)
        .filter(|(id, _)| **id != me)
        .map(|(id, addr)| PeerConfig {
            id: NodeId(*id),
            addr: *addr,
        })
        .collect()
}

/// Connects to node `id` with the certificates `config` names.
pub async fn connect(config: &ClientConfig, id: NodeId) -> Result<RemoteClient, RequestError> {
    let tls = config
        .tls
        .load()
        .map_err(|err| RequestError::InvalidArgument(err.to_string()))?;
    RemoteClient::connect(config, &tls, id).await
}

/// Free addresses on 127.0.0.1 (UDP and TCP port of the same number).
pub fn free_addrs(n: usize) -> Vec<SocketAddr> {
    hermes_net::free_loopback_addrs(n).expect("free ports")
}
