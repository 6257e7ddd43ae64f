//! The client request/response protocol on the node's endpoint.

mod common;

use std::sync::Arc;

use common::*;
use hermes_core::NodeId;
use hermes_net::{
    Client, ClientOptions, ClientTransport, NetError, QuicTransport, Requests, ServerError,
    TlsConfig, CLIENT_ALPN,
};
use tokio::io::AsyncWriteExt;

type ServedNode = (
    QuicTransport<Msg>,
    hermes_net::Inbox<Msg>,
    Requests<String, String>,
);

fn serve_node(dir: &tempfile::TempDir, client_queue_max: usize) -> ServedNode {
    let mut config = test_config(dir, 1);
    config.options.client_queue_max = client_queue_max;
    QuicTransport::bind_with_clients(config).expect("bind")
}

/// Answers requests, each drained burst in reverse order of arrival.
fn answer_in_reverse(mut requests: Requests<String, String>) {
    tokio::spawn(async move {
        while let Some(first) = requests.recv().await {
            let mut burst = vec![first];
            while let Ok(more) = requests.try_recv() {
                burst.push(more);
            }
            for req in burst.into_iter().rev() {
                let answer = req.request.to_uppercase();
                req.responder.respond(answer);
            }
        }
    });
}

/// Connects to node 1 over `transport`.
async fn connect(
    node: &ServedNode,
    tls: &TlsConfig,
    transport: ClientTransport,
) -> Result<Client<String, String>, NetError> {
    let options = ClientOptions {
        transport,
        ..ClientOptions::default()
    };
    Client::connect_with(addr(&node.0), NodeId(1), tls, options).await
}

#[tokio::test]
async fn pipelined_calls_over_one_tcp_connection() {
    pipelined_calls_over_one_connection(ClientTransport::Tcp).await;
}

#[tokio::test]
async fn pipelined_calls_over_one_quic_connection() {
    pipelined_calls_over_one_connection(ClientTransport::Quic).await;
}

async fn pipelined_calls_over_one_connection(transport: ClientTransport) {
    init_tracing();
    let dir = cert_dir(&[1], &["cli"]);
    let served = serve_node(&dir, 1024);
    let client = Arc::new(
        connect(&served, &client_tls(&dir, "cli"), transport)
            .await
            .unwrap(),
    );
    let (node, _inbox, requests) = served;
    answer_in_reverse(requests);
    assert_eq!(client.call("hello".into()).await.unwrap(), "HELLO");

    let mut calls = tokio::task::JoinSet::new();
    for i in 0..100 {
        let client = Arc::clone(&client);
        calls.spawn(async move { (i, client.call(format!("req-{i}")).await) });
    }
    let mut done = 0;
    while let Some(joined) = bounded("calls", calls.join_next()).await {
        let (i, result) = joined.unwrap();
        assert_eq!(result.unwrap(), format!("REQ-{i}"));
        done += 1;
    }
    assert_eq!(done, 100);
    let stats = node.stats();
    assert_eq!(stats.client_connections, 1);
    assert_eq!(stats.client_requests, 101);
}

#[tokio::test]
async fn overloaded_and_dropped_requests_get_typed_refusals() {
    init_tracing();
    let dir = cert_dir(&[1], &["cli"]);
    let (node, _inbox, mut requests) = serve_node(&dir, 1);
    let client: Arc<Client<String, String>> = Arc::new(
        Client::connect(addr(&node), NodeId(1), &client_tls(&dir, "cli"))
            .await
            .unwrap(),
    );

    // The first request fills the queue of 1; the application has not taken it yet.
    let first = {
        let client = Arc::clone(&client);
        tokio::spawn(async move { client.call("first".into()).await })
    };
    wait_until("first request queued", || node.stats().client_requests == 1).await;
    assert!(matches!(
        client.call("second".into()).await,
        Err(NetError::Refused(ServerError::Overloaded))
    ));
    // The application drops the first request without answering.
    let req = bounded("request", requests.recv()).await.unwrap();
    assert_eq!(req.request, "first");
    drop(req);
    assert!(matches!(
        first.await.unwrap(),
        Err(NetError::Refused(ServerError::Dropped))
    ));
    assert_eq!(node.stats().client_requests_refused, 1);
}

#[tokio::test]
async fn tcp_client_with_a_certificate_from_another_ca_is_refused() {
    client_with_a_certificate_from_another_ca_is_refused(ClientTransport::Tcp).await;
}

#[tokio::test]
async fn quic_client_with_a_certificate_from_another_ca_is_refused() {
    client_with_a_certificate_from_another_ca_is_refused(ClientTransport::Quic).await;
}

async fn client_with_a_certificate_from_another_ca_is_refused(transport: ClientTransport) {
    init_tracing();
    let dir = cert_dir(&[1], &["cli"]);
    let foreign = cert_dir(&[], &["cli"]);
    let served = serve_node(&dir, 16);
    let refused = match connect(&served, &client_tls(&foreign, "cli"), transport).await {
        Err(e) => e,
        Ok(client) => bounded("refused call", client.call("x".into()))
            .await
            .unwrap_err(),
    };
    assert!(
        matches!(
            refused,
            NetError::Connect { .. } | NetError::ConnectionLost { .. }
        ),
        "{refused}"
    );
    let good = connect(&served, &client_tls(&dir, "cli"), transport)
        .await
        .unwrap();
    let (node, _inbox, requests) = served;
    answer_in_reverse(requests);
    wait_until("handshake failure", || node.stats().handshakes_failed == 1).await;
    assert_eq!(node.stats().client_requests, 0);
    // A client with a good certificate is served.
    assert_eq!(good.call("ok".into()).await.unwrap(), "OK");
}

#[tokio::test]
async fn client_dialing_the_wrong_node_id_is_refused_by_its_own_tls() {
    init_tracing();
    let dir = cert_dir(&[1, 2], &["cli"]);
    let (node, _inbox, _requests) = serve_node(&dir, 16);
    let err = Client::<String, String>::connect(addr(&node), NodeId(2), &client_tls(&dir, "cli"))
        .await
        .err()
        .expect("server certificate names node 1, not node 2");
    assert!(matches!(err, NetError::Connect { .. }), "{err}");
}

#[tokio::test]
async fn garbage_from_one_client_closes_only_its_connection() {
    init_tracing();
    let dir = cert_dir(&[1], &["cli", "bad"]);
    let (node, _inbox, requests) = serve_node(&dir, 16);
    answer_in_reverse(requests);
    let good: Client<String, String> =
        Client::connect(addr(&node), NodeId(1), &client_tls(&dir, "cli"))
            .await
            .unwrap();
    assert_eq!(good.call("before".into()).await.unwrap(), "BEFORE");

    let (_ep, conn) = raw_connect(&client_tls(&dir, "bad"), CLIENT_ALPN, 1, addr(&node))
        .await
        .unwrap();
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    send.write_all(&[3, 0, 0, 0, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    assert_eq!(closed_code(&conn).await, Some(2));
    wait_until("frame rejected", || node.stats().frames_rejected == 1).await;

    assert_eq!(good.call("after".into()).await.unwrap(), "AFTER");
}

#[tokio::test]
async fn garbage_from_one_tcp_client_ends_only_its_connection() {
    init_tracing();
    let dir = cert_dir(&[1], &["cli", "bad"]);
    let served = serve_node(&dir, 16);
    let good = connect(&served, &client_tls(&dir, "cli"), ClientTransport::Tcp)
        .await
        .unwrap();
    let (node, _inbox, requests) = served;
    answer_in_reverse(requests);
    assert_eq!(good.call("before".into()).await.unwrap(), "BEFORE");

    let tls = hermes_net::tls::rustls_client_config(&client_tls(&dir, "bad"), CLIENT_ALPN).unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(tls));
    let tcp = tokio::net::TcpStream::connect(addr(&node)).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("node-1.hermes").unwrap();
    let mut bad = connector.connect(name, tcp).await.unwrap();
    bad.write_all(&[3, 0, 0, 0, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    bad.flush().await.unwrap();
    wait_until("frame rejected", || node.stats().frames_rejected == 1).await;
    let mut rest = Vec::new();
    let read = bounded(
        "close",
        tokio::io::AsyncReadExt::read_to_end(&mut bad, &mut rest),
    )
    .await;
    assert!(read.is_err() || rest.is_empty(), "no answer to a bad frame");

    assert_eq!(good.call("after".into()).await.unwrap(), "AFTER");
}

#[tokio::test]
async fn client_connections_beyond_the_limit_are_refused() {
    init_tracing();
    let dir = cert_dir(&[1], &["cli"]);
    let mut config = test_config(&dir, 1);
    config.options.client_connections_max = 1;
    let served: ServedNode = QuicTransport::bind_with_clients(config).expect("bind");
    let tls = client_tls(&dir, "cli");
    let first = connect(&served, &tls, ClientTransport::Tcp).await.unwrap();
    let (node, _inbox, requests) = served;
    answer_in_reverse(requests);
    assert_eq!(first.call("one".into()).await.unwrap(), "ONE");
    let options = ClientOptions::default();
    // Refused at once: the connection is reset during or right after the handshake.
    match Client::<String, String>::connect_with(addr(&node), NodeId(1), &tls, options).await {
        Ok(second) => assert!(bounded("refused call", second.call("two".into()))
            .await
            .is_err()),
        Err(err) => assert!(matches!(err, NetError::Connect { .. }), "{err}"),
    }
    assert!(node.stats().peers_refused >= 1);
    assert_eq!(first.call("still".into()).await.unwrap(), "STILL");
}

#[tokio::test]
async fn a_node_without_client_service_refuses_clients() {
    init_tracing();
    let dir = cert_dir(&[1], &["cli"]);
    let (node, _inbox) = QuicTransport::<Msg>::bind(test_config(&dir, 1)).unwrap();
    for transport in [ClientTransport::Tcp, ClientTransport::Quic] {
        let options = ClientOptions {
            transport,
            ..ClientOptions::default()
        };
        let tls = client_tls(&dir, "cli");
        let result =
            Client::<String, String>::connect_with(addr(&node), NodeId(1), &tls, options).await;
        assert!(
            matches!(result, Err(NetError::Connect { .. })),
            "{transport:?}"
        );
    }
}

#[tokio::test]
async fn tcp_calls_fail_with_a_typed_error_when_the_server_goes_away() {
    calls_fail_with_a_typed_error_when_the_server_goes_away(ClientTransport::Tcp).await;
}

#[tokio::test]
async fn quic_calls_fail_with_a_typed_error_when_the_server_goes_away() {
    calls_fail_with_a_typed_error_when_the_server_goes_away(ClientTransport::Quic).await;
}

async fn calls_fail_with_a_typed_error_when_the_server_goes_away(transport: ClientTransport) {
    init_tracing();
    let dir = cert_dir(&[1], &["cli"]);
    let served = serve_node(&dir, 16);
    let client = Arc::new(
        connect(&served, &client_tls(&dir, "cli"), transport)
            .await
            .unwrap(),
    );
    let (node, _inbox, mut requests) = served;
    let pending = {
        let client = Arc::clone(&client);
        tokio::spawn(async move { client.call("never answered".into()).await })
    };
    let req = bounded("request", requests.recv()).await.unwrap();
    node.shutdown().await;
    let err = bounded("pending call", pending).await.unwrap().unwrap_err();
    assert!(matches!(err, NetError::ConnectionLost { .. }), "{err}");
    assert!(req.responder.is_closed());
    assert!(!req.responder.respond("late".into()));
    assert!(client.call("after".into()).await.is_err());
}
