//! The tunable settings of the QUIC transport ([`QuicOptions`]) and of a client
//! ([`ClientOptions`]), each default a constant beside its type.

use serde::{Deserialize, Serialize};

use crate::frame::{FRAME_BYTES_LIMIT, FRAME_BYTES_MAX_DEFAULT, FRAME_BYTES_MIN};
use crate::NetError;

/// Limits, timeouts and switches of a [`crate::QuicTransport`]; durations are in milliseconds.
/// Its serde form is the `[network]` table of a node's configuration file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuicOptions {
    /// Capacity of each per-peer send queue, in messages.
    pub queue_len_max: usize,
    /// Capacity of the [`crate::Inbox`] from all peers, in batches.
    pub inbox_batches_max: usize,
    /// Largest frame body, in bytes; larger incoming frames close the connection, larger single
    /// messages are dropped.
    pub frame_bytes_max: usize,
    /// Most messages per frame; 1 turns batching off.
    pub batch_messages_max: usize,
    /// Interval of QUIC keep-alives; must be below `idle_timeout_ms`.
    pub keep_alive_ms: u64,
    /// A connection with no packets for this long is closed.
    pub idle_timeout_ms: u64,
    /// Time allowed for a handshake (of peers, and of clients over QUIC or TLS on TCP), and
    /// after it for a peer's hello. A client connection that has not finished its TLS handshake
    /// by then is closed and its slot freed.
    pub handshake_timeout_ms: u64,
    /// First delay before redialing a lost or unreachable peer.
    pub reconnect_backoff_min_ms: u64,
    /// Largest delay between redials.
    pub reconnect_backoff_max_ms: u64,
    /// UDP socket receive and send buffer to ask the kernel for (0: system default).
    pub socket_buffer_bytes: usize,
    /// Capacity of the client request queue ([`crate::Requests`]); requests beyond it are
    /// refused with [`crate::ServerError::Overloaded`].
    pub client_queue_max: usize,
    /// Most unanswered requests per client connection; beyond it the server stops reading from
    /// that client.
    pub client_inflight_max: usize,
    /// Most client connections served at once (QUIC and TCP together, a TCP connection from
    /// the moment it is accepted, TLS handshake included); more are refused.
    pub client_connections_max: usize,
    /// A client connection (QUIC or TCP) with no request in flight that has received nothing
    /// for this long is closed, freeing its slot; one with requests in flight is never closed
    /// for idleness.
    pub client_idle_timeout_ms: u64,
    /// With [`crate::QuicTransport::bind_with_clients`], also accept clients over TLS on TCP, on
    /// the TCP port with the same number as the UDP port.
    pub client_tcp: bool,
}

impl QuicOptions {
    /// Default [`QuicOptions::queue_len_max`].
    pub const QUEUE_LEN_MAX_DEFAULT: usize = 4096;
    /// Default [`QuicOptions::inbox_batches_max`].
    pub const INBOX_BATCHES_MAX_DEFAULT: usize = 1024;
    /// Default [`QuicOptions::batch_messages_max`] (also of clients and in-memory networks).
    pub const BATCH_MESSAGES_MAX_DEFAULT: usize = 128;
    /// Default [`QuicOptions::keep_alive_ms`] (also of clients).
    pub const KEEP_ALIVE_MS_DEFAULT: u64 = 1_000;
    /// Default [`QuicOptions::idle_timeout_ms`] (also of clients).
    pub const IDLE_TIMEOUT_MS_DEFAULT: u64 = 10_000;
    /// Default [`QuicOptions::handshake_timeout_ms`].
    pub const HANDSHAKE_TIMEOUT_MS_DEFAULT: u64 = 3_000;
    /// Default [`QuicOptions::reconnect_backoff_min_ms`].
    pub const RECONNECT_BACKOFF_MIN_MS_DEFAULT: u64 = 50;
    /// Default [`QuicOptions::reconnect_backoff_max_ms`].
    pub const RECONNECT_BACKOFF_MAX_MS_DEFAULT: u64 = 2_000;
    /// Default [`QuicOptions::socket_buffer_bytes`]: 4 MiB, for bursts from several peers.
    pub const SOCKET_BUFFER_BYTES_DEFAULT: usize = 4 << 20;
    /// Default [`QuicOptions::client_queue_max`].
    pub const CLIENT_QUEUE_MAX_DEFAULT: usize = 4096;
    /// Default [`QuicOptions::client_inflight_max`].
    pub const CLIENT_INFLIGHT_MAX_DEFAULT: usize = 1024;
    /// Default [`QuicOptions::client_connections_max`].
    pub const CLIENT_CONNECTIONS_MAX_DEFAULT: usize = 1024;
    /// Default [`QuicOptions::client_idle_timeout_ms`]: 5 minutes. Long enough for a client
    /// that pauses between bursts (an interactive shell, a pool connection) to keep its
    /// connection and skip a new handshake; short enough that clients which vanish or hold
    /// connections without using them give their slots back within minutes.
    pub const CLIENT_IDLE_TIMEOUT_MS_DEFAULT: u64 = 300_000;
    /// Default [`QuicOptions::client_tcp`].
    pub const CLIENT_TCP_DEFAULT: bool = true;

    /// Checks limits and their relations.
    ///
    /// # Errors
    /// [`NetError::Config`] naming the offending field.
    pub fn validate(&self) -> Result<(), NetError> {
        let fail = |msg: String| Err(NetError::Config(msg));
        for (name, value) in [
            ("queue_len_max", self.queue_len_max),
            ("inbox_batches_max", self.inbox_batches_max),
            ("batch_messages_max", self.batch_messages_max),
            ("client_queue_max", self.client_queue_max),
            ("client_inflight_max", self.client_inflight_max),
            ("client_connections_max", self.client_connections_max),
        ] {
            if value == 0 {
                return fail(format!("{name} must be at least 1"));
            }
        }
        if !(FRAME_BYTES_MIN..=FRAME_BYTES_LIMIT).contains(&self.frame_bytes_max) {
            return fail(format!(
                "frame_bytes_max must be in {FRAME_BYTES_MIN}..={FRAME_BYTES_LIMIT}"
            ));
        }
        if self.keep_alive_ms == 0 || self.keep_alive_ms >= self.idle_timeout_ms {
            return fail("keep_alive_ms must be above 0 and below idle_timeout_ms".into());
        }
        for (name, value) in [
            ("handshake_timeout_ms", self.handshake_timeout_ms),
            ("client_idle_timeout_ms", self.client_idle_timeout_ms),
        ] {
            if value == 0 {
                return fail(format!("{name} must be above 0"));
            }
        }
        if self.reconnect_backoff_min_ms == 0
            || self.reconnect_backoff_min_ms > self.reconnect_backoff_max_ms
        {
            return fail(
                "reconnect_backoff_min_ms must be above 0 and at most reconnect_backoff_max_ms"
                    .into(),
            );
        }
        Ok(())
    }
}

impl Default for QuicOptions {
    fn default() -> Self {
        QuicOptions {
            queue_len_max: Self::QUEUE_LEN_MAX_DEFAULT,
            inbox_batches_max: Self::INBOX_BATCHES_MAX_DEFAULT,
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            batch_messages_max: Self::BATCH_MESSAGES_MAX_DEFAULT,
            keep_alive_ms: Self::KEEP_ALIVE_MS_DEFAULT,
            idle_timeout_ms: Self::IDLE_TIMEOUT_MS_DEFAULT,
            handshake_timeout_ms: Self::HANDSHAKE_TIMEOUT_MS_DEFAULT,
            reconnect_backoff_min_ms: Self::RECONNECT_BACKOFF_MIN_MS_DEFAULT,
            reconnect_backoff_max_ms: Self::RECONNECT_BACKOFF_MAX_MS_DEFAULT,
            socket_buffer_bytes: Self::SOCKET_BUFFER_BYTES_DEFAULT,
            client_queue_max: Self::CLIENT_QUEUE_MAX_DEFAULT,
            client_inflight_max: Self::CLIENT_INFLIGHT_MAX_DEFAULT,
            client_connections_max: Self::CLIENT_CONNECTIONS_MAX_DEFAULT,
            client_idle_timeout_ms: Self::CLIENT_IDLE_TIMEOUT_MS_DEFAULT,
            client_tcp: Self::CLIENT_TCP_DEFAULT,
        }
    }
}

/// How a [`crate::Client`] reaches its node. Both carry the same frames under the same mutual
/// TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientTransport {
    /// TLS over TCP, to the TCP port with the node's port number (the default: cheaper per call
    /// on loopback and LANs).
    #[default]
    Tcp,
    /// QUIC, to the node's UDP port.
    Quic,
}

/// Options of a [`crate::Client`]. Durations are in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    /// TLS over TCP or QUIC.
    pub transport: ClientTransport,
    /// Largest frame body, in bytes (must match the server's to send large requests).
    pub frame_bytes_max: usize,
    /// Most requests per frame.
    pub batch_messages_max: usize,
    /// Requests queued for writing before [`crate::Client::call`] waits.
    pub queue_len_max: usize,
    /// Interval of QUIC keep-alives (below `idle_timeout_ms`), and of TCP keep-alive probes on
    /// an idle TCP connection (at least 1 s).
    pub keep_alive_ms: u64,
    /// A QUIC connection with no packets for this long is closed.
    pub idle_timeout_ms: u64,
    /// Time allowed for connecting.
    pub connect_timeout_ms: u64,
    /// UDP socket buffer to ask for (0: system default); QUIC only.
    pub socket_buffer_bytes: usize,
}

impl ClientOptions {
    /// Default [`ClientOptions::queue_len_max`].
    pub const QUEUE_LEN_MAX_DEFAULT: usize = 1024;
    /// Default [`ClientOptions::connect_timeout_ms`].
    pub const CONNECT_TIMEOUT_MS_DEFAULT: u64 = 3_000;
    /// Default [`ClientOptions::socket_buffer_bytes`]: 1 MiB, for one connection.
    pub const SOCKET_BUFFER_BYTES_DEFAULT: usize = 1 << 20;

    /// Checks the limits.
    ///
    /// # Errors
    /// [`NetError::Config`] naming the offending field.
    pub fn validate(&self) -> Result<(), NetError> {
        if self.queue_len_max == 0 || self.batch_messages_max == 0 {
            return Err(NetError::Config(
                "queue_len_max and batch_messages_max must be at least 1".into(),
            ));
        }
        if self.frame_bytes_max < FRAME_BYTES_MIN {
            return Err(NetError::Config("frame_bytes_max is too small".into()));
        }
        Ok(())
    }
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            transport: ClientTransport::default(),
            frame_bytes_max: FRAME_BYTES_MAX_DEFAULT,
            batch_messages_max: QuicOptions::BATCH_MESSAGES_MAX_DEFAULT,
            queue_len_max: Self::QUEUE_LEN_MAX_DEFAULT,
            keep_alive_ms: QuicOptions::KEEP_ALIVE_MS_DEFAULT,
            idle_timeout_ms: QuicOptions::IDLE_TIMEOUT_MS_DEFAULT,
            connect_timeout_ms: Self::CONNECT_TIMEOUT_MS_DEFAULT,
            socket_buffer_bytes: Self::SOCKET_BUFFER_BYTES_DEFAULT,
        }
    }
}
