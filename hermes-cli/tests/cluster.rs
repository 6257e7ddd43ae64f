//! Real `hermes` processes on 127.0.0.1: the CLI against a three-node cluster, bad input, and a
//! node killed with SIGKILL during a concurrent workload that rejoins and serves again, with the
//! whole history checked for linearizability.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::cluster::TestCluster;
use common::{connect, run, stderr, stdout};
use hermes_core::history::{History, HistoryOp, HistoryRet};
use hermes_core::{NodeId, Op, Outcome};
use hermes_node::{ClientConfig, LocalCluster, RemoteClient, RequestError};

const READY: Duration = Duration::from_secs(60);

fn one_line(text: &str) -> bool {
    text.trim_end().lines().count() == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_commands_against_three_nodes_and_bad_input_leaves_the_cluster_serving() {
    let cluster = TestCluster::start(3);
    for id in 1..=3 {
        cluster.wait_active(id, 3, READY).await;
    }
    let c = cluster.cluster_arg();
    let cli = |args: &[&str]| {
        let mut all = vec!["--cluster", c.as_str()];
        all.extend_from_slice(args);
        run(&all)
    };

    // A put on one node is read on the others.
    let out = cli(&["put", "greeting", "hello", "--node", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for node in ["2", "3"] {
        let out = cli(&["get", "greeting", "--node", node]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        assert_eq!(stdout(&out), "hello\n");
    }
    let out = cli(&["get", "missing"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line(&stderr(&out)) && stderr(&out).contains("not found"));

    // CAS: a different expected value exits 3 and changes nothing; the right one swaps.
    let out = cli(&["cas", "greeting", "nope", "x", "--node", "2"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let out = cli(&["cas", "greeting", "hello", "world", "--node", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&cli(&["get", "greeting", "--node", "3"])), "world\n");
    let out = cli(&["cas", "fresh", "--expect-absent", "v1"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let out = cli(&["cas", "fresh", "--expect-absent", "v2"]);
    assert_eq!(out.status.code(), Some(3));

    // Delete, then the key is gone everywhere.
    let out = cli(&["delete", "greeting", "--node", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    for node in ["1", "2", "3"] {
        assert_eq!(
            cli(&["get", "greeting", "--node", node]).status.code(),
            Some(2)
        );
    }

    // JSON output and status.
    let out = cli(&["get", "fresh", "--json"]);
    let json: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    assert_eq!(json["value"], "v1");
    let out = cli(&["status", "--node", "2", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("one JSON object");
    assert_eq!(status["state"], "Active");
    assert_eq!(status["members"], serde_json::json!([1, 2, 3]));

    // Bad input: each a one-line error, exit status 1.
    let big = cluster.dir.path().join("big.bin");
    std::fs::write(&big, vec![b'x'; (1 << 20) + 1]).expect("write");
    let out = cli(&["put", "big", "--value-file", big.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        one_line(&stderr(&out)) && stderr(&out).contains("value"),
        "{}",
        stderr(&out)
    );

    let out = cli(&["get", "k", "--bogus-flag"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line(&stderr(&out)) && stderr(&out).contains("--bogus-flag"));

    let bad = cluster.dir.path().join("bad.toml");
    let good = std::fs::read_to_string(cluster.node_config(1)).expect("read");
    std::fs::write(&bad, format!("flush_ms = 3\n{good}")).expect("write");
    let out = run(&["start", "--config", bad.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        one_line(&stderr(&out)) && stderr(&out).contains("flush_ms"),
        "{}",
        stderr(&out)
    );
    let bad_value = good.replace("lease_ms = 1000", "lease_ms = 10");
    std::fs::write(&bad, bad_value).expect("write");
    let out = run(&["start", "--config", bad.to_str().expect("utf-8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        one_line(&stderr(&out)) && stderr(&out).contains("heartbeat_interval_ms"),
        "{}",
        stderr(&out)
    );

    // A node id clash: node 1 is already running from this configuration.
    let out = run(&[
        "start",
        "--config",
        cluster.node_config(1).to_str().expect("utf-8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        one_line(&stderr(&out)) && stderr(&out).contains("in use"),
        "{}",
        stderr(&out)
    );

    // A client certificate from another CA is refused.
    let other = cluster.dir.path().join("other-ca");
    hermes_net::gen_certs(&other, &[], &["intruder"], false).expect("certificates");
    let mut intruder = cluster.client();
    intruder.tls.ca = other.join("ca.pem");
    intruder.tls.cert = other.join("client-intruder.pem");
    intruder.tls.key = other.join("client-intruder.key");
    let intruder_path = cluster.dir.path().join("intruder.toml");
    std::fs::write(&intruder_path, intruder.to_toml().expect("toml")).expect("write");
    let out = run(&[
        "--cluster",
        intruder_path.to_str().expect("utf-8"),
        "get",
        "fresh",
        "--node",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(one_line(&stderr(&out)), "{}", stderr(&out));

    // The cluster is unaffected.
    for id in 1..=3 {
        cluster.wait_active(id, 3, READY).await;
    }
    let out = cli(&["put", "after", "ok", "--node", "3"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&cli(&["get", "after", "--node", "1"])), "ok\n");
}

/// Records client operations with real-time order.
struct Recorder {
    start: Instant,
    history: Mutex<History>,
}

impl Recorder {
    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Runs `op` through `client` and records it.
    async fn execute(
        &self,
        process: u64,
        client: &RemoteClient,
        op: Op,
    ) -> Result<Outcome, RequestError> {
        let (key, history_op) = match &op {
            Op::Read { key } => (key.clone(), HistoryOp::Read),
            Op::Write { key, value } => (key.clone(), HistoryOp::Write(value.clone())),
            Op::Delete { key } => (key.clone(), HistoryOp::Delete),
            Op::Cas { key, expected, new } => (
                key.clone(),
                HistoryOp::Cas {
                    expected: expected.clone(),
                    new: new.clone(),
                },
            ),
        };
        let id = {
            let mut history = self.history.lock().expect("history");
            let now = self.now();
            history.invoke(process, key, history_op, now)
        };
        let result = client.execute(op).await;
        let mut history = self.history.lock().expect("history");
        let now = self.now();
        match &result {
            Ok(Outcome::Value(value)) => history.complete(id, HistoryRet::Read(value.clone()), now),
            Ok(Outcome::Written { .. }) => history.complete(id, HistoryRet::Ok, now),
            Ok(Outcome::Swapped { .. }) => history.complete(id, HistoryRet::Swapped, now),
            Err(RequestError::CasFailed) => history.complete(id, HistoryRet::CasFailed, now),
            Err(err) if !err.outcome_unknown() => history.fail(id),
            Err(_) => {} // unknown outcome: left open
        }
        result
    }
}

const KEYS: u64 = 4;

/// Pause of a workload client before each operation.
const CLIENT_PAUSE: Duration = Duration::from_millis(2);

/// One closed-loop client: writes, reads and CASes on a few keys through node `home` (or the
/// next node while `home` is down) until `stop`.
async fn client_loop(
    process: u64,
    home: u32,
    config: Arc<ClientConfig>,
    recorder: Arc<Recorder>,
    stop: Arc<AtomicBool>,
    ok_writes: Arc<AtomicU64>,
) {
    let mut target = home;
    let mut client: Option<RemoteClient> = None;
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let Some(connected) = &client else {
            match connect(&config, NodeId(target)).await {
                Ok(c) => client = Some(c),
                Err(_) => {
                    target = target % 3 + 1;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
            continue;
        };
        seq += 1;
        let key = Bytes::from(format!("k{}", (process * 7 + seq) % KEYS));
        let op = match seq % 10 {
            0..=4 => Op::Write {
                key,
                value: Bytes::from(format!("c{process}-{seq}")),
            },
            5..=8 => Op::Read { key },
            _ => Op::Cas {
                key,
                expected: Some(Bytes::from(format!("c{process}-{}", seq - 1))),
                new: Bytes::from(format!("c{process}-{seq}-cas")),
            },
        };
        let is_write = matches!(op, Op::Write { .. });
        // Paced, so that the history stays small enough for the checker to decide every key
        // (tens of thousands of operations on four keys, with a few of unknown outcome, are not).
        tokio::time::sleep(CLIENT_PAUSE).await;
        match recorder.execute(process, connected, op).await {
            Ok(_) if is_write => {
                ok_writes.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) | Err(RequestError::CasFailed | RequestError::Aborted) => {}
            Err(RequestError::NetworkError(_) | RequestError::NotResponsible { .. }) => {
                // The node died or is rejoining: go elsewhere for a while, then come home.
                client = None;
                target = if target == home { home % 3 + 1 } else { home };
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_during_a_workload_rejoins_and_the_history_is_linearizable() {
    let mut cluster = TestCluster::start(3);
    for id in 1..=3 {
        cluster.wait_active(id, 3, READY).await;
    }
    let config = Arc::new(cluster.client());
    let recorder = Arc::new(Recorder {
        start: Instant::now(),
        history: Mutex::new(History::new()),
    });
    let stop = Arc::new(AtomicBool::new(false));
    let ok_writes = Arc::new(AtomicU64::new(0));
    let mut clients = Vec::new();
    for process in 0..6u64 {
        let home = u32::try_from(process % 3).expect("small") + 1;
        clients.push(tokio::spawn(client_loop(
            process,
            home,
            Arc::clone(&config),
            Arc::clone(&recorder),
            Arc::clone(&stop),
            Arc::clone(&ok_writes),
        )));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // SIGKILL node 3; the others install a view without it and keep committing writes.
    cluster.nodes[2].as_mut().expect("node 3 runs").kill9();
    cluster.nodes[2] = None;
    for id in 1..=2 {
        cluster.wait_active(id, 2, READY).await;
    }
    let before = ok_writes.load(Ordering::Relaxed);
    let deadline = Instant::now() + Duration::from_secs(20);
    while ok_writes.load(Ordering::Relaxed) < before + 20 {
        assert!(Instant::now() < deadline, "no writes commit without node 3");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Node 3 restarts from its data directory, rejoins through state transfer, serves again.
    cluster.nodes[2] = Some(cluster.spawn_node(3));
    for id in 1..=3 {
        cluster.wait_active(id, 3, READY).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.expect("client task");
    }

    // Final reads of every key on every node, recorded too: no acknowledged write is missing.
    for node in 1..=3u32 {
        let client = connect(&config, NodeId(node)).await.expect("connect");
        for key in 0..KEYS {
            let op = Op::Read {
                key: Bytes::from(format!("k{key}")),
            };
            let result = recorder.execute(100 + u64::from(node), &client, op).await;
            assert!(result.is_ok(), "final read on node {node}: {result:?}");
        }
        client.close();
    }
    let history = recorder.history.lock().expect("history");
    assert!(history.len() > 100, "only {} operations", history.len());
    if let Err(err) = history.check() {
        panic!("not linearizable: {err}\nnode 3 log:\n{}", cluster.log(3));
    }
    drop(history);
    cluster.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_sync_durability_a_whole_cluster_killed_at_once_keeps_every_acknowledged_write() {
    let mut cluster = TestCluster::start_with(3, hermes_core::Durability::Sync);
    for id in 1..=3 {
        cluster.wait_active(id, 3, READY).await;
    }
    let config = cluster.client();
    let mut acknowledged = Vec::new();
    for i in 0..30u32 {
        let node = NodeId(i % 3 + 1);
        let client = connect(&config, node).await.expect("connect");
        let (key, value) = (format!("k{}", i % 10), format!("v{i}"));
        client
            .write(key.clone(), value.clone())
            .await
            .expect("write");
        acknowledged.push((key, value));
        client.close();
    }
    // Power loss: every node at once, no goodbye.
    for proc in cluster.nodes.iter_mut().flatten() {
        proc.kill9();
    }
    for id in 1..=3u32 {
        cluster.nodes[(id - 1) as usize] = Some(cluster.spawn_node(id));
    }
    for id in 1..=3 {
        cluster.wait_active(id, 3, READY).await;
    }
    let latest: std::collections::BTreeMap<String, String> = acknowledged.into_iter().collect();
    for id in 1..=3u32 {
        let client = connect(&config, NodeId(id)).await.expect("connect");
        for (key, value) in &latest {
            let read = client.read(key.clone()).await;
            assert_eq!(
                read.as_deref(),
                Ok(value.as_bytes()),
                "node {id}, key {key}"
            );
        }
        client.close();
    }
    cluster.stop();
}

#[test]
fn a_corrupt_or_foreign_file_in_the_data_directory_is_named_in_one_line() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let files = LocalCluster::new(dir.path());
    files
        .write(1, hermes_core::Durability::Sync, common::CLIENT_NAME)
        .expect("cluster files");
    let config = files.node_config_path(NodeId(1));
    let data = files.data_dir(NodeId(1));
    std::fs::create_dir_all(&data).expect("mkdir");
    let config_arg = config.to_str().expect("utf-8");

    std::fs::write(data.join("records.redb"), b"this is not a database").expect("write");
    let out = run(&["start", "--config", config_arg]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        one_line(&stderr(&out)) && stderr(&out).contains("records.redb"),
        "{}",
        stderr(&out)
    );

    std::fs::remove_file(data.join("records.redb")).expect("remove");
    std::fs::write(data.join("membership.bin"), b"garbage").expect("write");
    let out = run(&["start", "--config", config_arg]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        one_line(&stderr(&out)) && stderr(&out).contains("membership.bin"),
        "{}",
        stderr(&out)
    );
}
