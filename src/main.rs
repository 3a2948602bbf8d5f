//! The `chatwire` binary: config → telemetry → bind → serve until SIGINT/SIGTERM.

use anyhow::Context;
use chatwire::config::{Command, Config};
use chatwire::{healthcheck, server, shutdown, telemetry};
use tokio::net::TcpListener;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = match Config::from_env_and_args() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("chatwire: {e}");
            std::process::exit(2);
        }
    };
    if let Some(Command::Healthcheck) = config.command {
        std::process::exit(if healthcheck::probe(config.port) {
            0
        } else {
            1
        });
    }
    telemetry::init(&config)?;
    let listener = TcpListener::bind((config.host, config.port))
        .await
        .with_context(|| {
            format!(
                "cannot listen on {}:{} (HOST, PORT)",
                config.host, config.port
            )
        })?;
    server::run(listener, config, shutdown::on_signals()).await
}
