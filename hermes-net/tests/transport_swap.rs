//! The same node code runs over the in-memory and the QUIC transport.

mod common;

use common::*;
use hermes_core::NodeId;
use hermes_net::{Inbox, MemConfig, MemNetwork, Transport};

#[tokio::test]
async fn same_node_code_runs_on_both_transports() {
    init_tracing();
    let net = MemNetwork::<Msg>::new(MemConfig::default()).unwrap();
    exchange(
        net.endpoint(NodeId(1)).unwrap(),
        net.endpoint(NodeId(2)).unwrap(),
    )
    .await;

    let dir = cert_dir(&[1, 2], &[]);
    let mut nodes = start(&dir, &[1, 2]);
    let b = nodes.pop().unwrap();
    let a = nodes.pop().unwrap();
    exchange(a, b).await;
}

/// Node a sends `n` Invs to b; b answers each with an Ack, a answers each Ack with a Val. Written
/// once against the trait.
async fn exchange<T: Transport<Msg> + 'static>(a: (T, Inbox<Msg>), b: (T, Inbox<Msg>)) {
    let n = 500u64;
    let (a_t, mut a_in) = a;
    let (b_t, mut b_in) = b;
    let b_id = b_t.local_id();
    for k in 0..n {
        a_t.send(b_id, Msg::Inv(k)).unwrap();
    }
    let b_task = tokio::spawn(async move {
        let mut vals = Vec::new();
        while vals.len() < n as usize {
            let batch = bounded("batch at b", b_in.recv()).await.expect("open");
            for msg in batch.messages {
                match msg {
                    Msg::Inv(k) => b_t.send(batch.from, Msg::Ack(k)).unwrap(),
                    Msg::Val(k) => vals.push(k),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        vals
    });
    let mut acks = 0;
    while acks < n {
        let batch = bounded("batch at a", a_in.recv()).await.expect("open");
        for msg in batch.messages {
            let Msg::Ack(k) = msg else {
                panic!("unexpected {msg:?}")
            };
            assert_eq!(k, acks);
            acks += 1;
            a_t.send(batch.from, Msg::Val(k)).unwrap();
        }
    }
    let vals = bounded("b done", b_task).await.unwrap();
    assert_eq!(vals, (0..n).collect::<Vec<_>>());
}
