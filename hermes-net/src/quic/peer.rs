//! Peer connections: accepting, dialing with back-off, identity checks, and the per-peer sender
//! and per-connection receiver tasks.

use std::net::SocketAddr;
use std::sync::Arc;

use hermes_core::NodeId;
use tokio::sync::{mpsc, watch};

use super::link::ClientConn;
use super::{close, EndpointState, PeerSlot, Wire};
use crate::certs::node_dns_name;
use crate::frame::{self, BatchEncoder, Push, ReadFrameError, HELLO_BYTES_MAX, PREFIX_BYTES};
use crate::stats::bump;
use crate::tls::{self, CLIENT_ALPN, PEER_ALPN};
use crate::{FrameError, NetError, PeerBatch, RefuseReason};

/// Registers a peer (or updates its address) and starts its sender task, and its dialer if this
/// node has the lower id.
pub(crate) fn add_peer<M: Wire>(shared: &Arc<EndpointState<M>>, id: NodeId, addr: SocketAddr) {
    let mut peers = shared.peers();
    if let Some(slot) = peers.get_mut(&id) {
        slot.addr = addr;
        return;
    }
    let (queue_tx, queue_rx) = mpsc::channel(shared.common.limits.queue_len_max);
    let (conn_tx, conn_rx) = watch::channel(None);
    peers.insert(
        id,
        PeerSlot {
            addr,
            queue: queue_tx,
            conn: conn_tx,
        },
    );
    drop(peers);
    let tasks = &shared.common.tasks;
    tasks.spawn(send_loop(Arc::clone(shared), id, queue_rx, conn_rx));
    if shared.id < id {
        tasks.spawn(dial_loop(Arc::clone(shared), id));
    }
}

/// Accepts incoming connections and hands each to a task.
pub(crate) async fn accept_loop<M: Wire>(shared: Arc<EndpointState<M>>) {
    while let Some(incoming) = shared.endpoint.accept().await {
        let task = handle_incoming(Arc::clone(&shared), incoming);
        shared.common.tasks.spawn(task);
    }
}

async fn handle_incoming<M: Wire>(shared: Arc<EndpointState<M>>, incoming: quinn::Incoming) {
    let common = &shared.common;
    let remote = incoming.remote_address();
    let conn = match tokio::time::timeout(common.limits.handshake_timeout, incoming).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => {
            bump(&common.counters.handshakes_failed, 1);
            common.errors.record(NetError::Handshake {
                remote,
                reason: e.to_string(),
            });
            return;
        }
        Err(_) => {
            bump(&common.counters.handshakes_failed, 1);
            common.errors.record(NetError::Handshake {
                remote,
                reason: "timed out".into(),
            });
            return;
        }
    };
    let alpn = tls::negotiated_alpn(&conn);
    match alpn.as_deref() {
        Some(PEER_ALPN) => receive_loop(shared, conn, None).await,
        Some(CLIENT_ALPN) => match &shared.clients {
            Some(service) => match Arc::clone(&common.client_slots).try_acquire_owned() {
                Ok(_slot) => service(ClientConn::Quic(conn), Arc::clone(common)).await,
                Err(_) => refuse(&shared, &conn, None, RefuseReason::TooManyClients),
            },
            None => refuse(&shared, &conn, None, RefuseReason::UnsupportedProtocol),
        },
        _ => refuse(&shared, &conn, None, RefuseReason::UnsupportedProtocol),
    }
}

fn refuse<M>(
    shared: &EndpointState<M>,
    conn: &quinn::Connection,
    claimed: Option<NodeId>,
    reason: RefuseReason,
) {
    bump(&shared.common.counters.peers_refused, 1);
    conn.close(close::REFUSED, reason.to_string().as_bytes());
    shared.common.errors.record(NetError::PeerRefused {
        remote: conn.remote_address(),
        claimed,
        reason,
    });
}

pub(crate) fn reject_frame(
    common: &super::Common,
    conn: &quinn::Connection,
    peer: Option<NodeId>,
    reason: FrameError,
) {
    bump(&common.counters.frames_rejected, 1);
    conn.close(close::BAD_FRAME, b"bad frame");
    common.errors.record(NetError::Frame {
        remote: conn.remote_address(),
        peer,
        reason,
    });
}

/// Dials `peer` (this node has the lower id) and redials after losses, with back-off.
async fn dial_loop<M: Wire>(shared: Arc<EndpointState<M>>, peer: NodeId) {
    let limits = shared.common.limits;
    let mut backoff = limits.backoff_min;
    let mut failures = 0u32;
    loop {
        let addr = match shared.peers().get(&peer) {
            Some(slot) => slot.addr,
            None => return,
        };
        match dial(&shared, peer, addr).await {
            Ok(conn) => {
                failures = 0;
                backoff = limits.backoff_min;
                tracing::info!(node = %shared.id, %peer, %addr, "peer connected (dialed)");
                bump(&shared.common.counters.peer_connections, 1);
                publish(&shared, peer, &conn);
                let receiver = receive_loop(Arc::clone(&shared), conn.clone(), Some(peer));
                shared.common.tasks.spawn(receiver);
                let reason = conn.closed().await;
                lost(&shared, peer, &conn, reason);
            }
            Err(e) => {
                failures += 1;
                // The first failure is worth a warning; a peer that stays down is not news.
                if failures == 1 {
                    shared.common.errors.record(e);
                } else {
                    shared.common.errors.record_quiet(e);
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(limits.backoff_max);
    }
}

async fn dial<M>(
    shared: &EndpointState<M>,
    peer: NodeId,
    addr: SocketAddr,
) -> Result<quinn::Connection, NetError> {
    let connect_err = |reason: String| NetError::Connect {
        remote: addr,
        reason,
    };
    let connecting = shared
        .endpoint
        .connect_with(shared.peer_dial.clone(), addr, &node_dns_name(peer))
        .map_err(|e| connect_err(e.to_string()))?;
    match tokio::time::timeout(shared.common.limits.handshake_timeout, connecting).await {
        Ok(Ok(conn)) => Ok(conn),
        Ok(Err(e)) => Err(connect_err(e.to_string())),
        Err(_) => Err(connect_err("handshake timed out".into())),
    }
}

/// Makes `conn` the connection to `peer`, closing an older one.
fn publish<M>(shared: &EndpointState<M>, peer: NodeId, conn: &quinn::Connection) {
    let peers = shared.peers();
    if let Some(slot) = peers.get(&peer) {
        let old = slot.conn.send_replace(Some(conn.clone()));
        if let Some(old) = old {
            if old.stable_id() != conn.stable_id() {
                old.close(close::REPLACED, b"replaced by a newer connection");
            }
        }
    }
}

/// Forgets `conn` as the connection to `peer` (unless it was already replaced) and counts the loss.
fn lost<M>(
    shared: &EndpointState<M>,
    peer: NodeId,
    conn: &quinn::Connection,
    reason: quinn::ConnectionError,
) {
    bump(&shared.common.counters.peer_disconnects, 1);
    tracing::info!(node = %shared.id, %peer, %reason, "peer connection closed");
    shared.common.errors.record_quiet(NetError::ConnectionLost {
        remote: conn.remote_address(),
        reason: reason.to_string(),
    });
    let peers = shared.peers();
    if let Some(slot) = peers.get(&peer) {
        slot.conn.send_if_modified(|current| {
            let same = current
                .as_ref()
                .is_some_and(|c| c.stable_id() == conn.stable_id());
            if same {
                *current = None;
            }
            same
        });
    }
}

/// Checks an accepted connection's claimed id: named by its certificate, a configured peer, and
/// lower than this node's id.
fn check_claim<M>(
    shared: &EndpointState<M>,
    conn: &quinn::Connection,
    claimed: NodeId,
) -> Result<(), RefuseReason> {
    tls::check_peer_names(conn, claimed)?;
    if !shared.peers().contains_key(&claimed) {
        return Err(RefuseReason::UnknownPeer);
    }
    if claimed >= shared.id {
        return Err(RefuseReason::WrongDirection);
    }
    Ok(())
}

enum HelloError {
    Frame(FrameError),
    Lost,
}

/// Accepts the remote side's stream and reads its hello.
async fn accept_hello(conn: &quinn::Connection) -> Result<(quinn::RecvStream, NodeId), HelloError> {
    let mut recv = conn.accept_uni().await.map_err(|_| HelloError::Lost)?;
    let mut buf = Vec::with_capacity(HELLO_BYTES_MAX);
    match frame::read_frame(&mut recv, &mut buf, HELLO_BYTES_MAX).await {
        Ok(true) => {}
        Ok(false) => {
            return Err(HelloError::Frame(FrameError::Truncated {
                expected: PREFIX_BYTES,
                got: 0,
            }))
        }
        Err(ReadFrameError::Frame(e)) => return Err(HelloError::Frame(e)),
        Err(ReadFrameError::Io(_)) => return Err(HelloError::Lost),
    }
    let node = frame::decode_hello(&buf).map_err(HelloError::Frame)?;
    Ok((recv, node))
}

/// Reads the remote side's hello and then its frames into the inbox, until the stream or the
/// connection ends. `dialed` is the peer this node dialed, or `None` for an accepted connection
/// (whose identity the hello establishes).
async fn receive_loop<M: Wire>(
    shared: Arc<EndpointState<M>>,
    conn: quinn::Connection,
    dialed: Option<NodeId>,
) {
    let common = &shared.common;
    let hello = tokio::time::timeout(common.limits.handshake_timeout, accept_hello(&conn)).await;
    let (mut recv, claimed) = match hello {
        Ok(Ok(hello)) => hello,
        Ok(Err(HelloError::Frame(reason))) => return reject_frame(common, &conn, dialed, reason),
        Ok(Err(HelloError::Lost)) => return,
        Err(_) => return refuse(&shared, &conn, dialed, RefuseReason::HelloTimeout),
    };
    let peer = match dialed {
        Some(expected) if claimed == expected => expected,
        Some(_) => {
            return refuse(
                &shared,
                &conn,
                Some(claimed),
                RefuseReason::CertificateMismatch,
            )
        }
        None => {
            if let Err(reason) = check_claim(&shared, &conn, claimed) {
                return refuse(&shared, &conn, Some(claimed), reason);
            }
            tracing::info!(node = %shared.id, peer = %claimed, remote = %conn.remote_address(), "peer connected (accepted)");
            bump(&common.counters.peer_connections, 1);
            publish(&shared, claimed, &conn);
            claimed
        }
    };
    let frame_bytes_max = common.limits.frame_bytes_max;
    let mut buf = Vec::new();
    loop {
        match frame::read_frame(&mut recv, &mut buf, frame_bytes_max).await {
            Ok(true) => match frame::decode_batch::<M>(&buf) {
                Ok(messages) => {
                    if messages.is_empty() {
                        continue;
                    }
                    bump(&common.counters.frames_received, 1);
                    bump(&common.counters.messages_received, messages.len() as u64);
                    let batch = PeerBatch {
                        from: peer,
                        messages,
                    };
                    if shared.inbox.send(batch).await.is_err() {
                        // The application dropped its inbox: nothing more to deliver.
                        return;
                    }
                }
                Err(reason) => {
                    reject_frame(common, &conn, Some(peer), reason);
                    break;
                }
            },
            Ok(false) => {
                conn.close(close::SHUTDOWN, b"stream finished");
                break;
            }
            Err(ReadFrameError::Frame(reason)) => {
                reject_frame(common, &conn, Some(peer), reason);
                break;
            }
            Err(ReadFrameError::Io(_)) => break,
        }
    }
    if dialed.is_none() {
        let reason = conn.closed().await;
        lost(&shared, peer, &conn, reason);
    }
}

/// Waits for an open connection to the peer; `None` once the peer's slot (the sender of
/// `conn_rx`) is gone.
async fn next_connection(
    conn_rx: &mut watch::Receiver<Option<quinn::Connection>>,
) -> Option<quinn::Connection> {
    loop {
        let current = conn_rx.borrow_and_update().clone();
        if let Some(conn) = current {
            if conn.close_reason().is_none() {
                return Some(conn);
            }
        }
        conn_rx.changed().await.ok()?;
    }
}

/// Sends everything queued for `peer` over the current connection, batching what is queued into
/// frames; waits for a new connection after a loss.
async fn send_loop<M: Wire>(
    shared: Arc<EndpointState<M>>,
    peer: NodeId,
    mut queue: mpsc::Receiver<M>,
    mut conn_rx: watch::Receiver<Option<quinn::Connection>>,
) {
    let common = &shared.common;
    let limits = common.limits;
    let mut encoder = BatchEncoder::new(limits.frame_bytes_max);
    let mut carry: Option<M> = None;
    let hello = frame::encode_hello(shared.id);
    // On a multi-threaded runtime the sender may still be queueing a burst on another thread
    // when this task wakes; on a current-thread runtime it has finished before this task runs.
    let yield_for_bursts = tokio::runtime::Handle::current().runtime_flavor()
        != tokio::runtime::RuntimeFlavor::CurrentThread;
    while let Some(conn) = next_connection(&mut conn_rx).await {
        let mut stream = match conn.open_uni().await {
            Ok(stream) => stream,
            Err(_) => continue,
        };
        if stream.write_all(&hello).await.is_err() {
            continue;
        }
        loop {
            let first = match carry.take() {
                Some(msg) => msg,
                None => tokio::select! {
                    biased;
                    changed = conn_rx.changed() => match changed {
                        Ok(()) => break,
                        Err(_) => return,
                    },
                    msg = queue.recv() => match msg {
                        Some(msg) => msg,
                        None => return,
                    },
                },
            };
            encoder.clear();
            push_or_drop(&shared, peer, &mut encoder, first, &mut carry);
            if queue.is_empty() && yield_for_bursts {
                // Let the sender finish the burst it is writing, so that it shares this frame.
                tokio::task::yield_now().await;
            }
            while encoder.len() < limits.batch_messages_max && carry.is_none() {
                match queue.try_recv() {
                    Ok(msg) => push_or_drop(&shared, peer, &mut encoder, msg, &mut carry),
                    Err(_) => break,
                }
            }
            if encoder.is_empty() {
                continue;
            }
            let count = encoder.len() as u64;
            if stream.write_all(encoder.finish()).await.is_err() {
                // Start over on a new connection; the peer will see this one close.
                conn.close(close::STREAM_FAILED, b"send stream failed");
                break;
            }
            bump(&common.counters.frames_sent, 1);
            bump(&common.counters.messages_sent, count);
        }
    }
}

/// Adds `msg` to the frame; keeps it in `carry` if the frame is full; drops it (logged, counted)
/// if it can never fit into a frame.
fn push_or_drop<M: Wire>(
    shared: &EndpointState<M>,
    peer: NodeId,
    encoder: &mut BatchEncoder,
    msg: M,
    carry: &mut Option<M>,
) {
    match encoder.push(&msg) {
        Ok(Push::Added) => {}
        Ok(Push::Full) => *carry = Some(msg),
        Err(e) => {
            bump(&shared.common.counters.messages_dropped, 1);
            tracing::debug!(node = %shared.id, %peer, "message to peer dropped");
            shared.common.errors.record(e);
        }
    }
}
