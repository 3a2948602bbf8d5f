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
//!   presence, typing, history rules and recovery, `ChatService`.
//! - [`store`]: history and presence state: in memory, or in Redis across pods.
//! - [`bus`]: pod-to-pod fan-out: nothing to do on one node; Redis pub/sub across pods.
//! - [`transport`]: protocol edges: the HTTP/1.1 accept loop (header read timeout),
//!   socket.io, raw WebSocket, HTTP (health, metrics, history API, OpenAPI), the demo page.
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
//!    claim).
//! 3. The chat hands one [`chat::Delivery`] to each transport's
//!    [`chat::LocalFanout`]: socket.io broadcasts `message:new` to the room (encoded
//!    once by socketioxide), the WebSocket hub encodes the JSON once and offers the same
//!    bytes to each member's bounded outbox, skipping the sender, never waiting.
//! 4. The chat stores it ([`store::HistoryStore`]) and queues it on the [`bus::Bus`] for
//!    other pods (Redis: stored then published, in order, pipelined); each other pod
//!    subscribed to the room hands it to its own local fan-outs, exactly as in step 3,
//!    with no origin to skip. The sender's ack waits for this step only.
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
pub mod server;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod transport;
