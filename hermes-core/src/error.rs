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
}
