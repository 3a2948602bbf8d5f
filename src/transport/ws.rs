//! The raw WebSocket transport: the upgrade routes and one task pair per connection
//! (a reader that decodes and calls the chat, a writer that drains the outbox and sends
//! heartbeats). Reader and writer end each other through the connection's [`Closer`].

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::time::{interval_at, timeout, Instant};
use tokio_util::task::TaskTracker;
use tracing::{debug, info};
use uuid::Uuid;

use super::bodies::{error_response, page_body, recovery_body, users_body};
use super::ws_hub::{close_code, Closer, Outbox, Queued, WsHub};
use super::ws_protocol::{self, ClientFrame, Request};
use crate::chat::{ChatError, ChatService, ConnId, Mailbox, Message, RoomName, Sender, Transport};
use crate::gate::{
    bearer_token, protocol_token, unix_now, Action, Admission, ConnectionPermit, Gate,
};
use crate::telemetry::metrics;

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

/// What the WebSocket routes need.
#[derive(Clone)]
pub struct WsContext {
    /// The chat domain.
    pub chat: Arc<ChatService>,
    /// The local registry of raw connections.
    pub hub: Arc<WsHub>,
    /// Admits connections, names their identity, limits their rate.
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
    token: Option<String>,
    since: Option<String>,
}

type UpgradeResult = Result<WebSocketUpgrade, WebSocketUpgradeRejection>;

async fn upgrade(
    State(ctx): State<WsContext>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    query: Result<Query<WsQuery>, QueryRejection>,
    ws: UpgradeResult,
) -> Response {
    let query = match query {
        Ok(Query(q)) => q,
        Err(e) => return error_response(&ChatError::invalid(format!("bad query string: {e}"))),
    };
    let room = query.room.clone();
    accept(ctx, peer, &headers, room.as_deref(), query, ws)
}

async fn upgrade_with_room(
    State(ctx): State<WsContext>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(room): Path<String>,
    query: Result<Query<WsQuery>, QueryRejection>,
    ws: UpgradeResult,
) -> Response {
    let query = match query {
        Ok(Query(q)) => q,
        Err(e) => return error_response(&ChatError::invalid(format!("bad query string: {e}"))),
    };
    accept(ctx, peer, &headers, Some(&room), query, ws)
}

/// Everything is checked before the upgrade: a refused client gets an HTTP error with a
/// JSON body (400 bad room, 401 token, 403 origin or room, 429 rate or caps).
fn accept(
    ctx: WsContext,
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
        Err(e) => return error_response(&e),
    };
    let since = match query.since.as_deref().map(Uuid::parse_str).transpose() {
        Ok(since) if since.is_none() || room.is_some() => since,
        Ok(_) => return error_response(&ChatError::invalid("since needs a room")),
        Err(_) => return error_response(&ChatError::invalid("since is not a message id")),
    };
    let query_token = query.token;
    let ip = ctx.gate.client_ip(Some(peer), headers);
    let permit = match ctx.gate.admit(ip, headers) {
        Ok(permit) => permit,
        Err(e) => return error_response(&e),
    };
    let protocol_token = protocol_token(headers);
    let token = bearer_token(headers)
        .or(query_token.as_deref())
        .or(protocol_token);
    let conn = ConnId::new(Uuid::now_v7().to_string());
    let admission = match ctx.gate.identify(conn, token, ip) {
        Ok(admission) => admission,
        Err(e) => return error_response(&e),
    };
    if let Some(room) = &room {
        if let Err(e) = admission.sender.may_join(room) {
            return error_response(&e);
        }
    }
    let ws = match ws {
        Ok(ws) => ws,
        Err(e) => return e.into_response(),
    };
    // A token sent as `Sec-WebSocket-Protocol: bearer, <token>` needs the protocol echoed.
    let ws = if protocol_token.is_some() {
        ws.protocols(["bearer"])
    } else {
        ws
    };
    let tracker = ctx.tracker.clone();
    configure(ws, ctx.settings.max_message_bytes).on_upgrade(move |socket| {
        let accepted = Accepted {
            ctx,
            room,
            since,
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
    ctx: WsContext,
    sender: Sender,
    room: Option<RoomName>,
    outbox: Arc<Outbox>,
    closer: Closer,
    stream: SplitStream<WebSocket>,
    writer: tokio::task::JoinHandle<()>,
    expiry: Option<tokio::task::JoinHandle<()>>,
    _permit: ConnectionPermit,
}

/// What an accepted upgrade request carries into the connection.
struct Accepted {
    ctx: WsContext,
    room: Option<RoomName>,
    since: Option<Uuid>,
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

/// Registers the connection, joins its rooms, sends the welcome (and what was missed),
/// and starts the writer.
async fn open_session(socket: WebSocket, accepted: Accepted) -> Session {
    let Accepted {
        ctx,
        room,
        since,
        admission,
        permit,
    } = accepted;
    let sender = admission.sender;
    let conn = sender.conn.clone();
    let closer = Closer::default();
    let outbox = Arc::new(Outbox::new(ctx.settings.send_buffer, closer.clone()));
    let mailbox: Mailbox = outbox.clone();
    ctx.chat.connect(&sender, Transport::Ws, Some(mailbox));
    ctx.hub.register(conn.clone(), outbox.clone());
    let link = Link {
        ctx: &ctx,
        sender: &sender,
        outbox: &outbox,
    };
    if let Some(own) = sender.own_room() {
        link.join(&own, None).await;
    }
    match (&room, since) {
        (Some(room), Some(since)) => {
            // Welcome first, then what was missed, then the live stream.
            link.send(&ws_protocol::welcome(
                conn.as_str(),
                &sender.user,
                Some(room),
            ));
            let reply = |body: Value| {
                let mut frame = ws_protocol::reply("room:join", None, body);
                frame.room = Some(room.clone());
                frame
            };
            if let Err(e) = link.recover(room, since, reply).await {
                link.error(&e, None);
            }
        }
        _ => {
            if let Some(room) = &room {
                link.join(room, None).await;
            }
            link.send(&ws_protocol::welcome(
                conn.as_str(),
                &sender.user,
                room.as_ref(),
            ));
        }
    }
    info!(conn = %conn, user = %sender.user, room = room.as_ref().map(RoomName::as_str), "ws connected");

    let (sink, stream) = socket.split();
    let writer = tokio::spawn(write_loop(
        sink,
        outbox.clone(),
        closer.clone(),
        ctx.settings,
    ));
    let expiry = admission.expires_at.map(|exp| {
        let (hub, outbox, closer) = (ctx.hub.clone(), outbox.clone(), closer.clone());
        tokio::spawn(async move {
            let wait = Duration::from_secs(exp.saturating_sub(unix_now()));
            tokio::select! {
                () = closer.closed() => {}
                () = tokio::time::sleep(wait) => {
                    let err = ChatError::AuthFailed("token expired".into());
                    hub.offer(&outbox, ws_protocol::error(&err, None).to_json().into());
                    closer.close(close_code::POLICY, "token expired");
                }
            }
        })
    });
    Session {
        ctx,
        sender,
        room,
        outbox,
        closer,
        stream,
        writer,
        expiry,
        _permit: permit,
    }
}

impl Session {
    /// Reads the client's frames until the connection ends, then cleans up.
    async fn run(self) {
        let link = Link {
            ctx: &self.ctx,
            sender: &self.sender,
            outbox: &self.outbox,
        };
        read_loop(self.stream, &link, self.room.as_ref(), &self.closer).await;
        self.closer.close(close_code::NORMAL, "connection ended");

        let (ctx, conn) = (&self.ctx, &self.sender.conn);
        ctx.hub.unregister(conn);
        ctx.chat.disconnect(conn);
        if let Some(expiry) = self.expiry {
            expiry.abort();
        }
        if let Err(e) = self.writer.await {
            debug!(error = %e, "ws writer task failed");
        }
        info!(conn = %conn, user = %self.sender.user, reason = ?self.closer.reason(), "ws disconnected");
    }
}

/// One connection's view of the chat: its identity and its outbox.
struct Link<'a> {
    ctx: &'a WsContext,
    sender: &'a Sender,
    outbox: &'a Arc<Outbox>,
}

impl Link<'_> {
    fn send(&self, frame: &Message) {
        self.ctx.hub.offer(self.outbox, frame.to_json().into());
    }

    fn error(&self, err: &ChatError, request_id: Option<&str>) {
        metrics::error(err.code());
        self.send(&ws_protocol::error(err, request_id));
    }

    /// Joins `room` (live delivery from when messages of other pods arrive here too).
    async fn join(&self, room: &RoomName, request_id: Option<&str>) -> bool {
        match self.ctx.chat.join(self.sender, room) {
            Ok(receipt) => {
                if let Err(e) = receipt.outcome().await {
                    debug!(error = %e, "room subscription not confirmed");
                }
                true
            }
            Err(e) => {
                self.error(&e, request_id);
                false
            }
        }
    }

    /// Joins `room` and queues what was missed since `since` before any live message.
    async fn recover(
        &self,
        room: &RoomName,
        since: Uuid,
        frame: impl FnOnce(Value) -> Message,
    ) -> Result<(), ChatError> {
        let (hub, outbox) = (&self.ctx.hub, self.outbox);
        self.ctx
            .chat
            .recover(self.sender, room, since, |missed, recovered| {
                let body = recovery_body(room, &missed, recovered);
                hub.offer(outbox, frame(body).to_json().into());
            })
            .await
    }

    async fn request(&self, request_id: Option<&str>, request: Request) {
        let name = request.name();
        if request.reads_store() {
            if let Err(e) = self.ctx.gate.limit(Action::Read, self.sender) {
                return self.error(&e, request_id);
            }
        }
        let result = match request {
            Request::Join { room, since: None } => {
                if self.join(&room, request_id).await {
                    Ok(json!({ "status": "ok", "room": room }))
                } else {
                    return;
                }
            }
            Request::Join {
                room,
                since: Some(since),
            } => {
                let reply = |body| ws_protocol::reply(name, request_id, body);
                match self.recover(&room, since, reply).await {
                    Ok(()) => return,
                    Err(e) => Err(e),
                }
            }
            Request::Leave { room } => {
                self.ctx.chat.leave(self.sender, &room);
                Ok(json!({ "status": "ok", "room": room }))
            }
            Request::History {
                room,
                before,
                limit,
            } => self
                .ctx
                .chat
                .history(self.sender, &room, before, limit)
                .await
                .map(|page| page_body(&page)),
            Request::Edit { room, id, content } => self
                .ctx
                .chat
                .edit(self.sender, &room, id, content)
                .await
                .map(|m| json!({ "status": "ok", "id": m.id })),
            Request::Delete { room, id } => self
                .ctx
                .chat
                .delete(self.sender, &room, id)
                .await
                .map(|()| json!({ "status": "ok", "id": id })),
            Request::PresenceList { room } => self
                .ctx
                .chat
                .presence_list(self.sender, &room)
                .await
                .map(|users| users_body(&users)),
        };
        match result {
            Ok(body) => self.send(&ws_protocol::reply(name, request_id, body)),
            Err(e) => self.error(&e, request_id),
        }
    }
}

async fn read_loop(
    mut stream: SplitStream<WebSocket>,
    link: &Link<'_>,
    room: Option<&RoomName>,
    closer: &Closer,
) {
    let ctx = link.ctx;
    let sender = link.sender;
    let reply = |err: ChatError| link.error(&err, None);
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
                if let Some((code, reason)) = read_error_close(e) {
                    closer.close(code, reason);
                }
                return;
            }
            Ok(Some(Ok(frame))) => frame,
        };
        let text = match frame {
            WsMessage::Text(text) => text,
            WsMessage::Binary(_) => {
                reply(ChatError::invalid(
                    "binary frames are not supported; send JSON text frames",
                ));
                continue;
            }
            WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
            WsMessage::Close(_) => return,
        };
        let decoded = ws_protocol::decode(text.as_str());
        metrics::message_in(Transport::Ws, frame_kind(&decoded));
        let decoded = match decoded {
            Ok(decoded) => decoded,
            Err(e) => {
                reply(e);
                continue;
            }
        };
        let result = match decoded {
            ClientFrame::Chat {
                room: named,
                content,
            } => post(ctx, sender, room, named, content),
            ClientFrame::Typing {
                room: named,
                typing,
            } => match named.or_else(|| room.cloned()) {
                Some(target) => ctx
                    .gate
                    .limit(Action::Typing, sender)
                    .and_then(|()| ctx.chat.typing(sender, &target, typing)),
                None => Err(ChatError::invalid("typing needs a room")),
            },
            // Rare requests run boxed, so an idle connection's task does not reserve
            // room for their state.
            ClientFrame::Status(status) => match ctx.gate.limit(Action::Presence, sender) {
                Ok(()) => Box::pin(ctx.chat.set_status(sender, status)).await,
                Err(e) => Err(e),
            },
            ClientFrame::Request {
                request_id,
                request,
            } => {
                Box::pin(link.request(request_id.as_deref(), request)).await;
                Ok(())
            }
            ClientFrame::Ping => {
                link.send(&ws_protocol::pong());
                Ok(())
            }
            ClientFrame::Pong => Ok(()),
        };
        if let Err(e) = result {
            reply(e);
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
    ctx.gate.limit(Action::Send, sender)?;
    // The connection's own room unless the frame names another room it is in; none at
    // all: global. The chat refuses rooms the connection is not in.
    let target = named.or_else(|| conn_room.cloned());
    // The raw protocol has no acks: the receipt is not awaited.
    ctx.chat.post(sender, target, content).map(drop)
}

fn frame_kind(decoded: &Result<ClientFrame, ChatError>) -> &'static str {
    match decoded {
        Ok(ClientFrame::Chat { .. }) => "chat",
        Ok(ClientFrame::Typing { .. }) => "typing",
        Ok(ClientFrame::Status(_)) => "presence",
        Ok(ClientFrame::Request { request, .. }) => request.name(),
        Ok(ClientFrame::Ping) => "ping",
        Ok(ClientFrame::Pong) => "pong",
        Err(_) => "invalid",
    }
}

/// The close code for a read error the client caused (too big, invalid UTF-8, protocol).
pub fn read_error_close(err: axum::Error) -> Option<(u16, &'static str)> {
    match err.into_inner().downcast_ref::<tungstenite::Error>() {
        Some(tungstenite::Error::Capacity(_)) => Some((close_code::TOO_BIG, "message too big")),
        Some(tungstenite::Error::Utf8(_)) => Some((close_code::INVALID_DATA, "invalid utf-8")),
        Some(tungstenite::Error::Protocol(_)) => Some((close_code::PROTOCOL, "protocol error")),
        _ => None,
    }
}

async fn write_loop(
    mut sink: SplitSink<WebSocket, WsMessage>,
    outbox: Arc<Outbox>,
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
            () = outbox.ready() => timeout(settings.pong_timeout, write_batch(&mut sink, outbox.take())).await,
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
    // What was queued before the close (e.g. the error that explains it) goes first.
    let farewell = async {
        write_batch(&mut sink, outbox.take()).await?;
        sink.send(WsMessage::Close(Some(frame))).await
    };
    if timeout(CLOSE_WRITE_TIMEOUT, farewell).await.is_err() {
        debug!("close frame not written in time");
    }
}

/// Writes `batch` in order with one flush; the queue's memory is freed afterwards.
async fn write_batch(
    sink: &mut SplitSink<WebSocket, WsMessage>,
    batch: VecDeque<Queued>,
) -> Result<(), axum::Error> {
    if batch.is_empty() {
        return Ok(());
    }
    for queued in batch {
        metrics::delivery_latency(Transport::Ws, queued.at.elapsed());
        sink.feed(WsMessage::Text(queued.frame)).await?;
    }
    sink.flush().await
}
