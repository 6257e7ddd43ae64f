//! `hermes dev`: a local cluster on 127.0.0.1, one process per node, stopped on Ctrl-C.
//!
//! Writes `DIR/certs/` (a CA, one certificate per node and `client-cli`), `DIR/nodeN.toml` and
//! `DIR/client.toml` ([`LocalCluster`]), starts `hermes start --config DIR/nodeN.toml` for every node with its log
//! in `DIR/nodeN.log`, waits until every node is Active, prints how to use the cluster, and
//! stops every node on Ctrl-C or SIGTERM. Each run starts a new cluster: the nodes' data
//! directories are cleared first (refused while a node still runs there).

use std::fs::{File, OpenOptions};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use hermes_core::NodeId;
use hermes_node::{ClientConfig, LocalCluster, NodeState, PeerConfig, RemoteClient};

use crate::cli::DevArgs;
use crate::commands::start::shutdown_signal;
use crate::error::CliError;

const CLIENT_NAME: &str = "cli";
const MAX_NODES: u32 = 9;

/// The processes of the cluster; every one still running is stopped when this is dropped.
struct Cluster {
    children: Vec<(u32, Child)>,
}

impl Cluster {
    /// Sends SIGTERM to every node, waits up to `grace` for them, then kills what is left.
    fn stop(&mut self, grace: Duration) {
        for (_, child) in &mut self.children {
            if let Ok(pid) = i32::try_from(child.id()) {
                // SAFETY: kill(2) with a pid of a child we started and have not reaped.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
        }
        let deadline = Instant::now() + grace;
        for (_, child) in &mut self.children {
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
    }

    /// The first node process that has exited, with its status.
    fn exited(&mut self) -> Option<(u32, String)> {
        for (id, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                return Some((*id, status.to_string()));
            }
        }
        None
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// Sets up and runs the cluster until a signal.
pub async fn run(args: DevArgs) -> Result<(), CliError> {
    if args.nodes == 0 || args.nodes > MAX_NODES {
        return Err(CliError::other(format!(
            "--nodes: between 1 and {MAX_NODES}, not {}",
            args.nodes
        )));
    }
    let durability = args
        .durability
        .parse()
        .map_err(|err| CliError::other(format!("--durability: {err}")))?;
    let dir = args.dir.clone();
    std::fs::create_dir_all(&dir)
        .map_err(|err| CliError::other(format!("{}: cannot create: {err}", dir.display())))?;
    let files = LocalCluster::new(&dir);
    for id in 1..=args.nodes {
        clear_data_dir(&files.data_dir(NodeId(id)))?;
    }
    let nodes = files.write(args.nodes, durability, CLIENT_NAME)?;
    let ids: Vec<u32> = nodes.iter().map(|node| node.id.0).collect();
    let client_path = files.client_config_path();

    let exe = std::env::current_exe()
        .map_err(|err| CliError::other(format!("cannot find the hermes binary: {err}")))?;
    let mut cluster = Cluster {
        children: Vec::new(),
    };
    for id in &ids {
        let path = files.node_config_path(NodeId(*id));
        let log_path = files.log_path(NodeId(*id));
        let log = File::create(&log_path)
            .map_err(|err| CliError::other(format!("{}: {err}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(|err| CliError::other(format!("{}: {err}", log_path.display())))?;
        let child = std::process::Command::new(&exe)
            .arg("start")
            .arg("--config")
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|err| CliError::other(format!("cannot start node {id}: {err}")))?;
        cluster.children.push((*id, child));
    }

    let client_config = ClientConfig::load(&client_path)?;
    wait_ready(&mut cluster, &client_config, &files, args.ready_timeout_ms).await?;
    print_usage(&exe, &files, &nodes, &cluster);

    let signal = shutdown_signal();
    tokio::pin!(signal);
    let mut reported = std::collections::BTreeSet::new();
    loop {
        tokio::select! {
            result = &mut signal => {
                result?;
                break;
            }
            () = tokio::time::sleep(Duration::from_millis(500)) => {
                if let Some((id, status)) = cluster.exited() {
                    if reported.insert(id) {
                        println!(
                            "node {id} exited ({status}); bring it back with `{} start --config {}`",
                            exe_display(&exe),
                            files.node_config_path(NodeId(id)).display()
                        );
                    }
                }
            }
        }
    }
    println!("stopping {} nodes", ids.len());
    cluster.stop(Duration::from_secs(10));
    Ok(())
}

/// Removes a node's data directory, unless a node still runs there.
fn clear_data_dir(path: &Path) -> Result<(), CliError> {
    let lock_path = path.join("LOCK");
    if let Ok(lock) = OpenOptions::new().write(true).open(&lock_path) {
        if let Err(std::fs::TryLockError::WouldBlock) = lock.try_lock() {
            return Err(CliError::other(format!(
                "a node is still running in {} (another `hermes dev`?); stop it first",
                path.display()
            )));
        }
    }
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(CliError::other(format!(
            "{}: cannot clear: {err}",
            path.display()
        ))),
    }
}

/// Waits until every node answers and reports itself Active.
async fn wait_ready(
    cluster: &mut Cluster,
    config: &ClientConfig,
    files: &LocalCluster,
    timeout_ms: u64,
) -> Result<(), CliError> {
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    let tls = config.tls.load()?;
    for node in &config.nodes {
        loop {
            if let Some((id, status)) = cluster.exited() {
                return Err(CliError::other(format!(
                    "node {id} exited during start ({status}); its log: {}",
                    files.log_path(NodeId(id)).display()
                )));
            }
            let active = match RemoteClient::connect(config, &tls, node.id).await {
                Ok(client) => {
                    let state = client.status().await.map(|s| s.state);
                    client.close();
                    matches!(state, Ok(NodeState::Active))
                }
                Err(_) => false,
            };
            if active {
                break;
            }
            if Instant::now() >= deadline {
                return Err(CliError::other(format!(
                    "node {} was not active after {timeout_ms} ms; its log: {}",
                    node.id.0,
                    files.log_path(node.id).display()
                )));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

fn exe_display(exe: &Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    match exe.strip_prefix(&cwd) {
        Ok(relative) => relative.display().to_string(),
        Err(_) => exe.display().to_string(),
    }
}

fn print_usage(exe: &Path, files: &LocalCluster, nodes: &[PeerConfig], cluster: &Cluster) {
    let hermes = exe_display(exe);
    println!(
        "Hermes dev cluster: {} nodes on 127.0.0.1, every node Active",
        nodes.len()
    );
    for (node, (_, child)) in nodes.iter().zip(&cluster.children) {
        println!(
            "  node {}  {}  pid {}  log {}",
            node.id.0,
            node.addr,
            child.id(),
            files.log_path(node.id).display()
        );
    }
    println!(
        "Client configuration: {}",
        files.client_config_path().display()
    );
    println!();
    println!("In another terminal (from this directory):");
    println!("  {hermes} put greeting hello");
    println!("  {hermes} get greeting --node 2");
    println!("  {hermes} cas greeting hello world");
    println!("  {hermes} delete greeting");
    println!("  {hermes} status --node 3");
    println!("  {hermes} bench --clients 16 --duration-ms 5000");
    println!(
        "Kill a node (kill -9 PID) and bring it back: {hermes} start --config {}",
        files.node_config_path(NodeId(2)).display()
    );
    println!("Ctrl-C stops every node.");
}
