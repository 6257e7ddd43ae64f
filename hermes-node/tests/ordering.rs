//! The driver carries out the core's actions in the order the core emitted them: a write's INVs
//! go out peer by peer in id order, its answer comes only after every peer's ACK, and every
//! peer gets the VAL after the INV; once a write is answered no node reads the value it replaced.

mod common;

use common::{bounded, config, eventually, is, Cluster, Sent};
use hermes_core::Ts;

/// Where the first message of `sent` that is `kind` of `ts` on `key` from `from` to `to` is.
fn position(sent: &[Sent], kind: &str, key: &[u8], ts: Ts, from: u32, to: u32) -> Option<usize> {
    sent.iter().position(|s| is(s, kind, key, ts, from, to))
}

#[tokio::test(start_paused = true)]
async fn a_write_is_answered_after_its_invs_and_acks_and_each_val_follows_the_inv() {
    let c = Cluster::start(config).await;
    let ts = bounded("the write", c.node(1).write("k", "v"))
        .await
        .expect("the write commits");
    // What had been sent when the answer arrived.
    let at_answer = c.wire.sent();
    let inv = |to| position(&at_answer, "INV", b"k", ts, 1, to).expect("the INV went out");
    let ack = |from| {
        position(&at_answer, "ACK", b"k", ts, from, 1).expect("the ACK came before the answer")
    };
    assert!(inv(2) < inv(3), "INVs in the core's order (peers by id)");
    assert!(inv(2) < ack(2) && inv(3) < ack(3));

    eventually("both VALs are sent", || {
        c.wire.position(|s| is(s, "VAL", b"k", ts, 1, 3)).is_some()
    })
    .await;
    let sent = c.wire.sent();
    let val = |to| position(&sent, "VAL", b"k", ts, 1, to).expect("the VAL went out");
    assert!(val(2) < val(3), "VALs in the core's order (peers by id)");
    assert!(val(2) > ack(2).max(ack(3)), "no VAL before every ACK");
    for to in [2, 3] {
        assert!(inv(to) < val(to), "node {to} gets the INV before the VAL");
    }
    c.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn concurrent_writes_reach_every_peer_as_inv_then_val() {
    let c = Cluster::start(config).await;
    let mut writes = Vec::new();
    for i in 0..16 {
        for writer in [1, 2] {
            let node = c.node(writer).clone();
            let key = format!("key-{i}-{writer}");
            writes.push((
                writer,
                key.clone(),
                tokio::spawn(async move { node.write(key, "v").await }),
            ));
        }
    }
    let mut committed = Vec::new();
    for (writer, key, write) in writes {
        let ts = bounded("a write", write)
            .await
            .expect("the write task ends")
            .expect("the write commits");
        committed.push((writer, key, ts));
    }
    eventually("every VAL is sent", || {
        let sent = c.wire.sent();
        committed.iter().all(|(writer, key, ts)| {
            (1..=3)
                .filter(|to| to != writer)
                .all(|to| position(&sent, "VAL", key.as_bytes(), *ts, *writer, to).is_some())
        })
    })
    .await;
    let sent = c.wire.sent();
    for (writer, key, ts) in &committed {
        for to in (1..=3).filter(|to| to != writer) {
            let inv = position(&sent, "INV", key.as_bytes(), *ts, *writer, to);
            let val = position(&sent, "VAL", key.as_bytes(), *ts, *writer, to);
            assert!(inv < val, "{key} at {ts}: node {to} gets the INV first");
        }
    }
    c.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn once_a_write_is_answered_no_node_reads_the_value_it_replaced() {
    let c = Cluster::start(config).await;
    let mut previous: Option<String> = None;
    for round in 0..12u32 {
        let writer = round % 3 + 1;
        let value = format!("v{round}");
        bounded("the write", c.node(writer).write("k", value.clone()))
            .await
            .expect("the write commits");
        for id in 1..=3 {
            let local = c.node(id).read_local(b"k");
            if let Some(old) = &previous {
                assert_ne!(
                    local,
                    Some(Some(bytes::Bytes::from(old.clone()))),
                    "node {id} answers the replaced value locally"
                );
            }
            let read = bounded("the read", c.node(id).read("k")).await;
            assert_eq!(read.as_deref(), Ok(value.as_bytes()), "node {id}");
        }
        previous = Some(value);
    }
    c.shutdown().await;
}
