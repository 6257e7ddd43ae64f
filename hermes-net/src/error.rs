//! The error type of this crate.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use hermes_core::{NodeId, RequestError};
use serde::{Deserialize, Serialize};

/// Everything that can go wrong in a transport, a client or certificate handling.
///
/// Errors that concern one remote side (a bad frame, a refused peer, a failed handshake) close only
/// that stream or connection; the transport keeps serving everyone else. They are logged with
/// `tracing::warn!` and kept in the transport's recent-error log (see
/// [`crate::QuicTransport::recent_errors`]).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The bounded send queue to `peer` is full: the peer, or the network to it, does not keep
    /// up. The message was not enqueued; the caller decides whether to drop or retry it.
    #[error("send queue to {peer} is full")]
    QueueFull {
        /// The destination whose queue is full.
        peer: NodeId,
    },
    /// The destination is not a configured peer of this transport.
    #[error("{peer} is not a known peer")]
    UnknownPeer {
        /// The destination asked for.
        peer: NodeId,
    },
    /// The transport, client or connection has been shut down.
    #[error("closed")]
    Closed,
    /// A remote side sent bytes that are not a valid frame; its stream or connection was closed.
    #[error("bad frame from {remote}{}: {reason}", peer_suffix(.peer))]
    Frame {
        /// The remote address the frame came from.
        remote: SocketAddr,
        /// The peer's node id, if it was already identified.
        peer: Option<NodeId>,
        /// What was wrong with the frame.
        reason: FrameError,
    },
    /// A remote side completed the TLS handshake but was refused as a peer.
    #[error("peer at {remote}{} refused: {reason}", peer_suffix(.claimed))]
    PeerRefused {
        /// The remote address of the refused connection.
        remote: SocketAddr,
        /// The node id the remote side claimed, if it got as far as claiming one.
        claimed: Option<NodeId>,
        /// Why it was refused.
        reason: RefuseReason,
    },
    /// The TLS handshake of an incoming connection failed, e.g. because the remote certificate does
    /// not chain to the cluster CA.
    #[error("handshake with {remote} failed: {reason}")]
    Handshake {
        /// The remote address.
        remote: SocketAddr,
        /// The TLS or QUIC error, as text.
        reason: String,
    },
    /// An outgoing connection could not be established (unreachable, refused, or the remote
    /// certificate does not name the expected node or does not chain to the cluster CA).
    #[error("cannot connect to {remote}: {reason}")]
    Connect {
        /// The address dialed.
        remote: SocketAddr,
        /// The QUIC or TLS error, as text.
        reason: String,
    },
    /// An established connection was lost (closed by the remote side, timed out, or reset).
    #[error("connection to {remote} lost: {reason}")]
    ConnectionLost {
        /// The remote address.
        remote: SocketAddr,
        /// Why, as text.
        reason: String,
    },
    /// An operating-system I/O error.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: Arc<io::Error>,
    },
    /// A certificate or key file is missing, unreadable or not valid PEM of the expected kind.
    #[error("{}: {reason}", .path.display())]
    Pem {
        /// The offending file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// A file that would be written already exists; pass `force` to overwrite it.
    #[error("{} already exists (use force to overwrite)", .path.display())]
    FileExists {
        /// The existing file.
        path: PathBuf,
    },
    /// Certificate generation failed.
    #[error("certificate generation failed: {0}")]
    CertGen(String),
    /// The TLS material could not be turned into a TLS configuration (e.g. the key does not
    /// match the certificate).
    #[error("invalid TLS configuration: {0}")]
    Tls(String),
    /// A configuration value is out of range or inconsistent.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A message could not be encoded.
    #[error("cannot encode message: {0}")]
    Encode(String),
    /// A single message is larger than the maximum frame size and can never be sent.
    #[error("message of {bytes} bytes exceeds the frame maximum of {max} bytes")]
    MessageTooLarge {
        /// The encoded size of the message.
        bytes: usize,
        /// The configured maximum frame size.
        max: usize,
    },
    /// The server answered a client request with a transport-level refusal.
    #[error("request refused by the server: {0}")]
    Refused(ServerError),
}

impl NetError {
    /// What a client request that failed with this error reports to its caller: the one mapping
    /// from transport errors to [`RequestError`]s, used by every client path (connecting,
    /// calling). `node` names the node the request was for ("node 3"), for the message.
    ///
    /// A message over the frame limit is the request's own fault ([`RequestError::InvalidArgument`]),
    /// a full server queue is [`RequestError::Overloaded`], everything else is
    /// [`RequestError::NetworkError`] (the outcome is unknown if the request was sent).
    pub fn into_request_error(self, node: impl std::fmt::Display) -> RequestError {
        match self {
            NetError::MessageTooLarge { .. } => RequestError::InvalidArgument(
                "the request is larger than a frame (frame_bytes_max)".into(),
            ),
            NetError::Refused(ServerError::Overloaded) => {
                RequestError::Overloaded(format!("{node} refused the request: its queue is full"))
            }
            other => RequestError::NetworkError(format!("{node}: {other}")),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        NetError::Io {
            context: context.into(),
            source: Arc::new(source),
        }
    }
}

fn peer_suffix(peer: &Option<NodeId>) -> String {
    match peer {
        Some(id) => format!(" ({id})"),
        None => String::new(),
    }
}

/// What was wrong with a frame received on a stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The length prefix announces more bytes than the maximum frame size. Rejected before any
    /// buffer is allocated.
    #[error("frame of {len} bytes exceeds the maximum of {max} bytes")]
    Oversize {
        /// The announced length.
        len: u64,
        /// The configured maximum.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({got} of {expected} bytes)")]
    Truncated {
        /// Bytes the frame (or its length prefix) needed.
        expected: usize,
        /// Bytes that arrived before the end of the stream.
        got: usize,
    },
    /// The frame body is not a valid encoding of a batch: garbage bytes, or a message of a kind
    /// this side does not know.
    #[error("undecodable frame: {detail}")]
    Decode {
        /// The decoder's explanation.
        detail: String,
    },
    /// The frame body decoded, but bytes were left over after the batch.
    #[error("{extra} bytes left over after the batch")]
    TrailingBytes {
        /// How many bytes were left over.
        extra: usize,
    },
    /// The first frame of a peer stream is not a valid hello.
    #[error("bad hello: {detail}")]
    Hello {
        /// What was wrong.
        detail: String,
    },
}

/// Why a connection that passed the TLS handshake was refused as a peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RefuseReason {
    /// The certificate chains to the cluster CA but does not name the node id claimed in the hello.
    #[error("certificate does not name the claimed node id")]
    CertificateMismatch,
    /// The claimed node id is not a configured peer.
    #[error("not a configured peer")]
    UnknownPeer,
    /// The claimed node id should be dialed by this node, not dial it (the lower id dials).
    #[error("wrong dial direction: the lower node id dials")]
    WrongDirection,
    /// The remote side presented no certificate.
    #[error("no client certificate")]
    NoCertificate,
    /// The remote side did not send its hello in time.
    #[error("no hello within the handshake timeout")]
    HelloTimeout,
    /// The remote side negotiated an application protocol this endpoint does not serve.
    #[error("unsupported application protocol")]
    UnsupportedProtocol,
    /// The endpoint already serves `client_connections_max` client connections.
    #[error("too many client connections")]
    TooManyClients,
}

/// A transport-level refusal of a client request, sent back in place of a response.
///
/// Application errors (e.g. "key not found") travel inside the response type; these are only the
/// cases where the request never got an answer from the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, thiserror::Error)]
pub enum ServerError {
    /// The server's request queue is full; retry later.
    #[error("server overloaded")]
    Overloaded,
    /// The application dropped the request without answering (e.g. it is shutting down).
    #[error("request dropped without an answer")]
    Dropped,
    /// The response exceeds the maximum frame size.
    #[error("response too large for a frame")]
    ResponseTooLarge,
}
