//! `ClusterNode` and `RemoteClient` answer the same requests through `ClientApi`: one generic
//! function runs against a node in process (in-memory transport) and against a node reached
//! over the client protocol (QUIC node on 127.0.0.1, ephemeral port).

use bytes::Bytes;
use hermes_core::{Config, Message, NodeId, Op, Outcome};
use hermes_net::{MemConfig, MemNetwork};
use hermes_node::{
    ClientApi, ClientConfig, ClusterNode, NodeConfig, NodeState, RemoteClient, RequestError,
};

/// Every operation of the API, with the answers the seed promises.
async fn exercise(api: &impl ClientApi, node: u32) {
    let ts = api.write("k", "v1").await.expect("write");
    assert_eq!(api.read("k").await.expect("read"), Bytes::from("v1"));
    assert_eq!(
        api.cas("k", Some(Bytes::from("other")), "v2").await,
        Err(RequestError::CasFailed)
    );
    let swapped = api
        .cas("k", Some(Bytes::from("v1")), "v2")
        .await
        .expect("cas");
    assert!(swapped > ts);
    assert_eq!(
        api.execute(Op::Read { key: "k".into() }).await,
        Ok(Outcome::Value(Some(Bytes::from("v2"))))
    );
    api.delete("k").await.expect("delete");
    assert_eq!(api.read("k").await, Err(RequestError::ValueNotFound));
    api.cas("k", None, "v3")
        .await
        .expect("cas on an absent key");
    assert!(matches!(
        api.write("", "empty key").await,
        Err(RequestError::InvalidArgument(_))
    ));
    let status = api.status().await.expect("status");
    assert_eq!(status.node_id, node);
    assert_eq!(status.state, NodeState::Active);
}

#[tokio::test]
async fn the_api_runs_against_an_in_process_node() {
    let network = MemNetwork::<Message>::new(MemConfig::default()).expect("network");
    let ids = [NodeId(1), NodeId(2), NodeId(3)];
    let mut nodes = Vec::new();
    for id in ids {
        let (transport, inbox) = network.endpoint(id).expect("endpoint");
        nodes.push(
            ClusterNode::start_with_transport(Config::for_node(id), &ids, transport, inbox)
                .expect("start"),
        );
    }
    for node in &nodes {
        node.wait_active(10_000).await.expect("active");
    }
    exercise(&nodes[0], 1).await;
    for node in &nodes {
        node.shutdown().await.expect("shutdown");
    }
}

/// One node started from a TOML file (with `extra` appended) and a client configuration for
/// it, in a temporary directory.
async fn remote_node(extra: &str) -> (tempfile::TempDir, ClusterNode, ClientConfig) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let certs = dir.path().join("certs");
    hermes_net::gen_certs(&certs, &[NodeId(1)], &["test"], false).expect("certificates");
    let addr = hermes_net::free_loopback_addrs(1).expect("free port")[0];
    let node_toml = format!(
        "node_id = 1\nlisten = \"{addr}\"\ndata_dir = \"{data}\"\n\n[tls]\nca = \"{ca}\"\n\
         cert = \"{cert}\"\nkey = \"{key}\"\n{extra}",
        data = dir.path().join("node1").display(),
        ca = certs.join("ca.pem").display(),
        cert = certs.join("node-1.pem").display(),
        key = certs.join("node-1.key").display(),
    );
    let node = ClusterNode::start(NodeConfig::from_toml(&node_toml).expect("node config"))
        .await
        .expect("start");
    node.wait_active(10_000).await.expect("active");

    let client_toml = format!(
        "[[nodes]]\nid = 1\naddr = \"{addr}\"\n\n[tls]\nca = \"certs/ca.pem\"\n\
         cert = \"certs/client-test.pem\"\nkey = \"certs/client-test.key\"\n"
    );
    let client_path = dir.path().join("client.toml");
    std::fs::write(&client_path, client_toml).expect("write client config");
    let config = ClientConfig::load(&client_path).expect("client config");
    (dir, node, config)
}

#[tokio::test]
async fn the_api_runs_against_a_remote_node() {
    let (_dir, node, config) = remote_node("").await;
    let tls = config.tls.load().expect("client certificates");
    let client = RemoteClient::connect(&config, &tls, NodeId(1))
        .await
        .expect("connect");
    exercise(&client, 1).await;
    // The node in process answers the same way as through the client.
    exercise(&node, 1).await;

    client.close();
    node.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_remote_client_redials_a_connection_the_node_closed_for_idleness() {
    let (_dir, node, config) = remote_node("\n[network]\nclient_idle_timeout_ms = 200\n").await;
    let tls = config.tls.load().expect("client certificates");
    let client = RemoteClient::connect(&config, &tls, NodeId(1))
        .await
        .expect("connect");
    client.write("k", "before").await.expect("write");
    // Well past the idle timeout: the node has closed the connection.
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    client
        .write("k", "after")
        .await
        .expect("write after the idle close");
    assert_eq!(client.read("k").await.expect("read"), "after");

    // A client closed by its owner stays closed.
    client.close();
    assert!(client.read("k").await.is_err());
    node.shutdown().await.expect("shutdown");
}
