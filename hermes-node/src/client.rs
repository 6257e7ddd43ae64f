//! [`RemoteClient`]: a client of one node over TLS on TCP (the default) or QUIC (the client
//! protocol of `hermes-net`).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use hermes_core::{NodeId, Op, Outcome, Ts};
use hermes_net::{Client, ClientOptions, TlsConfig};

use crate::api::ClientApi;
use crate::config::ClientConfig;
use crate::wire::{ClientAnswer, ClientCall};
use crate::{RequestError, Status};

/// A connection to one node of a cluster. Calls take `&self` and may run concurrently: they are
/// pipelined over one connection (one TLS-over-TCP stream pair, or one QUIC stream). Offers the
/// requests of [`ClientApi`], as [`crate::ClusterNode`] does.
///
/// A connection the node has closed (after `network.client_idle_timeout_ms` with no request, or
/// when the node restarted) is redialled by the next call. Only a connection known to be closed
/// before a call is sent is redialled, so a call is never sent twice.
pub struct RemoteClient {
    connection: Mutex<Arc<Connection>>,
    /// Serialises redials, so that concurrent calls on a closed connection dial once.
    redialing: tokio::sync::Mutex<()>,
    closed_by_user: AtomicBool,
    addr: SocketAddr,
    tls: TlsConfig,
    options: ClientOptions,
    node: NodeId,
    request_timeout: Duration,
}

type Connection = Client<ClientCall, ClientAnswer>;

impl RemoteClient {
    /// Connects to node `node` of the configuration with its loaded TLS material
    /// (`config.tls.load()`; many clients may share one).
    ///
    /// # Errors
    /// [`RequestError::InvalidArgument`] if the configuration does not list the node,
    /// [`RequestError::NetworkError`] if the node cannot be reached.
    pub async fn connect(
        config: &ClientConfig,
        tls: &TlsConfig,
        node: NodeId,
    ) -> Result<Self, RequestError> {
        let addr = config.addr_of(node).ok_or_else(|| {
            RequestError::InvalidArgument(format!(
                "node {} is not in the client configuration",
                node.0
            ))
        })?;
        let options = config.client_options();
        let client = dial(addr, node, tls, options).await?;
        Ok(RemoteClient {
            connection: Mutex::new(Arc::new(client)),
            redialing: tokio::sync::Mutex::new(()),
            closed_by_user: AtomicBool::new(false),
            addr,
            tls: tls.clone(),
            options,
            node,
            request_timeout: Duration::from_millis(config.request_timeout_ms),
        })
    }

    fn current(&self) -> Arc<Connection> {
        Arc::clone(
            &self
                .connection
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        )
    }

    /// The live connection: the current one, or a new one if the node had closed it.
    async fn connection(&self) -> Result<Arc<Connection>, RequestError> {
        let current = self.current();
        if !current.is_closed() || self.closed_by_user.load(Ordering::Acquire) {
            return Ok(current);
        }
        let _redialing = self.redialing.lock().await;
        let current = self.current();
        if !current.is_closed() {
            return Ok(current);
        }
        let fresh = Arc::new(dial(self.addr, self.node, &self.tls, self.options).await?);
        *self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Arc::clone(&fresh);
        Ok(fresh)
    }

    /// Connects to `preferred` if given, otherwise to the first configured node that answers.
    ///
    /// # Errors
    /// With `preferred`, as [`RemoteClient::connect`]; otherwise
    /// [`RequestError::NoActiveReplicas`] listing why each node failed.
    pub async fn connect_any(
        config: &ClientConfig,
        tls: &TlsConfig,
        preferred: Option<NodeId>,
    ) -> Result<Self, RequestError> {
        if let Some(node) = preferred {
            return Self::connect(config, tls, node).await;
        }
        let mut failures = Vec::new();
        for node in &config.nodes {
            match Self::connect(config, tls, node.id).await {
                Ok(client) => match client.status().await {
                    Ok(_) => return Ok(client),
                    Err(err) => failures.push(format!("node {}: {err}", node.id.0)),
                },
                Err(err) => failures.push(err.to_string()),
            }
        }
        Err(RequestError::NoActiveReplicas(failures.join("; ")))
    }

    /// The node this client talks to.
    pub fn node(&self) -> NodeId {
        self.node
    }

    async fn call(&self, call: ClientCall) -> Result<ClientAnswer, RequestError> {
        let connection = self.connection().await?;
        match tokio::time::timeout(self.request_timeout, connection.call(call)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(err)) => Err(err.into_request_error(format_args!("node {}", self.node.0))),
            Err(_) => Err(RequestError::Timeout {
                outcome_unknown: true,
            }),
        }
    }

    /// Runs one operation on the node.
    ///
    /// # Errors
    /// The node's answer, [`RequestError::NetworkError`] if the connection failed, or
    /// [`RequestError::Timeout`] after the configured `request_timeout_ms`.
    pub async fn execute(&self, op: Op) -> Result<Outcome, RequestError> {
        match self.call(ClientCall::Execute(op)).await? {
            ClientAnswer::Done(result) => result,
            ClientAnswer::Status(_) => Err(RequestError::NetworkError(
                "the node answered a request with a status".into(),
            )),
        }
    }

    /// Writes `value` under `key` ([`ClientApi::write`]).
    ///
    /// # Errors
    /// As [`RemoteClient::execute`].
    pub async fn write(
        &self,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
    ) -> Result<Ts, RequestError> {
        ClientApi::write(self, key, value).await
    }

    /// Reads `key` ([`ClientApi::read`]).
    ///
    /// # Errors
    /// [`RequestError::ValueNotFound`] if it does not exist, or as [`RemoteClient::execute`].
    pub async fn read(&self, key: impl Into<Bytes>) -> Result<Bytes, RequestError> {
        ClientApi::read(self, key).await
    }

    /// Deletes `key` ([`ClientApi::delete`]).
    ///
    /// # Errors
    /// As [`RemoteClient::execute`].
    pub async fn delete(&self, key: impl Into<Bytes>) -> Result<Ts, RequestError> {
        ClientApi::delete(self, key).await
    }

    /// Compare-and-swap (`expected: None`: the key must be absent; [`ClientApi::cas`]).
    ///
    /// # Errors
    /// [`RequestError::CasFailed`], [`RequestError::Aborted`], or as [`RemoteClient::execute`].
    pub async fn cas(
        &self,
        key: impl Into<Bytes>,
        expected: Option<Bytes>,
        new: impl Into<Bytes>,
    ) -> Result<Ts, RequestError> {
        ClientApi::cas(self, key, expected, new).await
    }

    /// The node's status.
    ///
    /// # Errors
    /// [`RequestError::NetworkError`] or [`RequestError::Timeout`].
    pub async fn status(&self) -> Result<Status, RequestError> {
        match self.call(ClientCall::Status).await? {
            ClientAnswer::Status(status) => Ok(*status),
            ClientAnswer::Done(Err(err)) => Err(err),
            ClientAnswer::Done(Ok(_)) => Err(RequestError::NetworkError(
                "the node answered a status request with an outcome".into(),
            )),
        }
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.closed_by_user.store(true, Ordering::Release);
        self.current().close();
    }
}

impl ClientApi for RemoteClient {
    fn execute(&self, op: Op) -> impl Future<Output = Result<Outcome, RequestError>> + Send {
        RemoteClient::execute(self, op)
    }

    fn status(&self) -> impl Future<Output = Result<Status, RequestError>> + Send {
        RemoteClient::status(self)
    }
}

async fn dial(
    addr: SocketAddr,
    node: NodeId,
    tls: &TlsConfig,
    options: ClientOptions,
) -> Result<Connection, RequestError> {
    Client::connect_with(addr, node, tls, options)
        .await
        .map_err(|err| err.into_request_error(format_args!("node {} at {addr}", node.0)))
}
