//! The `chatwire` binary: config → telemetry → bind → serve until SIGINT/SIGTERM (or
//! `chatwire migrate`, `chatwire healthcheck`).

use anyhow::Context;
use chatwire::config::{Command, Config};
use chatwire::{healthcheck, server, shutdown, telemetry};
use tokio::net::TcpListener;

fn main() -> anyhow::Result<()> {
    let config = match Config::from_env_and_args() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("chatwire: {e}");
            std::process::exit(2);
        }
    };
    let runtime = match config.worker_threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        0 => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build(),
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build(),
    }
    .context("cannot start the runtime (WORKER_THREADS)")?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    if let Some(Command::Healthcheck) = config.command {
        std::process::exit(if healthcheck::probe(config.port) {
            0
        } else {
            1
        });
    }
    telemetry::init(&config)?;
    if let Some(Command::Migrate) = config.command {
        let applied = server::migrate(&config).await?;
        println!("message log up to date ({applied} migrations applied)");
        return Ok(());
    }
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
