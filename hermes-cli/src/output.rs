//! Printing results for people and for machines.

/// Prints one JSON object on one line of stdout.
pub fn print_json(value: &serde_json::Value) {
    println!("{value}");
}

/// Sets up logging to stderr, filtered by `RUST_LOG` (default: `default_filter`).
pub fn init_logging(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
