//! The connection under a client-protocol stream pair: QUIC, or TLS over TCP.

use std::fmt::Display;
use std::net::SocketAddr;
use std::time::Duration;

use socket2::{SockRef, TcpKeepalive};
use tokio::net::TcpStream;

use crate::NetError;

/// A client connection as accepted by the server side.
pub(crate) enum ClientConn {
    /// A QUIC connection that negotiated the client ALPN; requests come on bidirectional streams.
    Quic(quinn::Connection),
    /// A TLS stream over TCP that negotiated the client ALPN; one request/response stream.
    Tcp(Box<tokio_rustls::server::TlsStream<TcpStream>>, SocketAddr),
}

/// What the frame readers and writers of one client connection need to know about it.
#[derive(Clone)]
pub(crate) enum Link {
    /// A QUIC connection (closing it ends every stream on it).
    Quic(quinn::Connection),
    /// A TLS-over-TCP connection to `remote`; it closes when its reader and writer end.
    Tcp(SocketAddr),
}

impl Link {
    /// The remote address.
    pub(crate) fn remote(&self) -> SocketAddr {
        match self {
            Link::Quic(conn) => conn.remote_address(),
            Link::Tcp(remote) => *remote,
        }
    }

    /// Closes a QUIC connection with `code`; over TCP the caller ends its tasks instead.
    pub(crate) fn close(&self, code: quinn::VarInt, reason: &[u8]) {
        if let Link::Quic(conn) = self {
            conn.close(code, reason);
        }
    }

    /// The error for a connection that ended with `error` (QUIC: its close reason if known).
    pub(crate) fn lost(&self, error: impl Display) -> NetError {
        let reason = match self {
            Link::Quic(conn) => conn
                .close_reason()
                .map_or_else(|| error.to_string(), |reason| reason.to_string()),
            Link::Tcp(_) => error.to_string(),
        };
        NetError::ConnectionLost {
            remote: self.remote(),
            reason,
        }
    }
}

/// Turns Nagle's algorithm off (frames are already batched) and keeps idle connections probed
/// every `keep_alive_ms`, so that a vanished remote side is noticed.
pub(crate) fn tune_tcp(stream: &TcpStream, keep_alive_ms: u64) {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
    }
    let interval = Duration::from_millis(keep_alive_ms.max(1_000));
    let keepalive = TcpKeepalive::new()
        .with_time(interval)
        .with_interval(interval);
    if let Err(e) = SockRef::from(stream).set_tcp_keepalive(&keepalive) {
        tracing::debug!(error = %e, "cannot set TCP keep-alive");
    }
}
