//! Telemetry: tracing initialisation (text, or JSON lines with the spec's fields),
//! filtered by RUST_LOG, and
//! the Prometheus [`metrics`], and the process-wide memory [`upkeep`].

mod json_log;
pub mod metrics;
pub mod upkeep;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{Config, LogFormat};

/// Installs the global subscriber. Errors if one is already installed.
pub fn init(config: &Config) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.rust_log)
        .map_err(|e| anyhow::anyhow!("invalid value for RUST_LOG: {e}"))?;
    let ansi = std::io::stdout().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    let installed = match config.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.event_format(json_log::SpecJson).try_init(),
    };
    installed.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}
