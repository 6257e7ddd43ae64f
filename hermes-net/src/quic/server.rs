//! The server side of the client protocol: requests to the application, responses back.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::link::{ClientConn, Link};
use super::{close, ClientService, Common};
use crate::frame::{self, BatchEncoder, Push, ReadFrameError};
use crate::protocol::{RequestEnvelope, ResponseEnvelope};
use crate::stats::bump;
use crate::{FrameError, NetError, ServerError};

/// A client request handed to the application, with the means to answer it.
#[derive(Debug)]
pub struct ClientRequest<Req, Resp> {
    /// The request.
    pub request: Req,
    /// Answers the request; dropping it unanswered sends [`ServerError::Dropped`].
    pub responder: Responder<Resp>,
}

/// The channel of client requests of a [`super::QuicTransport`] made with
/// [`super::QuicTransport::bind_with_clients`].
pub type Requests<Req, Resp> = mpsc::Receiver<ClientRequest<Req, Resp>>;

type Outgoing<Resp> = mpsc::UnboundedSender<(ResponseEnvelope<Resp>, OwnedSemaphorePermit)>;

/// Sends the answer to one client request. Never blocks.
///
/// Each unanswered request holds one of the connection's `client_inflight_max` slots; the slot is
/// freed once the answer is written.
#[derive(Debug)]
pub struct Responder<Resp> {
    id: u64,
    answer: Option<(Outgoing<Resp>, OwnedSemaphorePermit)>,
}

impl<Resp> Responder<Resp> {
    /// The client's id of the request.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Whether the client connection is gone (an answer would be discarded).
    pub fn is_closed(&self) -> bool {
        self.answer.as_ref().is_none_or(|(tx, _)| tx.is_closed())
    }

    /// Sends `response`. Returns `false` if the client connection is gone.
    pub fn respond(mut self, response: Resp) -> bool {
        self.finish(Ok(response))
    }

    /// Refuses the request with a transport-level error.
    pub fn refuse(mut self, error: ServerError) -> bool {
        self.finish(Err(error))
    }

    fn finish(&mut self, body: Result<Resp, ServerError>) -> bool {
        match self.answer.take() {
            Some((tx, permit)) => tx
                .send((ResponseEnvelope { id: self.id, body }, permit))
                .is_ok(),
            None => false,
        }
    }
}

impl<Resp> Drop for Responder<Resp> {
    fn drop(&mut self) {
        if self.answer.is_some() {
            self.finish(Err(ServerError::Dropped));
        }
    }
}

/// The client service for [`super::QuicTransport::bind_with_clients`].
pub(crate) fn service<Req, Resp>(requests: mpsc::Sender<ClientRequest<Req, Resp>>) -> ClientService
where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
{
    Arc::new(move |conn, common| Box::pin(serve_connection(conn, requests.clone(), common)))
}

/// Serves one client connection: over QUIC each bidirectional stream is a request/response
/// stream; over TCP the connection itself is one.
async fn serve_connection<Req, Resp>(
    conn: ClientConn,
    requests: mpsc::Sender<ClientRequest<Req, Resp>>,
    common: Arc<Common>,
) where
    Req: DeserializeOwned + Send + 'static,
    Resp: Serialize + Send + 'static,
{
    bump(&common.counters.client_connections, 1);
    let inflight = Arc::new(Semaphore::new(common.limits.client_inflight_max));
    let activity = Arc::new(Activity::new());
    let idle = idle_watch(&activity, &inflight, &common);
    match conn {
        ClientConn::Quic(conn) => {
            tracing::debug!(remote = %conn.remote_address(), "QUIC client connected");
            let link = Link::Quic(conn.clone());
            let accept_streams = async {
                while let Ok((send, recv)) = conn.accept_bi().await {
                    activity.touch();
                    let (tx, rx) = mpsc::unbounded_channel();
                    common
                        .tasks
                        .spawn(write_responses(send, rx, Arc::clone(&common)));
                    let reader = read_requests(
                        link.clone(),
                        Watched::new(recv, Arc::clone(&activity)),
                        tx,
                        requests.clone(),
                        Arc::clone(&inflight),
                        Arc::clone(&common),
                    );
                    common.tasks.spawn(reader);
                }
            };
            tokio::select! {
                () = accept_streams => {}
                () = idle => close_idle(&common, &link),
            }
        }
        ClientConn::Tcp(stream, remote) => {
            tracing::debug!(%remote, "TCP client connected");
            let (recv, send) = tokio::io::split(*stream);
            let (tx, rx) = mpsc::unbounded_channel();
            common
                .tasks
                .spawn(write_responses(send, rx, Arc::clone(&common)));
            let link = Link::Tcp(remote);
            let recv = Watched::new(recv, Arc::clone(&activity));
            let reader = read_requests(
                link.clone(),
                recv,
                tx,
                requests,
                Arc::clone(&inflight),
                Arc::clone(&common),
            );
            // When the idle watch wins, dropping the reader drops the answer channel: the writer
            // shuts the TLS stream down and the connection closes.
            tokio::select! {
                () = reader => {}
                () = idle => close_idle(&common, &link),
            }
        }
    }
}

/// When a client connection last received a byte (or last had a request in flight), shared by
/// its readers and its idle watch.
struct Activity {
    start: Instant,
    /// Milliseconds from `start` to the last activity.
    last_ms: AtomicU64,
}

impl Activity {
    fn new() -> Self {
        Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.fetch_max(now, Ordering::Relaxed);
    }

    /// How long ago the last activity was.
    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// A reader that marks its connection active whenever bytes arrive.
struct Watched<R> {
    inner: R,
    activity: Arc<Activity>,
}

impl<R> Watched<R> {
    fn new(inner: R, activity: Arc<Activity>) -> Self {
        Watched { inner, activity }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for Watched<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

/// Returns once the connection has had no request in flight and received nothing for
/// `client_idle_timeout`. Time with requests in flight counts as activity, so the idle clock
/// starts again (within one period) after the last answer.
async fn idle_watch(activity: &Activity, inflight: &Semaphore, common: &Common) {
    let limits = common.limits;
    loop {
        if inflight.available_permits() < limits.client_inflight_max {
            activity.touch();
        }
        let quiet = activity.quiet_for();
        if quiet >= limits.client_idle_timeout {
            return;
        }
        tokio::time::sleep(limits.client_idle_timeout - quiet).await;
    }
}

/// Counts and logs a client connection closed for idleness, and closes it over QUIC (over TCP
/// the caller ends the reader).
fn close_idle(common: &Common, link: &Link) {
    // Counted with the other client connections this endpoint turned away on its own decision.
    bump(&common.counters.peers_refused, 1);
    link.close(close::IDLE, b"idle");
    let idle_ms = common.limits.client_idle_timeout.as_millis();
    common.errors.record_quiet(NetError::ConnectionLost {
        remote: link.remote(),
        reason: format!("closed after {idle_ms} ms idle with no request in flight"),
    });
}

/// Counts and logs a bad frame from a client and closes its QUIC connection (over TCP the reader
/// returns, and the connection closes once the answers still owed are written).
fn reject_client_frame(common: &Common, link: &Link, reason: FrameError) {
    bump(&common.counters.frames_rejected, 1);
    link.close(close::BAD_FRAME, b"bad frame");
    common.errors.record(NetError::Frame {
        remote: link.remote(),
        peer: None,
        reason,
    });
}

async fn read_requests<Req, Resp, R>(
    link: Link,
    mut recv: R,
    outgoing: Outgoing<Resp>,
    requests: mpsc::Sender<ClientRequest<Req, Resp>>,
    inflight: Arc<Semaphore>,
    common: Arc<Common>,
) where
    Req: DeserializeOwned + Send + 'static,
    Resp: Send + 'static,
    R: AsyncRead + Unpin,
{
    let mut buf = Vec::new();
    loop {
        match frame::read_frame(&mut recv, &mut buf, common.limits.frame_bytes_max).await {
            Ok(true) => {}
            Ok(false) | Err(ReadFrameError::Io(_)) => return,
            Err(ReadFrameError::Frame(reason)) => {
                return reject_client_frame(&common, &link, reason)
            }
        }
        let batch = match frame::decode_batch::<RequestEnvelope<Req>>(&buf) {
            Ok(batch) => batch,
            Err(reason) => return reject_client_frame(&common, &link, reason),
        };
        for RequestEnvelope { id, body } in batch {
            let Ok(permit) = Arc::clone(&inflight).acquire_owned().await else {
                return;
            };
            let responder = Responder {
                id,
                answer: Some((outgoing.clone(), permit)),
            };
            let request = ClientRequest {
                request: body,
                responder,
            };
            match requests.try_send(request) {
                Ok(()) => bump(&common.counters.client_requests, 1),
                Err(mpsc::error::TrySendError::Full(request)) => {
                    bump(&common.counters.client_requests_refused, 1);
                    request.responder.refuse(ServerError::Overloaded);
                }
                Err(mpsc::error::TrySendError::Closed(request)) => {
                    request.responder.refuse(ServerError::Dropped);
                }
            }
        }
    }
}

async fn write_responses<Resp: Serialize + Send + 'static, W: AsyncWrite + Unpin>(
    mut send: W,
    mut outgoing: mpsc::UnboundedReceiver<(ResponseEnvelope<Resp>, OwnedSemaphorePermit)>,
    common: Arc<Common>,
) {
    let limits = common.limits;
    let mut encoder = BatchEncoder::new(limits.frame_bytes_max);
    let mut permits = Vec::new();
    let mut carry = None;
    loop {
        let first = match carry.take() {
            Some(item) => item,
            None => match outgoing.recv().await {
                Some(item) => item,
                None => break,
            },
        };
        encoder.clear();
        permits.clear();
        let mut next = Some(first);
        while let Some((response, permit)) = next.take() {
            match encoder.push(&response) {
                Ok(Push::Added) => permits.push(permit),
                Ok(Push::Full) => {
                    carry = Some((response, permit));
                    break;
                }
                Err(e) => {
                    // Too large to ever send: answer with an error instead.
                    common.errors.record(e);
                    let refusal: ResponseEnvelope<Resp> = ResponseEnvelope {
                        id: response.id,
                        body: Err(ServerError::ResponseTooLarge),
                    };
                    if encoder.push(&refusal).ok() == Some(Push::Added) {
                        permits.push(permit);
                    } else {
                        carry = Some((refusal, permit));
                        break;
                    }
                }
            }
            if encoder.len() < limits.batch_messages_max {
                next = outgoing.try_recv().ok();
            }
        }
        if encoder.is_empty() {
            continue;
        }
        if send.write_all(encoder.finish()).await.is_err() || send.flush().await.is_err() {
            return;
        }
        // The answers are written: their requests are no longer in flight.
        permits.clear();
    }
    let _ = send.shutdown().await;
}
