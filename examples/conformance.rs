//! Socket.IO conformance server for the official protocol test suites
//! (shared/SIO-CONFORMANCE.md); see `chatwire::conformance`.
//!
//! `cargo run --example conformance` listens on 127.0.0.1:3000 (PORT overrides).

use std::net::SocketAddr;

use tokio::net::TcpListener;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let app = chatwire::conformance::app()?;
    let listener = TcpListener::bind(("127.0.0.1", port)).await?;
    println!(
        "conformance server listening on http://{}",
        listener.local_addr()?
    );
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
