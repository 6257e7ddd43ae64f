//! UDP sockets with enlarged buffers, wrapped into quinn endpoints.

use std::net::SocketAddr;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};

use crate::{NetError, TlsConfig};

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

/// A node's QUIC endpoint configuration with stateless-reset and connection-ID keys derived
/// from its TLS private key: the same after a restart. The restarted node then recognises the
/// connection IDs its previous run handed out and answers packets on those connections with a
/// stateless reset the peers accept: they close the dead connections at once and dial again,
/// instead of waiting for the idle timeout.
pub(crate) fn stable_endpoint_config(tls: &TlsConfig) -> quinn::EndpointConfig {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    context.update(b"hermes QUIC endpoint keys v1\0");
    context.update(tls.key.secret_der());
    let secret = context.finish();
    let master = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_ref());
    let derive = |label: &[u8]| ring::hmac::sign(&master, label);
    let reset = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, derive(b"reset").as_ref());
    let mut cid_key = [0u8; 8];
    cid_key.copy_from_slice(&derive(b"connection id").as_ref()[..8]);
    let cid_key = u64::from_le_bytes(cid_key);
    let mut config = quinn::EndpointConfig::new(Arc::new(reset));
    config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    config
}

/// A quinn endpoint on a socket from [`bind_udp`]; must run within a Tokio runtime.
pub(crate) fn endpoint(
    addr: SocketAddr,
    buffer_bytes: usize,
    server: Option<quinn::ServerConfig>,
    config: quinn::EndpointConfig,
) -> Result<quinn::Endpoint, NetError> {
    let socket = bind_udp(addr, buffer_bytes)?;
    quinn::Endpoint::new(config, server, socket, Arc::new(quinn::TokioRuntime))
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
