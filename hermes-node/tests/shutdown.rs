//! Shutdown with requests in flight: every request ends — with its result if it can finish
//! within the grace period, with an error otherwise — and shutdown returns within a bound.

mod common;

use std::time::Duration;

use common::{bounded, config, eventually, poll_once, Cluster};
use hermes_node::config::RuntimeConfig;
use hermes_node::RequestError;

#[tokio::test(start_paused = true)]
async fn requests_that_cannot_finish_end_with_stopped_after_the_grace_period() {
    let c = Cluster::start(config).await;
    bounded("the write", c.node(1).write("k", "v"))
        .await
        .expect("the write commits");
    // Node 3 is cut off: node 1's writes wait for its ACK, longer than shutdown waits.
    c.connect(3, false);
    let mut requests = Vec::new();
    for i in 0..5 {
        let node = c.node(1).clone();
        requests.push(tokio::spawn(async move {
            node.write(format!("key-{i}"), "w").await.map(|_| ())
        }));
    }
    eventually("five writes pending at node 1", || {
        c.node(1).status().pending_requests == 5
    })
    .await;
    // A read of a key being written waits for the write.
    let node = c.node(1).clone();
    requests.push(tokio::spawn(
        async move { node.read("key-0").await.map(|_| ()) },
    ));
    eventually("the read waits too", || {
        c.node(1).status().pending_requests == 6
    })
    .await;

    let grace = Duration::from_millis(RuntimeConfig::default().shutdown_timeout_ms);
    let started = tokio::time::Instant::now();
    bounded("the shutdown", c.node(1).shutdown())
        .await
        .expect("a clean shutdown");
    assert!(
        started.elapsed() <= grace + Duration::from_secs(1),
        "shutdown took {:?}",
        started.elapsed()
    );
    for request in requests {
        let result = bounded("a request in flight", request)
            .await
            .expect("the request task ends");
        assert_eq!(result, Err(RequestError::Stopped));
    }
    // After shutdown: refused at once, nothing answered locally.
    assert_eq!(c.node(1).read_local(b"k"), None);
    let write = bounded("a write after shutdown", c.node(1).write("k", "x")).await;
    assert_eq!(write, Err(RequestError::Stopped));
    c.node(2).shutdown().await.expect("a clean shutdown");
    c.node(3).shutdown().await.expect("a clean shutdown");
}

#[tokio::test(start_paused = true)]
async fn requests_arriving_during_shutdown_are_refused_at_once() {
    let c = Cluster::start(config).await;
    c.connect(3, false);
    let node = c.node(1).clone();
    let pending = tokio::spawn(async move { node.write("key", "w").await });
    eventually("a write pending at node 1", || {
        c.node(1).status().pending_requests == 1
    })
    .await;
    let node = c.node(1).clone();
    let shutdown = tokio::spawn(async move { node.shutdown().await });
    // Let the shutdown begin; it waits for the pending write.
    tokio::task::yield_now().await;
    assert!(!shutdown.is_finished());

    let write = poll_once(c.node(1).write("other", "x"));
    assert_eq!(
        write,
        Some(Err(RequestError::Stopped)),
        "refused without waiting"
    );
    let read = poll_once(c.node(1).read("other"));
    assert_eq!(
        read,
        Some(Err(RequestError::Stopped)),
        "refused without waiting"
    );

    bounded("the shutdown", shutdown)
        .await
        .expect("the shutdown task ends")
        .expect("a clean shutdown");
    let write = bounded("the pending write", pending)
        .await
        .expect("the write task ends");
    assert_eq!(write, Err(RequestError::Stopped));
    c.node(2).shutdown().await.expect("a clean shutdown");
    c.node(3).shutdown().await.expect("a clean shutdown");
}

#[tokio::test(start_paused = true)]
async fn requests_that_finish_within_the_grace_period_get_their_result() {
    let c = Cluster::start(config).await;
    c.connect(3, false);
    let mut writes = Vec::new();
    for i in 0..3 {
        let node = c.node(1).clone();
        writes.push(tokio::spawn(async move {
            node.write(format!("key-{i}"), "w").await
        }));
    }
    eventually("three writes pending at node 1", || {
        c.node(1).status().pending_requests == 3
    })
    .await;
    let node = c.node(1).clone();
    let shutdown = tokio::spawn(async move { node.shutdown().await });
    tokio::task::yield_now().await;
    // Node 3 comes back within the grace period: the writes complete before the driver stops.
    c.connect(3, true);
    for write in writes {
        bounded("a pending write", write)
            .await
            .expect("the write task ends")
            .expect("the write commits during the grace period");
    }
    bounded("the shutdown", shutdown)
        .await
        .expect("the shutdown task ends")
        .expect("a clean shutdown");
    c.node(2).shutdown().await.expect("a clean shutdown");
    c.node(3).shutdown().await.expect("a clean shutdown");
}
