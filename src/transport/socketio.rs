//! The Socket.IO transport: namespace "/" events (`room:join`, `room:leave`,
//! `message:send`) mapped onto the chat, replies as acks or `error` events, and the
//! socket.io side of local fan-out (`message:new`).

use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::Deserialize;
use serde_json::{json, Value};
use socketioxide::adapter::{Adapter, LocalAdapter};
use socketioxide::extract::{AckSender, Event, SocketRef, State, TryData};
use socketioxide::handler::FromMessageParts;
use socketioxide::layer::SocketIoLayer;
use socketioxide::socket::{DisconnectReason, Sid, Socket};
use socketioxide::{ParserError, SocketIo};
use socketioxide_core::Value as SioValue;
use tracing::{debug, info};

use crate::chat::{
    excerpt, ChatError, ChatService, ConnId, Delivery, LocalFanout, RoomName, Sender, Transport,
};
use crate::gate::Gate;

/// Event carrying a chat message to clients.
pub const EVENT_MESSAGE_NEW: &str = "message:new";
/// Event carrying an error when the client asked for no ack.
pub const EVENT_ERROR: &str = "error";
/// Room-independent slack added to MAX_MESSAGE_BYTES for socket.io packet framing, so an
/// oversized message is answered with MESSAGE_TOO_LARGE rather than a dropped connection.
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
}

/// State shared by the socket.io handlers.
#[derive(Clone)]
pub struct SioState {
    chat: Arc<ChatService>,
    gate: Gate,
}

/// Builds the socket.io layer with chatwire's handlers on namespace "/".
pub fn build(
    settings: SioSettings,
    chat: Arc<ChatService>,
    gate: Gate,
) -> (SocketIoLayer, SocketIo) {
    let frame_limit = settings.max_message_bytes + FRAME_SLACK_BYTES;
    let (layer, io) = SocketIo::builder()
        .ping_interval(settings.ping_interval)
        .ping_timeout(settings.ping_timeout)
        .max_payload(frame_limit as u64)
        .ws_max_message_size(frame_limit)
        .ws_max_frame_size(frame_limit)
        .max_buffer_size(settings.send_buffer)
        .with_state(SioState { chat, gate })
        .build_layer();
    io.ns("/", on_connect);
    (layer, io)
}

async fn on_connect(socket: SocketRef, State(state): State<SioState>) {
    let conn = ConnId::new(socket.id.to_string());
    state.chat.connect(conn.clone(), Transport::SocketIo);
    socket.extensions.insert(state.gate.identify(&conn));
    socket.on("room:join", on_join);
    socket.on("room:leave", on_leave);
    socket.on("message:send", on_send);
    socket.on_fallback(on_unknown);
    socket.on_disconnect(on_disconnect);
    info!(conn = %conn, transport = ?socket.transport_type(), "socket.io connected");
}

fn sender_of(socket: &SocketRef) -> Sender {
    socket.extensions.get::<Sender>().unwrap_or_else(|| Sender {
        conn: ConnId::new(socket.id.to_string()),
        user: socket.id.to_string(),
    })
}

#[derive(Deserialize)]
struct RoomRequest {
    room: RoomName,
}

#[derive(Deserialize)]
struct SendRequest {
    #[serde(default)]
    room: Option<RoomName>,
    content: String,
}

async fn on_join(
    socket: SocketRef,
    State(state): State<SioState>,
    TryData(req): TryData<RoomRequest>,
    reply: Reply,
) {
    let result = payload(req).and_then(|req| {
        let sender = sender_of(&socket);
        state.chat.join(&sender.conn, &req.room)?;
        socket.join(req.room.to_string());
        Ok(json!({ "status": "ok", "room": req.room }))
    });
    reply.send(result);
}

async fn on_leave(
    socket: SocketRef,
    State(state): State<SioState>,
    TryData(req): TryData<RoomRequest>,
    reply: Reply,
) {
    let result = payload(req).map(|req| {
        socket.leave(req.room.to_string());
        state.chat.leave(&sender_of(&socket).conn, &req.room);
        json!({ "status": "ok", "room": req.room })
    });
    reply.send(result);
}

async fn on_send(
    socket: SocketRef,
    State(state): State<SioState>,
    TryData(req): TryData<SendRequest>,
    reply: Reply,
) {
    let result = match payload(req) {
        Ok(req) => state
            .chat
            .post(&sender_of(&socket), req.room, req.content)
            .await
            .map(|m| json!({ "status": "ok", "id": m.id, "timestamp": m.timestamp })),
        Err(e) => Err(e),
    };
    reply.send(result);
}

async fn on_unknown(socket: SocketRef, Event(event): Event, reply: Reply) {
    let err = ChatError::invalid(format!("unknown event {:?}", excerpt(&event, 64)));
    if reply.wants_ack() {
        emit_error(&socket, &err);
    }
    reply.send(Err(err));
}

async fn on_disconnect(socket: SocketRef, State(state): State<SioState>, reason: DisconnectReason) {
    let conn = sender_of(&socket).conn;
    state.chat.disconnect(&conn);
    info!(conn = %conn, ?reason, "socket.io disconnected");
}

fn payload<T>(req: Result<T, ParserError>) -> Result<T, ChatError> {
    req.map_err(|e| ChatError::invalid(e.to_string()))
}

fn error_body(err: &ChatError) -> Value {
    json!({ "status": "error", "code": err.code(), "message": err.to_string() })
}

fn emit_error(socket: &SocketRef, err: &ChatError) {
    if let Err(e) = socket.emit(EVENT_ERROR, &error_body(err)) {
        debug!(error = %e, "could not emit error event");
    }
}

/// Answers a client event: through its ack when it asked for one, otherwise errors are
/// emitted as an `error` event (successes need no answer then).
pub struct Reply<A: Adapter = LocalAdapter> {
    socket: SocketRef<A>,
    ack: Option<AckSender<A>>,
}

impl<A: Adapter> Reply<A> {
    /// Whether the client asked for an ack.
    pub fn wants_ack(&self) -> bool {
        self.ack.is_some()
    }

    /// Sends the result: `Ok(body)` or the error in the catalogue's shape.
    pub fn send(self, result: Result<Value, ChatError>) {
        let body = match &result {
            Ok(body) => body.clone(),
            Err(err) => error_body(err),
        };
        let sent = match (self.ack, &result) {
            (Some(ack), _) => ack.send(&body),
            (None, Err(_)) => self.socket.emit(EVENT_ERROR, &body),
            (None, Ok(_)) => Ok(()),
        };
        if let Err(e) = sent {
            debug!(error = %e, "reply not sent");
        }
    }
}

impl<A: Adapter> FromMessageParts<A> for Reply<A> {
    type Error = std::convert::Infallible;

    fn from_message_parts(
        s: &Arc<Socket<A>>,
        v: &mut SioValue,
        ack_id: &Option<i64>,
    ) -> Result<Self, Self::Error> {
        let ack = match ack_id {
            Some(_) => Some(AckSender::from_message_parts(s, v, ack_id)?),
            None => None,
        };
        Ok(Self {
            socket: SocketRef::from(s.clone()),
            ack,
        })
    }
}

/// The socket.io side of local fan-out: one broadcast per delivery (socketioxide encodes
/// the packet once), restricted to this pod, skipping the sending socket.
#[derive(Default)]
pub struct SioFanout {
    io: OnceLock<SocketIo>,
}

impl SioFanout {
    /// Connects the fan-out to the socket.io server once it is built.
    pub fn attach(&self, io: SocketIo) {
        if self.io.set(io).is_err() {
            debug!("socket.io fan-out already attached");
        }
    }
}

impl LocalFanout for SioFanout {
    fn deliver<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            // `of` rather than the root shortcuts: those panic once `io.close()` removed "/".
            let Some(ns) = self.io.get().and_then(|io| io.of("/")) else {
                return;
            };
            let origin = delivery
                .origin
                .as_ref()
                .and_then(|c| Sid::from_str(c.as_str()).ok())
                .and_then(|sid| ns.get_socket(sid));
            let ops = match origin {
                Some(socket) => socket.broadcast().local(),
                None => ns.local(),
            };
            let ops = match &delivery.message.room {
                Some(room) => ops.to(room.to_string()),
                None => ops,
            };
            if let Err(e) = ops.emit(EVENT_MESSAGE_NEW, &*delivery.message).await {
                debug!(error = %e, "socket.io broadcast incomplete");
            }
        })
    }
}
