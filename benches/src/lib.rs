//! Criterion benchmarks of the Hermes workspace; run them with `cargo bench -p hermes-benches`.
//!
//! - `core`: the write path through three in-process replicas with messages passed by hand, and
//!   the local read path.
