//! `hermes start --config node.toml`: runs one node until Ctrl-C or SIGTERM.

use hermes_node::{ClusterNode, NodeConfig};

use crate::cli::StartArgs;
use crate::error::CliError;
use crate::output::init_logging;

/// Reads and checks the node's configuration (before the runtime, which it configures, exists).
///
/// # Errors
/// One line naming the file and the field.
pub fn load(args: &StartArgs) -> Result<NodeConfig, CliError> {
    NodeConfig::load(&args.config).map_err(|err| CliError::other(err.to_string()))
}

/// Starts the node, waits for a signal (or for the node to stop on its own), shuts it down.
pub async fn run(config: NodeConfig) -> Result<(), CliError> {
    init_logging("info");
    let id = config.node_id.0;
    let node = ClusterNode::start(config)
        .await
        .map_err(|err| CliError::other(format!("node {id}: {err}")))?;
    let outcome = tokio::select! {
        signal = shutdown_signal() => {
            signal?;
            tracing::info!(node = id, "stopping");
            node.shutdown().await
        }
        stopped = node.stopped() => stopped,
    };
    outcome.map_err(|err| CliError::other(format!("node {id}: {err}")))
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() -> Result<(), CliError> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|err| CliError::other(format!("cannot listen for SIGTERM: {err}")))?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(())
}
