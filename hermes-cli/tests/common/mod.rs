//! Real `hermes` processes on 127.0.0.1 for the integration tests: running the binary, children
//! that are always stopped, and two kinds of clusters whose files come from
//! [`hermes_node::LocalCluster`]: [`cluster::TestCluster`] (one `hermes start` per node, started here) and
//! [`dev::DevCluster`] (one `hermes dev`). Readiness is polled with a bound.

#![allow(dead_code)]

pub mod cluster;
pub mod dev;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The client of the clusters' certificates: `client-test`.
pub const CLIENT_NAME: &str = "test";

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

/// Sends SIGTERM to `child` and waits up to `grace` for it to exit; returns whether it did (it
/// is then reaped). A child that did not exit is left running.
pub fn terminate(child: &mut Child, grace: Duration) -> bool {
    if let Ok(pid) = i32::try_from(child.id()) {
        // SAFETY: kill(2) on a child of this process that has not been reaped.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

/// Sends SIGKILL to `child` and reaps it.
pub fn kill9(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// A child process that is killed when dropped.
pub struct Proc {
    pub child: Child,
}

impl Proc {
    /// Sends SIGKILL and reaps the process.
    pub fn kill9(&mut self) {
        kill9(&mut self.child);
    }

    /// Sends SIGTERM and waits up to `grace` before killing.
    pub fn terminate(&mut self, grace: Duration) {
        if !terminate(&mut self.child, grace) {
            self.kill9();
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Connects to node `id` with the certificates `config` names.
pub async fn connect(
    config: &hermes_node::ClientConfig,
    id: hermes_core::NodeId,
) -> Result<hermes_node::RemoteClient, hermes_node::RequestError> {
    let tls = config
        .tls
        .load()
        .map_err(|err| hermes_node::RequestError::InvalidArgument(err.to_string()))?;
    hermes_node::RemoteClient::connect(config, &tls, id).await
}
