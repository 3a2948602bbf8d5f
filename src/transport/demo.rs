//! The demo chat page at `GET /` (DEMO_UI): join a room, chat, see who is online and
//! typing, over Socket.IO with the official client, served from the binary.

use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::Router;

const PAGE: &str = include_str!("../../static/index.html");
/// socket.io-client 4.8 (MIT), vendored so the page works with no network access.
const SOCKET_IO_CLIENT: &str = include_str!("../../static/socket.io.min.js");

/// `/` and `/assets/socket.io.min.js`.
pub fn routes() -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route(
            "/assets/socket.io.min.js",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                        (header::CACHE_CONTROL, "public, max-age=3600"),
                    ],
                    SOCKET_IO_CLIENT,
                )
                    .into_response()
            }),
        )
}
