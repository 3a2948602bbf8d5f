//! The Socket.IO transport: namespace "/" events (`room:join`, `room:leave`,
//! `message:send`) mapped onto the chat, answers as acks or `error` events, and the
//! socket.io side of local fan-out (`message:new`). Generic over the socketioxide
//! adapter: in-memory on one node, socketioxide-redis across pods.

pub mod admin;
mod cluster_driver;
mod events;
mod fanout;
mod reply;
mod requests;
mod turn;

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{SocketRef, State, TryData};
use socketioxide::{ParserConfig, SocketIoBuilder};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

pub use cluster_driver::LinkDriver;
pub use fanout::{SioFanout, EVENT_MESSAGE_NEW};
pub use reply::{error_body, Reply, EVENT_ERROR};
pub use requests::check_event_payload;
pub use turn::{Line, Turn};

use crate::chat::{ChatError, ConnId, Sender, Transport};
use crate::gate::unix_now;
use crate::hooks::Handshake;
use crate::transport::admission;
use crate::transport::state::AppState;

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

/// Applies chatwire's wire settings and the handlers' state to a socket.io builder.
pub fn configure<A: Adapter>(
    builder: SocketIoBuilder<A>,
    settings: SioSettings,
    state: AppState,
) -> SocketIoBuilder<A> {
    wire(builder, settings).with_state(state)
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
    #[serde(default)]
    /// A display name the client chose (taken when no token or backend names the user).
    pub name: Option<serde_json::Value>,
}

/// Connect middleware of namespace "/": origin, connection rate and caps, then the
/// token (handshake `auth.token`, or an `Authorization: Bearer` header).
pub async fn admit<A: Adapter>(
    socket: SocketRef<A>,
    State(state): State<AppState>,
    TryData(auth): TryData<serde_json::Value>,
) -> Result<(), Refusal> {
    let parts = socket.req_parts();
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    let auth = auth.unwrap_or_default();
    let payload = serde_json::from_value::<AuthPayload>(auth.clone()).unwrap_or_default();
    let chosen_name = match payload.name {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(name)) => Some(name),
        Some(_) => {
            return Err(Refusal::new(ChatError::invalid(
                "auth.name must be a string",
            )))
        }
    };
    let token = payload.token;
    let claimed = (state.gate).credentials(peer, &parts.headers, None, token.as_deref());
    let permit = (state.gate)
        .admit(claimed.ip, &parts.headers)
        .map_err(Refusal::new)?;
    let conn = ConnId::new(socket.id.to_string());
    let handshake = || Handshake {
        transport: "socketio",
        token: claimed.token.map(str::to_owned),
        ip: claimed.ip.to_string(),
        headers: admission::hook_headers(&parts.headers),
        auth,
    };
    let admission = admission::identify(&state, conn, &claimed, chosen_name.as_deref(), handshake)
        .await
        .map_err(Refusal::new)?;
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
    socket.on_fallback(events::on_event::<A>);
    socket.on_disconnect(events::on_disconnect::<A>);
    Ok(())
}

#[derive(Clone, Copy)]
struct TokenExpiry(u64);

/// The connect handler of namespace "/": registers the socket and its event handlers.
pub async fn on_connect<A: Adapter>(socket: SocketRef<A>, State(state): State<AppState>) {
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
