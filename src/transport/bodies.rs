//! Reply bodies both realtime transports send alike (the socket.io ack and the raw
//! `system` reply carry the same JSON).

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::chat::{
    Accepted, ChatError, ChatService, ErrorCode, Message, RoomName, Sender, Status, UserRef,
};
use crate::chat::{HistoryPage, MessageRef, ThreadSummary, Unread};

/// Page size of history requests that name none.
pub const DEFAULT_HISTORY_PAGE: usize = 50;

/// Page size of searches that name none.
pub const DEFAULT_SEARCH_PAGE: usize = 20;

/// The `before` of an HTTP history query: an offset or a message id (empty: none).
pub fn before_of(raw: Option<&str>) -> Result<Option<MessageRef>, ChatError> {
    match raw.filter(|b| !b.is_empty()) {
        None => Ok(None),
        Some(b) => MessageRef::parse(b)
            .map(Some)
            .ok_or_else(|| ChatError::invalid("before is not an offset or a message id")),
    }
}

/// A room's unread count as answers carry it: `{"read_offset","unread","last_offset"}`
/// added to `body`.
pub fn with_unread(mut body: Value, unread: &Unread) -> Value {
    body["read_offset"] = json!(unread.read_offset);
    body["unread"] = json!(unread.unread);
    body["last_offset"] = json!(unread.last_offset);
    body
}

/// The answer to a join: `{"status":"ok","room"}`, `"degraded":true` when other pods
/// could not be told, and for a user a token (or the backend) named, their read position
/// and unread count (left out when the log does not answer).
pub async fn joined_body(
    chat: &ChatService,
    sender: &Sender,
    room: &RoomName,
    degraded: bool,
) -> Value {
    let mut body = json!({ "status": "ok", "room": room });
    if degraded {
        body["degraded"] = json!(true);
    }
    if sender.anonymous {
        return body;
    }
    match chat.unread(sender, room).await {
        Ok(unread) => with_unread(body, &unread),
        Err(_) => body,
    }
}

/// `room:unread {room}`: `{"status":"ok","room","read_offset","unread","last_offset"}`.
pub fn unread_body(room: &RoomName, unread: &Unread) -> Value {
    with_unread(json!({ "status": "ok", "room": room }), unread)
}

/// `room:unread {}`: `{"status":"ok","rooms":[{"room","read_offset","unread",
/// "last_offset"}]}`, most recently read first.
pub fn unread_rooms_body(rooms: &[(RoomName, Unread)]) -> Value {
    let rooms: Vec<Value> = rooms
        .iter()
        .map(|(room, unread)| with_unread(json!({ "room": room }), unread))
        .collect();
    json!({ "status": "ok", "rooms": rooms })
}

/// `message:history`: `{"status":"ok","messages":[...],"has_more":bool}`.
pub fn page_body(page: &HistoryPage) -> Value {
    json!({ "status": "ok", "messages": page.messages, "has_more": page.has_more })
}

/// The ack of a stored message, once its publish to other pods settled:
/// `{"status":"ok","id","offset","timestamp","degraded"?:true}`.
pub async fn accepted_body(accepted: Accepted) -> Value {
    let message = &accepted.message;
    let mut body = json!({
        "status": "ok",
        "id": message.id,
        "offset": message.offset,
        "timestamp": message.timestamp,
    });
    if accepted.published.outcome().await.is_err() {
        body["degraded"] = json!(true);
    }
    body
}

/// `presence:list`: `{"status":"ok","users":[{id,name,status}]}`.
pub fn users_body(users: &[(UserRef, Status)]) -> Value {
    let users: Vec<Value> = users
        .iter()
        .map(|(u, s)| json!({ "id": u.id, "name": u.name, "status": s }))
        .collect();
    json!({ "status": "ok", "users": users })
}

/// `room:join {since}`: what was missed, in order, and whether all of it was retained.
pub fn recovery_body(room: &RoomName, missed: &[Message], recovered: bool) -> Value {
    json!({ "status": "ok", "room": room, "recovered": recovered, "messages": missed })
}

/// The HTTP status a refused upgrade answers with.
pub fn status_of(err: &ChatError) -> StatusCode {
    match err.code() {
        ErrorCode::AuthFailed => StatusCode::UNAUTHORIZED,
        ErrorCode::Forbidden => StatusCode::FORBIDDEN,
        ErrorCode::RateLimited => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        _ => StatusCode::BAD_REQUEST,
    }
}

/// Every HTTP route answers a chat error the same way (status, JSON body, headers).
impl IntoResponse for ChatError {
    fn into_response(self) -> Response {
        error_response(&self)
    }
}

/// The HTTP answer to `err`: status by code, `{"status":"error","code","message"}`,
/// `Retry-After` for rate limits, `WWW-Authenticate` for auth failures.
pub fn error_response(err: &ChatError) -> Response {
    crate::telemetry::metrics::error(err.code());
    let mut body = json!({ "status": "error", "code": err.code(), "message": err.to_string() });
    let mut response = match err.retry_after_ms() {
        Some(ms) => {
            body["retry_after_ms"] = json!(ms);
            let secs = ms.div_ceil(1000).to_string();
            (status_of(err), [(header::RETRY_AFTER, secs)], Json(body)).into_response()
        }
        None => (status_of(err), Json(body)).into_response(),
    };
    if err.code() == ErrorCode::AuthFailed {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            axum::http::HeaderValue::from_static("Bearer"),
        );
    }
    response
}

/// The answer to `thread:open`: `{"status":"ok","room","id","thread","reply_count",
/// "last_reply_at"?}`.
pub fn opened_body(
    room: &RoomName,
    root: uuid::Uuid,
    thread: &RoomName,
    summary: Option<ThreadSummary>,
) -> serde_json::Value {
    let mut body = json!({ "status": "ok", "room": room, "id": root, "thread": thread,
                           "reply_count": summary.as_ref().map_or(0, |s| s.reply_count) });
    if let Some(summary) = summary {
        body["last_reply_at"] = json!(summary.last_reply_at);
    }
    body
}
