//! The CLI's error: a one-line message and the exit status it maps to.

use hermes_node::NodeError;

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
    /// The node error behind it, if any (for `--json`).
    pub node_error: Option<NodeError>,
}

impl CliError {
    /// Any other error (exit status 1).
    pub fn other(message: impl Into<String>) -> Self {
        CliError {
            code: EXIT_ERROR,
            message: message.into(),
            node_error: None,
        }
    }

    /// Whether the error came from a request to the cluster.
    pub fn is_request_error(&self) -> bool {
        self.node_error.is_some()
    }

    /// The error as one JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        let kind = self
            .node_error
            .as_ref()
            .and_then(|e| serde_json::to_value(e).ok())
            .map(|v| match v {
                serde_json::Value::String(s) => s,
                serde_json::Value::Object(map) => map.keys().next().cloned().unwrap_or_default(),
                _ => String::new(),
            });
        serde_json::json!({ "ok": false, "error": self.message, "kind": kind })
    }
}

impl From<NodeError> for CliError {
    fn from(err: NodeError) -> Self {
        let code = match err {
            NodeError::ValueNotFound => EXIT_NOT_FOUND,
            NodeError::CasFailed => EXIT_CAS_FAILED,
            _ => EXIT_ERROR,
        };
        CliError {
            code,
            message: err.to_string(),
            node_error: Some(err),
        }
    }
}
