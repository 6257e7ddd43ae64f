//! Errors of the core crate (request-level errors are [`crate::RequestError`]).

use thiserror::Error;

/// An error constructing or driving the core.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum CoreError {
    /// A configuration field holds an invalid value.
    #[error("invalid configuration: `{field}` {reason}")]
    InvalidConfig {
        /// The offending field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The initial view does not contain this replica.
    #[error("invalid view: this node ({node}) is neither a member nor a shadow")]
    NotInView {
        /// This replica's id.
        node: crate::NodeId,
    },
}
