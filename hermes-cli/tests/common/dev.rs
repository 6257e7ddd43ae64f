//! [`DevCluster`]: one `hermes dev` process, which writes the files and starts the nodes.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use hermes_core::NodeId;
use hermes_node::LocalCluster;

use super::{hermes, kill9, stderr, stdout, terminate};

/// How long the dev cluster may take to have every node Active.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the dev cluster may take to stop after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// A `hermes dev` process, stopped (SIGTERM, then SIGKILL) when dropped, even if the test fails.
pub struct DevCluster {
    /// The `hermes dev` process.
    child: Child,
    /// The files `hermes dev` writes, in its directory.
    files: LocalCluster,
    /// Its node count.
    nodes: u32,
}

impl DevCluster {
    /// Starts `hermes dev --nodes N --dir DIR`, its output in `DIR/dev.log`.
    pub fn start(dir: &Path, nodes: u32) -> DevCluster {
        let log = std::fs::File::create(dir.join("dev.log")).expect("create dev.log");
        let child = hermes()
            .arg("dev")
            .arg("--nodes")
            .arg(nodes.to_string())
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file"))
            .stderr(log)
            .spawn()
            .expect("start hermes dev");
        DevCluster {
            child,
            files: LocalCluster::new(dir),
            nodes,
        }
    }

    /// The client configuration that `hermes dev` writes.
    pub fn client_config(&self) -> PathBuf {
        self.files.client_config_path()
    }

    /// What `hermes dev` and its nodes logged, for failure messages.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        let dev_log = self.files.dir().join("dev.log");
        let node_logs = (1..=self.nodes).map(|id| self.files.log_path(NodeId(id)));
        for path in std::iter::once(dev_log).chain(node_logs) {
            let log = std::fs::read_to_string(&path).unwrap_or_default();
            text.push_str(&format!("--- {}\n{log}\n", path.display()));
        }
        text
    }

    /// Waits (bounded) until every node answers `hermes status` as Active.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::from("client.toml not written yet");
        for node in 1..=self.nodes {
            loop {
                if let Ok(Some(status)) = self.child.try_wait() {
                    panic!("hermes dev exited ({status}) during start\n{}", self.logs());
                }
                if self.client_config().exists() {
                    let output = hermes()
                        .arg("--cluster")
                        .arg(self.client_config())
                        .args(["--node", &node.to_string(), "--json", "status"])
                        .stdin(Stdio::null())
                        .output()
                        .expect("run hermes status");
                    let answer: serde_json::Value =
                        serde_json::from_slice(&output.stdout).unwrap_or_default();
                    if output.status.success() && answer["state"] == "Active" {
                        break;
                    }
                    last = format!("node {node}: {}{}", stdout(&output), stderr(&output));
                }
                assert!(
                    Instant::now() < deadline,
                    "the dev cluster was not ready after {READY_TIMEOUT:?}: {last}\n{}",
                    self.logs()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }

    /// The node processes `hermes dev` reported (`pid N` in its output).
    fn node_pids(&self) -> Vec<i32> {
        let log = std::fs::read_to_string(self.files.dir().join("dev.log")).unwrap_or_default();
        log.lines()
            .filter_map(|line| line.split("  pid ").nth(1))
            .filter_map(|rest| rest.split_whitespace().next())
            .filter_map(|pid| pid.parse().ok())
            .collect()
    }
}

impl Drop for DevCluster {
    fn drop(&mut self) {
        let node_pids = self.node_pids();
        if terminate(&mut self.child, STOP_GRACE) {
            return;
        }
        kill9(&mut self.child);
        // `hermes dev` did not stop its nodes in time: kill those that still run from our
        // directory (the check on the command line guards against a reused pid).
        let dir = self.files.dir().display().to_string();
        for pid in node_pids {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&dir) {
                // SAFETY: kill(2) on a node process started for this test, checked above.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }
}
