//! The demo chat page at `GET /` (DEMO_UI): join a room, see its history, chat, see who
//! is online and typing, over Socket.IO with `@chatwire/client` (built for browsers
//! into static/chatwire-client.mjs) on the official client, served from the binary.

use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;

const PAGE: &str = include_str!("../../static/index.html");
/// socket.io-client 4.8 (MIT), vendored so the page works with no network access.
const SOCKET_IO_CLIENT: &str = include_str!("../../static/socket.io.min.js");
/// `@chatwire/client` as one ES module (`npm run build:browser` in clients/js).
const CHATWIRE_CLIENT: &str = include_str!("../../static/chatwire-client.mjs");
/// The module the page's import map gives for `socket.io-client`: the vendored client's
/// global `io`.
const SOCKET_IO_MODULE: &str = "export const io = globalThis.io;\nexport default globalThis.io;\n";

fn script(source: &'static str) -> axum::response::Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        source,
    )
        .into_response()
}

/// `/` and its scripts under `/assets/`.
pub fn routes() -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route(
            "/assets/socket.io.min.js",
            get(|| async { script(SOCKET_IO_CLIENT) }),
        )
        .route(
            "/assets/socket.io-client.mjs",
            get(|| async { script(SOCKET_IO_MODULE) }),
        )
        .route(
            "/assets/chatwire-client.mjs",
            get(|| async { script(CHATWIRE_CLIENT) }),
        )
}
