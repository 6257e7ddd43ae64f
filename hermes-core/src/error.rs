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
    /// The saved membership state's incarnation leaves no room for a new one (at most
    /// [`crate::peer_numbers::INCARNATION_MAX`]): the node cannot restart without reusing
    /// timestamps of an earlier life.
    #[error("incarnation {incarnation} is the last one a node may have; it cannot restart")]
    IncarnationsExhausted {
        /// The saved incarnation.
        incarnation: u64,
    },
}
