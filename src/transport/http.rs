//! Plain HTTP endpoints: health, readiness, metrics, the history API and the cluster
//! socket listing.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use axum::extract::Request;
use axum::extract::State;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use tower_http::cors::{AllowOrigin, CorsLayer};

use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query};
use axum::http::request::Parts;
use serde::Deserialize;

use super::bodies::{before_of, page_body, DEFAULT_HISTORY_PAGE};
use super::state::{AppState, SocketDirectory};
use crate::chat::{BusStatus, ChatError, ConnId, ErrorCode, RoomName, Sender};
use crate::gate::{Action, Gate};
use crate::telemetry::metrics;

/// The HTTP routes.
pub fn routes(ctx: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(prometheus))
        .route(
            "/openapi.json",
            get(|| async { Json(super::openapi::document()) }),
        )
        .route("/api/cluster/sockets", get(cluster_sockets))
        .route("/api/rooms/{room}/messages", get(room_messages))
        .route("/api/rooms/{room}/unread", get(room_unread))
        .route("/api/rooms/{room}/search", get(room_search))
        .route("/api/unread", get(all_unread))
        .with_state(ctx)
}

async fn health(State(ctx): State<AppState>) -> impl IntoResponse {
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

#[derive(Deserialize)]
struct HistoryQuery {
    before: Option<String>,
    limit: Option<usize>,
}

/// The caller of an HTTP API route, identified as on the realtime transports (token
/// from `Authorization: Bearer` or `?token=`, required when AUTH_ENABLED) and charged one
/// read (RATE_READS_PER_MIN per user, RATE_READS_PER_IP_PER_MIN per address). Refusals
/// are the catalogue's JSON errors (401, 429).
pub(super) struct ApiCaller(pub(super) Sender);

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = ChatError;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppState) -> Result<Self, ChatError> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        let query_token = Query::<TokenQuery>::try_from_uri(&parts.uri)
            .ok()
            .and_then(|Query(q)| q.token);
        let claimed = (ctx.gate).credentials(peer, &parts.headers, query_token.as_deref(), None);
        let caller = (ctx.gate)
            .identify(ConnId::new("http"), claimed.token, claimed.ip)?
            .sender;
        ctx.gate.limit(Action::Read, &caller)?;
        Ok(Self(caller))
    }
}

/// `GET /api/rooms/{room}/messages?before=&limit=`: a page of history, under the same
/// rules as the realtime transports (token when AUTH_ENABLED, user rooms, room ACL).
async fn room_messages(
    State(ctx): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(room): Path<String>,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> Response {
    let result = async {
        let Query(query) =
            query.map_err(|e| ChatError::invalid(format!("bad query string: {e}")))?;
        let room = RoomName::parse(&room)?;
        let before = before_of(query.before.as_deref())?;
        let limit = query.limit.unwrap_or(DEFAULT_HISTORY_PAGE);
        ctx.chat.history(&caller, &room, before, limit).await
    }
    .await;
    match result {
        Ok(page) => Json(page_body(&page)).into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
struct SearchQuery {
    q: Option<String>,
    before: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/rooms/{room}/search?q=&before=&limit=`: messages of the room with every word
/// of `q`, newest first (`before`: the id of the last message of the page before).
async fn room_search(
    State(ctx): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(room): Path<String>,
    query: Result<Query<SearchQuery>, QueryRejection>,
) -> Response {
    let result = async {
        let Query(query) =
            query.map_err(|e| ChatError::invalid(format!("bad query string: {e}")))?;
        let room = RoomName::parse(&room)?;
        let before = match query.before.as_deref().filter(|b| !b.is_empty()) {
            None => None,
            Some(b) => Some(
                uuid::Uuid::parse_str(b)
                    .map_err(|_| ChatError::invalid("before is not a message id"))?,
            ),
        };
        let limit = query.limit.unwrap_or(super::bodies::DEFAULT_SEARCH_PAGE);
        let q = query.q.unwrap_or_default();
        ctx.chat
            .search(&caller, Some(&room), &q, before, limit)
            .await
    }
    .await;
    match result {
        Ok(page) => Json(page_body(&page)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// A caller a read position can belong to: one a token (or the backend) named.
fn positioned(caller: &Sender) -> Result<(), ChatError> {
    if caller.anonymous {
        return Err(ChatError::AuthFailed(
            "unread counts belong to a user: send a token".into(),
        ));
    }
    Ok(())
}

/// `GET /api/rooms/{room}/unread`: the caller's read position and unread count there.
async fn room_unread(
    State(ctx): State<AppState>,
    ApiCaller(caller): ApiCaller,
    Path(room): Path<String>,
) -> Response {
    let result = async {
        positioned(&caller)?;
        let room = RoomName::parse(&room)?;
        let unread = ctx.chat.unread(&caller, &room).await?;
        Ok::<_, ChatError>(super::bodies::unread_body(&room, &unread))
    }
    .await;
    match result {
        Ok(body) => Json(body).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /api/unread`: the caller's rooms with a read position, most recently read first,
/// with their unread counts.
async fn all_unread(State(ctx): State<AppState>, ApiCaller(caller): ApiCaller) -> Response {
    let result = async {
        positioned(&caller)?;
        ctx.chat.unread_rooms(&caller).await
    }
    .await;
    match result {
        Ok(rooms) => Json(super::bodies::unread_rooms_body(&rooms)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /api/cluster/sockets`: socket.io sockets and rooms on every pod; the same caller
/// rules as `/api/rooms`.
async fn cluster_sockets(State(ctx): State<AppState>, ApiCaller(caller): ApiCaller) -> Response {
    match ctx.directory.list().await {
        Ok(mut body) => {
            if let Some(rooms) = body.get_mut("rooms").and_then(Value::as_array_mut) {
                let names: Vec<RoomName> = rooms
                    .iter()
                    .filter_map(|r| RoomName::parse(r.as_str()?).ok())
                    .collect();
                let open = match ctx.chat.open_to(&caller, names).await {
                    Ok(open) => open,
                    Err(e) => return e.into_response(),
                };
                rooms.retain(|room| {
                    room.as_str()
                        .is_some_and(|r| open.iter().any(|o| o.as_str() == r))
                });
            }
            (StatusCode::OK, Json(body)).into_response()
        }
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "error", "code": ErrorCode::Internal, "message": e })),
        )
            .into_response(),
    }
}

/// `GET /metrics`: Prometheus text format.
async fn prometheus(State(ctx): State<AppState>) -> Response {
    let Some(handle) = metrics::handle() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics recorder unavailable\n",
        )
            .into_response();
    };
    let counts = ctx.chat.membership().counts();
    let snapshot = metrics::Snapshot {
        connections: (counts.socketio, counts.ws),
        rooms: counts.rooms,
        dropped_slow_consumer: ctx.hub.dropped(),
        dropped_redis: ctx.bus.undelivered(),
        dropped_inbound: ctx.bus.inbound_dropped(),
        redis_up: match ctx.bus.status() {
            BusStatus::Up => 1,
            BusStatus::Down => 0,
            BusStatus::Disabled => -1,
        },
    };
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics::render(&handle, &snapshot),
    )
        .into_response()
}

async fn ready(State(ctx): State<AppState>) -> impl IntoResponse {
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

/// Refuses requests whose Origin is not allowed (socket.io handshakes and polling
/// included) with 403 and a JSON error, before any transport sees them.
pub async fn check_origin(State(gate): State<Gate>, req: Request, next: Next) -> Response {
    if let Err(e) = gate.origins().check(req.headers()) {
        let body = json!({ "status": "error", "code": e.code(), "message": e.to_string() });
        return (StatusCode::FORBIDDEN, Json(body)).into_response();
    }
    next.run(req).await
}

/// CORS for browsers (socket.io long-polling, the HTTP API) from allowed origins.
pub fn cors(gate: &Gate) -> CorsLayer {
    let origins = gate.origins().clone();
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin: &HeaderValue, _| {
            origins.allows(origin.as_bytes())
        }))
        .allow_credentials(true)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
}

/// Headers of socket.io requests read after this layer: engineioxide's (the WebSocket
/// key, the polling body's content type) and the gate's (token, client address, origin).
const SOCKETIO_HEADERS: [header::HeaderName; 5] = [
    header::SEC_WEBSOCKET_KEY,
    header::CONTENT_TYPE,
    header::AUTHORIZATION,
    header::ORIGIN,
    header::HeaderName::from_static("x-forwarded-for"),
];

/// Copies the request line and the headers in `SOCKETIO_HEADERS` of socket.io requests
/// into their own small allocations. engineioxide keeps each session's request parts,
/// and as parsed by hyper they are slices of the connection's 16 KiB read buffer, which
/// they would keep alive for the whole session; the other headers (user agent, cookies,
/// ...) would cost each session memory for nothing. CORS and the origin check run
/// before this layer and see every header.
pub async fn detach_request_parts(req: Request, next: Next) -> Response {
    detach_keeping(req, next, &[]).await
}

/// The headers the connect hook is shown, kept with socket.io sessions when it is on.
const HOOK_HEADERS: [header::HeaderName; 2] = [header::USER_AGENT, header::COOKIE];

/// [`detach_request_parts`], also keeping the headers the connect hook is shown.
pub async fn detach_request_parts_for_hooks(req: Request, next: Next) -> Response {
    detach_keeping(req, next, &HOOK_HEADERS).await
}

async fn detach_keeping(req: Request, next: Next, more: &[header::HeaderName]) -> Response {
    if !req.uri().path().starts_with("/socket.io") {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let mut headers = axum::http::HeaderMap::new();
    for name in SOCKETIO_HEADERS.iter().chain(more) {
        for value in parts.headers.get_all(name) {
            if let Ok(copy) = HeaderValue::from_bytes(value.as_bytes()) {
                headers.append(name.clone(), copy);
            }
        }
    }
    parts.headers = headers;
    if let Ok(uri) = parts.uri.to_string().parse::<axum::http::Uri>() {
        parts.uri = uri;
    }
    // Of the extensions only the peer address and hyper's upgrade handle are used later;
    // axum's `OriginalUri` among the others would keep the read buffer alive.
    let peer = parts
        .extensions
        .remove::<axum::extract::ConnectInfo<std::net::SocketAddr>>();
    let upgrade = parts.extensions.remove::<hyper::upgrade::OnUpgrade>();
    parts.extensions = axum::http::Extensions::new();
    if let Some(peer) = peer {
        parts.extensions.insert(peer);
    }
    if let Some(upgrade) = upgrade {
        parts.extensions.insert(upgrade);
    }
    next.run(Request::from_parts(parts, body)).await
}
