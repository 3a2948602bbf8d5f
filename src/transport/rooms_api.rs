//! Rooms over HTTP: `GET /api/rooms` (active rooms and channels) and the channels'
//! CRUD, `POST /api/rooms`, `GET/PATCH/DELETE /api/rooms/{room}`. The caller is a user
//! (a token, as on the realtime transports) or the application's backend (a server API
//! key in `Authorization: Bearer`). Writes count as messages against the user's send
//! rate. JSON in and out; errors are the catalogue's.

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use super::http::ApiCaller;
use super::server_api::decode;
use super::state::AppState;
use crate::chat::{Actor, Channel, ChannelChange, ChatError, NewChannel, RoomName, Sender};
use crate::gate::{bearer_token, Action};

/// Largest request body a channel write reads.
const MAX_BODY: usize = 64 * 1024;
/// Channels a listing returns unless `limit` says otherwise.
const DEFAULT_CHANNEL_PAGE: usize = 50;

/// The routes.
pub fn routes(ctx: AppState) -> Router {
    Router::new()
        .route("/api/rooms", get(list).post(create))
        .route("/api/rooms/{room}", get(show).patch(update).delete(remove))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(ctx)
}

/// Who calls: a user, or the backend with a server API key.
enum Caller {
    User(Sender),
    Backend,
}

impl Caller {
    fn actor(&self) -> Actor<'_> {
        match self {
            Self::User(sender) => Actor::User(sender),
            Self::Backend => Actor::Backend,
        }
    }

    fn sender(&self) -> Option<&Sender> {
        match self {
            Self::User(sender) => Some(sender),
            Self::Backend => None,
        }
    }

    /// Charges a write to the user's send rate (the backend is not limited).
    fn charge_write(&self, ctx: &AppState) -> Result<(), ChatError> {
        match self {
            Self::User(sender) => ctx.gate.limit(Action::Send, sender),
            Self::Backend => Ok(()),
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ChatError;

    async fn from_request_parts(parts: &mut Parts, ctx: &AppState) -> Result<Self, ChatError> {
        let keys = ctx.gate.api_keys();
        if keys.enabled() && keys.verify(bearer_token(&parts.headers)).is_ok() {
            return Ok(Self::Backend);
        }
        let ApiCaller(sender) = ApiCaller::from_request_parts(parts, ctx).await?;
        Ok(Self::User(sender))
    }
}

fn channel_body(channel: &Channel) -> Value {
    json!({ "status": "ok", "channel": channel })
}

#[derive(Deserialize)]
struct ListQuery {
    after: Option<String>,
    limit: Option<usize>,
}

/// `GET /api/rooms?after=&limit=`: the rooms with members and their member counts across
/// pods (`rooms`), and a page of the channels (`channels`, by room name after `after`,
/// `has_more`); only what the caller may join (never another user's room, a private
/// channel it is not a member of, or under ROOM_ACL=claims a room its token does not
/// grant).
async fn list(
    State(ctx): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let result = async {
        let Query(query) =
            query.map_err(|e| ChatError::invalid(format!("bad query string: {e}")))?;
        let limit = query.limit.unwrap_or(DEFAULT_CHANNEL_PAGE);
        let after = query.after.as_deref().filter(|a| !a.is_empty());
        let (channels, has_more) = ctx
            .chat
            .list_channels(caller.sender(), after, limit)
            .await?;
        let active = ctx.chat.active_rooms().await?;
        let names: Vec<RoomName> = active
            .iter()
            .filter_map(|(room, _)| RoomName::parse(room).ok())
            .collect();
        let open = match caller.sender() {
            Some(sender) => ctx.chat.open_to(sender, names).await?,
            None => names,
        };
        let rooms: Vec<Value> = active
            .into_iter()
            .filter(|(room, _)| open.iter().any(|o| o.as_str() == room))
            .map(|(room, members)| json!({ "room": room, "members": members }))
            .collect();
        Ok::<_, ChatError>(json!({
            "status": "ok",
            "rooms": rooms,
            "channels": channels,
            "has_more": has_more,
        }))
    }
    .await;
    match result {
        Ok(body) => Json(body).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /api/rooms` `{room, title?, topic?, private?, members?}` (the backend also
/// `created_by?`): 201 with the channel; 409 CONFLICT when the room has one. The room's
/// members hear `channel:updated`.
async fn create(State(ctx): State<AppState>, caller: Caller, body: Bytes) -> Response {
    let result = async {
        caller.charge_write(&ctx)?;
        let new: NewChannel = decode(&body)?;
        ctx.chat.create_channel(caller.actor(), new).await
    }
    .await;
    match result {
        Ok(channel) => (StatusCode::CREATED, Json(channel_body(&channel))).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /api/rooms/{room}`: the room's channel (404 NOT_FOUND without one, or for a
/// private channel the caller is not a member of).
async fn show(State(ctx): State<AppState>, caller: Caller, Path(room): Path<String>) -> Response {
    let result = async {
        let room = RoomName::parse(&room)?;
        ctx.chat.channel(caller.sender(), &room).await
    }
    .await;
    match result {
        Ok(channel) => Json(channel_body(&channel)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `PATCH /api/rooms/{room}` `{title?, topic?, private?, add_members?, remove_members?}`:
/// the creator or the backend changes the channel; members hear `channel:updated`, and
/// connections it no longer admits leave the room on every pod.
async fn update(
    State(ctx): State<AppState>,
    caller: Caller,
    Path(room): Path<String>,
    body: Bytes,
) -> Response {
    let result = async {
        caller.charge_write(&ctx)?;
        let room = RoomName::parse(&room)?;
        let change: ChannelChange = decode(&body)?;
        ctx.chat.update_channel(caller.actor(), &room, change).await
    }
    .await;
    match result {
        Ok(channel) => Json(channel_body(&channel)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /api/rooms/{room}`: the creator or the backend deletes the channel and its
/// messages; members hear `channel:deleted`, then leave the room on every pod.
async fn remove(State(ctx): State<AppState>, caller: Caller, Path(room): Path<String>) -> Response {
    let result = async {
        caller.charge_write(&ctx)?;
        let room = RoomName::parse(&room)?;
        ctx.chat.delete_channel(caller.actor(), &room).await?;
        Ok::<_, ChatError>(json!({ "status": "ok", "room": room }))
    }
    .await;
    match result {
        Ok(body) => Json(body).into_response(),
        Err(e) => e.into_response(),
    }
}
