//! `hermes put | get | delete | cas | status`: one request to one node of a cluster.

use std::io::Write;

use bytes::Bytes;
use hermes_core::{NodeId, Ts};
use hermes_node::{ClientConfig, NodeError, RemoteClient, RequestError, Status};
use serde_json::json;

use crate::cli::{ClientArgs, Command};
use crate::error::CliError;
use crate::output::{init_logging, print_json};

/// Connects as `args` say and runs `command`.
pub async fn run(args: &ClientArgs, command: Command) -> Result<(), CliError> {
    init_logging("warn");
    let client = connect(args).await?;
    let result = execute(&client, args.json, command).await;
    client.close();
    result
}

/// Connects to the node `--node` names, or to the first one that answers.
pub async fn connect(args: &ClientArgs) -> Result<RemoteClient, CliError> {
    let config = load_cluster(args)?;
    let tls = config.tls.load()?;
    let preferred = args.node.map(NodeId);
    if let Some(node) = preferred.filter(|node| config.addr_of(*node).is_none()) {
        return Err(NodeError::Config(format!(
            "node {} is not in the client configuration",
            node.0
        ))
        .into());
    }
    Ok(RemoteClient::connect_any(&config, &tls, preferred).await?)
}

/// Reads the `--cluster` file, with a hint when the default one is missing.
pub fn load_cluster(args: &ClientArgs) -> Result<ClientConfig, CliError> {
    if !args.cluster.exists() {
        return Err(CliError::other(format!(
            "cluster file {} not found: start a local cluster with `hermes dev`, or pass \
             --cluster FILE (or set HERMES_CLUSTER)",
            args.cluster.display()
        )));
    }
    ClientConfig::load(&args.cluster).map_err(|err| CliError::other(err.to_string()))
}

async fn execute(client: &RemoteClient, json: bool, command: Command) -> Result<(), CliError> {
    let node = client.node().0;
    match command {
        Command::Put {
            key,
            value,
            value_file,
            ..
        } => {
            let value = match (value, value_file) {
                (Some(value), _) => Bytes::from(value),
                (None, Some(path)) => Bytes::from(std::fs::read(&path).map_err(|err| {
                    CliError::other(format!("{}: cannot read: {err}", path.display()))
                })?),
                (None, None) => {
                    return Err(CliError::other("put: give VALUE or --value-file FILE"))
                }
            };
            let ts = client.write(key.clone(), value).await?;
            report_update(json, "put", &key, node, ts);
        }
        Command::Delete { key, .. } => {
            let ts = client.delete(key.clone()).await?;
            report_update(json, "delete", &key, node, ts);
        }
        Command::Get { key, .. } => {
            let value = client.read(key.clone()).await.map_err(|err| match err {
                RequestError::ValueNotFound => CliError {
                    message: format!("key not found: {key}"),
                    ..CliError::from(err)
                },
                other => other.into(),
            })?;
            if json {
                print_json(&json!({
                    "ok": true, "op": "get", "key": key, "node": node,
                    "value": String::from_utf8_lossy(&value),
                }));
            } else {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(&value);
                let _ = out.write_all(b"\n");
            }
        }
        Command::Cas {
            key,
            values,
            expect_absent,
            ..
        } => {
            let (expected, new) = match (expect_absent, values.as_slice()) {
                (true, [new]) => (None, new.clone()),
                (false, [expected, new]) => (Some(Bytes::from(expected.clone())), new.clone()),
                (true, _) => {
                    return Err(CliError::other(
                        "cas: with --expect-absent give only KEY and NEW",
                    ))
                }
                (false, _) => {
                    return Err(CliError::other(
                        "cas: give KEY EXPECTED NEW, or KEY --expect-absent NEW",
                    ))
                }
            };
            let ts = client.cas(key.clone(), expected, new).await?;
            report_update(json, "cas", &key, node, ts);
        }
        Command::Status { .. } => {
            let status = client.status().await?;
            if json {
                print_json(&serde_json::to_value(&status).unwrap_or_default());
            } else {
                print_status(&status);
            }
        }
        _ => return Err(CliError::other("not a client command")),
    }
    Ok(())
}

fn report_update(json: bool, op: &str, key: &str, node: u32, ts: Ts) {
    if json {
        print_json(&json!({
            "ok": true, "op": op, "key": key, "node": node,
            "version": ts.version, "coordinator": ts.node.0,
        }));
    } else {
        println!("OK");
    }
}

fn print_status(status: &Status) {
    println!("node {}: {}", status.node_id, status.state);
    println!(
        "view: epoch {}, members {:?}{}",
        status.epoch,
        status.members,
        if status.shadows.is_empty() {
            String::new()
        } else {
            format!(", shadows {:?}", status.shadows)
        }
    );
    println!(
        "lease: {} ms left; durability: {}; uptime: {} ms; pending requests: {}",
        status.lease_remaining_ms, status.durability, status.uptime_ms, status.pending_requests
    );
    for peer in &status.peers {
        println!(
            "peer {}: {} {}{}",
            peer.id,
            peer.addr.as_deref().unwrap_or("?"),
            if peer.connected {
                "connected"
            } else {
                "disconnected"
            },
            if peer.member { ", member" } else { "" }
        );
    }
    let c = &status.counters;
    println!(
        "counters: reads {} (fast {}), writes {}, cas {} (failed {}, aborted {}), stalls {}, \
         replays {}, retransmits {}, view changes {}, lease expiries {}, timeouts {}, \
         overloaded {}, dropped peer messages with out-of-range numbers {}",
        c.reads,
        c.fast_reads,
        c.writes,
        c.cas,
        c.cas_failed,
        c.aborts,
        c.stalls,
        c.replays,
        c.retransmits,
        c.view_changes,
        c.lease_expiries,
        c.timeouts,
        c.overloaded,
        c.dropped_peer_numbers
    );
}
