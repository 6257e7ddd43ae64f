//! Clients that connect and then do nothing: silent TCP sockets that never start TLS, and TLS or
//! QUIC clients that never send a request. Each holds its slot only until the handshake timeout
//! or the client idle timeout, and none of them keeps a well-behaved client from being served.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use hermes_core::NodeId;
use hermes_net::{Client, ClientOptions, ClientTransport, NetError, QuicTransport, CLIENT_ALPN};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Raw TCP connections that never send a byte.
const SILENT: usize = 1_000;
/// QUIC close code of a client connection closed for idleness.
const IDLE: u64 = 5;

type ServedNode = (
    QuicTransport<Msg>,
    hermes_net::Inbox<Msg>,
    hermes_net::Requests<String, String>,
);

/// Node 1 serving clients, with the given handshake and client idle timeouts.
fn serve_node(dir: &tempfile::TempDir, handshake_ms: u64, idle_ms: u64) -> ServedNode {
    let mut config = test_config(dir, 1);
    config.options.handshake_timeout_ms = handshake_ms;
    config.options.client_idle_timeout_ms = idle_ms;
    config.options.client_connections_max = SILENT + 16;
    QuicTransport::bind_with_clients(config).expect("bind")
}

/// Answers every request with its upper-case form.
fn answer_all(mut requests: hermes_net::Requests<String, String>) {
    tokio::spawn(async move {
        while let Some(req) = requests.recv().await {
            let answer = req.request.to_uppercase();
            req.responder.respond(answer);
        }
    });
}

async fn tcp_client(node: &ServedNode, dir: &tempfile::TempDir) -> Client<String, String> {
    let options = ClientOptions {
        transport: ClientTransport::Tcp,
        ..ClientOptions::default()
    };
    let tls = client_tls(dir, "cli");
    bounded(
        "client connect",
        Client::connect_with(addr(&node.0), NodeId(1), &tls, options),
    )
    .await
    .expect("connect")
}

/// How many silent connections this process can hold: both their ends live here, so each costs
/// two file descriptors. Raises the process's own soft limit towards its hard limit if needed
/// (nothing system-wide).
fn silent_connections_possible() -> usize {
    const SPARE_FDS: u64 = 256;
    let needed = 2 * SILENT as u64 + SPARE_FDS;
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return SILENT;
        }
        if limit.rlim_cur < needed {
            limit.rlim_cur = needed.min(limit.rlim_max);
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
        }
    }
    let possible = (limit.rlim_cur.saturating_sub(SPARE_FDS) / 2) as usize;
    if possible < SILENT {
        eprintln!(
            "open-files limit {}: {possible} silent connections",
            limit.rlim_cur
        );
    }
    possible.min(SILENT)
}

/// Whether the server closed `stream`: EOF or a reset, within [`WAIT`].
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(WAIT, stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_tcp_connections_do_not_keep_a_client_from_being_served() {
    init_tracing();
    let count = silent_connections_possible();
    let dir = cert_dir(&[1], &["cli"]);
    let handshake_ms = 2_000;
    let served = serve_node(&dir, handshake_ms, 60_000);
    let node_addr = addr(&served.0);

    let opened = Instant::now();
    let mut silent = Vec::with_capacity(count);
    for _ in 0..count {
        let stream = bounded("silent connect", TcpStream::connect(node_addr)).await;
        silent.push(stream.expect("silent connect"));
    }

    let client = tcp_client(&served, &dir).await;
    let (node, _inbox, requests) = served;
    answer_all(requests);
    let answer = bounded("call", client.call("served".into())).await;
    assert_eq!(answer.unwrap(), "SERVED");
    let served_after = opened.elapsed();
    assert!(
        served_after < Duration::from_millis(handshake_ms),
        "served only after {served_after:?}, when the silent connections may have timed out"
    );
    assert_eq!(
        node.stats().handshakes_failed,
        0,
        "a silent connection timed out early"
    );

    wait_until("silent handshakes time out", || {
        node.stats().handshakes_failed == count as u64
    })
    .await;
    assert!(opened.elapsed() >= Duration::from_millis(handshake_ms));
    for stream in &mut silent {
        assert!(
            closed_by_server(stream).await,
            "a silent connection stayed open"
        );
    }
    assert!(has_error(&node.recent_errors(), |e| matches!(
        e,
        NetError::Handshake { reason, .. } if reason == "timed out"
    )));
    assert_eq!(client.call("still".into()).await.unwrap(), "STILL");
}

#[tokio::test]
async fn a_tls_client_that_stays_silent_is_closed_after_the_idle_timeout() {
    init_tracing();
    let dir = cert_dir(&[1], &["cli"]);
    let idle_ms = 500;
    let (node, _inbox, requests) = serve_node(&dir, 200, idle_ms);
    answer_all(requests);

    let tls = hermes_net::tls::rustls_client_config(&client_tls(&dir, "cli"), CLIENT_ALPN).unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let tcp = TcpStream::connect(addr(&node)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("node-1.hermes").unwrap();
    let mut silent = connector.connect(name, tcp).await.unwrap();
    let connected = Instant::now();
    assert_eq!(node.stats().peers_refused, 0);

    let mut rest = Vec::new();
    let read = bounded("idle close", silent.read_to_end(&mut rest)).await;
    assert!(
        read.is_err() || rest.is_empty(),
        "no bytes for a silent client"
    );
    assert!(connected.elapsed() >= Duration::from_millis(idle_ms - 50));
    assert_eq!(node.stats().peers_refused, 1);
    assert_eq!(node.stats().handshakes_failed, 0);
    assert!(has_error(&node.recent_errors(), |e| matches!(
        e,
        NetError::ConnectionLost { reason, .. } if reason.contains("idle")
    )));
}

#[tokio::test]
async fn a_client_with_a_request_in_flight_is_not_closed_for_idleness() {
    init_tracing();
    let dir = cert_dir(&[1], &["cli"]);
    let idle_ms = 300;
    let served = serve_node(&dir, 200, idle_ms);
    let client = Arc::new(tcp_client(&served, &dir).await);
    let (node, _inbox, mut requests) = served;

    let pending = {
        let client = Arc::clone(&client);
        tokio::spawn(async move { client.call("slow".into()).await })
    };
    let req = bounded("request", requests.recv()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(4 * idle_ms)).await;
    assert_eq!(
        node.stats().peers_refused,
        0,
        "closed with a request in flight"
    );
    assert!(req.responder.respond("answered late".into()));
    let answer = bounded("pending call", pending).await.unwrap();
    assert_eq!(answer.unwrap(), "answered late");

    // Once nothing is in flight, the idle clock runs again.
    wait_until("idle close", || node.stats().peers_refused == 1).await;
}

#[tokio::test]
async fn a_quic_client_that_stays_silent_is_closed_after_the_idle_timeout() {
    init_tracing();
    let dir = cert_dir(&[1], &["cli"]);
    let idle_ms = 500;
    // QUIC keep-alives (200 ms) keep the connection open at the QUIC level (its own idle
    // timeout is 3 s); the client idle timeout closes it.
    let (node, _inbox, requests) = serve_node(&dir, 200, idle_ms);
    answer_all(requests);
    let (_endpoint, conn) = raw_connect(&client_tls(&dir, "cli"), CLIENT_ALPN, 1, addr(&node))
        .await
        .unwrap();
    let connected = Instant::now();
    assert_eq!(closed_code(&conn).await, Some(IDLE));
    assert!(connected.elapsed() >= Duration::from_millis(idle_ms - 50));
    assert_eq!(node.stats().peers_refused, 1);
}
