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

/// How many random ports [`free_loopback_addrs`] tries per address before giving up.
const FREE_PORT_ATTEMPTS: usize = 64;

/// `count` distinct addresses on 127.0.0.1 whose UDP port and TCP port of the same number are
/// both free at the time of the call (a node listens on both: QUIC, and clients over TCP).
///
/// The ports are released before returning, so another process may take one in between; meant
/// for local clusters and tests.
///
/// # Errors
/// [`NetError::Io`] if the kernel hands out no such port.
pub fn free_loopback_addrs(count: usize) -> Result<Vec<SocketAddr>, NetError> {
    let mut held = Vec::with_capacity(count);
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let io = |e| NetError::io("cannot find a free port on 127.0.0.1", e);
    while held.len() < count {
        let mut found = None;
        for _ in 0..FREE_PORT_ATTEMPTS {
            let udp = std::net::UdpSocket::bind(loopback).map_err(io)?;
            let addr = udp.local_addr().map_err(io)?;
            if let Ok(tcp) = std::net::TcpListener::bind(addr) {
                found = Some((udp, tcp, addr));
                break;
            }
        }
        let Some(pair) = found else {
            return Err(io(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "no port free for both UDP and TCP",
            )));
        };
        held.push(pair);
    }
    Ok(held.into_iter().map(|(_, _, addr)| addr).collect())
}
