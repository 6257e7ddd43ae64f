//! Overload: a request over a configured bound gets the typed `Overloaded` error at once —
//! never a hang or a panic — and the node serves again once the pending requests finish.

mod common;

use common::{bounded, config, eventually, Cluster};
use hermes_core::{Config, NodeId};
use hermes_node::RequestError;
use tokio::task::JoinHandle;

/// Node 1 with `configure` applied, the others with the common configuration.
fn with_node_1(configure: fn(Config) -> Config) -> impl Fn(NodeId) -> Config {
    move |id| {
        if id == NodeId(1) {
            configure(config(id))
        } else {
            config(id)
        }
    }
}

/// Starts a write of `key` at node `id` in a task of its own.
fn spawn_write(
    c: &Cluster,
    id: u32,
    key: &str,
) -> JoinHandle<Result<hermes_core::Ts, RequestError>> {
    let node = c.node(id).clone();
    let key = key.to_string();
    tokio::spawn(async move { node.write(key, "v").await })
}

/// Waits for every write in `writes`; each must commit.
async fn all_commit(writes: Vec<JoinHandle<Result<hermes_core::Ts, RequestError>>>) {
    for write in writes {
        bounded("a waiting write", write)
            .await
            .expect("the write task ends")
            .expect("the write commits");
    }
}

#[tokio::test(start_paused = true)]
async fn a_request_over_requests_max_gets_overloaded() {
    let c = Cluster::start(with_node_1(|config| Config {
        requests_max: 4,
        requests_per_key_max: 4,
        ..config
    }))
    .await;
    bounded("the write", c.node(1).write("valid", "v"))
        .await
        .expect("the write commits");
    c.connect(3, false);
    let writes: Vec<_> = (0..4)
        .map(|i| spawn_write(&c, 1, &format!("key-{i}")))
        .collect();
    eventually("four writes pending at node 1", || {
        c.node(1).status().pending_requests == 4
    })
    .await;

    let refused_before = c.node(1).status().counters.overloaded;
    let write = bounded("the fifth write", c.node(1).write("key-4", "v")).await;
    assert!(
        matches!(write, Err(RequestError::Overloaded(_))),
        "{write:?}"
    );
    // A read that needs the driver is refused too; the fast path still answers.
    let read = bounded("a read of a key in flight", c.node(1).read("key-0")).await;
    assert!(matches!(read, Err(RequestError::Overloaded(_))), "{read:?}");
    assert_eq!(
        bounded("a fast read", c.node(1).read("valid"))
            .await
            .as_deref(),
        Ok(&b"v"[..])
    );
    assert!(c.node(1).status().counters.overloaded > refused_before);

    c.connect(3, true);
    all_commit(writes).await;
    bounded("a write after the load", c.node(1).write("key-4", "v"))
        .await
        .expect("the write commits once the pending ones finished");
    c.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_request_over_requests_per_key_max_gets_overloaded_and_other_keys_go_on() {
    let c = Cluster::start(with_node_1(|config| Config {
        requests_per_key_max: 2,
        ..config
    }))
    .await;
    c.connect(3, false);
    let mut writes: Vec<_> = (0..2).map(|_| spawn_write(&c, 1, "hot")).collect();
    eventually("two writes pending on the key", || {
        c.node(1).status().pending_requests == 2
    })
    .await;

    let write = bounded("the third write of the key", c.node(1).write("hot", "v")).await;
    assert!(
        matches!(write, Err(RequestError::Overloaded(_))),
        "{write:?}"
    );
    writes.push(spawn_write(&c, 1, "cold"));
    eventually("a write of another key is taken", || {
        c.node(1).status().pending_requests == 3
    })
    .await;

    c.connect(3, true);
    all_commit(writes).await;
    c.shutdown().await;
}
