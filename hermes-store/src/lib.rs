//! Durable per-key records for Hermes replicas.
//!
//! The latest [`Record`](hermes_core::Record) (timestamp and value, or a tombstone) of every key
//! is the whole durable state of a Hermes replica; there is no log. This crate stores it:
//!
//! - [`Store`]: the trait a node writes through: load everything at start, apply batches
//!   atomically, `sync`, scan key ranges in order for state transfer, and a metadata slot that is
//!   durable at once. Its docs list what an implementation must guarantee.
//! - [`MemStore`] (in memory) and [`RedbStore`] (one [redb](https://docs.rs/redb) file, crash-safe,
//!   group commit: many records per transaction, one fsync per `sync`).
//! - [`Durability`]: the mode chosen in configuration (`memory`, `async`, `sync`), defined in
//!   `hermes-core` and re-exported here.
//! - [`AsyncWriter`]: a background thread that writes queued batches with group commit, bounded,
//!   fail-stop, and reports which batches are durable.
//! - [`testing`]: the conformance suite every implementation passes.
//!
//! Any [`StoreError`] is fatal to the node that sees it: the node stops with the error's one-line
//! message instead of continuing with a store it can no longer trust.
//!
//! ```
//! use hermes_core::{NodeId, Record, Ts};
//! use hermes_store::{MemStore, Store};
//!
//! let mut store = MemStore::new();
//! let put = Record { ts: Ts::new(2, NodeId(1)), value: Some("v".into()) };
//! let delete = Record { ts: Ts::new(4, NodeId(2)), value: None };
//! store.apply(&[("a".into(), put.clone()), ("b".into(), delete.clone())])?;
//! store.sync()?;
//! assert_eq!(store.load_all()?, vec![("a".into(), put), ("b".into(), delete)]);
//! # Ok::<(), hermes_store::StoreError>(())
//! ```
#![warn(missing_docs)]

mod codec;
mod error;
mod mem;
mod redb_store;
mod store;
pub mod testing;
mod writer;

pub use error::StoreError;
/// The durability mode lives in the core, which expresses `sync` with `Persist` actions; it is
/// re-exported here for configuration code that deals with stores.
pub use hermes_core::{Durability, ParseDurabilityError};
pub use mem::MemStore;
pub use redb_store::{RedbOptions, RedbStore};
pub use store::Store;
pub use writer::{AsyncWriter, WriterConfig, WriterEvent};

/// The redb crate this store is built on, for custom storage backends
/// ([`RedbStore::open_backend`]).
pub use redb;
