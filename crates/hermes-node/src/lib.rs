//! The node runtime of the Hermes workspace: one driver task per node that feeds the sans-IO
//! core (`hermes-core`) and carries out its actions over a transport (`hermes-net`) and a store
//! (`hermes-store`), behind the `ClusterNode` API.
//!
//! This crate holds no code yet: the runtime is built on top of the membership service, the
//! store and the transport, which come first. Until then, clusters run in the deterministic
//! simulator (`hermes_core::sim`).
#![warn(missing_docs)]
