//! Process signals to a [`CancellationToken`]: SIGINT or SIGTERM starts the drain.

use tokio_util::sync::CancellationToken;
use tracing::{error, info};

/// A token cancelled on the first SIGINT or SIGTERM.
pub fn on_signals() -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        info!("shutdown signal received");
        trigger.cancel();
    });
    token
}

#[cfg(unix)]
async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                r = tokio::signal::ctrl_c() => if let Err(e) = r { error!(error = %e, "ctrl-c handler failed") },
            }
        }
        Err(e) => {
            error!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the server");
            if let Err(e) = tokio::signal::ctrl_c().await {
                error!(error = %e, "ctrl-c handler failed");
            }
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() {
    if let Err(e) = tokio::signal::ctrl_c().await {
        error!(error = %e, "ctrl-c handler failed");
    }
}
