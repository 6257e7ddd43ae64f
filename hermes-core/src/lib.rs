//! The Hermes replication protocol as a pure, sans-IO state machine.
//!
//! Hermes (Katsarakis et al., ASPLOS 2020) replicates every key on every replica. Any replica
//! coordinates a write in one round trip (INV with the value to every replica, ACK from every
//! replica, then VAL), and every replica serves linearizable reads locally while the key is Valid
//! and the replica may serve.
//!
//! This crate performs no I/O, reads no clock and draws no global randomness: inputs are
//! `handle_*` calls that carry `now`, outputs are drained with [`Replica::poll_action`] and
//! [`Replica::poll_timeout`]. The same code runs in the node runtime, in the deterministic
//! simulator ([`sim`]) and in the model checker.
//!
//! Durability is a configuration choice ([`Durability`]): with `async` and `sync` the core asks
//! for records to be written with [`Action::Persist`] and learns they are durable through
//! [`Node::handle_persisted`]; under `sync` ACKs and commits wait for that, so that even a crash
//! of every replica at once loses no acknowledged write ([`Node::recover`]).
//!
//! ```
//! use hermes_core::{Action, Config, Epoch, Instant, NodeId, Op, Outcome, Replica, RequestId, View};
//!
//! let view = View::new(Epoch(1), [NodeId(1)]);
//! let mut replica = Replica::new(Config::for_node(NodeId(1)), view).unwrap();
//! replica.set_serving(Instant::ZERO, true);
//! let write = Op::Write { key: "k".into(), value: "v".into() };
//! replica.handle_request(Instant::ZERO, RequestId(1), write);
//! // A single replica needs no ACKs: the write commits at once.
//! assert!(matches!(
//!     replica.poll_action(),
//!     Some(Action::Reply { id: RequestId(1), result: Ok(Outcome::Written { .. }) })
//! ));
//! assert_eq!(replica.read_local(b"k"), Some(Some("v".into())));
//! ```
#![warn(missing_docs)]

pub mod action;
pub mod config;
pub mod durability;
pub mod error;
pub mod history;
pub mod invariants;
pub mod membership;
pub mod message;
pub mod node;
pub mod op;
pub mod peer_numbers;
pub mod placement;
pub mod replica;
pub mod rng;
pub mod sim;
pub mod timer;
pub mod types;
pub mod view;

pub use action::Action;
pub use config::Config;
pub use durability::{Durability, ParseDurabilityError, PersistToken};
pub use error::CoreError;
pub use membership::{DurableMembership, Membership, MembershipMessage};
pub use message::{Ack, Inv, Message, Val};
pub use node::{Node, NodeState};
pub use op::{Op, OpResult, Outcome, RequestError, RequestId};
pub use replica::{KeyState, PlantedBug, Replica, Stats};
pub use timer::{Timer, TimerTable};
pub use types::{Epoch, Instant, Key, NodeId, Record, Ts, Value};
pub use view::View;
