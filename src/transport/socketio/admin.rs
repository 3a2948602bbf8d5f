//! The `/admin` namespace in the protocol `@socket.io/admin-ui` speaks (its server side
//! is Node-only upstream): login with ADMIN_USERNAME / ADMIN_PASSWORD (or the session id
//! it was given), `config`, `server_stats` every 2 s from every pod, `all_sockets`
//! (both transports, every pod, asked over the bus), live `socket_connected`,
//! `socket_disconnected`, `room_joined`, `room_left` from every pod, and the UI's
//! commands `emit`, `join`, `leave`, `_disconnect`, applied on every pod through the
//! chat. Off unless both settings are set.
//!
//! Every pod broadcasts its own events to the namespace through the socket.io adapter
//! (Redis across pods), so a UI connected to any pod sees all of them, once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::Sha256;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{Event, SocketRef, State, TryData};
use socketioxide::SocketIo;
use subtle::ConstantTimeEq;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::fanout::Args;
use super::Refusal;
use crate::chat::{
    rfc3339_of_ms, ChatError, ConnId, Delivery, LocalFanout, Recipients, RoomName, RoomsCommand,
    Selection, Transport, UserConnection,
};
use crate::config::Secret;
use crate::transport::state::AppState;

/// The namespace's path.
pub const NAMESPACE: &str = "/admin";

/// How often every pod sends its `server_stats`.
pub const STATS_EVERY: Duration = Duration::from_secs(2);

/// Events waiting to be broadcast to the namespace, at most; beyond it they are dropped
/// (the UI's next `all_sockets` is whole again).
const FEED_QUEUE: usize = 4096;

/// What the UI may do (all of the upstream features).
const FEATURES: [&str; 7] = [
    "EMIT",
    "JOIN",
    "LEAVE",
    "DISCONNECT",
    "MJOIN",
    "MLEAVE",
    "MDISCONNECT",
];

/// The operator's credentials.
#[derive(Clone)]
pub struct AdminAccess {
    username: Arc<str>,
    password: Arc<Secret>,
}

impl std::fmt::Debug for AdminAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminAccess")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl AdminAccess {
    /// Access for `username` with `password`; `None` when either is empty (off).
    pub fn new(username: &str, password: &Secret) -> Option<Self> {
        (!username.is_empty() && !password.is_empty()).then(|| Self {
            username: Arc::from(username),
            password: Arc::new(password.clone()),
        })
    }

    /// The session id the UI keeps to log in again: the same on every pod, derived from
    /// the credentials (changing the password ends every session).
    fn session_id(&self) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(self.password.expose().as_bytes())
            .unwrap_or_else(|_| unreachable!("an HMAC takes a key of any length"));
        mac.update(b"chatwire-admin-session\0");
        mac.update(self.username.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `login` carries the credentials or a session id; `Some(true)` when it
    /// logged in with the password (the UI then gets its session id).
    fn check(&self, login: &Login) -> Option<bool> {
        let eq = |a: &str, b: &str| bool::from(a.as_bytes().ct_eq(b.as_bytes()));
        if let Some(session) = &login.session_id {
            if eq(session, &self.session_id()) {
                return Some(false);
            }
        }
        let user_ok = eq(
            login.username.as_deref().unwrap_or_default(),
            &self.username,
        );
        let password_ok = eq(
            login.password.as_deref().unwrap_or_default(),
            self.password.expose(),
        );
        (user_ok & password_ok).then_some(true)
    }
}

/// The handshake `auth` payload of the UI.
#[derive(Deserialize, Default)]
pub struct Login {
    /// ADMIN_USERNAME.
    #[serde(default)]
    pub username: Option<String>,
    /// ADMIN_PASSWORD.
    #[serde(default)]
    pub password: Option<String>,
    /// The session id of an earlier login.
    #[serde(default, rename = "sessionId")]
    pub session_id: Option<String>,
}

/// Set on a socket that logged in with the password.
#[derive(Clone)]
struct NewSession;

/// Connect middleware: origin and rate as every connection, then the credentials.
pub async fn admit<A: Adapter>(
    socket: SocketRef<A>,
    State(state): State<AppState>,
    TryData(login): TryData<Login>,
) -> Result<(), Refusal> {
    let parts = socket.req_parts();
    let peer = parts
        .extensions
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0);
    let ip = state.gate.client_ip(peer, &parts.headers);
    let permit = state.gate.admit(ip, &parts.headers).map_err(Refusal::new)?;
    let Some(access) = &state.admin else {
        return Err(Refusal::new(ChatError::NotFound(
            "no admin namespace".into(),
        )));
    };
    match access.check(&login.unwrap_or_default()) {
        Some(with_password) => {
            if with_password {
                socket.extensions.insert(NewSession);
            }
            socket.extensions.insert(Arc::new(permit));
            info!(%ip, "admin UI logged in");
            Ok(())
        }
        None => Err(Refusal::new(ChatError::AuthFailed(
            "invalid credentials".into(),
        ))),
    }
}

/// How the UI shows one connection.
fn serialized(pod: &str, c: &UserConnection) -> Value {
    let (transport, url) = match c.transport {
        Transport::SocketIo => ("websocket", "/socket.io/"),
        Transport::Ws => ("raw-websocket", "/ws"),
    };
    let time = if c.connected_at_ms > 0 {
        rfc3339_of_ms(c.connected_at_ms)
    } else {
        String::new()
    };
    json!({
        "id": c.conn,
        "clientId": c.conn.chars().take(12).collect::<String>(),
        "transport": transport,
        "nsp": "/",
        "data": { "user": c.user, "pod": pod, "protocol": c.transport },
        // What is kept of the handshake: the address and the time. Never the headers
        // or the query, which may hold the token.
        "handshake": {
            "address": c.address.map(|a| a.to_string()).unwrap_or_default(),
            "headers": {},
            "query": {},
            "issued": c.connected_at_ms,
            "secure": false,
            "time": time,
            "url": url,
            "xdomain": false,
        },
        "rooms": c.rooms,
    })
}

/// The connect handler: session, config, every socket, and the UI's commands.
pub async fn on_connect<A: Adapter>(socket: SocketRef<A>, State(state): State<AppState>) {
    if socket.extensions.get::<NewSession>().is_some() {
        if let Some(access) = &state.admin {
            let _ = socket.emit("session", &access.session_id());
        }
    }
    let _ = socket.emit("config", &json!({ "supportedFeatures": FEATURES }));
    socket.on_fallback(on_command);
    match state.chat.user_connections(None).await {
        Ok(asked) => {
            let sockets: Vec<Value> = asked
                .answers
                .iter()
                .flat_map(|pod| pod.connections.iter().map(|c| serialized(&pod.pod, c)))
                .collect();
            let _ = socket.emit("all_sockets", &sockets);
        }
        Err(e) => debug!(error = %e, "admin UI: sockets not listed"),
    }
}

/// The rooms a UI filter names (a room, or a socket id, which selects that socket).
fn selection_of(filter: Option<&Value>) -> Option<Selection> {
    match filter {
        None | Some(Value::Null) => Some(Selection::default()),
        Some(Value::String(s)) if s.is_empty() => Some(Selection::default()),
        Some(Value::String(s)) => RoomName::parse(s).ok().map(|room| Selection {
            rooms: vec![room],
            except: Vec::new(),
        }),
        Some(_) => None,
    }
}

/// Every argument of an event (socketioxide hands a tuple's elements as the event's
/// arguments, and one value alone as its first).
pub struct AllArgs(Vec<Value>);

impl<'de> Deserialize<'de> for AllArgs {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Each;
        impl<'de> serde::de::Visitor<'de> for Each {
            type Value = AllArgs;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("event arguments")
            }
            fn visit_seq<S: serde::de::SeqAccess<'de>>(
                self,
                mut seq: S,
            ) -> Result<AllArgs, S::Error> {
                let mut args = Vec::new();
                while let Some(arg) = seq.next_element::<Value>()? {
                    if args.len() == MAX_ARGS {
                        return Err(serde::de::Error::custom("too many arguments"));
                    }
                    args.push(arg);
                }
                Ok(AllArgs(args))
            }
        }
        d.deserialize_tuple(MAX_ARGS, Each)
    }
}

/// Arguments of one UI command, at most.
const MAX_ARGS: usize = 32;

/// The UI's commands; any other event is ignored.
async fn on_command(
    State(state): State<AppState>,
    Event(event): Event,
    TryData(args): TryData<AllArgs>,
) {
    let args = args.map(|AllArgs(args)| args).unwrap_or_default();
    // Every command names namespace "/" first; chatwire has no other.
    if args.first().and_then(Value::as_str) != Some("/") {
        return debug!(event, "admin UI command for another namespace ignored");
    }
    let chat = &state.chat;
    let receipt = match event.as_str() {
        "emit" => {
            let (Some(selection), Some(name)) = (
                selection_of(args.get(1)),
                args.get(2).and_then(Value::as_str),
            ) else {
                return;
            };
            let rest = args.get(3..).unwrap_or_default().to_vec();
            chat.emit_everywhere(selection, name.to_owned(), rest)
        }
        "join" | "leave" => {
            let (Some(room), Some(selection)) = (
                args.get(1)
                    .and_then(Value::as_str)
                    .and_then(|r| RoomName::parse(r).ok()),
                selection_of(args.get(2)),
            ) else {
                return;
            };
            let command = if event == "join" {
                RoomsCommand::Join(vec![room])
            } else {
                RoomsCommand::Leave(vec![room])
            };
            chat.command_everywhere(selection, command)
        }
        "_disconnect" => {
            let Some(selection) = selection_of(args.get(2)) else {
                return;
            };
            chat.command_everywhere(selection, RoomsCommand::Disconnect)
        }
        other => return debug!(event = other, "unknown admin UI event"),
    };
    info!(event, "admin UI command");
    if let Err(e) = receipt.outcome().await {
        debug!(error = %e, "admin UI command reached this pod only");
    }
}

/// This pod's connection events, broadcast to the namespace on every pod in order.
pub struct AdminFeed {
    pod: String,
    events: mpsc::Sender<(&'static str, Vec<Value>)>,
}

impl AdminFeed {
    /// Starts the feed of `io`'s namespace for pod `pod`, and its `server_stats`, until
    /// `stop`.
    pub fn start<A: Adapter>(
        io: SocketIo<A>,
        pod: String,
        state: AppState,
        stop: CancellationToken,
    ) -> Arc<Self> {
        let (events, mut rx) = mpsc::channel::<(&'static str, Vec<Value>)>(FEED_QUEUE);
        let started = Instant::now();
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| pod.clone());
        let stats_pod = pod.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(STATS_EVERY);
            loop {
                let (name, args) = tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => {
                        let counts = state.chat.membership().counts();
                        let stats = json!({
                            "serverId": stats_pod, "hostname": hostname, "pid": std::process::id(),
                            "uptime": started.elapsed().as_secs_f64(),
                            "clientsCount": counts.socketio + counts.ws,
                            "pollingClientsCount": 0,
                            "aggregatedEvents": [],
                            "namespaces": [{ "name": "/", "socketsCount": counts.socketio + counts.ws }],
                        });
                        ("server_stats", vec![stats])
                    }
                    event = rx.recv() => match event { Some(event) => event, None => return },
                };
                let Some(ns) = io.of(NAMESPACE) else { continue };
                if let Err(e) = ns.emit(name, &Args(&args)).await {
                    debug!(error = %e, "admin UI event not broadcast");
                }
            }
        });
        Arc::new(Self { pod, events })
    }

    fn send(&self, name: &'static str, args: Vec<Value>) {
        if self.events.try_send((name, args)).is_err() {
            debug!("admin UI event dropped at a full queue");
        }
    }
}

impl LocalFanout for AdminFeed {
    fn deliver(&self, _delivery: &Delivery, _recipients: &Recipients<'_>) {}

    fn connected(&self, connection: &UserConnection) {
        self.send("socket_connected", vec![serialized(&self.pod, connection)]);
    }

    fn disconnected(&self, conn: &ConnId, _transport: Transport) {
        self.send(
            "socket_disconnected",
            vec![json!("/"), json!(conn), json!("transport close")],
        );
    }

    fn joined(&self, conn: &ConnId, _transport: Transport, room: &RoomName) {
        self.send("room_joined", vec![json!("/"), json!(room), json!(conn)]);
    }

    fn left(&self, conn: &ConnId, _transport: Transport, room: &RoomName) {
        self.send("room_left", vec![json!("/"), json!(room), json!(conn)]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_and_session_ids_are_checked() {
        let access = AdminAccess::new("ops", &Secret::from("a-long-password")).unwrap();
        let login = |u: &str, p: &str| Login {
            username: Some(u.into()),
            password: Some(p.into()),
            session_id: None,
        };
        assert_eq!(access.check(&login("ops", "a-long-password")), Some(true));
        assert_eq!(access.check(&login("ops", "a-long-passwor")), None);
        assert_eq!(access.check(&login("op", "a-long-password")), None);
        assert_eq!(access.check(&Login::default()), None);
        let session = Login {
            session_id: Some(access.session_id()),
            ..Login::default()
        };
        assert_eq!(access.check(&session), Some(false));
        let other = AdminAccess::new("ops", &Secret::from("another-password")).unwrap();
        assert_eq!(other.check(&session), None);
        assert!(AdminAccess::new("", &Secret::from("x")).is_none());
        assert!(!format!("{access:?}").contains("a-long-password"));
    }
}
