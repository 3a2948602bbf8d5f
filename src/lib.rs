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
//!   presence, typing, each room's order by offset (`sequence.rs`), recovery, gap fills
//!   and the retention prune (`recovery.rs`), the messages posted here and not yet
//!   handed on (`posting.rs`), what the application's backend does (`backend.rs`:
//!   publish once per idempotency key, remove or disconnect a user on every pod,
//!   moderate), the chat product (`receipts.rs`: read positions and `receipt:update`;
//!   `reactions.rs`; `threads.rs`: replies in a thread's own room; `directory.rs`: which
//!   connections are in which rooms, for operators), `ChatService`, and [`chat::ports`]:
//!   the traits it needs from outside (the bus, the message log, the request keys, read
//!   positions, reactions, the presence store). It imports none of the modules below
//!   (tests/layering.rs checks).
//! - [`redis`]: the pod's one Redis connection, shared by the bus and the presence
//!   store, which never import each other, and the pods' address book (POD_URL under
//!   each pod's session tag). Redis holds no messages.
//! - [`bus`]: implements the chat's bus: nothing to do on one node, in memory between
//!   in-process pods (tests), Redis pub/sub across pods (best effort: the chat reads
//!   what it missed from the message log); hands other pods' deliveries, their answers
//!   to questions (a user's connections) and what the socket.io Redis emitter publishes
//!   (`bus/redis/emitter.rs`) to the chat's `Inbound`.
//! - [`store`]: implements the chat's stores: the message log with the request keys,
//!   read positions and reactions beside it (`store/log/`: `memory`, and `sql` for SQLite
//!   and PostgreSQL through sqlx, with the schema's migrations from `migrations/`
//!   embedded), and presence in memory or in Redis across pods (atomic Lua scripts; with
//!   Streamly's `rooms:active` and `connections:{room}` sets).
//! - [`transport`]: protocol edges: the HTTP/1.1 accept loop (header read timeout),
//!   socket.io (`socketio/`: events, fan-out, requests, turn), raw WebSocket (`ws/`:
//!   upgrade, session, writer, hub, protocol), HTTP (health, metrics, history API,
//!   OpenAPI), the server API for the application's backend (`server_api.rs`, API keys
//!   checked by the gate), the demo page, and `forward.rs`: requests for another pod's
//!   socket.io session forwarded to it (POD_URL, no sticky sessions needed); one
//!   `AppState` for all of them.
//! - [`fuzzing`]: fuzz targets over the parsers of client input, for `fuzz/` and the
//!   corpus-replay tests.
//!
//! # Life of a message
//! 0. [`transport::accept`] takes the TCP connection (a bounded number per address may
//!    still be sending their first request, each within HEADER_READ_TIMEOUT) and hands
//!    each request to the router.
//! 1. A transport decodes a client frame (`message:send` event or `{"type":"chat"}`,
//!    perhaps with a `request_id`) into a room and content; room names are parsed into
//!    `RoomName` at this edge.
//! 2. The gate takes one from the sender's rate allowance; then
//!    [`chat::ChatService::post`] checks membership, size and content, stamps id (UUID
//!    v7), timestamp and `from` (the connection's verified identity, never the client's
//!    claim), and queues the message to the [`chat::MessageLog`] without waiting. One
//!    connection's messages are queued in the order sent.
//! 3. The log commits what is queued as one transaction (the SQL log's group commit:
//!    one writer task, up to 512 messages), which gives each message the next offset of
//!    its room (1, 2, 3, ... without gaps, across pods). A batch that fails or does not
//!    commit within DATABASE_TIMEOUT fails with `UNAVAILABLE` and goes no further:
//!    nobody receives a message that is not stored.
//! 4. Before the append settles, the log hands the stored message to the chat
//!    ([`chat::Committed`]), which encodes its JSON once ([`chat::Encodings`]: the raw
//!    frame, the socket.io payload and the bus envelope's core). Under the lock of the
//!    room's shard (rooms of other shards never wait), the room's order hands it on in
//!    offset order: one [`chat::Delivery`] with the room's live members (read from the
//!    one [`chat::Membership`] index) to each transport's [`chat::LocalFanout`].
//!    socket.io broadcasts `message:new` to the room (its rooms mirror the index), the
//!    WebSocket hub offers the same bytes to each member's bounded outbox, skipping the
//!    sender, never waiting. Then the chat queues it on the [`chat::Bus`] for other pods
//!    (Redis: published in order, pipelined).
//! 5. The append settles and the sender gets its ack, with the offset (`"degraded":true`
//!    when the publish failed).
//! 6. Each other pod subscribed to the room hands it to its chat ([`chat::Inbound`]),
//!    which puts it in the room's order as in step 4: handed on if next, held while the
//!    missing ones are read from the log if early, dropped if already handed on.
//! 7. Each connection's writer drains its outbox onto its socket.
//!
//! Nothing in steps 1-4 waits on a socket or on Redis (only the log's writer waits, on
//! the database), and every member of a room gets its messages in one order, the
//! offsets'; socket.io events of one socket are taken in arrival order
//! ([`transport::socketio::Turn`]) although socketioxide runs each in its own task.
//!
//! On SIGTERM the server drains in the same order: it closes every connection, the log
//! drains its queue (stores what is queued and hands it on), the bus publishes what is
//! queued, and the Redis link stops.

pub mod autobahn;
pub mod bus;
pub mod chat;
pub mod config;
pub mod conformance;
pub mod fuzzing;
pub mod gate;
pub mod healthcheck;
pub mod hooks;
pub mod redis;
pub mod server;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod transport;
