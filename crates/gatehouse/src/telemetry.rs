//! Logging to stderr: text for people, JSON for log shippers. `RUST_LOG` overrides `log.level`.

use gatehouse_core::config::{LogConfig, LogFormat};
use tracing_subscriber::{EnvFilter, fmt};

pub fn init(config: &LogConfig) {
    // PostgreSQL's notices (`relation "_sqlx_migrations" already exists, skipping`) are the server talking to
    // itself, not news for the operator; warnings and errors from it still show.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{},sqlx::postgres::notice=warn", config.level)));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match config.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
