//! Structured logging: human-readable in development, JSON in production, filtered by `RUST_LOG`.

use tracing_subscriber::EnvFilter;

use crate::settings::Environment;

/// Installs the global subscriber once; later calls (tests spawning several apps) are no-ops.
pub fn init(environment: Environment) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Logs go to stderr: stdout is for a command's own output (`events tail | jq`).
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(true);
    let _ = match environment {
        Environment::Production => builder.json().flatten_event(true).try_init(),
        Environment::Development => builder.try_init(),
    };
}

/// For tests: logs only when `TEST_LOG` is set, so the suite's output stays readable.
pub fn init_for_tests() {
    if std::env::var_os("TEST_LOG").is_some() {
        init(Environment::Development);
    }
}
