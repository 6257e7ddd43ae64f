//! [`TestCluster`]: one `hermes start` process per node, started and stopped by the test.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use hermes_core::{Durability, NodeId};
use hermes_node::{ClientConfig, LocalCluster, NodeState};

use super::{hermes, Proc, CLIENT_NAME};

/// A cluster of `hermes start` processes with its files in a temporary directory.
pub struct TestCluster {
    pub dir: tempfile::TempDir,
    pub files: LocalCluster,
    pub nodes: Vec<Option<Proc>>,
}

impl TestCluster {
    /// Writes certificates and configurations for `n` nodes (ids 1..=n) and starts them, with
    /// `memory` durability.
    pub fn start(n: u32) -> TestCluster {
        Self::start_with(n, Durability::Memory)
    }

    /// As [`TestCluster::start`], with the given durability mode.
    pub fn start_with(n: u32, durability: Durability) -> TestCluster {
        let dir = tempfile::tempdir().expect("temporary directory");
        let files = LocalCluster::new(dir.path());
        files
            .write(n, durability, CLIENT_NAME)
            .expect("cluster files");
        let mut cluster = TestCluster {
            dir,
            files,
            nodes: Vec::new(),
        };
        for id in 1..=n {
            let proc = cluster.spawn_node(id);
            cluster.nodes.push(Some(proc));
        }
        cluster
    }

    /// The configuration file of node `id`.
    pub fn node_config(&self, id: u32) -> PathBuf {
        self.files.node_config_path(NodeId(id))
    }

    /// Starts `hermes start` for node `id` (its log goes to `nodeN.log`).
    pub fn spawn_node(&self, id: u32) -> Proc {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.files.log_path(NodeId(id)))
            .expect("log file");
        let child = hermes()
            .arg("start")
            .arg("--config")
            .arg(self.node_config(id))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log file"))
            .stderr(log)
            .spawn()
            .expect("start a node");
        Proc { child }
    }

    /// The client configuration.
    pub fn client(&self) -> ClientConfig {
        ClientConfig::load(&self.files.client_config_path()).expect("client config")
    }

    /// The path of the client configuration, as a string for `--cluster`.
    pub fn cluster_arg(&self) -> String {
        self.files.client_config_path().display().to_string()
    }

    /// The log of node `id`.
    pub fn log(&self, id: u32) -> String {
        std::fs::read_to_string(self.files.log_path(NodeId(id))).unwrap_or_default()
    }

    /// Waits (bounded) until node `id` reports `Active` in a view with `members` members.
    pub async fn wait_active(&self, id: u32, members: usize, timeout: Duration) {
        let config = self.client();
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no answer");
        while Instant::now() < deadline {
            if let Ok(client) = super::connect(&config, NodeId(id)).await {
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
