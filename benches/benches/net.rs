//! Messages per second between two QUIC endpoints on 127.0.0.1, one direction, with batching off
//! (one message per frame) and on (up to N messages per frame), for 64-byte and 1 KiB payloads.
//!
//! Both endpoints run on one `current_thread` Tokio runtime, mutual TLS as in production. The
//! sender keeps its per-peer queue full; an iteration is one message delivered to the receiver's
//! inbox.
//!
//! Run: `cargo bench -p hermes-benches --bench net`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hermes_core::NodeId;
use hermes_net::{
    gen_certs, Identity, Inbox, NetError, QuicConfig, QuicTransport, TlsConfig, Transport,
};
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

#[derive(Clone, Serialize, Deserialize)]
struct Payload(Bytes);

const PAYLOAD_BYTES: [usize; 2] = [64, 1024];
const BATCH_MESSAGES: [usize; 4] = [1, 8, 64, 256];

struct Pair {
    a: QuicTransport<Payload>,
    b: QuicTransport<Payload>,
    b_in: Inbox<Payload>,
}

fn config(dir: &std::path::Path, id: u32, batch: usize) -> QuicConfig {
    let tls = TlsConfig::from_dir(dir, &Identity::Node(NodeId(id))).expect("certs");
    let mut config = QuicConfig::new(NodeId(id), "127.0.0.1:0".parse().expect("addr"), tls);
    config.options.batch_messages_max = batch;
    config
}

async fn pair(dir: &std::path::Path, batch: usize) -> Pair {
    let (a, _a_in) = QuicTransport::bind(config(dir, 1, batch)).expect("bind a");
    let (b, b_in) = QuicTransport::bind(config(dir, 2, batch)).expect("bind b");
    a.add_peer(NodeId(2), b.local_addr().expect("addr b"))
        .expect("peer");
    b.add_peer(NodeId(1), a.local_addr().expect("addr a"))
        .expect("peer");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(a.is_connected(NodeId(2)) && b.is_connected(NodeId(1))) {
        assert!(Instant::now() < deadline, "endpoints did not connect");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Pair { a, b, b_in }
}

/// Delivers `n` messages from a to b as fast as the queue takes them; returns the elapsed time.
async fn deliver(pair: &mut Pair, n: u64, payload: &Bytes) -> Duration {
    let start = Instant::now();
    let (mut sent, mut received) = (0u64, 0u64);
    while received < n {
        while sent < n {
            match pair.a.send(NodeId(2), Payload(payload.clone())) {
                Ok(()) => sent += 1,
                Err(NetError::QueueFull { .. }) => break,
                Err(e) => panic!("send: {e}"),
            }
        }
        let batch = pair.b_in.recv().await.expect("inbox open");
        received += batch.messages.len() as u64;
        while let Ok(batch) = pair.b_in.try_recv() {
            received += batch.messages.len() as u64;
        }
    }
    start.elapsed()
}

fn quic_one_way(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    gen_certs(dir.path(), &[NodeId(1), NodeId(2)], &[], false).expect("certs");

    let mut group = c.benchmark_group("quic_one_way");
    group
        .throughput(Throughput::Elements(1))
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    for payload_bytes in PAYLOAD_BYTES {
        let payload = Bytes::from(vec![0x5a; payload_bytes]);
        for batch in BATCH_MESSAGES {
            let mut pair = rt.block_on(pair(dir.path(), batch));
            let id = BenchmarkId::new(format!("{payload_bytes}B"), format!("batch{batch}"));
            group.bench_function(id, |bench| {
                bench.iter_custom(|iters| rt.block_on(deliver(&mut pair, iters, &payload)));
            });
            report_batching(&rt, pair);
        }
    }
    group.finish();
}

fn report_batching(rt: &Runtime, pair: Pair) {
    let stats = pair.a.stats();
    if stats.frames_sent > 0 {
        eprintln!(
            "    messages per frame: {:.1}",
            stats.messages_sent as f64 / stats.frames_sent as f64
        );
    }
    rt.block_on(async {
        pair.a.shutdown().await;
        pair.b.shutdown().await;
    });
}

criterion_group!(benches, quic_one_way);
criterion_main!(benches);
