//! Happy paths of the QUIC peer transport on 127.0.0.1.

mod common;

use std::time::Duration;

use common::*;
use hermes_core::NodeId;
use hermes_net::{NetError, QuicTransport, Transport};

#[tokio::test]
async fn two_endpoints_exchange_batches_both_ways() {
    init_tracing();
    let dir = cert_dir(&[1, 2], &[]);
    let mut nodes = start(&dir, &[1, 2]);
    let (b, mut b_in) = nodes.pop().unwrap();
    let (a, mut a_in) = nodes.pop().unwrap();

    // Queued before the connection exists, sent in a tight loop: many messages share a frame.
    for i in 0..1000 {
        a.send(NodeId(2), Msg::Inv(i)).unwrap();
        b.send(NodeId(1), Msg::Ack(i)).unwrap();
    }
    let at_b = recv_n(&mut b_in, 1000).await;
    let at_a = recv_n(&mut a_in, 1000).await;
    assert_eq!(
        at_b,
        (0..1000)
            .map(|i| (NodeId(1), Msg::Inv(i)))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        at_a,
        (0..1000)
            .map(|i| (NodeId(2), Msg::Ack(i)))
            .collect::<Vec<_>>()
    );

    let stats = a.stats();
    assert_eq!(stats.messages_sent, 1000);
    assert!(
        stats.frames_sent < stats.messages_sent,
        "no batching: {stats:?}"
    );
    assert_eq!(b.stats().messages_received, 1000);
    assert_eq!(a.stats().peer_connections, 1);
    assert_eq!(b.stats().peer_connections, 1);
    assert!(a.is_connected(NodeId(2)) && b.is_connected(NodeId(1)));
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn three_endpoints_exchange_with_every_peer() {
    init_tracing();
    let dir = cert_dir(&[1, 2, 3], &[]);
    let mut nodes = start(&dir, &[1, 2, 3]);
    for (t, _) in &nodes {
        for to in [1, 2, 3] {
            if to != t.local_id().0 {
                for i in 0..200 {
                    let msg = Msg::Payload(i, vec![t.local_id().0 as u8; 100]);
                    t.send(NodeId(to), msg).unwrap();
                }
            }
        }
    }
    for (t, inbox) in &mut nodes {
        let me = t.local_id();
        let got = recv_n(inbox, 400).await;
        for from in [1, 2, 3].map(NodeId).into_iter().filter(|&n| n != me) {
            let seq: Vec<&Msg> = got
                .iter()
                .filter(|(f, _)| *f == from)
                .map(|(_, m)| m)
                .collect();
            let expect: Vec<Msg> = (0..200)
                .map(|i| Msg::Payload(i, vec![from.0 as u8; 100]))
                .collect();
            assert_eq!(
                seq,
                expect.iter().collect::<Vec<_>>(),
                "at {me} from {from}"
            );
        }
    }
    // One connection per pair: each node has exactly two.
    for (t, _) in &nodes {
        assert_eq!(t.stats().peer_connections, 2, "{}", t.local_id());
    }
}

#[tokio::test]
async fn unknown_peer_and_oversize_message_are_typed_errors() {
    init_tracing();
    let dir = cert_dir(&[1, 2], &[]);
    let mut config = test_config(&dir, 1);
    config.options.frame_bytes_max = 1024;
    let (a, _a_in) = QuicTransport::<Msg>::bind(config).unwrap();
    let (b, mut b_in) = QuicTransport::<Msg>::bind(test_config(&dir, 2)).unwrap();
    mesh(&[&a, &b]);
    assert!(matches!(
        a.send(NodeId(7), Msg::Inv(1)),
        Err(NetError::UnknownPeer { peer: NodeId(7) })
    ));
    // Accepted by the queue, but can never fit a frame: dropped, logged, counted.
    a.send(NodeId(2), Msg::Payload(0, vec![0; 4096])).unwrap();
    a.send(NodeId(2), Msg::Val(1)).unwrap();
    assert_eq!(recv_n(&mut b_in, 1).await, vec![(NodeId(1), Msg::Val(1))]);
    assert_eq!(a.stats().messages_dropped, 1);
    assert!(has_error(&a.recent_errors(), |e| matches!(
        e,
        NetError::MessageTooLarge { max: 1024, .. }
    )));
}

/// Re-binds node `id` on `addr`, retrying while the old socket is being released.
async fn rebind(
    dir: &tempfile::TempDir,
    id: u32,
    addr: std::net::SocketAddr,
) -> (QuicTransport<Msg>, hermes_net::Inbox<Msg>) {
    bounded("rebind", async {
        loop {
            let mut config = test_config(dir, id);
            config.listen = addr;
            match QuicTransport::bind(config) {
                Ok(node) => return node,
                Err(NetError::Io { .. }) => tokio::time::sleep(Duration::from_millis(10)).await,
                Err(e) => panic!("rebind: {e}"),
            }
        }
    })
    .await
}

#[tokio::test]
async fn reconnects_after_the_accepting_peer_restarts() {
    init_tracing();
    let dir = cert_dir(&[1, 2], &[]);
    let mut nodes = start(&dir, &[1, 2]);
    let (b, mut b_in) = nodes.pop().unwrap();
    let (a, mut a_in) = nodes.pop().unwrap();
    a.send(NodeId(2), Msg::Inv(1)).unwrap();
    assert_eq!(recv_n(&mut b_in, 1).await, vec![(NodeId(1), Msg::Inv(1))]);

    let b_addr = addr(&b);
    b.shutdown().await;
    drop(b_in);
    wait_until("a notices the loss", || !a.is_connected(NodeId(2))).await;

    let (b, mut b_in) = rebind(&dir, 2, b_addr).await;
    b.add_peer(NodeId(1), addr(&a)).unwrap();
    // Node 1 dials again with back-off; what it sends after that arrives.
    send_until_delivered(&a, NodeId(2), &mut b_in, Msg::Inv(2)).await;
    send_until_delivered(&b, NodeId(1), &mut a_in, Msg::Ack(2)).await;
    assert!(a.stats().peer_connections >= 2);
}

#[tokio::test]
async fn accepts_a_restarted_dialer() {
    init_tracing();
    let dir = cert_dir(&[1, 2], &[]);
    let mut nodes = start(&dir, &[1, 2]);
    let (b, mut b_in) = nodes.pop().unwrap();
    let (a, a_in) = nodes.pop().unwrap();
    a.send(NodeId(2), Msg::Inv(1)).unwrap();
    recv_n(&mut b_in, 1).await;

    // Node 1 restarts on a new port.
    let a_addr_old = addr(&a);
    drop(a_in);
    a.shutdown().await;
    let (a, mut a_in) = QuicTransport::<Msg>::bind(test_config(&dir, 1)).unwrap();
    assert_ne!(addr(&a), a_addr_old);
    a.add_peer(NodeId(2), addr(&b)).unwrap();
    b.add_peer(NodeId(1), addr(&a)).unwrap();
    send_until_delivered(&a, NodeId(2), &mut b_in, Msg::Inv(2)).await;
    send_until_delivered(&b, NodeId(1), &mut a_in, Msg::Ack(2)).await;
    assert!(b.stats().peer_connections >= 2);
}
