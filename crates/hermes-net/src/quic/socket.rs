//! UDP sockets with enlarged buffers, wrapped into quinn endpoints.

use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};

use crate::NetError;

/// Binds a UDP socket to `addr` and asks for `buffer_bytes` of kernel receive and send buffer
/// (the kernel may cap it at `net.core.rmem_max` / `wmem_max`; 0 keeps the system default).
///
/// The default receive buffer (about 208 KiB on Linux) drops datagrams under load.
pub(crate) fn bind_udp(
    addr: SocketAddr,
    buffer_bytes: usize,
) -> Result<std::net::UdpSocket, NetError> {
    let io = |what: &str| {
        let context = format!("{what} UDP socket {addr}");
        move |e| NetError::io(context, e)
    };
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))
        .map_err(io("cannot create"))?;
    if buffer_bytes > 0 {
        if let Err(e) = socket.set_recv_buffer_size(buffer_bytes) {
            tracing::debug!(error = %e, "cannot set UDP receive buffer");
        }
        if let Err(e) = socket.set_send_buffer_size(buffer_bytes) {
            tracing::debug!(error = %e, "cannot set UDP send buffer");
        }
    }
    socket.bind(&addr.into()).map_err(io("cannot bind"))?;
    tracing::debug!(
        %addr,
        recv_buffer = socket.recv_buffer_size().unwrap_or(0),
        send_buffer = socket.send_buffer_size().unwrap_or(0),
        "UDP socket bound"
    );
    Ok(socket.into())
}

/// A quinn endpoint on a socket from [`bind_udp`]; must run within a Tokio runtime.
pub(crate) fn endpoint(
    addr: SocketAddr,
    buffer_bytes: usize,
    server: Option<quinn::ServerConfig>,
) -> Result<quinn::Endpoint, NetError> {
    let socket = bind_udp(addr, buffer_bytes)?;
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        server,
        socket,
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(|e| NetError::io(format!("cannot start QUIC endpoint on {addr}"), e))
}
