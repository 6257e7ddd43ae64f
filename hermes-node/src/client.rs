//! [`RemoteClient`]: a client of one node over TLS on TCP (the default) or QUIC (the client
//! protocol of `hermes-net`).

use std::time::Duration;

use bytes::Bytes;
use hermes_core::{NodeId, Op, Outcome, Ts};
use hermes_net::{Client, NetError, ServerError, TlsConfig};

use crate::config::ClientConfig;
use crate::wire::{committed, found, ClientAnswer, ClientCall};
use crate::{NodeError, Status};

/// A connection to one node of a cluster. Calls take `&self` and may run concurrently: they are
/// pipelined over one connection (one TLS-over-TCP stream pair, or one QUIC stream).
pub struct RemoteClient {
    client: Client<ClientCall, ClientAnswer>,
    node: NodeId,
    request_timeout: Duration,
}

impl RemoteClient {
    /// Connects to node `node` of the configuration.
    ///
    /// # Errors
    /// [`NodeError::Config`] if the configuration does not list the node or the certificates
    /// cannot be read, [`NodeError::NetworkError`] if the node cannot be reached.
    pub async fn connect(config: &ClientConfig, node: NodeId) -> Result<Self, NodeError> {
        let tls = config.tls.load()?;
        Self::connect_with(config, &tls, node).await
    }

    /// Connects to node `node` with already loaded TLS material (many clients, one read).
    ///
    /// # Errors
    /// As [`RemoteClient::connect`].
    pub async fn connect_with(
        config: &ClientConfig,
        tls: &TlsConfig,
        node: NodeId,
    ) -> Result<Self, NodeError> {
        let addr = config.addr_of(node).ok_or_else(|| {
            NodeError::Config(format!(
                "node {} is not in the client configuration",
                node.0
            ))
        })?;
        let client = Client::connect_with(addr, node, tls, config.client_options())
            .await
            .map_err(|err| NodeError::NetworkError(format!("node {} at {addr}: {err}", node.0)))?;
        Ok(RemoteClient {
            client,
            node,
            request_timeout: Duration::from_millis(config.request_timeout_ms),
        })
    }

    /// Connects to `preferred` if given, otherwise to the first configured node that answers.
    ///
    /// # Errors
    /// With `preferred`, as [`RemoteClient::connect`]; otherwise
    /// [`NodeError::NoActiveReplicas`] listing why each node failed.
    pub async fn connect_any(
        config: &ClientConfig,
        preferred: Option<NodeId>,
    ) -> Result<Self, NodeError> {
        if let Some(node) = preferred {
            return Self::connect(config, node).await;
        }
        let tls = config.tls.load()?;
        let mut failures = Vec::new();
        for node in &config.nodes {
            match Self::connect_with(config, &tls, node.id).await {
                Ok(client) => match client.status().await {
                    Ok(_) => return Ok(client),
                    Err(err) => failures.push(format!("node {}: {err}", node.id.0)),
                },
                Err(err) => failures.push(err.to_string()),
            }
        }
        Err(NodeError::NoActiveReplicas(failures.join("; ")))
    }

    /// The node this client talks to.
    pub fn node(&self) -> NodeId {
        self.node
    }

    async fn call(&self, call: ClientCall) -> Result<ClientAnswer, NodeError> {
        match tokio::time::timeout(self.request_timeout, self.client.call(call)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(NetError::MessageTooLarge { .. })) => Err(NodeError::InvalidArgument(
                "the request is larger than a frame (frame_bytes_max)".into(),
            )),
            Ok(Err(NetError::Refused(ServerError::Overloaded))) => {
                Err(NodeError::Overloaded(format!(
                    "node {} refused the request: its queue is full",
                    self.node.0
                )))
            }
            Ok(Err(err)) => Err(NodeError::NetworkError(format!(
                "node {}: {err}",
                self.node.0
            ))),
            Err(_) => Err(NodeError::Timeout {
                outcome_unknown: true,
            }),
        }
    }

    /// Runs one operation on the node.
    ///
    /// # Errors
    /// The node's error, [`NodeError::NetworkError`] if the connection failed, or
    /// [`NodeError::Timeout`] after the configured `request_timeout_ms`.
    pub async fn execute(&self, op: Op) -> Result<Outcome, NodeError> {
        match self.call(ClientCall::Execute(op)).await? {
            ClientAnswer::Done(result) => result,
            ClientAnswer::Status(_) => Err(NodeError::NetworkError(
                "the node answered a request with a status".into(),
            )),
        }
    }

    /// Writes `value` under `key`.
    ///
    /// # Errors
    /// As [`RemoteClient::execute`].
    pub async fn write(
        &self,
        key: impl Into<Bytes>,
        value: impl Into<Bytes>,
    ) -> Result<Ts, NodeError> {
        let op = Op::Write {
            key: key.into(),
            value: value.into(),
        };
        committed(self.execute(op).await?)
    }

    /// Reads `key`.
    ///
    /// # Errors
    /// [`NodeError::ValueNotFound`] if it does not exist, or as [`RemoteClient::execute`].
    pub async fn read(&self, key: impl Into<Bytes>) -> Result<Bytes, NodeError> {
        found(self.execute(Op::Read { key: key.into() }).await?)
    }

    /// Deletes `key`.
    ///
    /// # Errors
    /// As [`RemoteClient::execute`].
    pub async fn delete(&self, key: impl Into<Bytes>) -> Result<Ts, NodeError> {
        committed(self.execute(Op::Delete { key: key.into() }).await?)
    }

    /// Compare-and-swap (`expected: None`: the key must be absent).
    ///
    /// # Errors
    /// [`NodeError::CasFailed`], [`NodeError::Aborted`], or as [`RemoteClient::execute`].
    pub async fn cas(
        &self,
        key: impl Into<Bytes>,
        expected: Option<Bytes>,
        new: impl Into<Bytes>,
    ) -> Result<Ts, NodeError> {
        let op = Op::Cas {
            key: key.into(),
            expected,
            new: new.into(),
        };
        committed(self.execute(op).await?)
    }

    /// The node's status.
    ///
    /// # Errors
    /// [`NodeError::NetworkError`] or [`NodeError::Timeout`].
    pub async fn status(&self) -> Result<Status, NodeError> {
        match self.call(ClientCall::Status).await? {
            ClientAnswer::Status(status) => Ok(*status),
            ClientAnswer::Done(Err(err)) => Err(err),
            ClientAnswer::Done(Ok(_)) => Err(NodeError::NetworkError(
                "the node answered a status request with an outcome".into(),
            )),
        }
    }

    /// Closes the connection.
    pub fn close(&self) {
        self.client.close();
    }
}
