//! `hermes bench`: a closed-loop load generator.

use crate::cli::{BenchArgs, ClientArgs};
use crate::error::CliError;

/// Runs the benchmark.
pub async fn run(_client: &ClientArgs, _args: BenchArgs) -> Result<(), CliError> {
    Err(CliError::other("bench: not built yet"))
}
