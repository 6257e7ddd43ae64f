//! One module per subcommand.

pub mod bench;
pub mod dev;
pub mod gen_certs;
pub mod kv;
pub mod simulate;
pub mod start;
