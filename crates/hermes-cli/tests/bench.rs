//! `hermes bench` against a real three-node `hermes dev` cluster: the run completes, its JSON
//! report counts operations, and the recorded history is linearizable.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use hermes_core::history::History;

/// How long the dev cluster may take to have every node Active.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the dev cluster may take to stop after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(20);

/// The `hermes` binary under test.
fn hermes() -> Command {
    Command::new(env!("CARGO_BIN_EXE_hermes"))
}

/// A `hermes dev` process, stopped (SIGTERM, then SIGKILL) when dropped, even if the test fails.
struct DevCluster {
    /// The `hermes dev` process.
    child: Child,
    /// Its directory.
    dir: PathBuf,
}

impl DevCluster {
    /// Starts `hermes dev --nodes 3 --dir DIR`, its output in `DIR/dev.log`.
    fn start(dir: &Path) -> DevCluster {
        let log = std::fs::File::create(dir.join("dev.log")).expect("create dev.log");
        let child = hermes()
            .arg("dev")
            .arg("--nodes")
            .arg("3")
            .arg("--dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log file"))
            .stderr(log)
            .spawn()
            .expect("start hermes dev");
        DevCluster {
            child,
            dir: dir.to_path_buf(),
        }
    }

    /// The client configuration that `hermes dev` writes.
    fn client_config(&self) -> PathBuf {
        self.dir.join("client.toml")
    }

    /// What `hermes dev` and its nodes logged, for failure messages.
    fn logs(&self) -> String {
        let mut text = String::new();
        for name in ["dev.log", "node1.log", "node2.log", "node3.log"] {
            let log = std::fs::read_to_string(self.dir.join(name)).unwrap_or_default();
            text.push_str(&format!("--- {name}\n{log}\n"));
        }
        text
    }

    /// Waits (bounded) until every node answers `status` as Active.
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::from("client.toml not written yet");
        for node in 1..=3 {
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
        let log = std::fs::read_to_string(self.dir.join("dev.log")).unwrap_or_default();
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
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on a child of this process that has not been reaped.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        // `hermes dev` did not stop its nodes in time: kill those that still run from our
        // directory (the check on the command line guards against a reused pid).
        let dir = self.dir.display().to_string();
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

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

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
    let mut cluster = DevCluster::start(dir.path());
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
    let certs = dir.path().join("certs");
    hermes_net::gen_certs(&certs, &[hermes_core::NodeId(1)], &["test"], false)
        .expect("certificates");
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|socket| socket.local_addr())
        .expect("a free port");
    let config = format!(
        "connect_timeout_ms = 500\n\n[[nodes]]\nid = 1\naddr = \"{port}\"\n\n[tls]\n\
         ca = \"certs/ca.pem\"\ncert = \"certs/client-test.pem\"\nkey = \"certs/client-test.key\"\n"
    );
    let cluster = dir.path().join("client.toml");
    std::fs::write(&cluster, config).expect("write client.toml");
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
