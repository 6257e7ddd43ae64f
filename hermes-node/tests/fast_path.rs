//! The read fast path: a read of a key that is Valid while the node holds its lease is answered
//! on the caller's task, without waiting for the driver — even while writes wait in it — and a
//! node that lost its lease answers nothing locally.

mod common;

use bytes::Bytes;
use common::{bounded, config, eventually, poll_once, Cluster};
use hermes_core::{Config, NodeId};
use hermes_node::RequestError;

#[tokio::test(start_paused = true)]
async fn a_valid_key_is_read_on_the_callers_task_while_writes_wait_in_the_driver() {
    let c = Cluster::start(config).await;
    bounded("the write", c.node(1).write("k", "v"))
        .await
        .expect("the write commits");
    // Node 3 is cut off: writes coordinated by node 1 wait for its ACK; node 2's grant keeps
    // node 1's lease.
    c.connect(3, false);
    let mut writes = Vec::new();
    for i in 0..3 {
        let node = c.node(1).clone();
        writes.push(tokio::spawn(async move {
            node.write(format!("busy-{i}"), "w").await
        }));
    }
    eventually("the writes wait in node 1", || {
        c.node(1).status().pending_requests == 3
    })
    .await;

    let node = c.node(1);
    let fast_reads = node.status().counters.fast_reads;
    assert_eq!(node.read_local(b"k"), Some(Some(Bytes::from("v"))));
    let read = poll_once(node.read("k")).expect("the read of a Valid key did not wait");
    assert_eq!(read, Ok(Bytes::from("v")));
    assert_eq!(node.status().counters.fast_reads, fast_reads + 2);
    // A key being written is not answered locally: its read waits for the write.
    assert_eq!(node.read_local(b"busy-0"), None);
    assert_eq!(
        poll_once(node.read("busy-0")),
        None,
        "read of a key in flight"
    );

    c.connect(3, true);
    for write in writes {
        bounded("a waiting write", write)
            .await
            .expect("the write task ends")
            .expect("the write commits once node 3 is back");
    }
    let read = bounded("the read", node.read("busy-0")).await;
    assert_eq!(read, Ok(Bytes::from("w")));
    c.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_node_cut_off_stops_answering_locally_before_the_others_move_on() {
    // The default suspicion timeout: the majority removes the cut-off node and writes without it.
    let c = Cluster::start(|id: NodeId| Config {
        request_timeout_ms: 2_000,
        ..Config::for_node(id)
    })
    .await;
    bounded("the write", c.node(1).write("k", "old"))
        .await
        .expect("the write commits");
    c.connect(1, false);
    let written = bounded("a write by the majority", async {
        loop {
            // Refused or timed out while node 1 is still a member; retried until it is removed.
            if c.node(2).write("k", "new").await.is_ok() {
                return;
            }
        }
    });
    written.await;
    assert_eq!(
        c.node(1).read_local(b"k"),
        None,
        "node 1 still answers locally after the majority wrote without it"
    );
    let read = bounded("the read at node 1", c.node(1).read("k")).await;
    assert!(
        matches!(
            read,
            Err(RequestError::QuorumFailed { .. }
                | RequestError::Timeout { .. }
                | RequestError::NotResponsible { .. })
        ),
        "{read:?}"
    );
    assert_eq!(
        bounded("the read at node 3", c.node(3).read("k")).await,
        Ok(Bytes::from("new"))
    );
    c.shutdown().await;
}
