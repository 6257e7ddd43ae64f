//! `--target hermes`: one connection per node of `--cluster` (or only `--node`); the clients
//! on a node share its connection, which pipelines and batches their requests.

use std::sync::Arc;

use hermes_core::{NodeId, Op, Outcome};
use hermes_net::TlsConfig;
use hermes_node::{ClientConfig, RemoteClient, RequestError};

use super::{Completion, Request};
use crate::cli::ClientArgs;
use crate::commands::bench::stats::{error_name, UNEXPECTED_ANSWER};
use crate::commands::bench::workload::OpKind;
use crate::commands::kv::load_cluster;
use crate::error::CliError;

/// The open connections to the cluster's nodes.
pub struct HermesBackend {
    /// One per reachable node, in node order.
    pub connections: Vec<Arc<RemoteClient>>,
}

impl HermesBackend {
    /// Connects to every chosen node at once; also returns why the others failed.
    ///
    /// # Errors
    /// A one-line message if the configuration cannot be read or no node can be reached.
    pub async fn connect(client_args: &ClientArgs) -> Result<(Self, Vec<String>), CliError> {
        let config = load_cluster(client_args)?;
        let node_ids = chosen_nodes(&config, client_args)?;
        let tls = config
            .tls
            .load()
            .map_err(|err| CliError::other(err.to_string()))?;
        let (connections, unreachable) = connect_all(&config, &tls, &node_ids).await;
        if connections.is_empty() {
            return Err(CliError::other(format!(
                "cannot connect to any node: {}",
                unreachable.join("; ")
            )));
        }
        Ok((HermesBackend { connections }, unreachable))
    }

    /// The connection of client `index`: that of node `index mod n`.
    pub fn client(&self, index: usize) -> Arc<RemoteClient> {
        Arc::clone(&self.connections[index % self.connections.len()])
    }

    /// The ids of the connected nodes.
    pub fn node_ids(&self) -> Vec<u32> {
        self.connections.iter().map(|c| c.node().0).collect()
    }

    /// Closes every connection.
    pub fn close(&self) {
        for connection in &self.connections {
            connection.close();
        }
    }
}

/// The nodes to load: `--node`, or every node of the configuration.
fn chosen_nodes(config: &ClientConfig, client_args: &ClientArgs) -> Result<Vec<NodeId>, CliError> {
    match client_args.node {
        Some(id) if config.addr_of(NodeId(id)).is_none() => Err(CliError::other(format!(
            "--node {id}: not in {}",
            client_args.cluster.display()
        ))),
        Some(id) => Ok(vec![NodeId(id)]),
        None => Ok(config.nodes.iter().map(|node| node.id).collect()),
    }
}

/// Connects to every node at once; returns the connections in node order and why the others
/// failed.
async fn connect_all(
    config: &ClientConfig,
    tls: &TlsConfig,
    node_ids: &[NodeId],
) -> (Vec<Arc<RemoteClient>>, Vec<String>) {
    let attempts: Vec<_> = node_ids
        .iter()
        .map(|&node| {
            let config = config.clone();
            let tls = tls.clone();
            tokio::spawn(async move { RemoteClient::connect(&config, &tls, node).await })
        })
        .collect();
    let mut connections = Vec::new();
    let mut failures = Vec::new();
    for (attempt, node) in attempts.into_iter().zip(node_ids) {
        match attempt.await {
            Ok(Ok(connection)) => connections.push(Arc::new(connection)),
            Ok(Err(err)) => failures.push(err.to_string()),
            Err(err) => failures.push(format!("node {}: {err}", node.0)),
        }
    }
    (connections, failures)
}

/// Sends one operation over `connection` and sorts the answer.
pub async fn execute(connection: &RemoteClient, request: Request) -> Completion {
    let kind = request.kind();
    let op = match request {
        Request::Read { key } => Op::Read { key },
        Request::Write { key, value } => Op::Write { key, value },
        Request::Cas { key, expected, new } => Op::Cas { key, expected, new },
    };
    complete(kind, connection.execute(op).await)
}

/// Sorts a node's answer to an operation of `kind`.
fn complete(kind: OpKind, result: Result<Outcome, RequestError>) -> Completion {
    match (kind, result) {
        (OpKind::Read, Ok(Outcome::Value(value))) => Completion::Read(value),
        (OpKind::Write, Ok(Outcome::Written { .. })) => Completion::Written,
        (OpKind::Cas, Ok(Outcome::Swapped { .. })) => Completion::Swapped,
        (OpKind::Cas, Err(RequestError::CasFailed)) => Completion::ComparedDifferent,
        (_, Ok(_)) => Completion::Failed {
            name: UNEXPECTED_ANSWER,
            outcome_unknown: true,
            pause: true,
        },
        (_, Err(error)) => Completion::Failed {
            name: error_name(&error),
            outcome_unknown: error.outcome_unknown(),
            pause: !matches!(error, RequestError::Aborted),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::bench::client::completion_type;
    use crate::commands::bench::record::EventType;

    #[test]
    fn failed_updates_are_recorded_so_the_checker_stays_sound() {
        let timeout = || {
            complete(
                OpKind::Write,
                Err(RequestError::Timeout {
                    outcome_unknown: true,
                }),
            )
        };
        assert_eq!(completion_type(OpKind::Write, &timeout()), EventType::Info);
        let overloaded = complete(OpKind::Write, Err(RequestError::Overloaded("full".into())));
        assert_eq!(completion_type(OpKind::Write, &overloaded), EventType::Fail);
        let aborted = complete(OpKind::Cas, Err(RequestError::Aborted));
        assert_eq!(completion_type(OpKind::Cas, &aborted), EventType::Info);
        let different = complete(OpKind::Cas, Err(RequestError::CasFailed));
        assert_eq!(completion_type(OpKind::Cas, &different), EventType::Fail);
        let read_failed = complete(OpKind::Read, Err(RequestError::NetworkError("gone".into())));
        assert_eq!(completion_type(OpKind::Read, &read_failed), EventType::Fail);
        let absent = complete(OpKind::Read, Ok(Outcome::Value(None)));
        assert_eq!(completion_type(OpKind::Read, &absent), EventType::Ok);
    }
}
