//! The raw WebSocket transport: the upgrade routes (here), one task pair per connection
//! (`session`: a reader that decodes and calls the chat; `writer`: drains the outbox
//! and sends heartbeats; they end each other through the connection's [`Closer`]), the
//! registry of connections (`hub`, [`WsHub`]) and the `realtime.Message` wire
//! ([`protocol`]).

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::stream::SplitStream;
use serde::Deserialize;
use uuid::Uuid;

mod hub;
pub mod protocol;
mod session;
mod writer;

pub use hub::{close_code, Closer, Outbox, Queued, WsHub};
pub use session::read_error_close;

use super::state::AppState;
use crate::chat::{ChatError, ConnId, MessageRef, RoomName, Sender};
use crate::gate::{Admission, ConnectionPermit};
use crate::hooks::Handshake;
use crate::transport::admission;
use session::open_session;
use std::sync::Arc;

/// Read buffer of a raw WebSocket connection, in bytes (grows for larger frames).
const WS_READ_BUFFER: usize = 1024;
/// Bytes of queued frames the writer gathers into one socket write.
const WS_WRITE_BATCH: usize = 8 * 1024;
/// Longest wait for a close frame to be written.
const CLOSE_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// Settings of the raw WebSocket side.
#[derive(Debug, Clone, Copy)]
pub struct WsSettings {
    /// Largest frame or message accepted (MAX_MESSAGE_BYTES); larger ones close with 1009.
    pub max_message_bytes: usize,
    /// Interval between protocol pings.
    pub ping_interval: Duration,
    /// Silence (and stuck writes, and a full outbox) tolerated before closing.
    pub pong_timeout: Duration,
    /// Outbox capacity per connection.
    pub send_buffer: usize,
}

/// The six upgrade routes: `/ws`, `/ws/{room}` and the same under `/api/chat-api`.
pub fn routes(ctx: AppState) -> Router {
    Router::new()
        .route("/ws", get(upgrade))
        .route("/ws/{room}", get(upgrade_with_room))
        .route("/api/chat-api/ws", get(upgrade))
        .route("/api/chat-api/ws/{room}", get(upgrade_with_room))
        .with_state(ctx)
}

#[derive(Deserialize)]
struct WsQuery {
    room: Option<String>,
    token: Option<String>,
    since: Option<String>,
    /// A display name the client chose (anonymous connections).
    name: Option<String>,
    /// `streamly`: frames in the Streamly chat service's shape from the start.
    format: Option<String>,
    /// The other parameters, shown to the connect hook.
    #[serde(flatten)]
    extra: std::collections::BTreeMap<String, String>,
}

type UpgradeResult = Result<WebSocketUpgrade, WebSocketUpgradeRejection>;

async fn upgrade(
    State(ctx): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<WsQuery>, QueryRejection>,
    ws: UpgradeResult,
) -> Response {
    let query = match query {
        Ok(Query(q)) => q,
        Err(e) => return ChatError::invalid(format!("bad query string: {e}")).into_response(),
    };
    let room = query.room.clone();
    accept(ctx, peer, &headers, room.as_deref(), query, ws).await
}

async fn upgrade_with_room(
    State(ctx): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(room): Path<String>,
    query: Result<Query<WsQuery>, QueryRejection>,
    ws: UpgradeResult,
) -> Response {
    let query = match query {
        Ok(Query(q)) => q,
        Err(e) => return ChatError::invalid(format!("bad query string: {e}")).into_response(),
    };
    accept(ctx, peer, &headers, Some(&room), query, ws).await
}

/// Everything is checked before the upgrade: a refused client gets an HTTP error with a
/// JSON body (400 bad room, 401 token, 403 origin or room, 429 rate or caps).
async fn accept(
    ctx: AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    room: Option<&str>,
    query: WsQuery,
    ws: UpgradeResult,
) -> Response {
    let room = match room
        .filter(|r| !r.is_empty())
        .map(RoomName::parse)
        .transpose()
    {
        Ok(room) => room,
        Err(e) => return e.into_response(),
    };
    let streamly = match query.format.as_deref() {
        None | Some("realtime") => false,
        Some("streamly") => true,
        Some(_) => {
            return ChatError::invalid("format must be realtime or streamly").into_response()
        }
    };
    let since = match query.since.as_deref().map(MessageRef::parse) {
        None => None,
        Some(Some(_)) if room.is_none() => {
            return ChatError::invalid("since needs a room").into_response()
        }
        Some(Some(since)) => Some(since),
        Some(None) => {
            return ChatError::invalid("since is not an offset or a message id").into_response()
        }
    };
    let claimed = (ctx.gate).credentials(Some(peer), headers, query.token.as_deref(), None);
    let permit = match ctx.gate.admit(claimed.ip, headers) {
        Ok(permit) => permit,
        Err(e) => return e.into_response(),
    };
    let conn = ConnId::new(Uuid::now_v7().to_string());
    let handshake = || Handshake {
        transport: "ws",
        token: claimed.token.map(str::to_owned),
        ip: claimed.ip.to_string(),
        headers: admission::hook_headers(headers),
        auth: serde_json::json!({ "room": room, "name": query.name, "query": query.extra }),
    };
    let chosen_name = query.name.as_deref();
    let identified = admission::identify(&ctx, conn, &claimed, chosen_name, handshake).await;
    let admission = match identified {
        Ok(admission) => admission,
        Err(e) => return e.into_response(),
    };
    if let Some(room) = &room {
        if let Err(e) = ctx.chat.admits(&admission.sender, room).await {
            return e.into_response();
        }
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => return e.into_response(),
    };
    // A token sent as `Sec-WebSocket-Protocol: bearer, <token>` needs the protocol echoed.
    let ws = if claimed.via_protocol {
        ws.protocols(["bearer"])
    } else {
        ws
    };
    let tracker = ctx.tracker.clone();
    configure(ws, ctx.ws_settings.max_message_bytes).on_upgrade(move |socket| {
        let accepted = Accepted {
            ctx,
            room,
            since,
            streamly,
            admission,
            permit,
        };
        tracker.track_future(run_connection(socket, accepted))
    })
}

/// The WebSocket settings of a raw connection, shared by the product routes and the
/// Autobahn echo route: frames and messages above `max_message_bytes` fail (1009); small
/// buffers, so an idle connection costs a few KB instead of axum's 128 KiB read buffer;
/// frames queued together go out in one write of up to WS_WRITE_BATCH bytes.
pub fn configure(ws: WebSocketUpgrade, max_message_bytes: usize) -> WebSocketUpgrade {
    ws.max_message_size(max_message_bytes)
        .max_frame_size(max_message_bytes)
        .read_buffer_size(WS_READ_BUFFER)
        .write_buffer_size(WS_WRITE_BATCH)
}

/// A raw WebSocket connection after set-up: what it needs for the rest of its life.
/// Set-up runs in a separate boxed future, so its state (the whole socket before the
/// split, the join or recovery in flight) is freed before the connection goes idle.
struct Session {
    ctx: AppState,
    sender: Sender,
    room: Option<RoomName>,
    outbox: Arc<Outbox>,
    closer: Closer,
    stream: SplitStream<WebSocket>,
    writer: tokio::task::JoinHandle<()>,
    expiry: Option<tokio::task::JoinHandle<()>>,
    permit: ConnectionPermit,
}

/// What an accepted upgrade request carries into the connection.
struct Accepted {
    ctx: AppState,
    room: Option<RoomName>,
    since: Option<MessageRef>,
    /// `?format=streamly`: Streamly frames from the start, no welcome.
    streamly: bool,
    admission: Admission,
    permit: ConnectionPermit,
}

/// Runs one connection: the boxed set-up, then the session until it ends.
fn run_connection(socket: WebSocket, accepted: Accepted) -> impl std::future::Future<Output = ()> {
    let set_up = Box::pin(open_session(socket, accepted));
    async move {
        // Moved into a block so the set-up's box is freed once it is done.
        let session = {
            let set_up = set_up;
            set_up.await
        };
        session.run().await;
    }
}
