//! Logging set-up.

use std::io::IsTerminal as _;

use tracing_subscriber::EnvFilter;

use connector_app::settings::{LogFormat, LogSection};

/// Installs the global subscriber: `RUST_LOG` if set, else the configured filter; text or JSON
/// lines on stderr. Calling it twice keeps the first subscriber.
pub fn init(log: &LogSection) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match log.format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
