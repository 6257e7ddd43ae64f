//! The CLI's error: a one-line message and the exit status it maps to.

use hermes_node::{NodeError, RequestError};
use serde::Serialize;

/// Exit status of a failed command other than the two below.
pub const EXIT_ERROR: u8 = 1;
/// Exit status of `get` (and `cas`) when the key does not exist.
pub const EXIT_NOT_FOUND: u8 = 2;
/// Exit status of `cas` when the key holds a different value.
pub const EXIT_CAS_FAILED: u8 = 3;

/// Why a command failed.
#[derive(Debug)]
pub struct CliError {
    /// The exit status.
    pub code: u8,
    /// One line for stderr.
    pub message: String,
    /// The name of the request or node error behind it, if any (the `kind` of `--json`).
    pub kind: Option<String>,
}

impl CliError {
    /// Any other error (exit status 1).
    pub fn other(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_ERROR,
            message: message.into(),
            kind: None,
        }
    }

    /// Whether the error came from a request to the cluster or from a node.
    pub fn is_request_error(&self) -> bool {
        self.kind.is_some()
    }

    /// The error as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({ "ok": false, "error": self.message, "kind": self.kind })
    }
}

/// The name of an error's variant, as serde spells it (`ValueNotFound`, `Config`, ...).
fn variant_name(err: &impl Serialize) -> String {
    match serde_json::to_value(err) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(serde_json::Value::Object(map)) => map.keys().next().cloned().unwrap_or_default(),
        _ => String::new(),
    }
}

impl From<RequestError> for CliError {
    fn from(err: RequestError) -> Self {
        let code = match err {
            RequestError::ValueNotFound => EXIT_NOT_FOUND,
            RequestError::CasFailed => EXIT_CAS_FAILED,
            _ => EXIT_ERROR,
        };
        CliError {
            code,
            message: err.to_string(),
            kind: Some(variant_name(&err)),
        }
    }
}

impl From<NodeError> for CliError {
    fn from(err: NodeError) -> Self {
        CliError {
            code: EXIT_ERROR,
            message: err.to_string(),
            kind: Some(variant_name(&err)),
        }
    }
}
