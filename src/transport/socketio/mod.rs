//! The Socket.IO transport: namespace "/" events (`room:join`, `room:leave`,
//! `message:send`) mapped onto the chat, answers as acks or `error` events, and the
//! socket.io side of local fan-out (`message:new`). Generic over the socketioxide
//! adapter: in-memory on one node, socketioxide-redis across pods.

mod cluster_driver;
mod fanout;
mod reply;
mod requests;
mod turn;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{Event, SocketRef, State, TryData};
use socketioxide::socket::DisconnectReason;
use socketioxide::{ParserConfig, SocketIoBuilder};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

pub use cluster_driver::LinkDriver;
pub use fanout::{SioFanout, EVENT_MESSAGE_NEW};
pub use reply::{error_body, Reply, EVENT_ERROR};
pub use requests::check_event_payload;
use requests::{
    decode, DeleteRequest, EditRequest, HistoryRequest, JoinRequest, RoomRequest, SendRequest,
    StatusRequest, TypingRequest,
};
pub use turn::{Line, Turn};

use crate::chat::{excerpt, ChatError, ChatService, ConnId, Sender, Transport};
use crate::gate::{bearer_token, unix_now, Action, ConnectionPermit, Gate};
use crate::telemetry::metrics;
use crate::transport::bodies::{page_body, recovery_body, users_body, DEFAULT_HISTORY_PAGE};

/// Slack added to MAX_MESSAGE_BYTES for socket.io packet framing, so an oversized
/// message is answered with MESSAGE_TOO_LARGE rather than a dropped connection.
pub const FRAME_SLACK_BYTES: usize = 4096;

/// Socket.IO settings taken from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct SioSettings {
    /// Engine.IO ping interval (PING_INTERVAL).
    pub ping_interval: Duration,
    /// Engine.IO ping timeout (PONG_TIMEOUT).
    pub ping_timeout: Duration,
    /// Largest message (MAX_MESSAGE_BYTES); frames may exceed it by [`FRAME_SLACK_BYTES`].
    pub max_message_bytes: usize,
    /// Packets buffered per socket (SEND_BUFFER).
    pub send_buffer: usize,
    /// How long an Engine.IO session may stay without a Socket.IO CONNECT.
    pub connect_timeout: Duration,
}

/// socket.io's own default for [`SioSettings::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(45);

/// Most binary attachments one socket.io packet may announce; more close the session.
pub const MAX_ATTACHMENTS: usize = 16;
/// Longest a packet may wait for its attachments: the next one after it closes the session.
pub const ATTACHMENT_TIMEOUT: Duration = Duration::from_secs(10);

/// Applies the wire settings (heartbeat, payload and frame limits, attachment limits,
/// buffers, connect timeout) to a socket.io builder: the product and the conformance
/// server share this. A packet's binary attachments together may hold at most
/// MAX_MESSAGE_BYTES (socketioxide's default would buffer 10 MB per session).
pub fn wire<A: Adapter>(builder: SocketIoBuilder<A>, settings: SioSettings) -> SocketIoBuilder<A> {
    let frame_limit = settings.max_message_bytes + FRAME_SLACK_BYTES;
    let parser = ParserConfig::common()
        .max_incoming_binary_buf_size(settings.max_message_bytes)
        .max_incoming_binaries(MAX_ATTACHMENTS)
        .packet_completion_timeout(ATTACHMENT_TIMEOUT);
    builder
        .with_parser(parser)
        .ping_interval(settings.ping_interval)
        .ping_timeout(settings.ping_timeout)
        .connect_timeout(settings.connect_timeout)
        .max_payload(frame_limit as u64)
        .ws_max_message_size(frame_limit)
        .ws_max_frame_size(frame_limit)
        .max_buffer_size(settings.send_buffer)
        .ws_read_buffer_size(WS_READ_BUFFER)
}

/// Read buffer of a socket.io WebSocket, in bytes (grows for larger frames).
pub const WS_READ_BUFFER: usize = 512;

/// State shared by the socket.io handlers.
#[derive(Clone)]
pub struct SioState {
    chat: Arc<ChatService>,
    gate: Gate,
}

/// Applies chatwire's wire settings and handler state to a socket.io builder.
pub fn configure<A: Adapter>(
    builder: SocketIoBuilder<A>,
    settings: SioSettings,
    chat: Arc<ChatService>,
    gate: Gate,
) -> SocketIoBuilder<A> {
    wire(builder, settings).with_state(SioState { chat, gate })
}

/// Why a socket.io connection was refused: sent as the `connect_error` message
/// `"<CODE>: <text>"` (socketioxide sends only a message, no `data` object).
#[derive(Debug)]
pub struct Refusal(ChatError);

impl Refusal {
    fn new(err: ChatError) -> Self {
        crate::telemetry::metrics::error(err.code());
        Self(err)
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.0.code(), self.0)
    }
}

#[derive(Deserialize, Default)]
/// The socket.io handshake `auth` payload.
pub struct AuthPayload {
    #[serde(default)]
    /// A JWT.
    pub token: Option<String>,
}

/// Connect middleware of namespace "/": origin, connection rate and caps, then the
/// token (handshake `auth.token`, or an `Authorization: Bearer` header).
pub async fn admit<A: Adapter>(
    socket: SocketRef<A>,
    State(state): State<SioState>,
    TryData(auth): TryData<AuthPayload>,
) -> Result<(), Refusal> {
    let parts = socket.req_parts();
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    let ip = state.gate.client_ip(peer, &parts.headers);
    let permit = state.gate.admit(ip, &parts.headers).map_err(Refusal::new)?;
    let auth = auth.unwrap_or_default();
    let token = auth
        .token
        .as_deref()
        .or_else(|| bearer_token(&parts.headers));
    let conn = ConnId::new(socket.id.to_string());
    let admission = state.gate.identify(conn, token, ip).map_err(Refusal::new)?;
    socket.extensions.insert(admission.sender);
    socket.extensions.insert(Arc::new(permit));
    if let Some(exp) = admission.expires_at {
        socket.extensions.insert(TokenExpiry(exp));
    }
    // Handlers are registered here, before the CONNECT ack goes out: socketioxide runs
    // the connect handler in a task of its own, and an event arriving before it had
    // registered them would be dropped. The connect handler holds the first turn, so
    // events wait until it has registered the socket with the chat.
    socket.extensions.insert(Line::held_for_connect());
    // One dispatcher rather than a handler per event: socketioxide keeps a map of
    // handlers per socket, which would cost every connection about 700 bytes.
    socket.on_fallback(on_event::<A>);
    socket.on_disconnect(on_disconnect::<A>);
    Ok(())
}

#[derive(Clone, Copy)]
struct TokenExpiry(u64);

/// The connect handler of namespace "/": registers the socket and its event handlers.
pub async fn on_connect<A: Adapter>(socket: SocketRef<A>, State(state): State<SioState>) {
    let sender = sender_of(&socket);
    let conn = sender.conn.clone();
    state.chat.connect(&sender, Transport::SocketIo, None);
    if let Some(own) = sender.own_room() {
        if let Err(e) = state.chat.join(&sender, &own) {
            debug!(error = %e, "own room not joined");
        }
    }
    if let Some(TokenExpiry(exp)) = socket.extensions.get::<TokenExpiry>() {
        let stop = CancellationToken::new();
        socket.extensions.insert(ExpiryTimer(stop.clone()));
        tokio::spawn(expire_at(socket.clone(), exp, stop));
    }
    // Events that arrived meanwhile may run now.
    if let Some(line) = socket.extensions.get::<Arc<Line>>() {
        line.release_first();
    }
    info!(conn = %conn, user = %sender.user, transport = ?socket.transport_type(), "socket.io connected");
}

fn sender_of<A: Adapter>(socket: &SocketRef<A>) -> Sender {
    socket
        .extensions
        .get::<Sender>()
        .unwrap_or_else(|| Sender::anonymous(ConnId::new(socket.id.to_string())))
}

#[derive(Clone)]
struct ExpiryTimer(CancellationToken);

/// Ends the connection when its token expires, after an AUTH_FAILED `error` event.
async fn expire_at<A: Adapter>(socket: SocketRef<A>, exp: u64, stop: CancellationToken) {
    let wait = Duration::from_secs(exp.saturating_sub(unix_now()));
    tokio::select! {
        () = stop.cancelled() => return,
        () = tokio::time::sleep(wait) => {}
    }
    reply::emit_error(&socket, &ChatError::AuthFailed("token expired".into()));
    if let Err(e) = socket.disconnect() {
        debug!(error = %e, "expired socket already gone");
    }
}

async fn on_join<A: Adapter>(
    socket: SocketRef<A>,
    state: SioState,
    turn: Turn,
    req: Result<JoinRequest, ChatError>,
    reply: Reply<A>,
) {
    metrics::message_in(Transport::SocketIo, "room:join");
    if let Err(e) = turn.wait().await {
        return reply.send(Err(e));
    }
    let req = match req {
        Ok(req) => req,
        Err(e) => return reply.send(Err(e)),
    };
    let sender = sender_of(&socket);
    if let Some(since) = req.since {
        // Missed messages ride in the ack, queued before any live message. The turn is
        // held until the hand-over: the socket's next event (a `room:leave`, say) runs
        // after this join, as sent.
        let room = req.room.clone();
        let mut reply = Some(reply);
        let recovered = state
            .chat
            .recover(&sender, &req.room, since, |missed, recovered| {
                if let Some(reply) = reply.take() {
                    reply.send(Ok(recovery_body(&room, &missed, recovered)));
                }
            })
            .await;
        drop(turn);
        if let (Err(e), Some(reply)) = (recovered, reply) {
            // Recovery failed before the hand-over: the ack says why.
            reply.send(Err(e));
        }
        return;
    }
    let joined = state.chat.join(&sender, &req.room);
    drop(turn);
    let result = match joined {
        Ok(receipt) => {
            // Acknowledge once messages from other pods for this room reach this pod.
            let mut body = json!({ "status": "ok", "room": req.room });
            if receipt.outcome().await.is_err() {
                body["degraded"] = json!(true);
            }
            Ok(body)
        }
        Err(e) => Err(e),
    };
    reply.send(result);
}

/// The skeleton every unordered handler shares: count the event, run `handle` on the
/// decoded request (or answer the decoding error), send the ack.
async fn answer<A: Adapter, R, Fut>(
    event: &'static str,
    req: Result<R, ChatError>,
    reply: Reply<A>,
    handle: impl FnOnce(R) -> Fut,
) where
    Fut: std::future::Future<Output = Result<serde_json::Value, ChatError>>,
{
    metrics::message_in(Transport::SocketIo, event);
    let result = match req {
        Ok(req) => handle(req).await,
        Err(e) => Err(e),
    };
    reply.send(result);
}

async fn on_history<A: Adapter>(
    socket: SocketRef<A>,
    state: SioState,
    req: Result<HistoryRequest, ChatError>,
    reply: Reply<A>,
) {
    answer(
        "message:history",
        req,
        reply,
        |req: HistoryRequest| async move {
            let limit = req.limit.unwrap_or(DEFAULT_HISTORY_PAGE);
            let sender = sender_of(&socket);
            let page = state.chat.history(&sender, &req.room, req.before, limit);
            page.await.map(|page| page_body(&page))
        },
    )
    .await;
}

async fn on_edit<A: Adapter>(
    socket: SocketRef<A>,
    state: SioState,
    req: Result<EditRequest, ChatError>,
    reply: Reply<A>,
) {
    answer("message:edit", req, reply, |req: EditRequest| async move {
        let sender = sender_of(&socket);
        let edited = state.chat.edit(&sender, &req.room, req.id, req.content);
        edited.await.map(|m| json!({ "status": "ok", "id": m.id }))
    })
    .await;
}

async fn on_delete<A: Adapter>(
    socket: SocketRef<A>,
    state: SioState,
    req: Result<DeleteRequest, ChatError>,
    reply: Reply<A>,
) {
    answer(
        "message:delete",
        req,
        reply,
        |req: DeleteRequest| async move {
            let sender = sender_of(&socket);
            let deleted = state.chat.delete(&sender, &req.room, req.id);
            deleted
                .await
                .map(|()| json!({ "status": "ok", "id": req.id }))
        },
    )
    .await;
}

async fn on_status<A: Adapter>(
    socket: SocketRef<A>,
    state: SioState,
    req: Result<StatusRequest, ChatError>,
    reply: Reply<A>,
) {
    answer(
        "presence:update",
        req,
        reply,
        |req: StatusRequest| async move {
            let sender = sender_of(&socket);
            state.gate.limit(Action::Presence, &sender)?;
            let set = state.chat.set_status(&sender, req.status);
            set.await.map(|()| json!({ "status": "ok" }))
        },
    )
    .await;
}

async fn on_presence_list<A: Adapter>(
    socket: SocketRef<A>,
    state: SioState,
    req: Result<RoomRequest, ChatError>,
    reply: Reply<A>,
) {
    answer("presence:list", req, reply, |req: RoomRequest| async move {
        let sender = sender_of(&socket);
        let users = state.chat.presence_list(&sender, &req.room);
        users.await.map(|users| users_body(&users))
    })
    .await;
}

async fn on_typing<A: Adapter>(
    socket: SocketRef<A>,
    state: SioState,
    turn: Turn,
    req: Result<TypingRequest, ChatError>,
    reply: Reply<A>,
) {
    metrics::message_in(Transport::SocketIo, "user:typing");
    if let Err(e) = turn.wait().await {
        return reply.send(Err(e));
    }
    let sender = sender_of(&socket);
    let result = req.and_then(|req| {
        state.gate.limit(Action::Typing, &sender)?;
        state.chat.typing(&sender, &req.room, req.typing)?;
        Ok(json!({ "status": "ok" }))
    });
    drop(turn);
    reply.send(result);
}

async fn on_leave<A: Adapter>(
    socket: SocketRef<A>,
    state: SioState,
    turn: Turn,
    req: Result<RoomRequest, ChatError>,
    reply: Reply<A>,
) {
    metrics::message_in(Transport::SocketIo, "room:leave");
    if let Err(e) = turn.wait().await {
        return reply.send(Err(e));
    }
    let result = req.map(|req| {
        state.chat.leave(&sender_of(&socket), &req.room);
        json!({ "status": "ok", "room": req.room })
    });
    drop(turn);
    reply.send(result);
}

async fn on_send<A: Adapter>(
    socket: SocketRef<A>,
    state: SioState,
    turn: Turn,
    req: Result<SendRequest, ChatError>,
    reply: Reply<A>,
) {
    metrics::message_in(Transport::SocketIo, "message:send");
    if let Err(e) = turn.wait().await {
        return reply.send(Err(e));
    }
    let sender = sender_of(&socket);
    let posted = req.and_then(|req| {
        state.gate.limit(Action::Send, &sender)?;
        state.chat.post(&sender, req.room, req.content)
    });
    drop(turn);
    let result = match posted {
        Ok(posted) => {
            // Acknowledge once other pods have it, or say it reached only this pod.
            let degraded = posted.receipt.outcome().await.is_err();
            let mut body = json!({
                "status": "ok",
                "id": posted.message.id,
                "timestamp": posted.message.timestamp,
            });
            if degraded {
                body["degraded"] = json!(true);
            }
            Ok(body)
        }
        Err(e) => Err(e),
    };
    reply.send(result);
}

/// Events that read the store or Redis: each takes one read from the sender's allowance
/// (RATE_READS_PER_MIN per user, RATE_READS_PER_IP_PER_MIN per address).
const READ_EVENTS: [&str; 5] = [
    "room:join",
    "message:history",
    "message:edit",
    "message:delete",
    "presence:list",
];

/// Routes a client event to its handler. The turn is taken for every event in arrival
/// order; reads that need no ordering give it up at once.
async fn on_event<A: Adapter>(
    socket: SocketRef<A>,
    State(state): State<SioState>,
    Event(event): Event,
    turn: Turn,
    TryData(args): TryData<serde_json::Value>,
    reply: Reply<A>,
) {
    if READ_EVENTS.contains(&event.as_str()) {
        if let Err(e) = state.gate.limit(Action::Read, &sender_of(&socket)) {
            drop(turn);
            metrics::message_in(Transport::SocketIo, "rate_limited");
            return reply.send(Err(e));
        }
    }
    match event.as_str() {
        "room:join" => on_join(socket, state, turn, decode(args), reply).await,
        "room:leave" => on_leave(socket, state, turn, decode(args), reply).await,
        "message:send" => on_send(socket, state, turn, decode(args), reply).await,
        "user:typing" => on_typing(socket, state, turn, decode(args), reply).await,
        unordered => {
            drop(turn);
            match unordered {
                "message:history" => on_history(socket, state, decode(args), reply).await,
                "message:edit" => on_edit(socket, state, decode(args), reply).await,
                "message:delete" => on_delete(socket, state, decode(args), reply).await,
                "presence:update" => on_status(socket, state, decode(args), reply).await,
                "presence:list" => on_presence_list(socket, state, decode(args), reply).await,
                _ => on_unknown(socket, &event, reply),
            }
        }
    }
}

fn on_unknown<A: Adapter>(socket: SocketRef<A>, event: &str, reply: Reply<A>) {
    metrics::message_in(Transport::SocketIo, "unknown");
    let err = ChatError::invalid(format!("unknown event {:?}", excerpt(event, 64)));
    if reply.wants_ack() {
        reply::emit_error(&socket, &err);
    }
    reply.send(Err(err));
}

async fn on_disconnect<A: Adapter>(
    socket: SocketRef<A>,
    State(state): State<SioState>,
    reason: DisconnectReason,
) {
    // After every earlier event (and the connect handler), so nothing re-registers
    // the connection once it is gone.
    if let Some(line) = socket.extensions.get::<Arc<Line>>() {
        // An unbounded place: never refused.
        let _ = Turn::next(&line).wait().await;
    }
    let conn = sender_of(&socket).conn;
    state.chat.disconnect(&conn);
    if let Some(ExpiryTimer(stop)) = socket.extensions.remove::<ExpiryTimer>() {
        stop.cancel();
    }
    drop(socket.extensions.remove::<Arc<ConnectionPermit>>());
    info!(conn = %conn, ?reason, "socket.io disconnected");
}

/// One socket.io socket anywhere in the cluster.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RemoteSocketSummary {
    /// Socket id.
    pub id: String,
    /// Id of the socketioxide server (pod) holding it.
    pub server: String,
}

/// Every socket.io socket and room on namespace "/" across all pods (through the
/// adapter; on one node, this pod's).
pub async fn cluster_view<A: Adapter>(
    io: &socketioxide::SocketIo<A>,
) -> Result<(Vec<RemoteSocketSummary>, Vec<String>), String> {
    let ns = io.of("/").ok_or("namespace / is closed")?;
    let sockets = ns
        .clone()
        .fetch_sockets()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|s| RemoteSocketSummary {
            id: s.data().id.to_string(),
            server: s.data().server_id.to_string(),
        })
        .collect();
    let mut rooms: Vec<String> = ns
        .rooms()
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|r| r.to_string())
        .collect();
    rooms.sort();
    rooms.dedup();
    Ok((sockets, rooms))
}
