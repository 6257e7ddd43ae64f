//! The client-facing request/response protocol: one wire format for the CLI and the node API.
//!
//! A client opens a bidirectional stream on a connection negotiated with [`crate::CLIENT_ALPN`]
//! and writes batch frames of [`RequestEnvelope`]; the server writes batch frames of
//! [`ResponseEnvelope`] on the same stream, in any order. Requests are pipelined: a client may have
//! many outstanding requests, and matches responses by [`RequestEnvelope::id`].

use serde::{Deserialize, Serialize};

use crate::ServerError;

/// One client request on the wire: the application's request and the id its answer carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestEnvelope<Req> {
    /// Chosen by the client, unique among its outstanding requests on the stream.
    pub id: u64,
    /// The application request.
    pub body: Req,
}

/// One server response on the wire: the application's answer (or a refusal) and the id of the
/// request it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResponseEnvelope<Resp> {
    /// The id of the request this answers.
    pub id: u64,
    /// The application's response, or a transport-level refusal. Application errors travel inside
    /// `Resp`.
    pub body: Result<Resp, ServerError>,
}
