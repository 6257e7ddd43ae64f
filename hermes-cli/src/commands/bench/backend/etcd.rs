//! `--target etcd` (with the `etcd` feature): one gRPC channel per endpoint, client `i` on
//! endpoint `i mod n`; the clients of an endpoint share its channel (HTTP/2 multiplexes their
//! requests), as Hermes' clients share a node's connection.
//!
//! Reads are linearizable `Range` requests (etcd's default), writes are `Put`, compare-and-swaps
//! a `Txn` that compares the value (or, for an absent key, a create revision of 0) and puts.

use std::time::Duration;

use bytes::Bytes;
use etcd_client::{Client, Compare, CompareOp, ConnectOptions, Error, KvClient, Txn, TxnOp};

use super::{Completion, Request};

/// How long opening a connection, and the first request over it, may take.
const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// The key read to check that an endpoint answers linearizable reads.
const PROBE_KEY: &str = "k0";

/// The connected endpoints.
pub struct EtcdBackend {
    /// One client per reachable endpoint, with its `host:port`.
    clients: Vec<(String, Client)>,
}

impl EtcdBackend {
    /// Connects to every endpoint at once and checks that each serves a linearizable read;
    /// also returns why the others failed.
    ///
    /// # Errors
    /// One line if no endpoint can be used.
    pub async fn connect(endpoints: &[String]) -> Result<(Self, Vec<String>), String> {
        let attempts: Vec<_> = endpoints
            .iter()
            .map(|endpoint| tokio::spawn(connect_one(endpoint.clone())))
            .collect();
        let mut clients = Vec::new();
        let mut failures = Vec::new();
        for (attempt, endpoint) in attempts.into_iter().zip(endpoints) {
            match attempt.await {
                Ok(Ok(client)) => clients.push((endpoint.clone(), client)),
                Ok(Err(err)) => failures.push(err),
                Err(err) => failures.push(format!("etcd at {endpoint}: {err}")),
            }
        }
        if clients.is_empty() {
            return Err(format!(
                "cannot connect to any etcd endpoint: {}",
                failures.join("; ")
            ));
        }
        Ok((EtcdBackend { clients }, failures))
    }

    /// The key-value client of client `index`: that of endpoint `index mod n`.
    pub fn client(&self, index: usize) -> KvClient {
        self.clients[index % self.clients.len()].1.kv_client()
    }

    /// The reachable endpoints.
    pub fn endpoints(&self) -> Vec<String> {
        self.clients
            .iter()
            .map(|(endpoint, _)| endpoint.clone())
            .collect()
    }
}

/// Connects to one endpoint and reads [`PROBE_KEY`] through it.
async fn connect_one(endpoint: String) -> Result<Client, String> {
    let timeout = Duration::from_millis(CONNECT_TIMEOUT_MS);
    let options = ConnectOptions::new().with_connect_timeout(timeout);
    let fail = |why: String| format!("etcd at {endpoint}: {why}");
    let attempt = async {
        let client = Client::connect([endpoint.as_str()], Some(options)).await?;
        client.kv_client().get(PROBE_KEY, None).await?;
        Ok::<Client, Error>(client)
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(err)) => Err(fail(one_line(&err))),
        Err(_) => Err(fail(format!("no answer after {CONNECT_TIMEOUT_MS} ms"))),
    }
}

/// An error on one line (gRPC messages may hold line breaks).
fn one_line(error: &Error) -> String {
    error.to_string().replace(['\n', '\r'], " ")
}

/// Sends one operation and sorts the answer.
pub async fn execute(client: &mut KvClient, request: Request) -> Completion {
    let kind = request.kind();
    let result = match request {
        Request::Read { key } => client.get(key.to_vec(), None).await.map(|mut answer| {
            let value = answer
                .take_kvs()
                .into_iter()
                .next()
                .map(|pair| Bytes::from(pair.into_key_value().1));
            Completion::Read(value)
        }),
        Request::Write { key, value } => client
            .put(key.to_vec(), value.to_vec(), None)
            .await
            .map(|_| Completion::Written),
        Request::Cas { key, expected, new } => {
            let compare = match expected {
                Some(value) => Compare::value(key.to_vec(), CompareOp::Equal, value.to_vec()),
                None => Compare::create_revision(key.to_vec(), CompareOp::Equal, 0),
            };
            let swap =
                Txn::new()
                    .when([compare])
                    .and_then([TxnOp::put(key.to_vec(), new.to_vec(), None)]);
            client.txn(swap).await.map(|answer| {
                if answer.succeeded() {
                    Completion::Swapped
                } else {
                    Completion::ComparedDifferent
                }
            })
        }
    };
    result.unwrap_or_else(|error| Completion::failed(error_name(&error), kind, true))
}

/// The short name of an etcd error, as reported.
fn error_name(error: &Error) -> &'static str {
    match error {
        // gRPC status codes, by number (the client does not re-export tonic's `Code`).
        Error::GRpcStatus(status) => match status.code() as i32 {
            1 => "cancelled",
            3 | 9 | 11 => "invalid_argument",
            4 => "timeout",
            8 => "overloaded",
            14 => "unavailable",
            _ => "grpc_error",
        },
        Error::TransportError(_) | Error::IoError(_) => "network_error",
        _ => "etcd_error",
    }
}
