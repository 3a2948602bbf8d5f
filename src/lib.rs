//! chatwire: a realtime chat server speaking Socket.IO and a plain JSON WebSocket
//! protocol over one chat.
//!
//! # Module map
//! - [`conformance`]: the Socket.IO conformance server for the official protocol suites.
//! - [`autobahn`]: the raw WebSocket echo server for the Autobahn RFC 6455 cases.
//! - [`config`]: one typed `Config` from flags and env, validated.
//! - [`server`]: wires state, router and socket.io layer; graceful drain.
//! - [`healthcheck`]: `chatwire healthcheck`, the container probe.
//! - [`shutdown`]: SIGINT/SIGTERM to a cancellation token.
//! - [`telemetry`]: log setup (text or JSON lines), Prometheus metrics, and the upkeep
//!   thread that drains histograms and gives freed heap back to the system.
//! - [`gate`]: admission (origin, caps, connection rate, unfinished requests), JWT
//!   identity, event and read rate limits on bounded, fair tables.
//! - [`chat`]: the domain: rooms, membership, messages and validation, room policy,
//!   presence, typing, history rules and recovery, `ChatService`, and [`chat::ports`]:
//!   the traits it needs from outside (the bus, the history store, the presence store).
//!   It imports none of the modules below (tests/layering.rs checks).
//! - [`redis`]: the pod's one Redis connection and the Redis key layout of histories,
//!   shared by the bus and the stores, which never import each other.
//! - [`bus`]: implements the chat's bus: nothing to do on one node, in memory between
//!   in-process pods (tests), Redis pub/sub across pods; hands other pods' deliveries to
//!   the chat's `Inbound`.
//! - [`store`]: implements the chat's stores: history and presence in memory, or in
//!   Redis across pods (atomic Lua scripts for presence).
//! - [`transport`]: protocol edges: the HTTP/1.1 accept loop (header read timeout),
//!   socket.io (`socketio/`: events, fan-out, requests, turn), raw WebSocket (`ws/`:
//!   upgrade, session, writer, hub, protocol), HTTP (health, metrics, history API,
//!   OpenAPI), the demo page; one `AppState` for all of them.
//! - [`fuzzing`]: fuzz targets over the parsers of client input, for `fuzz/` and the
//!   corpus-replay tests.
//!
//! # Life of a message
//! 0. [`transport::accept`] takes the TCP connection (a bounded number per address may
//!    still be sending their first request, each within HEADER_READ_TIMEOUT) and hands
//!    each request to the router.
//! 1. A transport decodes a client frame (`message:send` event or `{"type":"chat"}`)
//!    into a room and content; room names are parsed into `RoomName` at this edge.
//! 2. The gate takes one from the sender's rate allowance; then
//!    [`chat::ChatService::post`] checks membership, size and content, stamps id (UUID
//!    v7), timestamp and `from` (the connection's verified identity, never the client's
//!    claim), and encodes the message's JSON once ([`chat::Encodings`]): the raw frame,
//!    the socket.io payload, the bus envelope's core and the stored record.
//! 3. Under the lock of the room's shard (rooms of other shards never wait), the chat
//!    stores it in an in-process history ([`chat::HistoryStore`]; one node), records it
//!    in the room's recent log (across pods), and hands one [`chat::Delivery`] with the
//!    room's live members (read from the one [`chat::Membership`] index) to each
//!    transport's [`chat::LocalFanout`]: socket.io broadcasts `message:new` to the room
//!    (its rooms mirror the index), the WebSocket hub offers the same bytes to each
//!    member's bounded outbox, skipping the sender, never waiting.
//! 4. The chat queues it on the [`chat::Bus`] for other pods (Redis: stored then
//!    published, in order, pipelined); each other pod subscribed to the room hands it
//!    to its chat ([`chat::Inbound`]), which delivers it to its own local fan-outs as in
//!    step 3, with no origin to skip. The sender's ack waits for this step only.
//! 5. Each connection's writer drains its outbox onto its socket.
//!
//! Nothing in steps 1-4 waits on a socket or on Redis, so a sender's messages reach
//! everyone in the order sent; socket.io events of one socket are taken in arrival order
//! ([`transport::socketio::Turn`]) although socketioxide runs each in its own task.

pub mod autobahn;
pub mod bus;
pub mod chat;
pub mod config;
pub mod conformance;
pub mod fuzzing;
pub mod gate;
pub mod healthcheck;
pub mod redis;
pub mod server;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod transport;
