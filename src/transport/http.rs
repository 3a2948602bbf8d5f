//! Plain HTTP endpoints: `/health`, `/ready` and `/api/cluster/sockets`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use futures_util::future::BoxFuture;
use serde_json::{json, Value};

use crate::bus::{Bus, BusStatus};
use crate::chat::{ChatService, ErrorCode};
use crate::transport::ws_hub::WsHub;

/// Cluster-wide socket.io listing (served by the socket.io side through its adapter).
pub trait SocketDirectory: Send + Sync + 'static {
    /// Every socket (id, pod) and every room, across pods.
    fn list(&self) -> BoxFuture<'_, Result<Value, String>>;
}

/// What the HTTP endpoints read.
#[derive(Clone)]
pub struct HttpContext {
    /// The chat domain (for counts).
    pub chat: Arc<ChatService>,
    /// The raw WebSocket registry (for drop counts).
    pub hub: Arc<WsHub>,
    /// The pod-to-pod bus (for its status).
    pub bus: Arc<dyn Bus>,
    /// Set once shutdown begins: /ready answers 503 from then on.
    pub draining: Arc<AtomicBool>,
    /// Socket.io sockets and rooms across the cluster.
    pub directory: Arc<dyn SocketDirectory>,
}

/// The HTTP routes.
pub fn routes(ctx: HttpContext) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/api/cluster/sockets", get(cluster_sockets))
        .with_state(ctx)
}

async fn health(State(ctx): State<HttpContext>) -> impl IntoResponse {
    let counts = ctx.chat.membership().counts();
    Json(json!({
        "status": "ok",
        "redis": ctx.bus.status().as_str(),
        "connections": { "socketio": counts.socketio, "ws": counts.ws },
        "rooms": counts.rooms,
        "dropped": ctx.hub.dropped(),
        "undelivered": ctx.bus.undelivered(),
        "version": env!("CARGO_PKG_VERSION"),
    }))
}

async fn cluster_sockets(State(ctx): State<HttpContext>) -> impl IntoResponse {
    match ctx.directory.list().await {
        Ok(body) => (StatusCode::OK, Json(body)),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "error", "code": ErrorCode::Internal, "message": e })),
        ),
    }
}

async fn ready(State(ctx): State<HttpContext>) -> impl IntoResponse {
    let unavailable = |status| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": status })),
        )
    };
    if ctx.draining.load(Ordering::Relaxed) {
        unavailable("draining")
    } else if ctx.bus.status() == BusStatus::Down {
        unavailable("redis down")
    } else {
        (StatusCode::OK, Json(json!({ "status": "ready" })))
    }
}
