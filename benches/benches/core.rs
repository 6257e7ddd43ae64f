//! The protocol core alone: committed writes through three in-process replicas (messages passed
//! by hand, no network) and local reads.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use hermes_core::{Action, Config, Epoch, Instant, Message, NodeId, Op, Replica, RequestId, View};
use std::collections::VecDeque;
use std::hint::black_box;

const KEYS: usize = 1_000;

struct Trio {
    replicas: Vec<Replica>,
    network: VecDeque<(NodeId, NodeId, Message)>,
    replies: u64,
    next_request: u64,
    keys: Vec<Bytes>,
    value: Bytes,
}

impl Trio {
    fn new() -> Self {
        let view = View::new(Epoch(1), [NodeId(1), NodeId(2), NodeId(3)]);
        let replicas = (1..=3)
            .map(|id| {
                let mut r = Replica::new(Config::for_node(NodeId(id)), view.clone()).unwrap();
                r.set_serving(Instant::ZERO, true);
                r
            })
            .collect();
        Trio {
            replicas,
            network: VecDeque::new(),
            replies: 0,
            next_request: 1,
            keys: (0..KEYS)
                .map(|k| Bytes::from(format!("key-{k:06}")))
                .collect(),
            value: Bytes::from(vec![7u8; 256]),
        }
    }

    fn drain(&mut self, index: usize) {
        let from = NodeId(index as u32 + 1);
        while let Some(action) = self.replicas[index].poll_action() {
            match action {
                Action::Send { to, msg } => self.network.push_back((from, to, msg)),
                Action::Reply { .. } => self.replies += 1,
                _ => {}
            }
        }
    }

    /// Issues `batch` writes (spread over coordinators and keys), then delivers every message.
    fn write_batch(&mut self, batch: usize) {
        for _ in 0..batch {
            let n = self.next_request;
            self.next_request += 1;
            let coordinator = (n % 3) as usize;
            let key = self.keys[(n as usize) % KEYS].clone();
            let op = Op::Write {
                key,
                value: self.value.clone(),
            };
            self.replicas[coordinator].handle_request(Instant::ZERO, RequestId(n), op);
            self.drain(coordinator);
        }
        while let Some((from, to, msg)) = self.network.pop_front() {
            let index = to.0 as usize - 1;
            self.replicas[index].handle_message(Instant::ZERO, from, msg);
            self.drain(index);
        }
    }
}

fn writes(c: &mut Criterion) {
    let mut group = c.benchmark_group("core/write");
    for batch in [1usize, 64] {
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("three_replicas_batch_{batch}"), |b| {
            let mut trio = Trio::new();
            trio.write_batch(KEYS); // every key exists
            b.iter(|| trio.write_batch(batch));
            assert!(trio.replies > 0);
        });
    }
    group.finish();
}

fn reads(c: &mut Criterion) {
    let mut group = c.benchmark_group("core/read");
    group.throughput(Throughput::Elements(1));
    let mut trio = Trio::new();
    trio.write_batch(KEYS);
    let keys = trio.keys.clone();
    let mut i = 0usize;
    group.bench_function("read_local", |b| {
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(trio.replicas[0].read_local(&keys[i]))
        })
    });
    group.bench_function("handle_request_read", |b| {
        b.iter_batched(
            || {
                i = (i + 1) % KEYS;
                Op::Read {
                    key: keys[i].clone(),
                }
            },
            |op| {
                let replica = &mut trio.replicas[1];
                replica.handle_request(Instant::ZERO, RequestId(1), op);
                black_box(replica.poll_action())
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = writes, reads
}
criterion_main!(benches);
