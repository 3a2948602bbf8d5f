//! The server API under `/api/server/...`: what the application's backend does, with an
//! API key (`Authorization: Bearer`, SERVER_API_KEYS), never a user's token. Off (404)
//! when no key is set. JSON in and out; errors are the catalogue's.

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::bodies::{accepted_body, before_of, page_body, users_body, DEFAULT_HISTORY_PAGE};
use super::state::{AppState, SocketDirectory};
use crate::chat::{
    ChatError, Message, MessageType, Publication, Published, RoomName, SERVER_SENDER,
};
use crate::gate::bearer_token;

/// Rooms one broadcast may name, at most.
pub const MAX_BROADCAST_ROOMS: usize = 100;

/// Largest request body the server API reads.
const MAX_BODY: usize = 1 << 20;

/// The routes, answering 404 unless a key is set.
pub fn routes(ctx: AppState) -> Router {
    Router::new()
        .route("/api/server/publish", post(publish))
        .route("/api/server/broadcast", post(broadcast))
        .route("/api/server/users/{user}/disconnect", post(disconnect))
        .route("/api/server/users/{user}/connections", get(connections))
        .route("/api/server/rooms", get(rooms))
        .route("/api/server/rooms/{room}/kick", post(kick))
        .route("/api/server/rooms/{room}/presence", get(presence))
        .route("/api/server/rooms/{room}/messages", get(history))
        .route(
            "/api/server/rooms/{room}/messages/{id}",
            patch(edit).delete(delete),
        )
        .route("/api/server/sockets", get(sockets))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(ctx)
}

/// A request that presented one of the server API's keys.
struct Backend;

impl FromRequestParts<AppState> for Backend {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppState) -> Result<Self, Response> {
        let keys = ctx.gate.api_keys();
        if !keys.enabled() {
            let off = ChatError::NotFound("the server API is off (set SERVER_API_KEYS)".into());
            return Err(off.into_response());
        }
        keys.verify(bearer_token(&parts.headers))
            .map_err(IntoResponse::into_response)?;
        Ok(Self)
    }
}

/// Decodes a JSON body into `T`, with the catalogue's error when it does not fit.
pub(super) fn decode<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ChatError> {
    serde_json::from_slice(body).map_err(|e| ChatError::invalid(format!("bad request body: {e}")))
}

fn room_of(raw: &str) -> Result<RoomName, ChatError> {
    RoomName::parse(raw)
}

/// What a publish names: its room(s) and content, as the server or on behalf of a user.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PublishRequest {
    /// The room; absent or null: to everyone.
    #[serde(default)]
    room: Option<String>,
    /// `notification` (default as the server), `system`, or `chat` (default with `from`).
    #[serde(default, rename = "type")]
    kind: Option<String>,
    /// The user id the message is sent as (absent: the server).
    #[serde(default)]
    from: Option<String>,
    /// The display name kept beside it.
    #[serde(default)]
    name: Option<String>,
    /// The text.
    #[serde(default)]
    content: Option<String>,
    /// More of `data` (an object; `content` is put in it).
    #[serde(default)]
    data: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BroadcastRequest {
    rooms: Vec<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    data: Option<Value>,
}

/// The publication of a request's fields, to `room`.
fn publication(
    room: Option<RoomName>,
    kind: Option<&str>,
    from: Option<String>,
    name: Option<String>,
    content: Option<String>,
    data: Option<Value>,
) -> Result<Publication, ChatError> {
    let kind = match kind {
        None if from.is_some() => MessageType::Chat,
        None => MessageType::Notification,
        Some(kind) => MessageType::parse(kind)
            .ok_or_else(|| ChatError::invalid("type must be chat, notification or system"))?,
    };
    if kind == MessageType::Chat && from.is_none() {
        return Err(ChatError::invalid(
            "a chat message needs from (the user it is sent as)",
        ));
    }
    let from = match from {
        Some(from) if from.is_empty() || from.len() > 256 => {
            return Err(ChatError::invalid("from must be 1-256 bytes"))
        }
        Some(from) => from,
        None => SERVER_SENDER.to_owned(),
    };
    let mut data = match data {
        None => serde_json::Map::new(),
        Some(Value::Object(fields)) => fields,
        Some(_) => return Err(ChatError::invalid("data must be an object")),
    };
    if let Some(content) = content {
        data.insert("content".into(), Value::String(content));
    }
    if data.is_empty() {
        return Err(ChatError::invalid("give content or data"));
    }
    Ok(Publication {
        room,
        kind,
        from,
        name: name.filter(|n| !n.is_empty()),
        data: Value::Object(data),
    })
}

/// The answer to a publish: the ack of a stored message.
fn stored_body(message: &Message) -> Value {
    json!({
        "status": "ok",
        "id": message.id,
        "room": message.room,
        "offset": message.offset,
        "timestamp": message.timestamp,
    })
}

/// `POST /api/server/publish`: one message to a room or to everyone, answered once
/// stored. With `Idempotency-Key`, a repeat within 10 minutes publishes nothing and
/// gets the first answer (`Idempotent-Replayed: true`).
async fn publish(
    State(ctx): State<AppState>,
    _: Backend,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let result = async {
        let request: PublishRequest = decode(&body)?;
        let room = request.room.as_deref().map(room_of).transpose()?;
        let publication = publication(
            room,
            request.kind.as_deref(),
            request.from,
            request.name,
            request.content,
            request.data,
        )?;
        let key = headers
            .get("idempotency-key")
            .map(|v| {
                v.to_str()
                    .map_err(|_| ChatError::invalid("Idempotency-Key must be printable ASCII"))
            })
            .transpose()?;
        let Some(key) = key else {
            let posted = ctx.chat.publish(publication)?;
            let accepted = posted.stored().await?;
            return Ok::<_, ChatError>(Json(accepted_with_room(accepted).await).into_response());
        };
        let fingerprint = hex::encode(Sha256::digest(&body));
        // In a task of its own: a caller that hangs up does not stop the publish halfway.
        let (chat, key) = (ctx.chat.clone(), key.to_owned());
        let once =
            tokio::spawn(async move { chat.publish_once(&key, &fingerprint, publication).await });
        let published = once
            .await
            .map_err(|e| ChatError::Internal(format!("publish task failed: {e}")))??;
        match published {
            Published::Now(accepted) => {
                Ok(Json(accepted_with_room(accepted).await).into_response())
            }
            Published::Before(message) => {
                let mut response = Json(stored_body(&message)).into_response();
                response
                    .headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
                Ok(response)
            }
        }
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

async fn accepted_with_room(accepted: crate::chat::Accepted) -> Value {
    let room = accepted.message.room.clone();
    let mut body = accepted_body(accepted).await;
    body["room"] = json!(room);
    body
}

/// `POST /api/server/broadcast`: one message to each of many rooms (each stored in its
/// room); a result per room, in the order given.
async fn broadcast(State(ctx): State<AppState>, _: Backend, body: Bytes) -> Response {
    let result = async {
        let request: BroadcastRequest = decode(&body)?;
        if request.rooms.is_empty() || request.rooms.len() > MAX_BROADCAST_ROOMS {
            return Err(ChatError::invalid(format!(
                "rooms must name 1-{MAX_BROADCAST_ROOMS} rooms"
            )));
        }
        let rooms = request
            .rooms
            .iter()
            .map(|r| room_of(r))
            .collect::<Result<Vec<_>, _>>()?;
        // Every room is checked before anything is published.
        let mut posted = Vec::with_capacity(rooms.len());
        for room in rooms {
            let publication = publication(
                Some(room.clone()),
                request.kind.as_deref(),
                request.from.clone(),
                request.name.clone(),
                request.content.clone(),
                request.data.clone(),
            )?;
            posted.push((room, publication));
        }
        let mut results = Vec::with_capacity(posted.len());
        let mut queued = Vec::with_capacity(posted.len());
        for (room, publication) in posted {
            queued.push((room, ctx.chat.publish(publication)));
        }
        for (room, posted) in queued {
            let outcome = match posted {
                Ok(posted) => posted.stored().await,
                Err(e) => Err(e),
            };
            results.push(match outcome {
                Ok(accepted) => accepted_with_room(accepted).await,
                Err(e) => json!({ "status": "error", "room": room, "code": e.code(),
                    "message": e.to_string() }),
            });
        }
        Ok(Json(json!({ "status": "ok", "results": results })).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DisconnectRequest {
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KickRequest {
    user: String,
    #[serde(default)]
    reason: Option<String>,
}

/// The answer of a cross-pod command: `degraded` when other pods may not have it.
async fn command_body(receipt: crate::chat::Receipt) -> Value {
    let mut body = json!({ "status": "ok" });
    if receipt.outcome().await.is_err() {
        body["degraded"] = json!(true);
    }
    body
}

/// `POST /api/server/users/{user}/disconnect`: ends every connection of the user on
/// every pod; each first gets `session:ended {reason}`.
async fn disconnect(
    State(ctx): State<AppState>,
    _: Backend,
    Path(user): Path<String>,
    body: Bytes,
) -> Response {
    let result = async {
        let request: DisconnectRequest = if body.is_empty() {
            DisconnectRequest::default()
        } else {
            decode(&body)?
        };
        let receipt = ctx.chat.end_user(user, request.reason);
        Ok::<_, ChatError>(Json(command_body(receipt).await).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `POST /api/server/rooms/{room}/kick`: removes every connection of `user` from the
/// room on every pod; the room hears `room:removed {room, user, reason}` first.
async fn kick(
    State(ctx): State<AppState>,
    _: Backend,
    Path(room): Path<String>,
    body: Bytes,
) -> Response {
    let result = async {
        let room = room_of(&room)?;
        let request: KickRequest = decode(&body)?;
        if request.user.is_empty() {
            return Err(ChatError::invalid("user must not be empty"));
        }
        let receipt = ctx.chat.remove_user(room, request.user, request.reason);
        Ok(Json(command_body(receipt).await).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EditRequest {
    content: String,
}

fn message_id(raw: &str) -> Result<Uuid, ChatError> {
    Uuid::parse_str(raw).map_err(|_| ChatError::invalid("id is not a message id"))
}

/// `PATCH /api/server/rooms/{room}/messages/{id}`: replaces any message's content; the
/// room gets `message:updated`.
async fn edit(
    State(ctx): State<AppState>,
    _: Backend,
    Path((room, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let result = async {
        let (room, id) = (room_of(&room)?, message_id(&id)?);
        let request: EditRequest = decode(&body)?;
        let message = ctx.chat.moderate_edit(&room, id, request.content).await?;
        Ok::<_, ChatError>(Json(json!({ "status": "ok", "message": message })).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `DELETE /api/server/rooms/{room}/messages/{id}`: deletes any message (its tombstone
/// stays in history); the room gets `message:deleted`.
async fn delete(
    State(ctx): State<AppState>,
    _: Backend,
    Path((room, id)): Path<(String, String)>,
) -> Response {
    let result = async {
        let (room, id) = (room_of(&room)?, message_id(&id)?);
        ctx.chat.moderate_delete(&room, id).await?;
        Ok::<_, ChatError>(Json(json!({ "status": "ok" })).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /api/server/rooms/{room}/presence`: who is online in the room, across pods.
async fn presence(State(ctx): State<AppState>, _: Backend, Path(room): Path<String>) -> Response {
    let result = async {
        let room = room_of(&room)?;
        let users = ctx.chat.room_presence(&room).await?;
        Ok::<_, ChatError>(Json(users_body(&users)).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

#[derive(Deserialize)]
struct HistoryQuery {
    before: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/server/rooms/{room}/messages?before=&limit=`: a page of any room's history.
async fn history(
    State(ctx): State<AppState>,
    _: Backend,
    Path(room): Path<String>,
    query: Result<Query<HistoryQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let result = async {
        let Query(query) =
            query.map_err(|e| ChatError::invalid(format!("bad query string: {e}")))?;
        let room = room_of(&room)?;
        let before = before_of(query.before.as_deref())?;
        let limit = query.limit.unwrap_or(DEFAULT_HISTORY_PAGE);
        let page = ctx.chat.room_page(&room, before, limit).await?;
        Ok::<_, ChatError>(Json(page_body(&page)).into_response())
    }
    .await;
    result.unwrap_or_else(IntoResponse::into_response)
}

/// `GET /api/server/rooms`: every room with members, and its member count, across pods.
async fn rooms(State(ctx): State<AppState>, _: Backend) -> Response {
    match ctx.chat.active_rooms().await {
        Ok(rooms) => {
            let rooms: Vec<Value> = rooms
                .into_iter()
                .map(|(room, members)| json!({ "room": room, "members": members }))
                .collect();
            Json(json!({ "status": "ok", "rooms": rooms })).into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// `GET /api/server/users/{user}/connections`: the user's connections on every pod,
/// with their transports and rooms; `complete` is false when a pod did not answer.
async fn connections(
    State(ctx): State<AppState>,
    _: Backend,
    Path(user): Path<String>,
) -> Response {
    match ctx.chat.user_connections(Some(&user)).await {
        Ok(asked) => {
            let connections: Vec<Value> = asked
                .answers
                .iter()
                .flat_map(|pod| {
                    pod.connections.iter().map(move |c| {
                        json!({ "pod": pod.pod, "conn": c.conn, "transport": c.transport,
                            "rooms": c.rooms, "address": c.address,
                            "connected_at": (c.connected_at_ms > 0)
                                .then(|| crate::chat::rfc3339_of_ms(c.connected_at_ms)) })
                    })
                })
                .collect();
            Json(
                json!({ "status": "ok", "user": user, "connections": connections,
                "complete": asked.complete }),
            )
            .into_response()
        }
        Err(e) => e.into_response(),
    }
}

/// `GET /api/server/sockets`: socket.io sockets and rooms on every pod, unfiltered.
async fn sockets(State(ctx): State<AppState>, _: Backend) -> Response {
    match ctx.directory.list().await {
        Ok(body) => Json(body).into_response(),
        Err(e) => ChatError::Unavailable {
            reason: e,
            retry_after_ms: crate::chat::ports::STORE_RETRY_AFTER_MS,
        }
        .into_response(),
    }
}
