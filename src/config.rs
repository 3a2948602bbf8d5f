//! One typed [`Config`], read once from CLI flags and environment variables, validated.
//! Every knob is both `--flag` and `ENV_VAR`; errors name the variable.

use std::net::IpAddr;
use std::time::Duration;

use clap::{ArgAction, Parser, Subcommand, ValueEnum};

/// The default message log's file name, in DATA_DIR.
pub const DEFAULT_SQLITE_FILE: &str = "chatwire.db";

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// When an SQLite commit counts as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SqliteSynchronous {
    /// fsync at every commit: survives a power loss.
    Full,
    /// No fsync at commit (WAL): survives a process crash, not a power loss.
    Normal,
}

/// How room joins are authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RoomAcl {
    /// Any valid room, except other users' `user:` rooms.
    None,
    /// Only rooms matching the token's `rooms` claim patterns.
    Claims,
}

/// Where the log lives, from `DATABASE_URL`.
#[derive(Clone, PartialEq, Eq)]
pub enum LogLocation {
    /// Nothing kept across restarts.
    Memory,
    /// An SQLite file (created on first start).
    Sqlite(String),
    /// A PostgreSQL database.
    Postgres(String),
}

impl LogLocation {
    /// Reads a `DATABASE_URL`: `memory`, `sqlite:` / `sqlite://PATH`, or
    /// `postgres://` / `postgresql://...`.
    pub fn parse(url: &str) -> Result<Self, String> {
        if url == "memory" {
            return Ok(Self::Memory);
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = path.split('?').next().unwrap_or_default();
            if path.is_empty() {
                return Err("an sqlite: URL needs a file path, e.g. sqlite://chatwire.db".into());
            }
            return Ok(Self::Sqlite(path.to_owned()));
        }
        Err("must be memory, sqlite://PATH or postgres://...".into())
    }

    /// The kind of database, for logs and `/health`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Memory => "memory",
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// Never shows a PostgreSQL URL (it may hold a password).
impl std::fmt::Debug for LogLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory => f.write_str("Memory"),
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::Postgres(_) => f.write_str("Postgres(<redacted>)"),
        }
    }
}

/// A setting that holds a secret (a password in REDIS_URL, the JWT secret): never shown
/// by `Debug`, `--help` or logs; [`Secret::expose`] hands the value to its one user.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret value, for the code that uses it (never for display).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the setting is empty (unset).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_empty() {
            "\"\""
        } else {
            "\"<redacted>\""
        })
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// chatwire: a realtime chat server speaking Socket.IO and raw WebSocket JSON.
#[derive(Debug, Clone, Parser)]
#[command(name = "chatwire", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "HOST", value_name = "HOST", default_value = "0.0.0.0")]
    pub host: IpAddr,

    /// TCP port to listen on (0 picks a free port).
    #[arg(long, env = "PORT", value_name = "PORT", default_value_t = 8084)]
    pub port: u16,

    /// Redis URL for running several pods as one (empty: single node).
    #[arg(
        long,
        env = "REDIS_URL",
        value_name = "REDIS_URL",
        default_value = "",
        hide_env_values = true
    )]
    pub redis_url: Secret,

    /// The message log: memory, sqlite://PATH or postgres://... (empty: sqlite:// chatwire.db in DATA_DIR). With REDIS_URL, PostgreSQL.
    #[arg(
        long,
        env = "DATABASE_URL",
        value_name = "DATABASE_URL",
        default_value = "",
        hide_env_values = true
    )]
    pub database_url: Secret,

    /// Folder of the default SQLite message log (created if missing).
    #[arg(long, env = "DATA_DIR", value_name = "DATA_DIR", default_value = ".")]
    pub data_dir: std::path::PathBuf,

    /// Longest wait for a database commit, read or connection; past it the call fails (a send answers UNAVAILABLE).
    #[arg(long, env = "DATABASE_TIMEOUT", value_name = "DATABASE_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub database_timeout: Duration,

    /// Connections to the database, at most.
    #[arg(
        long,
        env = "DATABASE_MAX_CONNECTIONS",
        value_name = "DATABASE_MAX_CONNECTIONS",
        default_value_t = 8
    )]
    pub database_max_connections: u32,

    /// When an SQLite commit is on disk: full (an fsync per group commit; an ack survives a power loss) or normal (an ack survives a crash of chatwire, not of the machine).
    #[arg(
        long,
        env = "SQLITE_SYNCHRONOUS",
        value_name = "SQLITE_SYNCHRONOUS",
        default_value = "full"
    )]
    pub sqlite_synchronous: SqliteSynchronous,

    /// Longest wait for any Redis call; past it the call counts as failed.
    #[arg(long, env = "REDIS_TIMEOUT", value_name = "REDIS_TIMEOUT", default_value = "1s", value_parser = parse_duration)]
    pub redis_timeout: Duration,

    /// Other pods' messages waiting here for local delivery; beyond it they are dropped,
    /// counted, and recovery on this pod reads the store until the next join.
    #[arg(
        long,
        env = "BUS_INBOUND_QUEUE",
        value_name = "BUS_INBOUND_QUEUE",
        default_value_t = 8192
    )]
    pub bus_inbound_queue: usize,

    /// Require a valid token on every connection.
    #[arg(long, env = "AUTH_ENABLED", value_name = "AUTH_ENABLED", default_value_t = false, action = ArgAction::Set)]
    pub auth_enabled: bool,

    /// HS256 secret for verifying tokens (or use JWT_PUBLIC_KEY_FILE).
    #[arg(
        long,
        env = "JWT_SECRET",
        value_name = "JWT_SECRET",
        default_value = "",
        hide_env_values = true
    )]
    pub jwt_secret: Secret,

    /// With REDIS_URL: read what the socket.io Redis emitter (@socket.io/redis-emitter) publishes: events to rooms and socketsJoin/socketsLeave/disconnectSockets.
    #[arg(
        long,
        env = "REDIS_EMITTER",
        value_name = "REDIS_EMITTER",
        default_value_t = true,
        action = ArgAction::Set
    )]
    pub redis_emitter: bool,

    /// With REDIS_URL: this pod's own address as the other pods reach it (http://host:port). Set, socket.io works behind a load balancer without sticky sessions: a request for another pod's session is forwarded to that pod.
    #[arg(long, env = "POD_URL", value_name = "POD_URL", default_value = "")]
    pub pod_url: String,

    /// The connect hook: called when a connection has no token to verify; it may refuse it or name its user (empty: off).
    #[arg(
        long,
        env = "CONNECT_HOOK_URL",
        value_name = "CONNECT_HOOK_URL",
        default_value = "",
        hide_env_values = true
    )]
    pub connect_hook_url: Secret,

    /// The message hook: called before a message is stored; it may allow, refuse or replace it (empty: off).
    #[arg(
        long,
        env = "MESSAGE_HOOK_URL",
        value_name = "MESSAGE_HOOK_URL",
        default_value = "",
        hide_env_values = true
    )]
    pub message_hook_url: Secret,

    /// The RPC hook: client `rpc:<name>` events and raw `rpc` frames go there; its answer is the ack (empty: off).
    #[arg(
        long,
        env = "RPC_HOOK_URL",
        value_name = "RPC_HOOK_URL",
        default_value = "",
        hide_env_values = true
    )]
    pub rpc_hook_url: Secret,

    /// Event webhooks (message stored, edited, deleted; user joined, left a room), delivered at least once (empty: off).
    #[arg(
        long,
        env = "WEBHOOK_URL",
        value_name = "WEBHOOK_URL",
        default_value = "",
        hide_env_values = true
    )]
    pub webhook_url: Secret,

    /// Shared secret of the hooks' HMAC-SHA256 signature header (needed when any hook is on).
    #[arg(
        long,
        env = "HOOK_SECRET",
        value_name = "HOOK_SECRET",
        default_value = "",
        hide_env_values = true
    )]
    pub hook_secret: Secret,

    /// Longest wait for one hook call.
    #[arg(long, env = "HOOK_TIMEOUT", value_name = "HOOK_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    pub hook_timeout: Duration,

    /// Hook calls in flight at most (beyond it, callers wait up to HOOK_TIMEOUT).
    #[arg(
        long,
        env = "HOOK_CONCURRENCY",
        value_name = "HOOK_CONCURRENCY",
        default_value_t = 64
    )]
    pub hook_concurrency: usize,

    /// Webhook events waiting to be delivered, at most; beyond it new events are dropped (and counted).
    #[arg(
        long,
        env = "WEBHOOK_QUEUE",
        value_name = "WEBHOOK_QUEUE",
        default_value_t = 10_000
    )]
    pub webhook_queue: usize,

    /// User name of the /admin namespace for @socket.io/admin-ui (with ADMIN_PASSWORD; empty: off).
    #[arg(
        long,
        env = "ADMIN_USERNAME",
        value_name = "ADMIN_USERNAME",
        default_value = ""
    )]
    pub admin_username: String,

    /// Password of the /admin namespace, at least 12 characters.
    #[arg(
        long,
        env = "ADMIN_PASSWORD",
        value_name = "ADMIN_PASSWORD",
        default_value = "",
        hide_env_values = true
    )]
    pub admin_password: Secret,

    /// Keys of the server API under /api/server, comma-separated, each at least 16 characters (empty: the API is off).
    #[arg(
        long,
        env = "SERVER_API_KEYS",
        value_name = "SERVER_API_KEYS",
        default_value = "",
        hide_env_values = true
    )]
    pub server_api_keys: Secret,

    /// A file of server API keys, one per line (with or instead of SERVER_API_KEYS).
    #[arg(
        long,
        env = "SERVER_API_KEYS_FILE",
        value_name = "SERVER_API_KEYS_FILE",
        default_value = ""
    )]
    pub server_api_keys_file: String,

    /// PEM public key (RSA or EC P-256) for verifying RS256 or ES256 tokens.
    #[arg(
        long,
        env = "JWT_PUBLIC_KEY_FILE",
        value_name = "JWT_PUBLIC_KEY_FILE",
        default_value = ""
    )]
    pub jwt_public_key_file: String,

    /// Accepted token algorithms, comma-separated (empty: HS256 with JWT_SECRET, RS256 or ES256 from the key file).
    #[arg(
        long,
        env = "JWT_ALGORITHMS",
        value_name = "JWT_ALGORITHMS",
        default_value = ""
    )]
    pub jwt_algorithms: String,

    /// Required `iss` claim (empty: not checked).
    #[arg(
        long,
        env = "JWT_ISSUER",
        value_name = "JWT_ISSUER",
        default_value = ""
    )]
    pub jwt_issuer: String,

    /// Required `aud` claim (empty: not checked).
    #[arg(
        long,
        env = "JWT_AUDIENCE",
        value_name = "JWT_AUDIENCE",
        default_value = ""
    )]
    pub jwt_audience: String,

    /// Clock skew tolerated on `exp` and `nbf`.
    #[arg(long, env = "JWT_LEEWAY", value_name = "JWT_LEEWAY", default_value = "5s", value_parser = parse_duration)]
    pub jwt_leeway: Duration,

    /// Room authorization: `none` (any room but other users' `user:` rooms) or `claims` (only rooms matching the token's `rooms` patterns).
    #[arg(long, env = "ROOM_ACL", value_name = "ROOM_ACL", value_enum, default_value_t = RoomAcl::None)]
    pub room_acl: RoomAcl,

    /// `message:send` events allowed per user per minute (0: unlimited).
    #[arg(
        long,
        env = "RATE_MESSAGES_PER_MIN",
        value_name = "RATE_MESSAGES_PER_MIN",
        default_value_t = 60
    )]
    pub rate_messages_per_min: u32,

    /// `user:typing` events allowed per user per minute (0: unlimited).
    #[arg(
        long,
        env = "RATE_TYPING_PER_MIN",
        value_name = "RATE_TYPING_PER_MIN",
        default_value_t = 10
    )]
    pub rate_typing_per_min: u32,

    /// `presence:update` events allowed per user per minute (0: unlimited).
    #[arg(
        long,
        env = "RATE_PRESENCE_PER_MIN",
        value_name = "RATE_PRESENCE_PER_MIN",
        default_value_t = 30
    )]
    pub rate_presence_per_min: u32,

    /// Connection attempts allowed per client IP per minute (0: unlimited).
    #[arg(
        long,
        env = "RATE_CONNECTIONS_PER_MIN",
        value_name = "RATE_CONNECTIONS_PER_MIN",
        default_value_t = 10
    )]
    pub rate_connections_per_min: u32,

    /// Requests that read the store or Redis (joins, history, edits, deletes, presence
    /// lists, the HTTP history and listing routes) allowed per user per minute (0: unlimited).
    #[arg(
        long,
        env = "RATE_READS_PER_MIN",
        value_name = "RATE_READS_PER_MIN",
        default_value_t = 120
    )]
    pub rate_reads_per_min: u32,

    /// The same requests allowed per client IP (IPv6: per /64) per minute (0: unlimited).
    #[arg(
        long,
        env = "RATE_READS_PER_IP_PER_MIN",
        value_name = "RATE_READS_PER_IP_PER_MIN",
        default_value_t = 600
    )]
    pub rate_reads_per_ip_per_min: u32,

    /// Open connections allowed in all (0: unlimited).
    #[arg(
        long,
        env = "MAX_CONNECTIONS",
        value_name = "MAX_CONNECTIONS",
        default_value_t = 50000
    )]
    pub max_connections: usize,

    /// Open connections allowed per client IP (0: unlimited).
    #[arg(
        long,
        env = "MAX_CONNECTIONS_PER_IP",
        value_name = "MAX_CONNECTIONS_PER_IP",
        default_value_t = 256
    )]
    pub max_connections_per_ip: usize,

    /// TCP connections per client IP whose first HTTP request is not complete yet (0: unlimited; trusted proxies are not counted).
    #[arg(
        long,
        env = "MAX_UNFINISHED_REQUESTS_PER_IP",
        value_name = "MAX_UNFINISHED_REQUESTS_PER_IP",
        default_value_t = 64
    )]
    pub max_unfinished_requests_per_ip: usize,

    /// Longest wait for an HTTP request's headers, and for the next request on an idle kept-alive connection.
    #[arg(long, env = "HEADER_READ_TIMEOUT", value_name = "HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,

    /// Proxies (IPs or CIDRs, comma-separated) whose X-Forwarded-For is believed.
    #[arg(
        long,
        env = "TRUSTED_PROXIES",
        value_name = "TRUSTED_PROXIES",
        default_value = ""
    )]
    pub trusted_proxies: String,

    /// Origins allowed to connect (comma-separated, e.g. `https://chat.example.com`; `*`: any).
    #[arg(
        long,
        env = "ALLOWED_ORIGINS",
        value_name = "ALLOWED_ORIGINS",
        default_value = "*"
    )]
    pub allowed_origins: String,

    /// Serve the demo chat page at `/`.
    #[arg(long, env = "DEMO_UI", value_name = "DEMO_UI", default_value_t = true, action = ArgAction::Set)]
    pub demo_ui: bool,

    /// Largest message or WebSocket frame a client may send, in bytes.
    #[arg(
        long,
        env = "MAX_MESSAGE_BYTES",
        value_name = "MAX_MESSAGE_BYTES",
        default_value_t = 65536
    )]
    pub max_message_bytes: usize,

    /// Interval between server heartbeat pings (e.g. 25s, 500ms).
    #[arg(long, env = "PING_INTERVAL", value_name = "PING_INTERVAL", default_value = "25s", value_parser = parse_duration)]
    pub ping_interval: Duration,

    /// A connection silent this long is closed (socket.io: ping timeout).
    #[arg(long, env = "PONG_TIMEOUT", value_name = "PONG_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    pub pong_timeout: Duration,

    /// Outgoing messages buffered per connection before further ones are dropped.
    #[arg(
        long,
        env = "SEND_BUFFER",
        value_name = "SEND_BUFFER",
        default_value_t = 256
    )]
    pub send_buffer: usize,

    /// Most chat messages kept per room by the message log's prune (0: no count limit).
    #[arg(
        long,
        env = "HISTORY_LIMIT",
        value_name = "HISTORY_LIMIT",
        default_value_t = 0
    )]
    pub history_limit: usize,

    /// Longest a chat message is kept in the message log.
    #[arg(long, env = "HISTORY_TTL", value_name = "HISTORY_TTL", default_value = "30d", value_parser = parse_duration)]
    pub history_ttl: Duration,

    /// Quiet time after a user's last connection leaves a room before "offline" is announced.
    #[arg(long, env = "PRESENCE_GRACE", value_name = "PRESENCE_GRACE", default_value = "5s", value_parser = parse_duration)]
    pub presence_grace: Duration,

    /// A crashed pod's users go offline within this time (its presence records expire).
    #[arg(long, env = "PRESENCE_TTL", value_name = "PRESENCE_TTL", default_value = "30s", value_parser = parse_duration)]
    pub presence_ttl: Duration,

    /// A typing indicator not refreshed for this long is ended by the server.
    #[arg(long, env = "TYPING_TIMEOUT", value_name = "TYPING_TIMEOUT", default_value = "6s", value_parser = parse_duration)]
    pub typing_timeout: Duration,

    /// Runtime worker threads: 0 = one per available core; 1 = a single-threaded runtime
    /// (best when the process is pinned to one core).
    #[arg(
        long,
        env = "WORKER_THREADS",
        value_name = "WORKER_THREADS",
        default_value_t = 0
    )]
    pub worker_threads: usize,

    /// Longest graceful shutdown before the process exits anyway.
    #[arg(long, env = "SHUTDOWN_TIMEOUT", value_name = "SHUTDOWN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Log format.
    #[arg(long, env = "LOG_FORMAT", value_name = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter (tracing EnvFilter syntax, e.g. `info,chatwire=debug`).
    #[arg(
        long,
        env = "RUST_LOG",
        value_name = "RUST_LOG",
        default_value = "info"
    )]
    pub rust_log: String,

    /// What to do instead of serving.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Commands other than serving.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Exit 0 when the server on PORT at 127.0.0.1 answers /health with 200 (for container HEALTHCHECKs).
    Healthcheck,
    /// Bring the message log's schema (DATABASE_URL) up to date, then exit.
    Migrate,
}

/// A configuration value that parsed but makes no sense.
#[derive(Debug, thiserror::Error)]
#[error("invalid value for {key}: {reason}")]
pub struct ConfigError {
    /// The environment variable at fault.
    pub key: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (expected e.g. 25s, 500ms, 1m)"))
}

impl Config {
    /// Reads flags and environment, exiting with clap's message on a parse error.
    pub fn from_env_and_args() -> Result<Self, ConfigError> {
        let config = Self::parse();
        config.validate()?;
        Ok(config)
    }

    /// The defaults, as if no flag or variable were set (environment ignored). They are
    /// the clap attributes above and nothing else: `--help` (which the README check reads)
    /// and the tests see the same values.
    pub fn defaults() -> Self {
        use clap::{CommandFactory, FromArgMatches};
        let mut command = Self::command();
        let ids: Vec<clap::Id> = command
            .get_arguments()
            .map(|a| a.get_id().clone())
            .collect();
        for id in ids {
            command = command.mut_arg(id, |arg| arg.env(None));
        }
        let parsed = command
            .try_get_matches_from(["chatwire"])
            .and_then(|matches| Self::from_arg_matches(&matches));
        match parsed {
            Ok(config) => config,
            // Only a broken attribute above could do this; the unit tests parse them.
            Err(e) => panic!("the built-in defaults do not parse: {e}"),
        }
    }

    /// Where the message log lives: DATABASE_URL, or the SQLite file in DATA_DIR.
    pub fn log_location(&self) -> Result<LogLocation, String> {
        if self.database_url.is_empty() {
            let path = self.data_dir.join(DEFAULT_SQLITE_FILE);
            return Ok(LogLocation::Sqlite(path.to_string_lossy().into_owned()));
        }
        LogLocation::parse(self.database_url.expose())
    }

    /// Checks values that clap's types alone cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key, reason: &str| {
            Err(ConfigError {
                key,
                reason: reason.to_owned(),
            })
        };
        if self.max_message_bytes < 256 {
            return bad("MAX_MESSAGE_BYTES", "must be at least 256");
        }
        if self.bus_inbound_queue == 0 {
            return bad("BUS_INBOUND_QUEUE", "must be at least 1");
        }
        if self.send_buffer == 0 {
            return bad("SEND_BUFFER", "must be at least 1");
        }
        if self.ping_interval.is_zero() {
            return bad("PING_INTERVAL", "must be greater than zero");
        }
        if self.pong_timeout <= self.ping_interval {
            return bad("PONG_TIMEOUT", "must be longer than PING_INTERVAL");
        }
        if self.header_read_timeout.is_zero() {
            return bad("HEADER_READ_TIMEOUT", "must be greater than zero");
        }
        if !self.redis_url.is_empty()
            && !["redis://", "rediss://", "redis+unix://", "unix://"]
                .iter()
                .any(|scheme| self.redis_url.expose().starts_with(scheme))
        {
            // The rest of the URL is parsed when the link opens, at startup.
            return bad(
                "REDIS_URL",
                "must start with redis://, rediss:// or unix://",
            );
        }
        if let Err(reason) = self.log_location() {
            return bad("DATABASE_URL", &reason);
        }
        if !self.redis_url.is_empty()
            && !matches!(self.log_location(), Ok(LogLocation::Postgres(_)))
        {
            return bad(
                "DATABASE_URL",
                "must be a postgres:// URL when REDIS_URL is set: pods with their own \
                 SQLite file or memory log would each keep a different history",
            );
        }
        if !self.pod_url.is_empty() {
            if self.redis_url.is_empty() {
                return bad(
                    "POD_URL",
                    "needs REDIS_URL (pods find each other's address there)",
                );
            }
            if let Err(reason) = check_pod_url(&self.pod_url) {
                return bad("POD_URL", reason);
            }
        }
        if self.database_timeout.is_zero() {
            return bad("DATABASE_TIMEOUT", "must be greater than zero");
        }
        if self.database_max_connections == 0 {
            return bad("DATABASE_MAX_CONNECTIONS", "must be at least 1");
        }
        if self.history_ttl.is_zero() {
            return bad("HISTORY_TTL", "must be greater than zero");
        }
        if self.presence_ttl < std::time::Duration::from_millis(300) {
            return bad("PRESENCE_TTL", "must be at least 300ms");
        }
        if self.typing_timeout.is_zero() {
            return bad("TYPING_TIMEOUT", "must be greater than zero");
        }
        if self.redis_timeout.is_zero() {
            return bad("REDIS_TIMEOUT", "must be greater than zero");
        }
        let hooks = [
            ("CONNECT_HOOK_URL", &self.connect_hook_url),
            ("MESSAGE_HOOK_URL", &self.message_hook_url),
            ("RPC_HOOK_URL", &self.rpc_hook_url),
            ("WEBHOOK_URL", &self.webhook_url),
        ];
        for (key, url) in hooks {
            let url = url.expose();
            if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
                return bad(key, "must be an http:// or https:// URL");
            }
        }
        if hooks.iter().any(|(_, url)| !url.is_empty()) && self.hook_secret.is_empty() {
            return bad("HOOK_SECRET", "is needed when a hook URL is set");
        }
        if self.hook_timeout.is_zero() {
            return bad("HOOK_TIMEOUT", "must be greater than zero");
        }
        if self.hook_concurrency == 0 {
            return bad("HOOK_CONCURRENCY", "must be at least 1");
        }
        if self.webhook_queue == 0 {
            return bad("WEBHOOK_QUEUE", "must be at least 1");
        }
        if self.admin_username.is_empty() != self.admin_password.is_empty() {
            return bad(
                "ADMIN_PASSWORD",
                "ADMIN_USERNAME and ADMIN_PASSWORD go together",
            );
        }
        if !self.admin_password.is_empty() && self.admin_password.expose().len() < 12 {
            return bad("ADMIN_PASSWORD", "must be at least 12 characters");
        }
        // Keys themselves are read and parsed by the gate at startup.
        let has_key = !self.jwt_secret.is_empty() || !self.jwt_public_key_file.is_empty();
        if self.auth_enabled && !has_key && self.connect_hook_url.is_empty() {
            return bad(
                "AUTH_ENABLED",
                "needs JWT_SECRET, JWT_PUBLIC_KEY_FILE or CONNECT_HOOK_URL",
            );
        }
        if self.room_acl == RoomAcl::Claims && !has_key {
            return bad("ROOM_ACL", "claims needs JWT_SECRET or JWT_PUBLIC_KEY_FILE");
        }
        Ok(())
    }
}

/// POD_URL is `http://host:port` (a path of `/` at most): forwarded requests keep
/// their own path.
fn check_pod_url(url: &str) -> Result<(), &'static str> {
    let uri: axum::http::Uri = url
        .parse()
        .map_err(|_| "must be a URL such as http://10.0.0.7:8084")?;
    if uri.scheme_str() != Some("http") {
        return Err("must start with http:// (pods reach each other without TLS)");
    }
    if uri.authority().is_none_or(|a| a.host().is_empty()) {
        return Err("must name a host, e.g. http://10.0.0.7:8084");
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err("must hold no user name or password (it is logged and shared in Redis)");
    }
    if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
        return Err("must have no path or query");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_ones_and_valid() {
        let parsed = Config::try_parse_from(["chatwire"]).unwrap();
        let d = Config::defaults();
        assert_eq!(d.port, 8084);
        assert_eq!(d.ping_interval, Duration::from_secs(25));
        assert_eq!(d.history_limit, 0);
        assert_eq!(d.history_ttl, Duration::from_secs(30 * 86_400));
        assert_eq!(
            d.log_location(),
            Ok(LogLocation::Sqlite("./chatwire.db".into()))
        );
        assert!(d.redis_url.is_empty());
        assert_eq!(parsed.port, d.port);
        assert_eq!(parsed.ping_interval, d.ping_interval);
        assert_eq!(parsed.pong_timeout, d.pong_timeout);
        assert_eq!(parsed.send_buffer, d.send_buffer);
        assert_eq!(parsed.bus_inbound_queue, d.bus_inbound_queue);
        assert_eq!(parsed.max_message_bytes, d.max_message_bytes);
        assert!(d.validate().is_ok());
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = Config::try_parse_from(["chatwire", "--port", "http"]).unwrap_err();
        assert!(err.to_string().contains("PORT"), "{err}");
        let err = Config::try_parse_from(["chatwire", "--ping-interval", "soon"]).unwrap_err();
        assert!(err.to_string().contains("PING_INTERVAL"), "{err}");
        let mut c = Config::defaults();
        c.send_buffer = 0;
        assert_eq!(c.validate().unwrap_err().key, "SEND_BUFFER");
    }

    #[test]
    fn database_urls_parse_into_their_kind() {
        assert_eq!(LogLocation::parse("memory"), Ok(LogLocation::Memory));
        assert_eq!(
            LogLocation::parse("sqlite://data/chat.db?mode=rwc"),
            Ok(LogLocation::Sqlite("data/chat.db".into()))
        );
        assert_eq!(
            LogLocation::parse("sqlite:chat.db"),
            Ok(LogLocation::Sqlite("chat.db".into()))
        );
        assert!(matches!(
            LogLocation::parse("postgresql://u:p@h/db"),
            Ok(LogLocation::Postgres(_))
        ));
        assert!(LogLocation::parse("mysql://h/db").is_err());
        assert!(LogLocation::parse("sqlite://").is_err());
    }

    #[test]
    fn a_postgres_url_never_shows_in_debug() {
        let loc = LogLocation::parse("postgres://u:s3cret@h/db").unwrap();
        assert!(!format!("{loc:?}").contains("s3cret"));
    }

    #[test]
    fn several_pods_need_postgres() {
        let mut c = Config::defaults();
        c.redis_url = "redis://127.0.0.1:6379".into();
        let err = c.validate().unwrap_err();
        assert_eq!(err.key, "DATABASE_URL");
        assert!(err.reason.contains("REDIS_URL"), "{err}");
        c.database_url = "memory".into();
        assert_eq!(c.validate().unwrap_err().key, "DATABASE_URL");
        c.database_url = "postgres://127.0.0.1/chat".into();
        assert!(c.validate().is_ok());
        c.database_url = "mysql://nope".into();
        assert_eq!(c.validate().unwrap_err().key, "DATABASE_URL");
    }

    #[test]
    fn pod_urls_are_plain_http_addresses_beside_redis() {
        let mut c = Config::defaults();
        c.pod_url = "http://10.0.0.7:8084".into();
        assert_eq!(c.validate().unwrap_err().key, "POD_URL", "needs REDIS_URL");
        c.redis_url = "redis://127.0.0.1:6379".into();
        c.database_url = "postgres://127.0.0.1/chat".into();
        assert!(c.validate().is_ok());
        c.pod_url = "http://pod-1.chat.svc:8084/".into();
        assert!(c.validate().is_ok());
        for bad in [
            "https://10.0.0.7",
            "10.0.0.7:8084",
            "http://h/chat",
            "http://h/?a=1",
            "x",
        ] {
            c.pod_url = bad.into();
            assert_eq!(c.validate().unwrap_err().key, "POD_URL", "{bad}");
        }
    }

    #[test]
    fn secrets_are_not_in_debug_output() {
        let mut c = Config::defaults();
        c.redis_url = "redis://:hunter2@127.0.0.1:6379/0".into();
        c.jwt_secret = "s3cr3t-signing-key".into();
        c.database_url = "postgres://chat:pgpass99@db/chat".into();
        let shown = format!("{c:?}");
        assert!(!shown.contains("pgpass99"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert_eq!(c.redis_url.expose(), "redis://:hunter2@127.0.0.1:6379/0");
    }
}
