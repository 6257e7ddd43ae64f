//! Helpers shared by the integration tests: certificates in temp dirs, fast test configs, raw
//! quinn peers, and bounded polling.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use hermes_core::NodeId;
use hermes_net::certs::node_dns_name;
use hermes_net::{
    gen_certs, Identity, Inbox, NetError, QuicConfig, QuicTransport, TlsConfig, Transport,
};
use serde::{Deserialize, Serialize};
use tempfile::TempDir;

/// Bound on every wait in the tests.
pub const WAIT: Duration = Duration::from_secs(10);

/// A stand-in for the core's message type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Msg {
    Inv(u64),
    Ack(u64),
    Val(u64),
    Payload(u64, Vec<u8>),
}

/// `Msg` with one more kind, to send messages the receiver does not know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WiderMsg {
    Inv(u64),
    Ack(u64),
    Val(u64),
    Payload(u64, Vec<u8>),
    FromTheFuture(u64),
}

pub fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "hermes_net=info".into()),
        )
        .with_test_writer()
        .try_init();
}

/// A certificate directory with a CA, the given nodes and clients.
pub fn cert_dir(nodes: &[u32], clients: &[&str]) -> TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let nodes: Vec<NodeId> = nodes.iter().map(|&n| NodeId(n)).collect();
    gen_certs(dir.path(), &nodes, clients, false).expect("gen_certs");
    dir
}

pub fn node_tls(dir: &TempDir, id: u32) -> TlsConfig {
    TlsConfig::from_dir(dir.path(), &Identity::Node(NodeId(id))).expect("load node tls")
}

pub fn client_tls(dir: &TempDir, name: &str) -> TlsConfig {
    TlsConfig::from_dir(dir.path(), &Identity::Client(name.into())).expect("load client tls")
}

/// A config on 127.0.0.1 with an ephemeral port and short timeouts.
pub fn test_config(dir: &TempDir, id: u32) -> QuicConfig {
    let mut config = QuicConfig::new(
        NodeId(id),
        "127.0.0.1:0".parse().unwrap(),
        node_tls(dir, id),
    );
    config.options.keep_alive_ms = 200;
    config.options.idle_timeout_ms = 3_000;
    config.options.handshake_timeout_ms = 1_000;
    config.options.reconnect_backoff_min_ms = 10;
    config.options.reconnect_backoff_max_ms = 200;
    config.options.socket_buffer_bytes = 1 << 20;
    config
}

pub fn addr(t: &QuicTransport<Msg>) -> SocketAddr {
    t.local_addr().expect("local addr")
}

/// Introduces every pair of transports to each other.
pub fn mesh(nodes: &[&QuicTransport<Msg>]) {
    for a in nodes {
        for b in nodes {
            if a.local_id() != b.local_id() {
                a.add_peer(b.local_id(), addr(b)).expect("add_peer");
            }
        }
    }
}

/// Binds nodes `ids` from `dir` and meshes them.
pub fn start(dir: &TempDir, ids: &[u32]) -> Vec<(QuicTransport<Msg>, Inbox<Msg>)> {
    let nodes: Vec<_> = ids
        .iter()
        .map(|&id| QuicTransport::bind(test_config(dir, id)).expect("bind"))
        .collect();
    let refs: Vec<&QuicTransport<Msg>> = nodes.iter().map(|(t, _)| t).collect();
    mesh(&refs);
    nodes
}

/// Polls `cond` every 5 ms until it holds; panics after [`WAIT`].
pub async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Awaits `fut` for at most [`WAIT`].
pub async fn bounded<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(WAIT, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

/// Receives exactly `n` messages (in batches) from `inbox`.
pub async fn recv_n(inbox: &mut Inbox<Msg>, n: usize) -> Vec<(NodeId, Msg)> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let batch = bounded("inbox", inbox.recv()).await.expect("inbox open");
        assert!(!batch.messages.is_empty());
        got.extend(batch.messages.into_iter().map(|m| (batch.from, m)));
    }
    assert_eq!(got.len(), n, "more messages than expected");
    got
}

/// Sends `msg` repeatedly until `to` delivers one message from `from` (used across restarts).
pub async fn send_until_delivered(
    from: &QuicTransport<Msg>,
    to: NodeId,
    inbox: &mut Inbox<Msg>,
    msg: Msg,
) {
    bounded("delivery", async {
        loop {
            let _ = from.send(to, msg.clone());
            if let Ok(Some(batch)) =
                tokio::time::timeout(Duration::from_millis(50), inbox.recv()).await
            {
                if batch.from == from.local_id() && batch.messages.contains(&msg) {
                    return;
                }
            }
        }
    })
    .await
}

/// Whether `errors` holds one matching `pred`.
pub fn has_error(errors: &[NetError], pred: impl Fn(&NetError) -> bool) -> bool {
    errors.iter().any(pred)
}

/// A raw quinn connection to `target` at `addr` presenting `tls`, with `alpn`.
pub async fn raw_connect(
    tls: &TlsConfig,
    alpn: &[u8],
    target: u32,
    addr: SocketAddr,
) -> Result<(quinn::Endpoint, quinn::Connection), String> {
    let config = hermes_net::tls::quinn_client_config(tls, alpn).map_err(|e| e.to_string())?;
    let endpoint =
        quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).map_err(|e| e.to_string())?;
    let connecting = endpoint
        .connect_with(config, addr, &node_dns_name(NodeId(target)))
        .map_err(|e| e.to_string())?;
    let conn = bounded("raw connect", connecting)
        .await
        .map_err(|e| e.to_string())?;
    Ok((endpoint, conn))
}

/// A raw peer stream to `target` that has sent the hello of `claim`.
pub async fn raw_peer_stream(
    tls: &TlsConfig,
    claim: u32,
    target: u32,
    addr: SocketAddr,
) -> (quinn::Endpoint, quinn::Connection, quinn::SendStream) {
    let (endpoint, conn) = raw_connect(tls, hermes_net::PEER_ALPN, target, addr)
        .await
        .expect("raw connect");
    let mut send = conn.open_uni().await.expect("open stream");
    send.write_all(&hermes_net::frame::encode_hello(NodeId(claim)))
        .await
        .expect("write hello");
    (endpoint, conn, send)
}

/// Waits until `conn` is closed and returns the application close code, if any.
pub async fn closed_code(conn: &quinn::Connection) -> Option<u64> {
    match bounded("connection close", conn.closed()).await {
        quinn::ConnectionError::ApplicationClosed(close) => Some(close.error_code.into_inner()),
        _ => None,
    }
}
