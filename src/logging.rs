//! Structured logs (JSON or text) on stderr. `RUST_LOG` overrides the configured level.
//! Pingora's own `log` records are captured too.

use crate::config::file::{LogConfig, LogFormat, LogLevel};
use tracing_subscriber::EnvFilter;

pub fn init(cfg: &LogConfig) {
    let level = match cfg.level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match cfg.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Text => builder.with_ansi(false).try_init(),
    };
    if let Err(e) = result {
        eprintln!("logging already initialised: {e}");
    }
}
