//! [`RedisLink`]: the one Redis connection of a pod (redis-rs `ConnectionManager`, RESP3),
//! shared by the chat bus, the stores and the socket.io adapter. It routes pub/sub pushes to
//! per-channel (and per-pattern) queues, in the order Redis sent them, bounds every call
//! with a timeout, checks liveness with a PING every second, and re-subscribes every
//! channel and pattern when the connection comes back.
//!
//! Pub/sub is at most once: pushes in flight when a connection is lost are gone, and so
//! are pushes dropped at a full queue. Both are counted ([`RedisLink::losses`]); the chat
//! reads what it missed from the message log.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Client, IntoConnectionInfo, ProtocolVersion, PushInfo, PushKind, RedisError, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Why a Redis call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// Redis is unreachable.
    #[error("redis is unavailable")]
    Unavailable,
    /// Redis did not answer in time.
    #[error("redis did not answer in time")]
    Timeout,
    /// Redis refused the operation.
    #[error("redis error: {0}")]
    Backend(String),
}

/// A pub/sub message: channel name and payload.
pub type ChanItem = (String, Vec<u8>);

/// Where the pushes of one channel or pattern go.
#[derive(Clone)]
pub enum Route {
    /// One queue.
    One(mpsc::Sender<ChanItem>),
    /// Payloads that start as a JSON object to `json`, the rest to `other` (two users
    /// sharing a channel, such as the socket.io adapter and the Redis emitter).
    Split {
        /// Payloads starting with `{`.
        json: mpsc::Sender<ChanItem>,
        /// Everything else.
        other: mpsc::Sender<ChanItem>,
    },
}

impl Route {
    fn sink_for(&self, payload: &[u8]) -> &mpsc::Sender<ChanItem> {
        match self {
            Self::One(sink) => sink,
            Self::Split { json, other } => {
                if payload.first() == Some(&b'{') {
                    json
                } else {
                    other
                }
            }
        }
    }
}

type RouteTable = RwLock<HashMap<String, Route>>;
type Routes = Arc<RouteTable>;

/// How often liveness is checked (and a lost connection retried).
pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// The REDIS_URL could not be used.
#[derive(Debug, thiserror::Error)]
#[error("invalid value for REDIS_URL: {0}")]
pub struct UrlError(pub String);

/// The pod's Redis connection. Cheap to clone.
#[derive(Clone)]
pub struct RedisLink {
    inner: Arc<Inner>,
}

struct Inner {
    conn: ConnectionManager,
    routes: Routes,
    patterns: Routes,
    up: Arc<AtomicBool>,
    timeout: Duration,
    inbound_dropped: Arc<AtomicU64>,
    /// How many times the connection was lost.
    lost: Arc<AtomicU64>,
}

/// Parses a redis:// or rediss:// URL (user, password, db) and forces RESP3, which
/// pub/sub pushes on a shared connection need.
pub fn client_for(url: &str) -> Result<Client, UrlError> {
    let info = url
        .into_connection_info()
        .map_err(|e| UrlError(e.to_string()))?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    Client::open(info.set_redis_settings(settings)).map_err(|e| UrlError(e.to_string()))
}

impl RedisLink {
    /// Prepares the link without connecting: the heartbeat connects, and keeps
    /// retrying while Redis is unreachable.
    pub fn open(url: &str, timeout: Duration) -> Result<Self, UrlError> {
        // rediss:// uses rustls; install its crypto provider once per process.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = client_for(url)?;
        let routes: Routes = Arc::default();
        let patterns: Routes = Arc::default();
        let up = Arc::new(AtomicBool::new(false));
        let inbound_dropped = Arc::new(AtomicU64::new(0));
        let lost = Arc::new(AtomicU64::new(0));
        let push = {
            let routes = routes.clone();
            let patterns = patterns.clone();
            let up = up.clone();
            let dropped = inbound_dropped.clone();
            let lost = lost.clone();
            move |info: PushInfo| {
                route_push(info, (&routes, &patterns), &up, &dropped, &lost);
                Ok::<(), std::convert::Infallible>(())
            }
        };
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(2)
            .set_max_delay(HEARTBEAT)
            .set_push_sender(push)
            .set_automatic_resubscription();
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| UrlError(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                conn,
                routes,
                patterns,
                up,
                timeout,
                inbound_dropped,
                lost,
            }),
        })
    }

    /// Whether the last heartbeat reached Redis.
    pub fn is_up(&self) -> bool {
        self.inner.up.load(Ordering::Relaxed)
    }

    /// Pushes dropped because a channel's queue was full.
    pub fn inbound_dropped(&self) -> u64 {
        self.inner.inbound_dropped.load(Ordering::Relaxed)
    }

    /// Events that may have cost pushes, since start: drops at a full queue and lost
    /// connections. Unchanged between two reads means no push was lost in between.
    pub fn losses(&self) -> u64 {
        self.inner.inbound_dropped.load(Ordering::Acquire) + self.inner.lost.load(Ordering::Acquire)
    }

    /// Runs one command with the link's timeout; fails at once while Redis is down.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, LinkError> {
        if !self.is_up() {
            return Err(LinkError::Unavailable);
        }
        self.query_unchecked(cmd).await
    }

    async fn query_unchecked<T: redis::FromRedisValue>(
        &self,
        cmd: &redis::Cmd,
    ) -> Result<T, LinkError> {
        let mut conn = self.inner.conn.clone();
        match tokio::time::timeout(self.inner.timeout, cmd.query_async(&mut conn)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(backend(e)),
            Err(_) => Err(LinkError::Timeout),
        }
    }

    /// Runs `f` on the connection with the link's timeout; fails at once while Redis is down.
    pub async fn with_conn<T, F, Fut>(&self, f: F) -> Result<T, LinkError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if !self.is_up() {
            return Err(LinkError::Unavailable);
        }
        match tokio::time::timeout(self.inner.timeout, f(self.inner.conn.clone())).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(backend(e)),
            Err(_) => Err(LinkError::Timeout),
        }
    }

    /// Sends a pipeline with the link's timeout; fails at once while Redis is down.
    pub async fn pipeline(&self, pipe: &redis::Pipeline) -> Result<(), LinkError> {
        if !self.is_up() {
            return Err(LinkError::Unavailable);
        }
        let mut conn = self.inner.conn.clone();
        match tokio::time::timeout(self.inner.timeout, pipe.query_async::<Value>(&mut conn)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(backend(e)),
            Err(_) => Err(LinkError::Timeout),
        }
    }

    /// Routes `channel`'s messages to `sink` and subscribes. The route holds even when
    /// the SUBSCRIBE fails: the next reconnection subscribes it.
    pub async fn subscribe(
        &self,
        channel: String,
        sink: mpsc::Sender<ChanItem>,
    ) -> Result<(), LinkError> {
        self.subscribe_route(channel, Route::One(sink)).await
    }

    /// [`RedisLink::subscribe`] with a [`Route`].
    pub async fn subscribe_route(&self, channel: String, route: Route) -> Result<(), LinkError> {
        self.write_routes().insert(channel.clone(), route);
        if !self.is_up() {
            return Ok(());
        }
        let mut conn = self.inner.conn.clone();
        match tokio::time::timeout(self.inner.timeout, conn.subscribe(&channel)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(backend(e)),
            Err(_) => Err(LinkError::Timeout),
        }
    }

    /// Routes the messages of every channel matching the glob `pattern` to `sink`, as
    /// (channel, payload), from now on and after every reconnection.
    pub async fn psubscribe(
        &self,
        pattern: String,
        sink: mpsc::Sender<ChanItem>,
    ) -> Result<(), LinkError> {
        self.inner
            .patterns
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pattern.clone(), Route::One(sink));
        if !self.is_up() {
            return Ok(());
        }
        let mut conn = self.inner.conn.clone();
        match tokio::time::timeout(self.inner.timeout, conn.psubscribe(&pattern)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(backend(e)),
            Err(_) => Err(LinkError::Timeout),
        }
    }

    /// Stops routing and unsubscribes `channel`.
    pub async fn unsubscribe(&self, channel: &str) -> Result<(), LinkError> {
        self.write_routes().remove(channel);
        if !self.is_up() {
            return Ok(());
        }
        let mut conn = self.inner.conn.clone();
        match tokio::time::timeout(self.inner.timeout, conn.unsubscribe(channel)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(backend(e)),
            Err(_) => Err(LinkError::Timeout),
        }
    }

    fn write_routes(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Route>> {
        self.inner.routes.write().unwrap_or_else(|e| e.into_inner())
    }

    /// PINGs Redis every [`HEARTBEAT`] until `cancel`: marks the link up or down and,
    /// whenever it comes up, subscribes every routed channel again.
    pub async fn heartbeat(self, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = tick.tick() => {}
            }
            let alive = self
                .query_unchecked::<String>(&redis::cmd("PING"))
                .await
                .is_ok();
            let was_up = self.inner.up.load(Ordering::Relaxed);
            if alive && !was_up {
                match self.resubscribe_all().await {
                    Ok(n) => {
                        self.inner.up.store(true, Ordering::Relaxed);
                        info!(channels = n, "redis up");
                    }
                    Err(e) => debug!(error = %e, "redis answered but resubscribing failed"),
                }
            } else if !alive && was_up {
                self.inner.lost.fetch_add(1, Ordering::AcqRel);
                self.inner.up.store(false, Ordering::Relaxed);
                warn!("redis down; local delivery continues, retrying every second");
            }
        }
    }

    async fn resubscribe_all(&self) -> Result<usize, LinkError> {
        let names = |routes: &Routes| -> Vec<String> {
            routes
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .keys()
                .cloned()
                .collect()
        };
        let (channels, patterns) = (names(&self.inner.routes), names(&self.inner.patterns));
        let mut conn = self.inner.conn.clone();
        let limit = self.inner.timeout;
        if !channels.is_empty() {
            match tokio::time::timeout(limit, conn.subscribe(&channels)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(backend(e)),
                Err(_) => return Err(LinkError::Timeout),
            }
        }
        if !patterns.is_empty() {
            match tokio::time::timeout(limit, conn.psubscribe(&patterns)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(backend(e)),
                Err(_) => return Err(LinkError::Timeout),
            }
        }
        Ok(channels.len() + patterns.len())
    }
}

fn backend(e: RedisError) -> LinkError {
    if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        LinkError::Unavailable
    } else if e.is_timeout() {
        LinkError::Timeout
    } else {
        LinkError::Backend(e.to_string())
    }
}

fn route_push(
    info: PushInfo,
    (routes, patterns): (&RouteTable, &RouteTable),
    up: &AtomicBool,
    dropped: &AtomicU64,
    lost: &AtomicU64,
) {
    let (table, pattern) = match info.kind {
        PushKind::Message => (routes, false),
        PushKind::PMessage => (patterns, true),
        PushKind::Disconnection => {
            lost.fetch_add(1, Ordering::AcqRel);
            if up.swap(false, Ordering::Relaxed) {
                warn!("redis connection lost; local delivery continues, reconnecting");
            }
            return;
        }
        _ => return,
    };
    // A message: [channel, payload]; a pattern's: [pattern, channel, payload].
    let mut data = info.data.into_iter();
    let key = if pattern {
        data.next()
            .and_then(|p| redis::from_redis_value::<String>(p).ok())
    } else {
        None
    };
    let (Some(chan), Some(payload)) = (data.next(), data.next()) else {
        return;
    };
    let (Ok(chan), Ok(payload)) = (
        redis::from_redis_value::<String>(chan),
        redis::from_redis_value::<Vec<u8>>(payload),
    ) else {
        debug!("unreadable pub/sub message");
        return;
    };
    let table = table.read().unwrap_or_else(|e| e.into_inner());
    let route = match &key {
        Some(pattern) => table.get(pattern),
        None => table.get(&chan),
    };
    if let Some(route) = route {
        if route.sink_for(&payload).try_send((chan, payload)).is_err() {
            dropped.fetch_add(1, Ordering::AcqRel);
            debug!("inbound pub/sub queue full; message dropped");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_carry_user_password_db_and_tls() {
        let client = client_for("rediss://chat:s3cret@cache.internal:6380/2").unwrap();
        let info = client.get_connection_info();
        assert!(matches!(info.addr(), redis::ConnectionAddr::TcpTls { .. }));
        let settings = info.redis_settings();
        assert_eq!(settings.db(), 2);
        assert_eq!(settings.username(), Some("chat"));
        assert_eq!(settings.password(), Some("s3cret"));
        assert_eq!(settings.protocol(), ProtocolVersion::RESP3);
        let plain = client_for("redis://127.0.0.1:6379").unwrap();
        assert!(matches!(
            plain.get_connection_info().addr(),
            redis::ConnectionAddr::Tcp(..)
        ));
        for bad in ["http://x", "", "redis://:badport:x/"] {
            assert!(client_for(bad).is_err(), "{bad}");
        }
    }
}
