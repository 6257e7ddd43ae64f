//! The client request/response protocol on the node's endpoint.

mod common;

use std::sync::Arc;

use common::*;
use hermes_core::NodeId;
use hermes_net::{Client, NetError, QuicTransport, Requests, ServerError, CLIENT_ALPN};

type Node = (
    QuicTransport<Msg>,
    hermes_net::Inbox<Msg>,
    Requests<String, String>,
);

fn serve_node(dir: &tempfile::TempDir, client_queue_max: usize) -> Node {
    let mut config = test_config(dir, 1);
    config.client_queue_max = client_queue_max;
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

#[tokio::test]
async fn pipelined_calls_over_one_connection() {
    init_tracing();
    let dir = cert_dir(&[1], &["cli"]);
    let (node, _inbox, requests) = serve_node(&dir, 1024);
    answer_in_reverse(requests);
    let client: Arc<Client<String, String>> = Arc::new(
        Client::connect(addr(&node), NodeId(1), &client_tls(&dir, "cli"))
            .await
            .unwrap(),
    );
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
async fn client_with_a_certificate_from_another_ca_is_refused() {
    init_tracing();
    let dir = cert_dir(&[1], &["cli"]);
    let foreign = cert_dir(&[], &["cli"]);
    let (node, _inbox, requests) = serve_node(&dir, 16);
    answer_in_reverse(requests);
    let refused = match Client::<String, String>::connect(
        addr(&node),
        NodeId(1),
        &client_tls(&foreign, "cli"),
    )
    .await
    {
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
    wait_until("handshake failure", || node.stats().handshakes_failed == 1).await;
    assert_eq!(node.stats().client_requests, 0);
    // A client with a good certificate is served.
    let good: Client<String, String> =
        Client::connect(addr(&node), NodeId(1), &client_tls(&dir, "cli"))
            .await
            .unwrap();
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
async fn a_node_without_client_service_refuses_clients() {
    init_tracing();
    let dir = cert_dir(&[1], &["cli"]);
    let (node, _inbox) = QuicTransport::<Msg>::bind(test_config(&dir, 1)).unwrap();
    let result =
        Client::<String, String>::connect(addr(&node), NodeId(1), &client_tls(&dir, "cli")).await;
    assert!(matches!(result, Err(NetError::Connect { .. })));
}

#[tokio::test]
async fn calls_fail_with_a_typed_error_when_the_server_goes_away() {
    init_tracing();
    let dir = cert_dir(&[1], &["cli"]);
    let (node, _inbox, mut requests) = serve_node(&dir, 16);
    let client: Arc<Client<String, String>> = Arc::new(
        Client::connect(addr(&node), NodeId(1), &client_tls(&dir, "cli"))
            .await
            .unwrap(),
    );
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
