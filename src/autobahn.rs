//! The RFC 6455 echo server for the Autobahn test cases (`tests/autobahn.rs` drives it
//! with the `kosoku` runner): every text and binary message goes back as it came, on the
//! raw WebSocket stack of the product: the upgrade settings of [`ws::configure`] (frame
//! and message cap, buffers) and the close codes of [`ws::read_error_close`] (1009 too
//! big, 1007 invalid UTF-8, 1002 protocol error). Pings, pongs and the closing handshake
//! are tungstenite's, as on product connections. Not served by the product binary:
//! `cargo run --example autobahn` serves it on 127.0.0.1:9001.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use tokio::time::timeout;

use crate::transport::ws;

/// The echo route's MAX_MESSAGE_BYTES: 1 MiB, so Autobahn's 64 KiB to 1 MiB messages
/// (cases 9.1.1-3, 9.2.1-3, 9.5, 9.6) echo and its 4 to 16 MiB ones close with 1009.
pub const ECHO_MAX_MESSAGE_BYTES: usize = 1 << 20;

/// Longest wait for a close frame to be written, as on product connections.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// The echo app: a WebSocket upgrade on every path, capped at `max_message_bytes`.
pub fn app(max_message_bytes: usize) -> Router {
    let upgrade = get(move |socket: WebSocketUpgrade| async move {
        let reply: Response = ws::configure(socket, max_message_bytes).on_upgrade(echo);
        reply
    });
    Router::new()
        .route("/", upgrade.clone())
        .route("/{*path}", upgrade)
}

/// Sends every data message back until the peer closes; a read error the peer caused
/// closes with the product's code for it.
async fn echo(mut socket: WebSocket) {
    while let Some(next) = socket.recv().await {
        let reply = match next {
            Ok(Message::Text(text)) => Message::Text(text),
            Ok(Message::Binary(data)) => Message::Binary(data),
            // tungstenite answers pings and the peer's close itself.
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_)) => continue,
            Err(e) => {
                if let Some((code, reason)) = ws::read_error_close(e) {
                    let frame = CloseFrame {
                        code,
                        reason: Utf8Bytes::from_static(reason),
                    };
                    // The peer may be gone already; the socket is dropped either way.
                    let sent = timeout(
                        CLOSE_WRITE_TIMEOUT,
                        socket.send(Message::Close(Some(frame))),
                    );
                    if !matches!(sent.await, Ok(Ok(()))) {
                        tracing::debug!("echo close frame not written");
                    }
                }
                return;
            }
        };
        if socket.send(reply).await.is_err() {
            return;
        }
    }
}
