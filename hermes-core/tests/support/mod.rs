//! Harnesses shared by the integration tests of `hermes-core`.
//!
//! - [`replica`]: replica 1 of `{1, 2, 3}` driven one input at a time, every input returning the
//!   actions it produced (the transition-table and persistence tests).
//! - [`cluster`]: several nodes (or bare replicas) with a hand-driven clock, network and disks
//!   (the membership, lost-update and total-restart scenarios).
//!
//! Each test file compiles this module on its own and uses only part of it.
#![allow(dead_code)]

pub mod cluster;
pub mod replica;
