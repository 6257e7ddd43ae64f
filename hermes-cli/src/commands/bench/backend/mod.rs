//! The stores the bench can load (`--target`), behind one interface: connect, hand each client
//! its connection, send an operation and sort the answer into a [`Completion`]. The closed
//! loop, the workload, the statistics and the report are the same for every store.

#[cfg(feature = "etcd")]
mod etcd;
mod hermes;
mod redis;
mod resp;

use std::sync::Arc;

use bytes::Bytes;
use hermes_node::RemoteClient;
use serde_json::{json, Value};

use self::hermes::HermesBackend;
use self::redis::{RedisBackend, RedisConnection, WaitPolicy};
use super::workload::OpKind;
use crate::cli::{BenchArgs, ClientArgs};
use crate::error::CliError;

/// The store a run loads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    /// A Hermes cluster, from `--cluster`.
    #[default]
    Hermes,
    /// A Redis primary, the first of `--endpoints` (default 127.0.0.1:6379).
    Redis,
    /// An etcd cluster, `--endpoints` (default 127.0.0.1:2379); needs the `etcd` feature.
    Etcd,
}

impl Target {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Target::Hermes => "hermes",
            Target::Redis => "redis",
            Target::Etcd => "etcd",
        }
    }

    /// The endpoint used when `--endpoints` is not given (none for Hermes: it reads
    /// `--cluster`).
    fn default_endpoint(self) -> Option<&'static str> {
        match self {
            Target::Hermes => None,
            Target::Redis => Some("127.0.0.1:6379"),
            Target::Etcd => Some("127.0.0.1:2379"),
        }
    }
}

/// The error of `--target etcd` in a build without the `etcd` feature.
pub const ETCD_UNSUPPORTED: &str = "--target etcd: this hermes was built without etcd support; \
     build it with `cargo build --release -p hermes-cli --features etcd` (needs protoc)";

/// One operation to send.
#[derive(Clone, Debug)]
pub enum Request {
    /// Read the key.
    Read {
        /// The key.
        key: Bytes,
    },
    /// Write a value.
    Write {
        /// The key.
        key: Bytes,
        /// The new value.
        value: Bytes,
    },
    /// Set `new` if the key holds `expected` (`None`: if it is absent).
    Cas {
        /// The key.
        key: Bytes,
        /// The value the key must hold, or `None` if it must be absent.
        expected: Option<Bytes>,
        /// The value to install.
        new: Bytes,
    },
}

impl Request {
    /// The kind of the operation.
    pub fn kind(&self) -> OpKind {
        match self {
            Request::Read { .. } => OpKind::Read,
            Request::Write { .. } => OpKind::Write,
            Request::Cas { .. } => OpKind::Cas,
        }
    }
}

/// How an operation ended.
#[derive(Debug)]
pub enum Completion {
    /// A read's answer (`None`: the key is absent).
    Read(Option<Bytes>),
    /// A write committed.
    Written,
    /// A compare-and-swap committed.
    Swapped,
    /// A compare-and-swap compared a different value; nothing was written.
    ComparedDifferent,
    /// The request failed: the error's name and whether it may still take effect.
    Failed {
        /// The short name of the error.
        name: &'static str,
        /// Whether the update may still take effect.
        outcome_unknown: bool,
        /// Whether to pause before the next operation.
        pause: bool,
    },
}

impl Completion {
    /// A failure named `name` of an operation of `kind`: an update's outcome is unknown.
    pub fn failed(name: &'static str, kind: OpKind, pause: bool) -> Self {
        Completion::Failed {
            name,
            outcome_unknown: kind != OpKind::Read,
            pause,
        }
    }
}

/// A connected store, which hands out the clients' connections.
pub enum Backend {
    /// A Hermes cluster.
    Hermes(HermesBackend),
    /// A Redis primary.
    Redis(RedisBackend),
    /// An etcd cluster.
    #[cfg(feature = "etcd")]
    Etcd(etcd::EtcdBackend),
}

impl Backend {
    /// Connects to the store of `--target`; also returns why some of its nodes or endpoints
    /// could not be reached (the run goes on with the others).
    ///
    /// # Errors
    /// A one-line message if the store cannot be used at all.
    pub async fn connect(
        client_args: &ClientArgs,
        args: &BenchArgs,
    ) -> Result<(Backend, Vec<String>), CliError> {
        let endpoints = endpoints(args);
        match args.target {
            Target::Hermes => {
                let (backend, unreachable) = HermesBackend::connect(client_args).await?;
                Ok((Backend::Hermes(backend), unreachable))
            }
            Target::Redis => {
                let wait = WaitPolicy {
                    replicas: args.redis_wait,
                    timeout_ms: args.redis_wait_timeout_ms,
                };
                let primary = endpoints.into_iter().next().unwrap_or_default();
                let backend = RedisBackend::connect(primary, wait)
                    .await
                    .map_err(CliError::other)?;
                Ok((Backend::Redis(backend), Vec::new()))
            }
            #[cfg(feature = "etcd")]
            Target::Etcd => {
                let (backend, unreachable) = etcd::EtcdBackend::connect(&endpoints)
                    .await
                    .map_err(CliError::other)?;
                Ok((Backend::Etcd(backend), unreachable))
            }
            #[cfg(not(feature = "etcd"))]
            Target::Etcd => Err(CliError::other(ETCD_UNSUPPORTED)),
        }
    }

    /// The connection of client `index` (for Redis a new one, opened now).
    ///
    /// # Errors
    /// One line if the connection cannot be opened.
    pub async fn client(&self, index: usize) -> Result<ClientConnection, String> {
        match self {
            Backend::Hermes(backend) => Ok(ClientConnection::Hermes(backend.client(index))),
            Backend::Redis(backend) => {
                Ok(ClientConnection::Redis(Box::new(backend.client().await?)))
            }
            #[cfg(feature = "etcd")]
            Backend::Etcd(backend) => Ok(ClientConnection::Etcd(Box::new(backend.client(index)))),
        }
    }

    /// What was loaded, for the JSON report: the node ids for Hermes, the endpoints otherwise.
    pub fn nodes_json(&self) -> Value {
        match self {
            Backend::Hermes(backend) => json!(backend.node_ids()),
            Backend::Redis(backend) => json!([backend.primary]),
            #[cfg(feature = "etcd")]
            Backend::Etcd(backend) => json!(backend.endpoints()),
        }
    }

    /// What was loaded, for people: `nodes 1, 2, 3`, `redis 127.0.0.1:6379 (writes: SET + WAIT
    /// 1)`, `etcd 127.0.0.1:2379, 127.0.0.1:22379`.
    pub fn describe(&self) -> String {
        match self {
            Backend::Hermes(backend) => {
                let ids: Vec<String> = backend.node_ids().iter().map(u32::to_string).collect();
                let plural = if ids.len() == 1 { "" } else { "s" };
                format!("node{plural} {}", ids.join(", "))
            }
            Backend::Redis(backend) => format!(
                "redis {} (writes: {})",
                backend.primary,
                backend.write_mode()
            ),
            #[cfg(feature = "etcd")]
            Backend::Etcd(backend) => format!("etcd {}", backend.endpoints().join(", ")),
        }
    }

    /// How writes are done, for the JSON report (`null` but for Redis).
    pub fn write_mode_json(&self) -> Value {
        match self {
            Backend::Redis(backend) => json!(backend.write_mode()),
            _ => Value::Null,
        }
    }

    /// Closes what is shared (the clients' own connections close when dropped).
    pub fn close(&self) {
        if let Backend::Hermes(backend) = self {
            backend.close();
        }
    }
}

/// The endpoints of `--endpoints`, or the target's default.
fn endpoints(args: &BenchArgs) -> Vec<String> {
    if !args.endpoints.is_empty() {
        return args.endpoints.clone();
    }
    args.target
        .default_endpoint()
        .map(|endpoint| vec![endpoint.to_string()])
        .unwrap_or_default()
}

/// One client's way to the store.
pub enum ClientConnection {
    /// The shared connection to one Hermes node.
    Hermes(Arc<RemoteClient>),
    /// The client's own connection to the Redis primary.
    Redis(Box<RedisConnection>),
    /// A handle on the shared channel to one etcd endpoint.
    #[cfg(feature = "etcd")]
    Etcd(Box<etcd_client::KvClient>),
}

impl ClientConnection {
    /// Sends one operation and sorts the answer.
    pub async fn execute(&mut self, request: Request) -> Completion {
        match self {
            ClientConnection::Hermes(connection) => hermes::execute(connection, request).await,
            ClientConnection::Redis(connection) => connection.execute(request).await,
            #[cfg(feature = "etcd")]
            ClientConnection::Etcd(client) => etcd::execute(client, request).await,
        }
    }
}
