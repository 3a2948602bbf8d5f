//! The raw WebSocket transport: the upgrade routes and one task pair per connection
//! (a reader that decodes and calls the chat, a writer that drains the outbox and sends
//! heartbeats). Reader and writer end each other through the connection's [`Closer`].

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::{interval_at, timeout, Instant};
use tokio_util::task::TaskTracker;
use tracing::{debug, info};
use uuid::Uuid;

use super::ws_hub::{close_code, Closer, Outbox, WsHub};
use super::ws_protocol::{self, ClientFrame};
use crate::chat::{ChatError, ChatService, ConnId, RoomName, Sender, Transport};
use crate::gate::Gate;

/// How many queued frames the writer sends before flushing.
const WRITE_BATCH: usize = 64;
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

/// What the WebSocket routes need.
#[derive(Clone)]
pub struct WsContext {
    /// The chat domain.
    pub chat: Arc<ChatService>,
    /// The local registry of raw connections.
    pub hub: Arc<WsHub>,
    /// Names each connection's identity.
    pub gate: Gate,
    /// Tracks connection tasks so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// Wire settings.
    pub settings: WsSettings,
}

/// The six upgrade routes: `/ws`, `/ws/{room}` and the same under `/api/chat-api`.
pub fn routes(ctx: WsContext) -> Router {
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
}

fn bad_request(err: &ChatError) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({ "status": "error", "code": err.code(), "message": err.to_string() })),
    )
        .into_response()
}

async fn upgrade(
    State(ctx): State<WsContext>,
    query: Result<Query<WsQuery>, QueryRejection>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let room = match query {
        Ok(Query(q)) => q.room,
        Err(e) => return bad_request(&ChatError::invalid(format!("bad query string: {e}"))),
    };
    accept(ctx, room.as_deref(), ws)
}

async fn upgrade_with_room(
    State(ctx): State<WsContext>,
    Path(room): Path<String>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    accept(ctx, Some(&room), ws)
}

fn accept(
    ctx: WsContext,
    room: Option<&str>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Response {
    let room = match room
        .filter(|r| !r.is_empty())
        .map(RoomName::parse)
        .transpose()
    {
        Ok(room) => room,
        Err(e) => return bad_request(&e),
    };
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => return e.into_response(),
    };
    let max = ctx.settings.max_message_bytes;
    let tracker = ctx.tracker.clone();
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| tracker.track_future(run_connection(socket, ctx, room)))
}

async fn run_connection(socket: WebSocket, ctx: WsContext, room: Option<RoomName>) {
    let conn = ConnId::new(Uuid::now_v7().to_string());
    let sender = ctx.gate.identify(&conn);
    let (tx, rx) = mpsc::channel(ctx.settings.send_buffer);
    let closer = Closer::default();
    let outbox = Arc::new(Outbox::new(tx, closer.clone()));
    ctx.chat.connect(conn.clone(), Transport::Ws);
    if let Some(room) = &room {
        match ctx.chat.join(&conn, room) {
            // Welcome once messages from other pods for this room reach this pod.
            Ok(receipt) => {
                if let Err(e) = receipt.outcome().await {
                    debug!(error = %e, "room subscription not confirmed");
                }
            }
            Err(e) => debug!(error = %e, "join failed"),
        }
    }
    let welcome = ws_protocol::welcome(conn.as_str(), room.as_ref());
    ctx.hub.offer(&outbox, welcome.to_json().into());
    ctx.hub.register(conn.clone(), room.clone(), outbox.clone());
    info!(conn = %conn, room = ?room, "ws connected");

    let (sink, stream) = socket.split();
    let writer = tokio::spawn(write_loop(sink, rx, closer.clone(), ctx.settings));
    read_loop(stream, &ctx, &sender, room.as_ref(), &outbox, &closer).await;
    closer.close(close_code::NORMAL, "connection ended");

    ctx.hub.unregister(&conn, room.as_ref());
    ctx.chat.disconnect(&conn);
    if let Err(e) = writer.await {
        debug!(error = %e, "ws writer task failed");
    }
    info!(conn = %conn, reason = ?closer.reason(), "ws disconnected");
}

async fn read_loop(
    mut stream: SplitStream<WebSocket>,
    ctx: &WsContext,
    sender: &Sender,
    room: Option<&RoomName>,
    outbox: &Outbox,
    closer: &Closer,
) {
    let reply = |err: ChatError| {
        ctx.hub
            .offer(outbox, ws_protocol::error(&err).to_json().into());
    };
    loop {
        let next = tokio::select! {
            biased;
            () = closer.closed() => return,
            next = timeout(ctx.settings.pong_timeout, stream.next()) => next,
        };
        let frame = match next {
            Err(_elapsed) => return closer.close(close_code::POLICY, "pong timeout"),
            Ok(None) => return,
            Ok(Some(Err(e))) => {
                if is_capacity_error(e) {
                    return closer.close(close_code::TOO_BIG, "message too big");
                }
                return;
            }
            Ok(Some(Ok(frame))) => frame,
        };
        match frame {
            WsMessage::Text(text) => match ws_protocol::decode(text.as_str()) {
                Ok(ClientFrame::Chat {
                    room: named,
                    content,
                }) => {
                    if let Err(e) = post(ctx, sender, room, named, content) {
                        reply(e);
                    }
                }
                Ok(ClientFrame::Ping) => {
                    ctx.hub.offer(outbox, ws_protocol::pong().to_json().into());
                }
                Ok(ClientFrame::Pong) => {}
                Err(e) => reply(e),
            },
            WsMessage::Binary(_) => reply(ChatError::invalid(
                "binary frames are not supported; send JSON text frames",
            )),
            WsMessage::Ping(_) | WsMessage::Pong(_) => {}
            WsMessage::Close(_) => return,
        }
    }
}

fn post(
    ctx: &WsContext,
    sender: &Sender,
    conn_room: Option<&RoomName>,
    named: Option<RoomName>,
    content: String,
) -> Result<(), ChatError> {
    let target = match (conn_room, named) {
        (Some(own), Some(named)) if *own != named => {
            return Err(ChatError::Channel(format!(
                "this connection is in room {own}, not {named}"
            )))
        }
        (None, Some(named)) => {
            return Err(ChatError::Channel(format!(
                "this connection is not in room {named}; connect to /ws/{named}"
            )))
        }
        (own, _) => own.cloned(),
    };
    // The raw protocol has no acks: the receipt is not awaited.
    ctx.chat.post(sender, target, content).map(drop)
}

fn is_capacity_error(err: axum::Error) -> bool {
    matches!(
        err.into_inner().downcast_ref::<tungstenite::Error>(),
        Some(tungstenite::Error::Capacity(_))
    )
}

async fn write_loop(
    mut sink: SplitSink<WebSocket, WsMessage>,
    mut rx: mpsc::Receiver<Utf8Bytes>,
    closer: Closer,
    settings: WsSettings,
) {
    let mut ping = interval_at(
        Instant::now() + settings.ping_interval,
        settings.ping_interval,
    );
    loop {
        let written = tokio::select! {
            biased;
            () = closer.closed() => break,
            frame = rx.recv() => match frame {
                Some(frame) => timeout(settings.pong_timeout, write_batch(&mut sink, &mut rx, frame)).await,
                None => break,
            },
            _ = ping.tick() => timeout(settings.pong_timeout, sink.send(WsMessage::Ping(Default::default()))).await,
        };
        match written {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return closer.close(close_code::GOING_AWAY, "write failed"),
            Err(_elapsed) => {
                closer.close(close_code::POLICY, "slow consumer");
                break;
            }
        }
    }
    let (code, reason) = closer
        .reason()
        .unwrap_or((close_code::GOING_AWAY, "closing"));
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    if timeout(
        CLOSE_WRITE_TIMEOUT,
        sink.send(WsMessage::Close(Some(frame))),
    )
    .await
    .is_err()
    {
        debug!("close frame not written in time");
    }
}

async fn write_batch(
    sink: &mut SplitSink<WebSocket, WsMessage>,
    rx: &mut mpsc::Receiver<Utf8Bytes>,
    first: Utf8Bytes,
) -> Result<(), axum::Error> {
    sink.feed(WsMessage::Text(first)).await?;
    for _ in 1..WRITE_BATCH {
        match rx.try_recv() {
            Ok(frame) => sink.feed(WsMessage::Text(frame)).await?,
            Err(_) => break,
        }
    }
    sink.flush().await
}
