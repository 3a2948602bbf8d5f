//! Wires the state, the router (HTTP, raw WebSocket, socket.io layer), the bus and the
//! graceful drain. [`run`] serves until the shutdown token is cancelled, then drains
//! within SHUTDOWN_TIMEOUT.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::Router;
use futures_util::future::BoxFuture;
use socketioxide::adapter::{Adapter, Emitter};
use socketioxide::handler::ConnectHandler;
use socketioxide::{SocketIo, SocketIoBuilder};
use socketioxide_core::adapter::{DefinedAdapter, Spawnable};
use socketioxide_redis::{CustomRedisAdapter, RedisAdapterConfig, RedisAdapterCtr};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};
use uuid::Uuid;

use crate::bus::memory::MemoryHub;
use crate::bus::redis::RedisBus;
use crate::bus::LocalBus;
use crate::chat::{
    Bus, Channels, ChatService, ChatSettings, Inbound, LocalFanout, MessageLog, Reactions,
    ReadPositions, RequestKeys, Retention, Stores, Transport,
};
use crate::config::Config;
use crate::gate::{Gate, GateClock};
use crate::hooks::Hooks;
use crate::redis::{PodAddresses, RedisLink};
use crate::store::log::memory::MemoryLog;
use crate::store::log::sql::{self, SqlLog, SqlSettings};
use crate::store::log::LogLocation;
use crate::store::memory::MemoryPresence;
use crate::store::redis::RedisPresence;
use crate::transport::forward::{self, SessionRouter};
use crate::transport::http;
use crate::transport::socketio::admin::{self, AdminAccess, AdminFeed};
use crate::transport::socketio::LinkDriver;
use crate::transport::socketio::{self, SioFanout, SioSettings};
use crate::transport::state::{AppState, LateDirectory, SocketDirectory};
use crate::transport::ws::{self, WsSettings};
use crate::transport::ws::{close_code, WsHub};
use crate::transport::{accept, demo, rooms_api, server_api};

/// How often rate-limit keys back at their full allowance are forgotten.
const FORGET_IDLE_KEYS_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// The socketioxide adapter used across pods.
pub type ClusterAdapter = CustomRedisAdapter<Emitter, LinkDriver>;

/// Serves on `listener` until `shutdown` is cancelled, then drains and returns.
/// Single node when REDIS_URL is empty; otherwise one pod of a cluster over Redis.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    run_with_clock(listener, config, shutdown, GateClock::default()).await
}

/// Several pods in one process, joined by an in-memory bus and sharing an in-memory
/// message log and presence, as pods share Redis and PostgreSQL (multi-pod tests
/// without redis-server). Cheap to clone.
#[derive(Clone, Default)]
pub struct InProcessCluster {
    hub: MemoryHub,
    log: MemoryLog,
    presence: MemoryPresence,
}

/// Opens the message log DATABASE_URL names, migrating its schema.
pub async fn open_log(config: &Config) -> anyhow::Result<Arc<dyn MessageLog>> {
    Ok(open_database(config).await?.0)
}

/// The message log DATABASE_URL names (its schema migrated), and the server API's
/// idempotency keys kept beside it.
pub async fn open_database(config: &Config) -> anyhow::Result<Database> {
    let location = log_location(config)?;
    if location == LogLocation::Memory {
        info!("message log in memory: nothing is kept across restarts");
        let log = Arc::new(MemoryLog::default());
        return Ok((log.clone(), log.clone(), log.clone(), log.clone(), log));
    }
    let log = SqlLog::open(&location, sql_settings(config))
        .await
        .map_err(|e| anyhow::anyhow!("DATABASE_URL ({}): {e}", location.kind()))?;
    match &location {
        LogLocation::Sqlite(path) => info!(%path, "message log in sqlite"),
        _ => info!("message log in postgres"),
    }
    let log = Arc::new(log);
    Ok((log.clone(), log.clone(), log.clone(), log.clone(), log))
}

/// The stores kept in the database: the message log, the request keys, read positions
/// and reactions.
pub type Database = (
    Arc<dyn MessageLog>,
    Arc<dyn RequestKeys>,
    Arc<dyn ReadPositions>,
    Arc<dyn Reactions>,
    Arc<dyn Channels>,
);

/// `chatwire migrate`: brings DATABASE_URL's schema up to date; how many migrations ran.
pub async fn migrate(config: &Config) -> anyhow::Result<usize> {
    let location = log_location(config)?;
    if location == LogLocation::Memory {
        return Ok(0);
    }
    let fail = |e: sql::OpenError| anyhow::anyhow!("DATABASE_URL ({}): {e}", location.kind());
    let pool = sql::connect(&location, sql_settings(config))
        .await
        .map_err(fail)?;
    let applied = sql::migrate(&pool).await.map_err(fail)?;
    pool.close().await;
    Ok(applied)
}

fn log_location(config: &Config) -> anyhow::Result<LogLocation> {
    config
        .log_location()
        .map_err(|reason| anyhow::anyhow!("invalid value for DATABASE_URL: {reason}"))
}

fn sql_settings(config: &Config) -> SqlSettings {
    SqlSettings {
        timeout: config.database_timeout,
        max_connections: config.database_max_connections,
        sqlite_full_sync: config.sqlite_synchronous == crate::config::SqliteSynchronous::Full,
    }
}

/// Serves one pod of `cluster` on `listener` until `shutdown`, like [`run`].
pub async fn run_in_process(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
    cluster: InProcessCluster,
) -> anyhow::Result<()> {
    let gate = Gate::new(&config, GateClock::default())
        .map_err(|(key, reason)| anyhow::anyhow!("invalid value for {key}: {reason}"))?;
    let bus = Arc::new(cluster.hub.pod());
    let presence = cluster.presence.pod(&Uuid::now_v7().to_string());
    let log = Arc::new(cluster.log.pod());
    let stores = Stores {
        log: log.clone(),
        presence: Arc::new(presence.clone()),
        keys: log.clone(),
        reads: log.clone(),
        reactions: log.clone(),
        channels: log,
    };
    let attach = bus.clone();
    let start = move |chat: Arc<ChatService>| {
        let chat: Arc<dyn Inbound> = chat;
        attach.attach(Arc::downgrade(&chat));
        Links::default()
    };
    let result = serve_with(
        listener,
        config,
        shutdown,
        gate,
        bus,
        stores,
        SocketIo::builder(),
        start,
    )
    .await;
    // A stopped pod's users no longer count anywhere.
    presence.stop();
    result
}

/// [`run`] with the rate limiters on `clock` (tests advance it instead of waiting).
pub async fn run_with_clock(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
    clock: GateClock,
) -> anyhow::Result<()> {
    // Install the metrics recorder before anything records.
    if crate::telemetry::metrics::handle().is_none() {
        warn!("metrics recorder not installed; /metrics answers 503");
    }
    let gate = Gate::new(&config, clock)
        .map_err(|(key, reason)| anyhow::anyhow!("invalid value for {key}: {reason}"))?;
    if config.redis_url.is_empty() {
        let (log, keys, reads, reactions, channels) = open_database(&config).await?;
        let bus = Arc::new(LocalBus);
        // One node: presence is the chat's own local counts (a single-node chat never
        // asks the presence store).
        let stores = Stores {
            log,
            presence: Arc::new(MemoryPresence::default()),
            keys,
            reads,
            reactions,
            channels,
        };
        let builder = SocketIo::builder();
        return serve_with(
            listener,
            config,
            shutdown,
            gate,
            bus,
            stores,
            builder,
            |_| Links::default(),
        )
        .await;
    }
    let pod = Uuid::now_v7().to_string();
    let link = RedisLink::open(config.redis_url.expose(), config.redis_timeout)?;
    let (log, keys, reads, reactions, channels) = open_database(&config).await?;
    let stores = Stores {
        log,
        reads,
        reactions,
        channels,
        presence: Arc::new(RedisPresence::new(
            link.clone(),
            pod.clone(),
            config.presence_ttl,
        )),
        keys,
    };
    let (bus, tasks) = RedisBus::new(
        link.clone(),
        pod.clone(),
        config.redis_timeout,
        config.bus_inbound_queue,
        config.redis_emitter,
    );
    info!(%pod, "scale-out over redis");
    // Not children of `shutdown`: the drain stops them in order, after the connections.
    let (bus_drain, link_stop) = (CancellationToken::new(), CancellationToken::new());
    tokio::spawn(link.clone().heartbeat(link_stop.clone()));
    let addresses = PodAddresses::new(link.clone());
    let adapter = RedisAdapterCtr::new_with_driver(
        LinkDriver {
            link,
            emitter_requests: bus.emitter_requests(),
        },
        RedisAdapterConfig::new().with_request_timeout(config.redis_timeout),
    );
    let builder = SocketIo::builder().with_adapter::<ClusterAdapter>(adapter);
    let sessions = session_router(&config, &pod, addresses, &shutdown);
    let bus_for_run = bus.clone();
    let start = move |chat: Arc<ChatService>| {
        let inbound: Arc<dyn Inbound> = chat;
        Links {
            bus: Some((
                bus_drain.clone(),
                tokio::spawn(bus_for_run.run(tasks, inbound, bus_drain)),
            )),
            link_stop: Some(link_stop),
            sessions,
        }
    };
    serve_with(
        listener, config, shutdown, gate, bus, stores, builder, start,
    )
    .await
}

/// With POD_URL: the router that forwards requests for other pods' socket.io sessions,
/// and this pod's address advertised until `shutdown`.
fn session_router(
    config: &Config,
    pod: &str,
    addresses: PodAddresses,
    shutdown: &CancellationToken,
) -> Option<SessionRouter> {
    if config.pod_url.is_empty() {
        info!("POD_URL unset: socket.io long-polling needs sticky sessions at the load balancer");
        return None;
    }
    let tag = forward::tag_of(pod);
    info!(%tag, pod_url = %config.pod_url, "socket.io sessions are forwarded to their pod");
    tokio::spawn(addresses.clone().advertise(
        tag.clone(),
        config.pod_url.clone(),
        shutdown.child_token(),
    ));
    Some(SessionRouter::new(
        tag,
        addresses,
        config.ping_interval + config.pong_timeout,
        config.header_read_timeout / 2,
        shutdown.child_token(),
    ))
}

#[allow(clippy::too_many_arguments)]
async fn serve_with<A: Adapter + DefinedAdapter>(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
    gate: Gate,
    bus: Arc<dyn Bus>,
    stores: Stores,
    builder: SocketIoBuilder<A>,
    start_bus: impl FnOnce(Arc<ChatService>) -> Links,
) -> anyhow::Result<()> {
    let log = stores.log.clone();
    let chat = ChatService::new(
        bus.clone(),
        stores,
        ChatSettings {
            max_message_bytes: config.max_message_bytes,
            presence_grace: config.presence_grace,
            presence_heartbeat: config.presence_ttl / 3,
            typing_timeout: config.typing_timeout,
            retention: Retention {
                limit: (config.history_limit > 0).then_some(config.history_limit),
                ttl: config.history_ttl,
            },
        },
    );
    let hooks = Hooks::new(&config)
        .map_err(|(key, reason)| anyhow::anyhow!("invalid value for {key}: {reason}"))?;
    chat.set_backend(hooks.message_filter(), hooks.observer());
    let links = start_bus(chat.clone());
    tokio::spawn(chat.clone().run_background(shutdown.child_token()));
    // Messages dropped at full outboxes, by either transport.
    let dropped = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let hub = Arc::new(WsHub::new(config.pong_timeout, dropped.clone()));
    let settings = SioSettings {
        ping_interval: config.ping_interval,
        ping_timeout: config.pong_timeout,
        max_message_bytes: config.max_message_bytes,
        send_buffer: config.send_buffer,
        connect_timeout: socketio::DEFAULT_CONNECT_TIMEOUT,
    };
    let state = AppState {
        chat: chat.clone(),
        gate: gate.clone(),
        hub: hub.clone(),
        bus: bus.clone(),
        draining: Arc::new(AtomicBool::new(false)),
        directory: Arc::new(LateDirectory::default()),
        tracker: TaskTracker::new(),
        ws_settings: WsSettings {
            max_message_bytes: config.max_message_bytes,
            ping_interval: config.ping_interval,
            pong_timeout: config.pong_timeout,
            send_buffer: config.send_buffer,
        },
        hooks: hooks.clone(),
        admin: AdminAccess::new(&config.admin_username, &config.admin_password),
    };
    let (sio_layer, io) = socketio::configure(builder, settings, state.clone()).build_layer();
    state.directory.set(Arc::new(SioDirectory(io.clone())));
    io.ns("/", socketio::on_connect::<A>.with(socketio::admit::<A>))
        .spawn();
    let sio_fanout = Arc::new(SioFanout::new(dropped));
    sio_fanout.attach(io.clone());
    let mut fanouts = vec![
        sio_fanout as Arc<dyn LocalFanout>,
        hub.clone() as Arc<dyn LocalFanout>,
    ];
    if state.admin.is_some() {
        io.ns(
            admin::NAMESPACE,
            admin::on_connect::<A>.with(admin::admit::<A>),
        )
        .spawn();
        let feed = AdminFeed::start(
            io.clone(),
            bus.pod_id(),
            state.clone(),
            shutdown.child_token(),
        );
        fanouts.push(feed);
        info!("admin UI namespace /admin is on");
    }
    chat.set_fanouts(fanouts);

    let (draining, tracker) = (state.draining.clone(), state.tracker.clone());
    let app = if config.demo_ui {
        Router::new().merge(demo::routes())
    } else {
        Router::new()
    };
    let app = app
        .merge(http::routes(state.clone()))
        .merge(rooms_api::routes(state.clone()))
        .merge(server_api::routes(state.clone()))
        .merge(ws::routes(state))
        .layer(sio_layer);
    let app = edge_layers_keeping(app, &gate, hooks.connects());
    // Outermost: a request for another pod's session goes there untouched.
    let app = match &links.sessions {
        Some(sessions) => app.layer(axum::middleware::from_fn_with_state(
            sessions.clone(),
            forward::route,
        )),
        None => app,
    };

    let addr = listener.local_addr()?;
    info!(%addr, "listening");
    let server = tokio::spawn(accept::serve(
        listener,
        app,
        gate.clone(),
        config.header_read_timeout,
        shutdown.clone(),
    ));
    // Rate-limit keys back at their full allowance are forgotten once a minute.
    let forget = gate.clone();
    let forgetting = shutdown.child_token();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(FORGET_IDLE_KEYS_EVERY);
        every.tick().await;
        loop {
            tokio::select! {
                () = forgetting.cancelled() => return,
                _ = every.tick() => forget.forget_idle_keys(),
            }
        }
    });

    shutdown.cancelled().await;
    info!(timeout = ?config.shutdown_timeout, "draining");
    draining.store(true, Ordering::Relaxed);
    let Links { bus, link_stop, .. } = links;
    let drain = async {
        // Stop accepting (the accept loop saw `shutdown`), close every connection, then
        // store everything queued for the log (and hand it to the bus), publish
        // everything queued for the bus, then close the Redis link.
        hub.close_all(close_code::GOING_AWAY, "server shutting down");
        close_socketio(&io, &chat).await;
        tracker.close();
        tracker.wait().await;
        if let Err(e) = server.await {
            warn!(error = %e, "server task failed");
        }
        log.drain().await;
        if let Some((drain_bus, task)) = bus {
            drain_bus.cancel();
            if let Err(e) = task.await {
                warn!(error = %e, "bus task failed");
            }
        }
        // Webhook events of what was just stored go out too: an attempt and a retry, within
        // half the drain's time (the queue is in memory; what is left is logged).
        let webhooks_limit = (config.hook_timeout * 2).min(config.shutdown_timeout / 2);
        hooks.drain(webhooks_limit).await;
    };
    if tokio::time::timeout(config.shutdown_timeout, drain)
        .await
        .is_err()
    {
        warn!("drain did not finish within SHUTDOWN_TIMEOUT; exiting anyway");
    }
    if let Some(link_stop) = link_stop {
        link_stop.cancel();
    }
    info!("stopped");
    Ok(())
}

/// What the drain stops after the connections: the bus (publishing what is queued) and
/// then the Redis link.
#[derive(Default)]
struct Links {
    bus: Option<(CancellationToken, tokio::task::JoinHandle<()>)>,
    link_stop: Option<CancellationToken>,
    /// With POD_URL: forwards requests for other pods' socket.io sessions.
    sessions: Option<SessionRouter>,
}

/// The layers every request passes first: origin check, CORS, and detaching socket.io
/// request parts from hyper's read buffer. The conformance
/// server uses them too.
pub fn edge_layers(router: Router, gate: &Gate) -> Router {
    edge_layers_keeping(router, gate, false)
}

/// [`edge_layers`]; `hook_headers`: socket.io sessions also keep the headers the connect
/// hook is shown (user agent, cookies).
pub fn edge_layers_keeping(router: Router, gate: &Gate, hook_headers: bool) -> Router {
    let router = if hook_headers {
        router.layer(axum::middleware::from_fn(
            http::detach_request_parts_for_hooks,
        ))
    } else {
        router.layer(axum::middleware::from_fn(http::detach_request_parts))
    };
    router
        .layer(axum::middleware::from_fn_with_state(
            gate.clone(),
            http::check_origin,
        ))
        .layer(http::cors(gate))
}

/// Serves the cluster socket listing from the socket.io side.
struct SioDirectory<A: Adapter>(SocketIo<A>);

impl<A: Adapter> SocketDirectory for SioDirectory<A> {
    fn list(&self) -> BoxFuture<'_, Result<serde_json::Value, String>> {
        Box::pin(async move {
            let (sockets, rooms) = socketio::cluster_view(&self.0).await?;
            Ok(serde_json::json!({ "count": sockets.len(), "sockets": sockets, "rooms": rooms }))
        })
    }
}

/// Closes every socket.io socket and forgets their memberships: `io.close()` does not
/// run the sockets' disconnect handlers.
async fn close_socketio<A: Adapter>(io: &SocketIo<A>, chat: &Arc<ChatService>) {
    io.close().await;
    for conn in chat.membership().connections_of(Transport::SocketIo) {
        chat.disconnect(&conn);
    }
}
