//! `hermes bench` against a real three-node `hermes dev` cluster (the run completes, its JSON
//! report counts operations, and the recorded history is linearizable), against a stand-in
//! Redis over RESP, and its one-line refusals.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use common::dev::DevCluster;
use common::{hermes, stderr, stdout, CLIENT_NAME};
use hermes_core::history::History;
use hermes_node::{ClientConfig, LocalCluster};

/// Runs the test's workload with `--json --record FILE`, checks the report and the recorded
/// history, and returns the count of answered operations.
fn bench_and_check(cluster: &DevCluster, record: &Path) -> u64 {
    let output = hermes()
        .arg("--cluster")
        .arg(cluster.client_config())
        .args([
            "bench",
            "--clients",
            "4",
            "--duration-ms",
            "1500",
            "--keys",
            "5",
            "--value-bytes",
            "16",
            "--write-ratio",
            "0.5",
            "--cas-ratio",
            "0.1",
            "--json",
            "--record",
        ])
        .arg(record)
        .stdin(Stdio::null())
        .output()
        .expect("run hermes bench");
    assert!(
        output.status.success(),
        "hermes bench failed: {}{}\n{}",
        stdout(&output),
        stderr(&output),
        cluster.logs()
    );
    assert!(
        !stderr(&output).contains("ops/s"),
        "--json prints no progress: {}",
        stderr(&output)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("one JSON object on stdout");
    let ops = report["ops"].as_u64().unwrap_or(0);
    assert!(ops > 0, "no operations: {report}");
    assert_eq!(report["nodes"], serde_json::json!([1, 2, 3]), "{report}");
    for kind in ["read", "write", "cas"] {
        let latency = &report[kind]["latency_us"];
        assert!(
            report[kind]["ok"].as_u64().unwrap_or(0) > 0,
            "no {kind}: {report}"
        );
        assert!(latency["p50"].as_f64().unwrap_or(0.0) > 0.0, "{report}");
        assert!(
            latency["p50"].as_f64() <= latency["p999"].as_f64(),
            "{report}"
        );
        assert!(
            latency["p999"].as_f64() <= latency["max"].as_f64(),
            "{report}"
        );
    }

    let text = std::fs::read_to_string(record).expect("the record file");
    assert_eq!(
        report["record"]["events"].as_u64(),
        Some(text.lines().count() as u64),
        "{report}"
    );
    let history = History::from_jsonl(&text).expect("the record parses as a history");
    assert!(history.len() as u64 >= ops, "{} < {ops}", history.len());
    let checked = Instant::now();
    if let Err(err) = history.check() {
        panic!("the recorded history is not linearizable: {err}");
    }
    eprintln!(
        "{ops} operations answered, {} recorded, checked in {:?}",
        history.len(),
        checked.elapsed()
    );
    ops
}

#[test]
fn bench_reports_operations_and_records_a_linearizable_history() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let mut cluster = DevCluster::start(dir.path(), 3);
    cluster.wait_ready();
    bench_and_check(&cluster, &dir.path().join("first.jsonl"));
    // A second run starts from the values the first one left: its record begins with them.
    bench_and_check(&cluster, &dir.path().join("second.jsonl"));
    let second = std::fs::read_to_string(dir.path().join("second.jsonl")).unwrap_or_default();
    let initial = second
        .lines()
        .filter(|l| l.contains("\"initial\":true"))
        .count();
    assert_eq!(
        initial,
        2 * 5,
        "one write per key before the run:\n{second}"
    );
}

#[test]
fn bench_refuses_invalid_arguments_and_unreachable_clusters() {
    let output = hermes()
        .args(["bench", "--clients", "0"])
        .stdin(Stdio::null())
        .output()
        .expect("run hermes bench");
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.contains("--clients"), "{message}");

    let output = hermes()
        .args(["bench", "--write-ratio", "0.8", "--cas-ratio", "0.3"])
        .stdin(Stdio::null())
        .output()
        .expect("run hermes bench");
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("at most 1"), "{}", stderr(&output));

    // A cluster whose only node does not run.
    let dir = tempfile::tempdir().expect("temporary directory");
    let files = LocalCluster::new(dir.path());
    files
        .write(1, hermes_core::Durability::Memory, CLIENT_NAME)
        .expect("cluster files");
    let cluster = files.client_config_path();
    let mut config = ClientConfig::load(&cluster).expect("client config");
    config.connect_timeout_ms = 500;
    std::fs::write(&cluster, config.to_toml().expect("toml")).expect("write client.toml");
    let output = hermes()
        .arg("--cluster")
        .arg(&cluster)
        .args(["bench", "--duration-ms", "100"])
        .stdin(Stdio::null())
        .output()
        .expect("run hermes bench");
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.contains("cannot connect"), "{message}");
}

/// A stand-in for a Redis primary with one replica, enough for `hermes bench --target redis`:
/// `PING`, `GET`, `SET`, `WAIT` (answers one replica) and the bench's compare-and-swap script
/// (`EVAL`), on one map under one lock, so that every command is atomic. Serves each
/// connection on a thread of its own until the client closes it.
struct FakeRedis {
    /// Where it listens.
    addr: std::net::SocketAddr,
    /// Commands served so far, by name.
    served: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, u64>>>,
}

/// The keys and values of a [`FakeRedis`].
type Store = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<Vec<u8>, Vec<u8>>>>;

impl FakeRedis {
    /// Starts listening on a free port of 127.0.0.1.
    fn start() -> FakeRedis {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("local address");
        let store = Store::default();
        let served = std::sync::Arc::default();
        let counts = std::sync::Arc::clone(&served);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let store = std::sync::Arc::clone(&store);
                let counts = std::sync::Arc::clone(&counts);
                std::thread::spawn(move || FakeRedis::serve(stream, &store, &counts));
            }
        });
        FakeRedis { addr, served }
    }

    /// How many commands named `name` were served.
    fn served(&self, name: &str) -> u64 {
        let served = self.served.lock().expect("lock");
        served.get(name).copied().unwrap_or(0)
    }

    /// Answers the commands of one connection.
    fn serve(
        stream: std::net::TcpStream,
        store: &Store,
        served: &std::sync::Mutex<std::collections::HashMap<String, u64>>,
    ) {
        use std::io::{BufRead, BufReader, Read, Write};
        let mut writer = stream.try_clone().expect("clone the stream");
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let count: usize = line.trim_end()[1..].parse().expect("an array header");
            let mut arguments = Vec::with_capacity(count);
            for _ in 0..count {
                line.clear();
                reader.read_line(&mut line).expect("a bulk header");
                let length: usize = line.trim_end()[1..].parse().expect("a bulk length");
                let mut argument = vec![0; length + 2];
                reader.read_exact(&mut argument).expect("a bulk string");
                argument.truncate(length);
                arguments.push(argument);
            }
            let name = String::from_utf8_lossy(&arguments[0]).to_uppercase();
            *served
                .lock()
                .expect("lock")
                .entry(name.clone())
                .or_default() += 1;
            let mut map = store.lock().expect("lock");
            let reply = match (name.as_str(), &arguments[1..]) {
                ("PING", []) => b"+PONG\r\n".to_vec(),
                ("GET", [key]) => match map.get(key) {
                    Some(value) => {
                        let mut reply = format!("${}\r\n", value.len()).into_bytes();
                        reply.extend_from_slice(value);
                        reply.extend_from_slice(b"\r\n");
                        reply
                    }
                    None => b"$-1\r\n".to_vec(),
                },
                ("SET", [key, value]) => {
                    map.insert(key.clone(), value.clone());
                    b"+OK\r\n".to_vec()
                }
                ("WAIT", [_, _]) => b":1\r\n".to_vec(),
                ("EVAL", [_, _, key, absent, expected, new]) => {
                    let matches = match map.get(key) {
                        None => absent == b"1",
                        Some(current) => absent == b"0" && current == expected,
                    };
                    if matches {
                        map.insert(key.clone(), new.clone());
                    }
                    format!(":{}\r\n", u8::from(matches)).into_bytes()
                }
                _ => b"-ERR unknown command\r\n".to_vec(),
            };
            drop(map);
            if writer.write_all(&reply).is_err() {
                return;
            }
        }
    }
}

#[test]
fn bench_speaks_resp_to_redis_and_records_a_linearizable_history() {
    let redis = FakeRedis::start();
    let dir = tempfile::tempdir().expect("temporary directory");
    let record = dir.path().join("redis.jsonl");
    let output = hermes()
        .args([
            "bench",
            "--target",
            "redis",
            "--endpoints",
            &redis.addr.to_string(),
            "--clients",
            "4",
            "--duration-ms",
            "500",
            "--keys",
            "5",
            "--value-bytes",
            "16",
            "--write-ratio",
            "0.4",
            "--cas-ratio",
            "0.2",
            "--json",
            "--record",
        ])
        .arg(&record)
        .stdin(Stdio::null())
        .output()
        .expect("run hermes bench");
    assert!(
        output.status.success(),
        "hermes bench failed: {}{}",
        stdout(&output),
        stderr(&output)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("one JSON object on stdout");
    assert_eq!(report["target"], "redis", "{report}");
    assert_eq!(report["write_mode"], "SET + WAIT 1", "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    for kind in ["read", "write", "cas"] {
        assert!(
            report[kind]["ok"].as_u64().unwrap_or(0) > 0,
            "no {kind}: {report}"
        );
    }
    assert_eq!(
        redis.served("WAIT"),
        report["write"]["ok"].as_u64().unwrap_or(0) + report["cas"]["ok"].as_u64().unwrap_or(0),
        "one WAIT per write and compare-and-swap: {report}"
    );
    let text = std::fs::read_to_string(&record).expect("the record file");
    let history = History::from_jsonl(&text).expect("the record parses as a history");
    if let Err(err) = history.check() {
        panic!("the recorded history is not linearizable: {err}");
    }

    // Plain SET: no WAIT at all.
    let waits_before = redis.served("WAIT");
    let output = hermes()
        .args(["bench", "--target", "redis", "--redis-wait", "0"])
        .args(["--endpoints", &redis.addr.to_string()])
        .args([
            "--clients",
            "2",
            "--duration-ms",
            "200",
            "--write-ratio",
            "1",
        ])
        .arg("--json")
        .stdin(Stdio::null())
        .output()
        .expect("run hermes bench");
    assert!(output.status.success(), "{}", stderr(&output));
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("one JSON object on stdout");
    assert_eq!(report["write_mode"], "SET", "{report}");
    assert!(report["write"]["ok"].as_u64().unwrap_or(0) > 0, "{report}");
    assert_eq!(redis.served("WAIT"), waits_before);
}

#[test]
fn bench_refuses_targets_it_cannot_reach_in_one_line() {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    let output = hermes()
        .args(["bench", "--target", "redis", "--duration-ms", "100"])
        .args(["--endpoints", &closed_port.to_string()])
        .stdin(Stdio::null())
        .output()
        .expect("run hermes bench");
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "{message}");
    assert!(message.contains("cannot connect to redis"), "{message}");

    let output = hermes()
        .args(["--node", "1", "bench", "--target", "redis"])
        .stdin(Stdio::null())
        .output()
        .expect("run hermes bench");
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("--node"), "{}", stderr(&output));

    let output = hermes()
        .args(["bench", "--target", "etcd", "--duration-ms", "100"])
        .args(["--endpoints", &closed_port.to_string()])
        .stdin(Stdio::null())
        .output()
        .expect("run hermes bench");
    assert_eq!(output.status.code(), Some(1), "{}", stdout(&output));
    let message = stderr(&output);
    assert_eq!(message.lines().count(), 1, "{message}");
    if cfg!(feature = "etcd") {
        assert!(message.contains("cannot connect to any etcd"), "{message}");
    } else {
        assert!(message.contains("--features etcd"), "{message}");
    }
}
