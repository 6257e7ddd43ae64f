//! The write and read paths through whole nodes ([`ClusterNode`]): three nodes in one process
//! over the in-memory transport, and three nodes over QUIC on 127.0.0.1 (mutual TLS, one
//! endpoint per node), with 1 and 16 concurrent closed-loop clients and 256-byte values. Clients
//! call the in-process API of the node they are assigned to (client i → node i mod 3).
//!
//! Run: `cargo bench -p hermes-benches --bench cluster`.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hermes_core::{Config, Message, NodeId};
use hermes_net::{MemConfig, MemNetwork, QuicOptions};
use hermes_node::config::{ProtocolConfig, RuntimeConfig};
use hermes_node::{ClusterNode, NodeConfig, PeerConfig, TlsPaths};
use tokio::runtime::Runtime;

const KEYS: usize = 1_000;
const VALUE_BYTES: usize = 256;
const CLIENTS: [usize; 2] = [1, 16];

/// Three running nodes and what keeps them alive.
struct Trio {
    nodes: Vec<ClusterNode>,
    keys: Arc<Vec<Bytes>>,
    _dir: Option<tempfile::TempDir>,
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

async fn in_memory() -> Trio {
    let network = MemNetwork::<Message>::new(MemConfig::default()).expect("network");
    let ids = [NodeId(1), NodeId(2), NodeId(3)];
    let mut nodes = Vec::new();
    for id in ids {
        let (transport, inbox) = network.endpoint(id).expect("endpoint");
        let node = ClusterNode::start_with_transport(Config::for_node(id), &ids, transport, inbox)
            .expect("node");
        nodes.push(node);
    }
    let keys = ready(&nodes).await;
    Trio {
        nodes,
        keys,
        _dir: None,
    }
}

async fn over_quic() -> Trio {
    let dir = tempfile::tempdir().expect("temporary directory");
    let ids = [1u32, 2, 3];
    let node_ids: Vec<NodeId> = ids.iter().map(|i| NodeId(*i)).collect();
    hermes_net::gen_certs(&dir.path().join("certs"), &node_ids, &[], false).expect("certs");
    let sockets: Vec<UdpSocket> = ids
        .iter()
        .map(|_| UdpSocket::bind("127.0.0.1:0").expect("bind"))
        .collect();
    let addrs: Vec<SocketAddr> = sockets
        .iter()
        .map(|s| s.local_addr().expect("addr"))
        .collect();
    drop(sockets);
    let mut nodes = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let certs = dir.path().join("certs");
        let config = NodeConfig {
            node_id: NodeId(*id),
            listen: addrs[i],
            peers: ids
                .iter()
                .zip(&addrs)
                .filter(|(other, _)| *other != id)
                .map(|(other, addr)| PeerConfig {
                    id: NodeId(*other),
                    addr: *addr,
                })
                .collect(),
            data_dir: dir.path().join(format!("node{id}")),
            durability: Default::default(),
            tls: TlsPaths {
                ca: certs.join("ca.pem"),
                cert: certs.join(format!("node-{id}.pem")),
                key: certs.join(format!("node-{id}.key")),
            },
            protocol: ProtocolConfig::default(),
            network: QuicOptions::default(),
            runtime: RuntimeConfig::default(),
        };
        nodes.push(ClusterNode::start(config).await.expect("node"));
    }
    let keys = ready(&nodes).await;
    Trio {
        nodes,
        keys,
        _dir: Some(dir),
    }
}

/// Waits until every node is Active and writes every key once (so reads find values); returns
/// the keys.
async fn ready(nodes: &[ClusterNode]) -> Arc<Vec<Bytes>> {
    for node in nodes {
        node.wait_active(30_000).await.expect("node active");
    }
    let keys: Vec<Bytes> = (0..KEYS)
        .map(|k| Bytes::from(format!("key-{k:06}")))
        .collect();
    let value = Bytes::from(vec![7u8; VALUE_BYTES]);
    for (k, key) in keys.iter().enumerate() {
        nodes[k % nodes.len()]
            .write(key.clone(), value.clone())
            .await
            .expect("preload");
    }
    Arc::new(keys)
}

/// Runs `iters` operations spread over `clients` closed-loop clients; returns the elapsed time.
async fn drive(trio: &Trio, clients: usize, iters: u64, write: bool) -> Duration {
    let value = Bytes::from(vec![9u8; VALUE_BYTES]);
    let per_client = iters.div_ceil(clients as u64);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let node = trio.nodes[c % trio.nodes.len()].clone();
        let value = value.clone();
        let keys = Arc::clone(&trio.keys);
        tasks.push(tokio::spawn(async move {
            for i in 0..per_client {
                let k = keys[(c * 7919 + i as usize * 31) % KEYS].clone();
                if write {
                    let _ = node.write(k, value.clone()).await;
                } else {
                    let _ = node.read(k).await;
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    start.elapsed()
}

fn bench_depth(c: &mut Criterion, name: &str, trio: Arc<Trio>, rt: &Runtime) {
    for (path, write) in [("write", true), ("read", false)] {
        let mut group = c.benchmark_group(format!("{path}/{name}"));
        group.throughput(Throughput::Elements(1));
        group.sample_size(10);
        group.measurement_time(Duration::from_secs(3));
        group.warm_up_time(Duration::from_millis(500));
        for clients in CLIENTS {
            group.bench_with_input(BenchmarkId::new("clients", clients), &clients, |b, &n| {
                b.iter_custom(|iters| rt.block_on(drive(&trio, n, iters, write)));
            });
        }
        group.finish();
    }
}

fn cluster(c: &mut Criterion) {
    let rt = runtime();
    let trio = Arc::new(rt.block_on(in_memory()));
    bench_depth(c, "in_memory_3_nodes", Arc::clone(&trio), &rt);
    rt.block_on(async {
        for node in &trio.nodes {
            let _ = node.shutdown().await;
        }
    });
    let trio = Arc::new(rt.block_on(over_quic()));
    bench_depth(c, "quic_3_nodes", Arc::clone(&trio), &rt);
    rt.block_on(async {
        for node in &trio.nodes {
            let _ = node.shutdown().await;
        }
    });
}

criterion_group!(benches, cluster);
criterion_main!(benches);
