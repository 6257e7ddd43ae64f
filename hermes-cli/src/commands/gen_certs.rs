//! `hermes gen-certs`: a cluster CA and certificates for nodes and clients.

use hermes_core::NodeId;

use crate::cli::GenCertsArgs;
use crate::error::CliError;

/// Writes the files and lists them.
pub fn run(args: GenCertsArgs) -> Result<(), CliError> {
    if let Some(zero) = args.nodes.iter().find(|id| **id == 0) {
        return Err(CliError::other(format!(
            "--nodes: node ids start at 1, not {zero}"
        )));
    }
    let nodes: Vec<NodeId> = args.nodes.iter().map(|id| NodeId(*id)).collect();
    let clients: Vec<&str> = args.clients.iter().map(String::as_str).collect();
    let written = hermes_net::gen_certs(&args.out, &nodes, &clients, args.force)
        .map_err(|err| CliError::other(err.to_string()))?;
    for path in written {
        println!("{}", path.display());
    }
    Ok(())
}
