//! Clients over TLS on TCP: the same request/response frames as over QUIC, at the same address
//! (the TCP port with the UDP port's number), with the same mutual TLS and ALPN.
//!
//! Small request/response exchanges are cheaper over the kernel's TCP than over a user-space
//! QUIC stack (no separate acknowledgement packets, no per-packet task wake-ups), so this is the
//! default way for clients; QUIC serves them too.
//!
//! The accept loop only accepts: each connection takes one of the `client_connections_max` slots
//! at once (so sockets that never speak cannot pile up beyond it) and runs its TLS handshake in
//! its own task, closed after `handshake_timeout_ms`; a silent socket never delays the next
//! accept. Once served, a connection idle for `client_idle_timeout_ms` is closed (see
//! `server`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::TlsAcceptor;

use super::link::{tune_tcp, ClientConn};
use super::{ClientService, Common};
use crate::stats::bump;
use crate::tls::CLIENT_ALPN;
use crate::{NetError, RefuseReason};

/// How long to pause after `accept` fails (e.g. out of file descriptors) before trying again.
const ACCEPT_RETRY_MS: u64 = 50;

/// Binds the TCP listener for clients at `addr`.
pub(crate) fn bind(addr: SocketAddr) -> Result<TcpListener, NetError> {
    let io = |e| NetError::io(format!("cannot bind the TCP client listener on {addr}"), e);
    let listener = std::net::TcpListener::bind(addr).map_err(io)?;
    listener.set_nonblocking(true).map_err(io)?;
    TcpListener::from_std(listener).map_err(io)
}

/// Accepts client connections until the transport shuts down.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    service: ClientService,
    keep_alive_ms: u64,
    common: Arc<Common>,
) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "cannot accept a TCP client connection");
                tokio::time::sleep(Duration::from_millis(ACCEPT_RETRY_MS)).await;
                continue;
            }
        };
        let Ok(slot) = Arc::clone(&common.client_slots).try_acquire_owned() else {
            refuse(&common, remote, RefuseReason::TooManyClients);
            continue;
        };
        tune_tcp(&stream, keep_alive_ms);
        let task = handshake_and_serve(
            stream,
            remote,
            acceptor.clone(),
            Arc::clone(&service),
            Arc::clone(&common),
            slot,
        );
        common.tasks.spawn(task);
    }
}

async fn handshake_and_serve(
    stream: TcpStream,
    remote: SocketAddr,
    acceptor: TlsAcceptor,
    service: ClientService,
    common: Arc<Common>,
    _slot: OwnedSemaphorePermit,
) {
    let failed = |reason: String| {
        bump(&common.counters.handshakes_failed, 1);
        common.errors.record(NetError::Handshake { remote, reason });
    };
    let handshake = tokio::time::timeout(common.limits.handshake_timeout, acceptor.accept(stream));
    let stream = match handshake.await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return failed(e.to_string()),
        Err(_) => return failed("timed out".into()),
    };
    if stream.get_ref().1.alpn_protocol() != Some(CLIENT_ALPN) {
        return refuse(&common, remote, RefuseReason::UnsupportedProtocol);
    }
    service(
        ClientConn::Tcp(Box::new(stream), remote),
        Arc::clone(&common),
    )
    .await;
}

/// Counts and logs a refused client connection (dropping the stream closes it).
fn refuse(common: &Common, remote: SocketAddr, reason: RefuseReason) {
    bump(&common.counters.peers_refused, 1);
    common.errors.record(NetError::PeerRefused {
        remote,
        claimed: None,
        reason,
    });
}
