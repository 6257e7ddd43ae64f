//! The client side of the client protocol: one connection (TLS over TCP, or QUIC), one stream,
//! pipelined calls.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use hermes_core::NodeId;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::runtime::Handle;
use tokio::sync::{mpsc, oneshot};

use super::link::{tune_tcp, Link};
use super::options::{ClientOptions, ClientTransport};
use super::socket;
use super::tasks::Tasks;
use crate::certs::node_dns_name;
use crate::frame::{self, BatchEncoder, Push, ReadFrameError};
use crate::protocol::{RequestEnvelope, ResponseEnvelope};
use crate::tls::{self, CLIENT_ALPN};
use crate::{NetError, TlsConfig};

/// Where the reply to one outstanding call goes: the caller awaits the other end.
type ReplySender<Resp> = oneshot::Sender<Result<Resp, NetError>>;

/// Outstanding calls, and the error that ended the connection once it has ended.
struct Pending<Resp> {
    waiters: HashMap<u64, ReplySender<Resp>>,
    closed: Option<NetError>,
}

struct PendingMap<Resp>(Mutex<Pending<Resp>>);

impl<Resp> PendingMap<Resp> {
    fn lock(&self) -> MutexGuard<'_, Pending<Resp>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn complete(&self, id: u64, result: Result<Resp, NetError>) {
        if let Some(waiter) = self.lock().waiters.remove(&id) {
            let _ = waiter.send(result);
        }
    }

    /// Fails every outstanding call and every later one with `err` (the first error wins).
    fn close(&self, err: NetError) {
        let mut pending = self.lock();
        let err = pending.closed.get_or_insert(err).clone();
        for (_, waiter) in pending.waiters.drain() {
            let _ = waiter.send(Err(err.clone()));
        }
    }
}

/// Removes a call's waiter if the call is abandoned.
struct CallGuard<'a, Resp> {
    pending: &'a PendingMap<Resp>,
    id: u64,
}

impl<Resp> Drop for CallGuard<'_, Resp> {
    fn drop(&mut self) {
        self.pending.lock().waiters.remove(&self.id);
    }
}

/// A client of the request/response protocol: one connection (TLS over TCP or QUIC, ALPN
/// [`CLIENT_ALPN`]) to one node, mutual TLS with a certificate from the cluster CA.
///
/// [`Client::call`] takes `&self`: concurrent calls are pipelined over one stream and batched
/// into shared frames; responses may come back in any order.
pub struct Client<Req, Resp> {
    link: Link,
    /// The QUIC endpoint, for a QUIC connection.
    endpoint: Option<quinn::Endpoint>,
    requests: mpsc::Sender<RequestEnvelope<Req>>,
    pending: Arc<PendingMap<Resp>>,
    next_id: AtomicU64,
    tasks: Tasks,
    _types: PhantomData<fn(Req) -> Resp>,
}

impl<Req, Resp> Client<Req, Resp>
where
    Req: Serialize + Send + 'static,
    Resp: DeserializeOwned + Send + 'static,
{
    /// Connects to the node `server` at `addr` with default options.
    ///
    /// # Errors
    /// As [`Client::connect_with`].
    pub async fn connect(
        addr: SocketAddr,
        server: NodeId,
        tls: &TlsConfig,
    ) -> Result<Self, NetError> {
        Self::connect_with(addr, server, tls, ClientOptions::default()).await
    }

    /// Connects to the node `server` at `addr` (its UDP port for QUIC; the TCP port with the same
    /// number for TCP), which must present a certificate from the cluster CA naming `server`.
    ///
    /// A server that refuses this client's certificate may only be noticed at the first call,
    /// which then fails with [`NetError::ConnectionLost`].
    ///
    /// # Errors
    /// [`NetError::Connect`] if the connection cannot be established, [`NetError::Tls`] or
    /// [`NetError::Config`] for unusable settings, [`NetError::Io`] if no socket can be bound.
    pub async fn connect_with(
        addr: SocketAddr,
        server: NodeId,
        tls: &TlsConfig,
        options: ClientOptions,
    ) -> Result<Self, NetError> {
        options.validate()?;
        let runtime = Handle::try_current()
            .map_err(|_| NetError::Config("Client::connect needs a Tokio runtime".into()))?;
        let timeout = Duration::from_millis(options.connect_timeout_ms);
        let connect_err = |reason: String| NetError::Connect {
            remote: addr,
            reason,
        };
        match options.transport {
            ClientTransport::Tcp => {
                let config = tls::rustls_client_config(tls, CLIENT_ALPN)?;
                let name = rustls::pki_types::ServerName::try_from(node_dns_name(server))
                    .map_err(|e| NetError::Config(format!("server name: {e}")))?;
                let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
                let stream = within(timeout, async move {
                    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
                    tune_tcp(&tcp, options.keep_alive_ms);
                    connector
                        .connect(name, tcp)
                        .await
                        .map_err(|e| e.to_string())
                })
                .await
                .map_err(connect_err)?;
                let (recv, send) = tokio::io::split(stream);
                Ok(Self::start(
                    Link::Tcp(addr),
                    None,
                    send,
                    recv,
                    options,
                    runtime,
                ))
            }
            ClientTransport::Quic => {
                let transport =
                    tls::transport_config(options.keep_alive_ms, options.idle_timeout_ms)?;
                let config = tls::quinn_client_config_with(tls, CLIENT_ALPN, Arc::new(transport))?;
                let local: SocketAddr = if addr.is_ipv4() {
                    (Ipv4Addr::UNSPECIFIED, 0).into()
                } else {
                    (Ipv6Addr::UNSPECIFIED, 0).into()
                };
                let endpoint = socket::endpoint(
                    local,
                    options.socket_buffer_bytes,
                    None,
                    quinn::EndpointConfig::default(),
                )?;
                let connecting = endpoint
                    .connect_with(config, addr, &node_dns_name(server))
                    .map_err(|e| connect_err(e.to_string()))?;
                let (conn, send, recv) = within(timeout, async move {
                    let conn = connecting.await.map_err(|e| e.to_string())?;
                    let (send, recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
                    Ok((conn, send, recv))
                })
                .await
                .map_err(connect_err)?;
                let link = Link::Quic(conn);
                Ok(Self::start(
                    link,
                    Some(endpoint),
                    send,
                    recv,
                    options,
                    runtime,
                ))
            }
        }
    }

    /// Starts the writer and reader tasks of a connected stream pair.
    fn start<W, R>(
        link: Link,
        endpoint: Option<quinn::Endpoint>,
        send: W,
        recv: R,
        options: ClientOptions,
        runtime: Handle,
    ) -> Self
    where
        W: AsyncWrite + Unpin + Send + 'static,
        R: AsyncRead + Unpin + Send + 'static,
    {
        let (requests, queue) = mpsc::channel(options.queue_len_max);
        let pending = Arc::new(PendingMap(Mutex::new(Pending {
            waiters: HashMap::new(),
            closed: None,
        })));
        let tasks = Tasks::new(runtime);
        tasks.spawn(write_requests(
            link.clone(),
            send,
            queue,
            Arc::clone(&pending),
            options,
        ));
        tasks.spawn(read_responses(
            link.clone(),
            recv,
            Arc::clone(&pending),
            options.frame_bytes_max,
        ));
        Client {
            link,
            endpoint,
            requests,
            pending,
            next_id: AtomicU64::new(1),
            tasks,
            _types: PhantomData,
        }
    }

    /// Sends `request` and waits for its response.
    ///
    /// Cancel-safe: dropping the future abandons the call (a late response is discarded).
    ///
    /// # Errors
    /// [`NetError::Refused`] if the server refused the request (overloaded, dropped);
    /// [`NetError::MessageTooLarge`] if the request exceeds the frame size;
    /// [`NetError::ConnectionLost`], [`NetError::Frame`] or [`NetError::Closed`] if the
    /// connection ended — the request may or may not have been executed.
    pub async fn call(&self, request: Req) -> Result<Resp, NetError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending.lock();
            if let Some(err) = &pending.closed {
                return Err(err.clone());
            }
            pending.waiters.insert(id, tx);
        }
        let _guard = CallGuard {
            pending: &self.pending,
            id,
        };
        if self
            .requests
            .send(RequestEnvelope { id, body: request })
            .await
            .is_err()
        {
            return Err(self.closed_error());
        }
        match rx.await {
            Ok(result) => result,
            Err(_) => Err(self.closed_error()),
        }
    }
}

impl<Req, Resp> Client<Req, Resp> {
    /// Whether the connection is known to have ended (closed by either side, or lost): every
    /// later [`Client::call`] fails at once without sending anything.
    pub fn is_closed(&self) -> bool {
        self.pending.lock().closed.is_some()
    }

    fn closed_error(&self) -> NetError {
        self.pending
            .lock()
            .closed
            .clone()
            .unwrap_or(NetError::Closed)
    }

    /// The server's address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.link.remote()
    }

    /// Closes the connection; outstanding and later calls fail with [`NetError::Closed`].
    pub fn close(&self) {
        self.pending.close(NetError::Closed);
        self.link.close(super::close::SHUTDOWN, b"client closed");
        if let Some(endpoint) = &self.endpoint {
            endpoint.close(super::close::SHUTDOWN, b"client closed");
        }
        if let Link::Tcp(_) = self.link {
            // Ending the tasks drops both halves of the stream, which closes the socket.
            drop(self.tasks.take());
        }
    }
}

impl<Req, Resp> Drop for Client<Req, Resp> {
    fn drop(&mut self) {
        self.close();
        drop(self.tasks.take());
    }
}

/// Runs `future` for at most `timeout`.
async fn within<T>(
    timeout: Duration,
    future: impl std::future::Future<Output = Result<T, String>>,
) -> Result<T, String> {
    tokio::time::timeout(timeout, future)
        .await
        .unwrap_or_else(|_| Err("timed out".to_string()))
}

async fn write_requests<Req: Serialize, Resp, W: AsyncWrite + Unpin>(
    link: Link,
    mut send: W,
    mut queue: mpsc::Receiver<RequestEnvelope<Req>>,
    pending: Arc<PendingMap<Resp>>,
    options: ClientOptions,
) {
    let mut encoder = BatchEncoder::new(options.frame_bytes_max);
    let mut carry = None;
    loop {
        let first = match carry.take() {
            Some(request) => request,
            None => match queue.recv().await {
                Some(request) => request,
                None => break,
            },
        };
        encoder.clear();
        let mut next = Some(first);
        while let Some(request) = next.take() {
            match encoder.push(&request) {
                Ok(Push::Added) => {}
                Ok(Push::Full) => {
                    carry = Some(request);
                    break;
                }
                Err(e) => pending.complete(request.id, Err(e)),
            }
            if encoder.len() < options.batch_messages_max {
                next = queue.try_recv().ok();
            }
        }
        if encoder.is_empty() {
            continue;
        }
        let written = match send.write_all(encoder.finish()).await {
            Ok(()) => send.flush().await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            pending.close(link.lost(e));
            return;
        }
    }
    let _ = send.shutdown().await;
}

async fn read_responses<Resp: DeserializeOwned, R: AsyncRead + Unpin>(
    link: Link,
    mut recv: R,
    pending: Arc<PendingMap<Resp>>,
    frame_bytes_max: usize,
) {
    let mut buf = Vec::new();
    let remote = link.remote();
    let err = loop {
        match frame::read_frame(&mut recv, &mut buf, frame_bytes_max).await {
            Ok(true) => {}
            Ok(false) => break link.lost("server finished the stream"),
            Err(ReadFrameError::Io(e)) => break link.lost(e),
            Err(ReadFrameError::Frame(reason)) => {
                link.close(super::close::BAD_FRAME, b"bad frame");
                break NetError::Frame {
                    remote,
                    peer: None,
                    reason,
                };
            }
        }
        match frame::decode_batch::<ResponseEnvelope<Resp>>(&buf) {
            Ok(batch) => {
                for ResponseEnvelope { id, body } in batch {
                    pending.complete(id, body.map_err(NetError::Refused));
                }
            }
            Err(reason) => {
                link.close(super::close::BAD_FRAME, b"bad frame");
                break NetError::Frame {
                    remote,
                    peer: None,
                    reason,
                };
            }
        }
    };
    tracing::debug!(error = %err, "client connection ended");
    pending.close(err);
}
