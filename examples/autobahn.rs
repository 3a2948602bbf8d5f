//! Raw WebSocket echo server for the Autobahn RFC 6455 cases; see `chatwire::autobahn`.
//!
//! `cargo run --example autobahn` listens on 127.0.0.1:9001 (PORT overrides; MAX_MESSAGE_BYTES
//! overrides the cap, 1 MiB by default), then e.g. `.venv/bin/kosoku -i '1.*' 127.0.0.1:9001`.

use tokio::net::TcpListener;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(9001);
    let max = std::env::var("MAX_MESSAGE_BYTES")
        .ok()
        .and_then(|m| m.parse().ok())
        .unwrap_or(chatwire::autobahn::ECHO_MAX_MESSAGE_BYTES);
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!(
        "autobahn echo server listening on ws://{}",
        listener.local_addr()?
    );
    axum::serve(listener, chatwire::autobahn::app(max)).await?;
    Ok(())
}
