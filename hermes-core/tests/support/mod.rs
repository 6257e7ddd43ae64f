//! Harnesses shared by the integration tests of `hermes-core`.
//!
//! - [`replica`]: replica 1 of `{1, 2, 3}` driven one input at a time, every input returning the
//!   actions it produced (the transition-table and persistence tests).

pub mod replica;
