//! `hermes dev`: a local cluster on 127.0.0.1, one process per node, stopped on Ctrl-C.
//!
//! Writes `DIR/certs/` (a CA, one certificate per node and `client-cli`), `DIR/nodeN.toml` and
//! `DIR/client.toml`, starts `hermes start --config DIR/nodeN.toml` for every node with its log
//! in `DIR/nodeN.log`, waits until every node is Active, prints how to use the cluster, and
//! stops every node on Ctrl-C or SIGTERM. Each run starts a new cluster: the nodes' data
//! directories are cleared first (refused while a node still runs there).

use std::fs::{File, OpenOptions};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use hermes_core::NodeId;
use hermes_net::ClientTransport;
use hermes_node::config::{NetworkConfig, ProtocolConfig, RuntimeConfig};
use hermes_node::{ClientConfig, NodeConfig, NodeState, PeerConfig, RemoteClient, TlsPaths};

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
    let ids: Vec<u32> = (1..=args.nodes).collect();
    for id in &ids {
        clear_data_dir(&dir.join(format!("node{id}")))?;
    }
    ensure_certs(&dir.join("certs"), &ids)?;
    let addrs = hermes_net::free_loopback_addrs(ids.len())
        .map_err(|err| CliError::other(err.to_string()))?;
    let mut config_paths = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let config = NodeConfig {
            node_id: NodeId(*id),
            listen: addrs[i],
            peers: peers_except(&ids, &addrs, *id),
            data_dir: PathBuf::from(format!("node{id}")),
            durability,
            tls: TlsPaths {
                ca: "certs/ca.pem".into(),
                cert: format!("certs/node-{id}.pem").into(),
                key: format!("certs/node-{id}.key").into(),
            },
            protocol: ProtocolConfig::default(),
            network: NetworkConfig::default(),
            runtime: RuntimeConfig::default(),
        };
        let path = dir.join(format!("node{id}.toml"));
        write_file(&path, &config.to_toml()?)?;
        config_paths.push(path);
    }
    let client = ClientConfig {
        nodes: peers_except(&ids, &addrs, 0),
        tls: TlsPaths {
            ca: "certs/ca.pem".into(),
            cert: format!("certs/client-{CLIENT_NAME}.pem").into(),
            key: format!("certs/client-{CLIENT_NAME}.key").into(),
        },
        request_timeout_ms: 10_000,
        connect_timeout_ms: 3_000,
        frame_bytes_max: 4 << 20,
        transport: ClientTransport::default(),
    };
    let client_path = dir.join("client.toml");
    write_file(&client_path, &client.to_toml()?)?;

    let exe = std::env::current_exe()
        .map_err(|err| CliError::other(format!("cannot find the hermes binary: {err}")))?;
    let mut cluster = Cluster {
        children: Vec::new(),
    };
    for (id, path) in ids.iter().zip(&config_paths) {
        let log_path = dir.join(format!("node{id}.log"));
        let log = File::create(&log_path)
            .map_err(|err| CliError::other(format!("{}: {err}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(|err| CliError::other(format!("{}: {err}", log_path.display())))?;
        let child = std::process::Command::new(&exe)
            .arg("start")
            .arg("--config")
            .arg(path)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|err| CliError::other(format!("cannot start node {id}: {err}")))?;
        cluster.children.push((*id, child));
    }

    let client_config = ClientConfig::load(&client_path)?;
    wait_ready(&mut cluster, &client_config, &dir, args.ready_timeout_ms).await?;
    print_usage(&exe, &dir, &client_path, &ids, &addrs, &cluster);

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
                            dir.join(format!("node{id}.toml")).display()
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

/// Writes the CA and the certificates that are missing (an existing CA is reused).
fn ensure_certs(dir: &Path, ids: &[u32]) -> Result<(), CliError> {
    let missing_nodes: Vec<NodeId> = ids
        .iter()
        .filter(|id| !dir.join(format!("node-{id}.pem")).exists())
        .map(|id| NodeId(*id))
        .collect();
    let client_missing = !dir.join(format!("client-{CLIENT_NAME}.pem")).exists();
    let clients: Vec<&str> = if client_missing {
        vec![CLIENT_NAME]
    } else {
        Vec::new()
    };
    if missing_nodes.is_empty() && clients.is_empty() {
        return Ok(());
    }
    hermes_net::gen_certs(dir, &missing_nodes, &clients, false)
        .map_err(|err| CliError::other(format!("certificates: {err}")))?;
    Ok(())
}

fn peers_except(ids: &[u32], addrs: &[SocketAddr], me: u32) -> Vec<PeerConfig> {
    ids.iter()
        .zip(addrs)
        .filter(|(id, _)| **id != me)
        .map(|(id, addr)| PeerConfig {
            id: NodeId(*id),
            addr: *addr,
        })
        .collect()
}

fn write_file(path: &Path, text: &str) -> Result<(), CliError> {
    std::fs::write(path, text)
        .map_err(|err| CliError::other(format!("{}: cannot write: {err}", path.display())))
}

/// Waits until every node answers and reports itself Active.
async fn wait_ready(
    cluster: &mut Cluster,
    config: &ClientConfig,
    dir: &Path,
    timeout_ms: u64,
) -> Result<(), CliError> {
    let deadline = Instant::now() + Duration::from_millis(timeout_ms);
    let tls = config.tls.load()?;
    for node in &config.nodes {
        loop {
            if let Some((id, status)) = cluster.exited() {
                return Err(CliError::other(format!(
                    "node {id} exited during start ({status}); its log: {}",
                    dir.join(format!("node{id}.log")).display()
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
                    dir.join(format!("node{}.log", node.id.0)).display()
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

fn print_usage(
    exe: &Path,
    dir: &Path,
    client_path: &Path,
    ids: &[u32],
    addrs: &[SocketAddr],
    cluster: &Cluster,
) {
    let hermes = exe_display(exe);
    println!(
        "Hermes dev cluster: {} nodes on 127.0.0.1, every node Active",
        ids.len()
    );
    for ((id, addr), (_, child)) in ids.iter().zip(addrs).zip(&cluster.children) {
        println!(
            "  node {id}  {addr}  pid {}  log {}",
            child.id(),
            dir.join(format!("node{id}.log")).display()
        );
    }
    println!("Client configuration: {}", client_path.display());
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
        dir.join("node2.toml").display()
    );
    println!("Ctrl-C stops every node.");
}
