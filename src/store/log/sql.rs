//! The message log in an SQL database (SQLite or PostgreSQL, through sqlx's `Any`
//! driver; the schema is in `migrations/`, embedded and run at startup).
//!
//! Appends go through one bounded queue to one writer task, which commits whatever is
//! queued as one transaction (group commit): it adds each room's count to `rooms.
//! last_offset` (rooms in name order, so pods writing at once never deadlock) and so
//! learns the offsets, inserts the messages, commits, hands them on in order and only
//! then settles the appends. A batch that fails or does not commit within
//! DATABASE_TIMEOUT settles every one of its appends with an error, and nothing of it
//! is handed on.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use futures_util::future::BoxFuture;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Executor, Row};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

use super::{room_key, LogLocation};
use crate::chat::ports::{edited_data, tombstone_data};
use crate::chat::{
    ms_of_rfc3339, now_ms, now_rfc3339, rfc3339_of_ms, Appended, Claim, Committed, HistoryPage,
    Message, MessageLog, MessageRef, MessageType, ReactionCounts, Reactions, ReadPositions,
    RequestKeys, Retention, RoomBounds, RoomName, StoreError, Stored, ThreadRef, Unread, Unstored,
    UserRef, ANONYMOUS_POSITION_TTL_MS, MAX_EMOJIS_PER_MESSAGE, MAX_UNREAD_COUNT,
};
use crate::chat::{thread_room, thread_root, Channel, Channels, ThreadSummary};

/// The schema's migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Appends waiting for the writer, at most; beyond, appends fail at once.
pub const APPEND_QUEUE: usize = 16_384;
/// Messages committed in one transaction, at most.
const MAX_BATCH: usize = 512;
/// Rows in one INSERT, at most (statements come in power-of-two sizes, so few are
/// prepared).
const MAX_ROWS: usize = 128;
/// Rows one prune statement removes, at most.
const PRUNE_STEP: i64 = 1000;
/// Times a batch is retried after a deadlock or serialization failure.
const RETRIES: usize = 3;
/// Columns every message read selects, in [`message_of`]'s order.
const COLUMNS: &str = "room, room_offset, id, sender_id, kind, data, created_at, sender_name, \
                       sender_unverified, thread_parent";

/// How the log connects.
#[derive(Debug, Clone, Copy)]
pub struct SqlSettings {
    /// Longest a commit, read or connection attempt may take (DATABASE_TIMEOUT).
    pub timeout: Duration,
    /// Connections in the pool (DATABASE_MAX_CONNECTIONS).
    pub max_connections: u32,
    /// SQLite only: fsync at every commit (SQLITE_SYNCHRONOUS=full) or not (normal).
    pub sqlite_full_sync: bool,
}

/// Why the log could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The database could not be reached or opened.
    #[error("cannot open the database: {0}")]
    Connect(String),
    /// The schema could not be brought up to date.
    #[error("cannot migrate the database: {0}")]
    Migrate(String),
}

struct Pending {
    entry: Unstored,
    reply: oneshot::Sender<Result<Arc<Message>, StoreError>>,
}

/// A message log in SQLite or PostgreSQL.
pub struct SqlLog {
    pool: AnyPool,
    queue: mpsc::Sender<Pending>,
    committed: Arc<OnceLock<Weak<dyn Committed>>>,
    stop: CancellationToken,
    writer: Mutex<Option<JoinHandle<()>>>,
    timeout: Duration,
    /// SQLite (else PostgreSQL): their full-text searches differ.
    sqlite: bool,
}

/// Connects to `location` (creating an SQLite file if missing), without migrating.
pub async fn connect(location: &LogLocation, settings: SqlSettings) -> Result<AnyPool, OpenError> {
    sqlx::any::install_default_drivers();
    let (url, sqlite) = match location {
        LogLocation::Sqlite(path) => {
            if let Some(dir) = std::path::Path::new(path).parent() {
                if !dir.as_os_str().is_empty() {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| OpenError::Connect(format!("{}: {e}", dir.display())))?;
                }
            }
            (format!("sqlite://{path}?mode=rwc"), true)
        }
        LogLocation::Postgres(url) => (url.clone(), false),
        LogLocation::Memory => return Err(OpenError::Connect("not an SQL database".into())),
    };
    // WAL: readers never wait for the writer. FULL: a commit is on disk before it
    // counts; NORMAL: in the OS (it survives chatwire crashing, not the machine).
    let pragmas = if settings.sqlite_full_sync {
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA busy_timeout = 5000;"
    } else {
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA busy_timeout = 5000;"
    };
    let options = AnyPoolOptions::new()
        .max_connections(settings.max_connections.max(1))
        .acquire_timeout(settings.timeout)
        .after_connect(move |conn, _| {
            Box::pin(async move {
                if sqlite {
                    conn.execute(pragmas).await?;
                }
                Ok(())
            })
        });
    let connecting = options.connect(&url);
    match tokio::time::timeout(settings.timeout.max(Duration::from_secs(5)), connecting).await {
        Ok(Ok(pool)) => Ok(pool),
        Ok(Err(e)) => Err(OpenError::Connect(describe(&e))),
        Err(_) => Err(OpenError::Connect("no answer in time".into())),
    }
}

/// Brings the schema of `pool` up to date; returns how many migrations it applied.
pub async fn migrate(pool: &AnyPool) -> Result<usize, OpenError> {
    let before = applied(pool).await;
    MIGRATOR
        .run(pool)
        .await
        .map_err(|e| OpenError::Migrate(e.to_string()))?;
    // Without it the log works; searches answer UNAVAILABLE until a start makes it.
    if let Err(e) = search_index(pool).await {
        warn!(error = %e, "the full-text search index could not be made");
    }
    Ok(applied(pool).await.saturating_sub(before))
}

/// Whether `pool` is SQLite (else PostgreSQL).
async fn is_sqlite(pool: &AnyPool) -> Result<bool, OpenError> {
    let conn = pool
        .acquire()
        .await
        .map_err(|e| OpenError::Connect(describe(&e)))?;
    Ok(conn.backend_name() == "SQLite")
}

/// The full-text index of the messages' text, which the two databases build differently
/// (so it is made here, not by a shared migration): an FTS5 table kept by triggers in
/// SQLite (filled from the messages already stored when it is first made), a GIN index
/// over `to_tsvector('simple', ...)` in PostgreSQL.
async fn search_index(pool: &AnyPool) -> Result<(), OpenError> {
    let fail = |e: sqlx::Error| OpenError::Migrate(format!("search index: {}", describe(&e)));
    if !is_sqlite(pool).await? {
        let made = sqlx::query("SELECT to_regclass('messages_search') IS NOT NULL")
            .fetch_one(pool)
            .await
            .map_err(fail)?;
        if made.try_get::<bool, _>(0).map_err(fail)? {
            return Ok(());
        }
        // Messages stored before the search: their text, where their JSON parses (a
        // NUL escape does not as jsonb).
        sqlx::query(
            "UPDATE messages SET search_text = data::jsonb->>'content' WHERE search_text IS NULL \
             AND deleted_at IS NULL AND position('\\u0000' in data) = 0",
        )
        .execute(pool)
        .await
        .map_err(fail)?;
        sqlx::query(&format!(
            "CREATE INDEX IF NOT EXISTS messages_search ON messages USING gin ({PG_SEARCH_VECTOR})"
        ))
        .execute(pool)
        .await
        .map_err(fail)?;
        return Ok(());
    }
    let exists = sqlx::query("SELECT 1 FROM sqlite_master WHERE name = 'messages_fts'")
        .fetch_optional(pool)
        .await
        .map_err(fail)?
        .is_some();
    if exists {
        return Ok(());
    }
    let mut tx = pool.begin().await.map_err(fail)?;
    for statement in SQLITE_SEARCH_SCHEMA {
        sqlx::query(statement)
            .execute(&mut *tx)
            .await
            .map_err(fail)?;
    }
    tx.commit().await.map_err(fail)
}

/// The PostgreSQL text vector of a message, as its index and its queries spell it.
const PG_SEARCH_VECTOR: &str = "to_tsvector('simple', COALESCE(search_text, ''))";

/// What the search finds a message by: its `data.content` (none for tombstones).
fn search_text(data: &serde_json::Value) -> Option<&str> {
    data.get("content").and_then(|c| c.as_str())
}

/// The search text of the messages stored before the search, then SQLite's full-text
/// table of it and the triggers that keep it, then those messages.
const SQLITE_SEARCH_SCHEMA: [&str; 6] = [
    "UPDATE messages SET search_text = json_extract(data, '$.content') \
     WHERE search_text IS NULL AND deleted_at IS NULL",
    "CREATE VIRTUAL TABLE messages_fts USING fts5(content, content='', contentless_delete=1, \
     tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages \
     WHEN new.search_text IS NOT NULL BEGIN \
     INSERT INTO messages_fts (rowid, content) VALUES (new.rowid, new.search_text); END",
    "CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN \
     DELETE FROM messages_fts WHERE rowid = old.rowid; END",
    "CREATE TRIGGER messages_fts_update AFTER UPDATE OF search_text ON messages BEGIN \
     DELETE FROM messages_fts WHERE rowid = old.rowid; \
     INSERT INTO messages_fts (rowid, content) SELECT new.rowid, new.search_text \
     WHERE new.search_text IS NOT NULL; END",
    "INSERT INTO messages_fts (rowid, content) SELECT rowid, search_text FROM messages \
     WHERE search_text IS NOT NULL",
];

/// `query` as an FTS5 query: each word quoted (so no word is taken as syntax), all
/// required.
fn fts5_query(query: &str) -> String {
    query
        .split_whitespace()
        .map(|word| format!("\"{}\"", word.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" ")
}

async fn applied(pool: &AnyPool) -> usize {
    sqlx::query("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
        .fetch_one(pool)
        .await
        .and_then(|row| row.try_get::<i64, _>(0))
        .map_or(0, |n| n as usize)
}

impl SqlLog {
    /// Opens the log at `location`, migrating its schema, and starts its writer.
    pub async fn open(location: &LogLocation, settings: SqlSettings) -> Result<Self, OpenError> {
        let pool = connect(location, settings).await?;
        let applied = migrate(&pool).await?;
        if applied > 0 {
            info!(applied, kind = location.kind(), "message log migrated");
        }
        let (queue, rx) = mpsc::channel(APPEND_QUEUE);
        let committed: Arc<OnceLock<Weak<dyn Committed>>> = Arc::default();
        let stop = CancellationToken::new();
        let writer = tokio::spawn(write_loop(
            pool.clone(),
            rx,
            committed.clone(),
            settings.timeout,
            stop.clone(),
        ));
        Ok(Self {
            pool,
            queue,
            committed,
            stop,
            writer: Mutex::new(Some(writer)),
            timeout: settings.timeout,
            sqlite: matches!(location, LogLocation::Sqlite(_)),
        })
    }

    /// Runs `query` within DATABASE_TIMEOUT.
    async fn timed<T>(
        &self,
        query: impl std::future::Future<Output = Result<T, sqlx::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.timeout, query).await {
            Ok(result) => result.map_err(unavailable),
            Err(_) => Err(StoreError::Unavailable(
                "the database did not answer in time".into(),
            )),
        }
    }

    async fn message(&self, room: &RoomName, id: Uuid) -> Result<Option<Message>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM messages WHERE room = $1 AND id = $2");
        let row = self
            .timed(
                sqlx::query(&sql)
                    .bind(room.as_str())
                    .bind(id.to_string())
                    .fetch_optional(&self.pool),
            )
            .await?;
        row.as_ref().map(message_of).transpose()
    }

    /// Sets `data` of live message `id` (only `author`'s, unless `None`), stamping
    /// `column` now.
    async fn rewrite(
        &self,
        room: &RoomName,
        id: Uuid,
        author: Option<&str>,
        data: serde_json::Value,
        column: &str,
    ) -> Result<Message, StoreError> {
        let by_author = if author.is_some() {
            " AND sender_id = $6"
        } else {
            ""
        };
        let sql = format!(
            "UPDATE messages SET data = $1, {column} = $2, search_text = $5 \
             WHERE room = $3 AND id = $4 AND deleted_at IS NULL{by_author}"
        );
        let query = sqlx::query(&sql)
            .bind(data.to_string())
            .bind(now_ms() as i64)
            .bind(room.as_str())
            .bind(id.to_string())
            .bind(search_text(&data));
        let query = match author {
            Some(author) => query.bind(author),
            None => query,
        };
        let done = self.timed(query.execute(&self.pool)).await?;
        let message = self.message(room, id).await?.ok_or(StoreError::NotFound)?;
        if done.rows_affected() == 0 {
            return Err(if author.is_some_and(|a| message.from != a) {
                StoreError::NotAuthor
            } else {
                StoreError::NotFound
            });
        }
        Ok(message)
    }

    async fn prune_steps(&self, sql: &str, binds: (&str, i64)) -> Result<u64, StoreError> {
        let mut removed = 0;
        loop {
            let mut query = sqlx::query(sql);
            if !binds.0.is_empty() {
                query = query.bind(binds.0);
            }
            let done = self
                .timed(query.bind(binds.1).bind(PRUNE_STEP).execute(&self.pool))
                .await?;
            removed += done.rows_affected();
            if done.rows_affected() < PRUNE_STEP as u64 {
                return Ok(removed);
            }
            tokio::task::yield_now().await;
        }
    }
}

impl SqlLog {
    /// The unread count of `user` in `room` after `read_offset`.
    async fn count_unread(
        &self,
        room: &str,
        user: &str,
        read_offset: i64,
    ) -> Result<u64, StoreError> {
        let row = self
            .timed(
                sqlx::query(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM messages WHERE room = $1 AND \
                     room_offset > $2 AND sender_id <> $3 AND deleted_at IS NULL LIMIT $4) \
                     AS counted",
                )
                .bind(room)
                .bind(read_offset)
                .bind(user)
                .bind(MAX_UNREAD_COUNT as i64)
                .fetch_one(&self.pool),
            )
            .await?;
        let count: i64 = row.try_get(0).map_err(unavailable)?;
        Ok(count.max(0) as u64)
    }

    async fn last_offset(&self, room: &str) -> Result<u64, StoreError> {
        let row = self
            .timed(
                sqlx::query("SELECT last_offset FROM rooms WHERE name = $1")
                    .bind(room)
                    .fetch_optional(&self.pool),
            )
            .await?;
        match row {
            Some(row) => Ok(row.try_get::<i64, _>(0).map_err(unavailable)?.max(0) as u64),
            None => Ok(0),
        }
    }
}

impl ReadPositions for SqlLog {
    fn mark_read<'a>(
        &'a self,
        room: &'a RoomName,
        user: &'a str,
        anonymous: bool,
        offset: u64,
        now_ms: u64,
    ) -> BoxFuture<'a, Result<(u64, bool), StoreError>> {
        Box::pin(async move {
            // Each statement is atomic: forward (the usual case), else new, else as it was.
            let forward = self
                .timed(
                    sqlx::query(
                        "UPDATE read_positions SET read_offset = $3, updated_at = $4 \
                         WHERE room = $1 AND user_id = $2 AND read_offset < $3",
                    )
                    .bind(room.as_str())
                    .bind(user)
                    .bind(offset as i64)
                    .bind(now_ms as i64)
                    .execute(&self.pool),
                )
                .await?;
            if forward.rows_affected() > 0 {
                return Ok((offset, true));
            }
            let inserted = self
                .timed(
                    sqlx::query(
                        "INSERT INTO read_positions (room, user_id, read_offset, anonymous, \
                         updated_at) VALUES ($1, $2, $3, $4, $5) \
                         ON CONFLICT (room, user_id) DO NOTHING",
                    )
                    .bind(room.as_str())
                    .bind(user)
                    .bind(offset as i64)
                    .bind(i64::from(anonymous))
                    .bind(now_ms as i64)
                    .execute(&self.pool),
                )
                .await?;
            if inserted.rows_affected() > 0 {
                return Ok((offset, offset > 0));
            }
            let row = self
                .timed(
                    sqlx::query(
                        "UPDATE read_positions SET updated_at = $3 \
                         WHERE room = $1 AND user_id = $2 RETURNING read_offset",
                    )
                    .bind(room.as_str())
                    .bind(user)
                    .bind(now_ms as i64)
                    .fetch_one(&self.pool),
                )
                .await?;
            let now: i64 = row.try_get(0).map_err(unavailable)?;
            Ok((now.max(0) as u64, false))
        })
    }

    fn unread<'a>(
        &'a self,
        room: &'a RoomName,
        user: &'a str,
    ) -> BoxFuture<'a, Result<Unread, StoreError>> {
        Box::pin(async move {
            let row = self
                .timed(
                    sqlx::query(
                        "SELECT read_offset FROM read_positions WHERE room = $1 AND user_id = $2",
                    )
                    .bind(room.as_str())
                    .bind(user)
                    .fetch_optional(&self.pool),
                )
                .await?;
            let read_offset = match row {
                Some(row) => row.try_get::<i64, _>(0).map_err(unavailable)?.max(0),
                None => 0,
            };
            Ok(Unread {
                read_offset: read_offset as u64,
                unread: self.count_unread(room.as_str(), user, read_offset).await?,
                last_offset: self.last_offset(room.as_str()).await?,
            })
        })
    }

    fn unread_rooms<'a>(
        &'a self,
        user: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<(RoomName, Unread)>, StoreError>> {
        Box::pin(async move {
            let rows = self
                .timed(
                    sqlx::query(
                        "SELECT room, read_offset FROM read_positions WHERE user_id = $1 \
                         ORDER BY updated_at DESC LIMIT $2",
                    )
                    .bind(user)
                    .bind(limit as i64)
                    .fetch_all(&self.pool),
                )
                .await?;
            let mut rooms = Vec::with_capacity(rows.len());
            for row in rows {
                let name: String = row.try_get(0).map_err(unavailable)?;
                let read_offset: i64 = row.try_get::<i64, _>(1).map_err(unavailable)?.max(0);
                let Ok(room) = RoomName::parse(&name) else {
                    continue;
                };
                let unread = Unread {
                    read_offset: read_offset as u64,
                    unread: self.count_unread(&name, user, read_offset).await?,
                    last_offset: self.last_offset(&name).await?,
                };
                rooms.push((room, unread));
            }
            Ok(rooms)
        })
    }
}

impl SqlLog {
    /// Each emoji's count on message `id`.
    async fn reaction_counts(&self, id: &str) -> Result<ReactionCounts, StoreError> {
        let rows = self
            .timed(
                sqlx::query(
                    "SELECT emoji, COUNT(*) FROM reactions WHERE message_id = $1 GROUP BY emoji",
                )
                .bind(id)
                .fetch_all(&self.pool),
            )
            .await?;
        let mut counts = ReactionCounts::new();
        for row in rows {
            let emoji: String = row.try_get(0).map_err(unavailable)?;
            let count: i64 = row.try_get(1).map_err(unavailable)?;
            counts.insert(emoji, count.max(0) as u64);
        }
        Ok(counts)
    }
}

impl Reactions for SqlLog {
    fn react<'a>(
        &'a self,
        room: &'a RoomName,
        id: Uuid,
        user: &'a str,
        emoji: &'a str,
        add: bool,
        now_ms: u64,
    ) -> BoxFuture<'a, Result<(bool, ReactionCounts), StoreError>> {
        Box::pin(async move {
            let id = id.to_string();
            let changed = if add {
                let counts = self.reaction_counts(&id).await?;
                if !counts.contains_key(emoji) && counts.len() >= MAX_EMOJIS_PER_MESSAGE {
                    return Err(StoreError::TooMany(format!(
                        "a message takes at most {MAX_EMOJIS_PER_MESSAGE} different emojis"
                    )));
                }
                self.timed(
                    sqlx::query(
                        "INSERT INTO reactions (message_id, emoji, user_id, room, created_at) \
                         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                    )
                    .bind(&id)
                    .bind(emoji)
                    .bind(user)
                    .bind(room.as_str())
                    .bind(now_ms as i64)
                    .execute(&self.pool),
                )
                .await?
                .rows_affected()
            } else {
                self.timed(
                    sqlx::query(
                        "DELETE FROM reactions WHERE message_id = $1 AND emoji = $2 AND user_id = $3",
                    )
                    .bind(&id)
                    .bind(emoji)
                    .bind(user)
                    .execute(&self.pool),
                )
                .await?
                .rows_affected()
            };
            Ok((changed > 0, self.reaction_counts(&id).await?))
        })
    }

    fn counts<'a>(
        &'a self,
        ids: &'a [Uuid],
    ) -> BoxFuture<'a, Result<HashMap<Uuid, ReactionCounts>, StoreError>> {
        Box::pin(async move {
            let mut counts: HashMap<Uuid, ReactionCounts> = HashMap::new();
            for chunk in ids.chunks(MAX_ROWS) {
                let list: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
                let sql = format!(
                    "SELECT message_id, emoji, COUNT(*) FROM reactions WHERE message_id IN ({}) \
                     GROUP BY message_id, emoji",
                    list.join(", ")
                );
                let mut query = sqlx::query(&sql);
                for id in chunk {
                    query = query.bind(id.to_string());
                }
                let rows = self.timed(query.fetch_all(&self.pool)).await?;
                for row in rows {
                    let id: String = row.try_get(0).map_err(unavailable)?;
                    let emoji: String = row.try_get(1).map_err(unavailable)?;
                    let count: i64 = row.try_get(2).map_err(unavailable)?;
                    if let Ok(id) = Uuid::parse_str(&id) {
                        counts
                            .entry(id)
                            .or_default()
                            .insert(emoji, count.max(0) as u64);
                    }
                }
            }
            Ok(counts)
        })
    }
}

/// Columns every channel read selects, in [`channel_of`]'s order.
const CHANNEL_COLUMNS: &str = "room, title, topic, private, created_by, created_at, updated_at";

/// A channel row, without its members.
fn channel_of(row: &AnyRow) -> Result<Channel, StoreError> {
    let room: String = row.try_get(0).map_err(unavailable)?;
    let private: i64 = row.try_get(3).map_err(unavailable)?;
    let created_at: i64 = row.try_get(5).map_err(unavailable)?;
    let updated_at: i64 = row.try_get(6).map_err(unavailable)?;
    Ok(Channel {
        room: RoomName::parse(&room)
            .map_err(|_| StoreError::Unavailable(format!("bad room name {room:?} in channels")))?,
        title: row.try_get(1).map_err(unavailable)?,
        topic: row.try_get(2).map_err(unavailable)?,
        private: private != 0,
        created_by: row.try_get(4).map_err(unavailable)?,
        created_at: rfc3339_of_ms(created_at.max(0) as u64),
        updated_at: rfc3339_of_ms(updated_at.max(0) as u64),
        members: Vec::new(),
    })
}

/// Inserts `channel`'s members.
async fn insert_members(conn: &mut AnyConnection, channel: &Channel) -> Result<(), sqlx::Error> {
    for chunk in power_of_two_chunks(&channel.members, MAX_ROWS) {
        let sql = format!(
            "INSERT INTO channel_members (room, user_id) VALUES {}",
            placeholders(chunk.len(), 2)
        );
        let mut query = sqlx::query(&sql);
        for member in chunk {
            query = query.bind(channel.room.as_str()).bind(member.as_str());
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

impl SqlLog {
    /// Sets the members of the private ones of `channels`.
    async fn with_members(&self, channels: &mut [Channel]) -> Result<(), StoreError> {
        let private: Vec<String> = channels
            .iter()
            .filter(|c| c.private)
            .map(|c| c.room.to_string())
            .collect();
        for chunk in private.chunks(MAX_ROWS) {
            let list: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
            let sql = format!(
                "SELECT room, user_id FROM channel_members WHERE room IN ({}) ORDER BY room, user_id",
                list.join(", ")
            );
            let mut query = sqlx::query(&sql);
            for room in chunk {
                query = query.bind(room.as_str());
            }
            for row in self.timed(query.fetch_all(&self.pool)).await? {
                let room: String = row.try_get(0).map_err(unavailable)?;
                let user: String = row.try_get(1).map_err(unavailable)?;
                if let Some(c) = channels.iter_mut().find(|c| c.room.as_str() == room) {
                    c.members.push(user);
                }
            }
        }
        // In byte order, as `Channel::admits` searches them (not the database's collation).
        for channel in channels.iter_mut() {
            channel.members.sort();
        }
        Ok(())
    }
}

impl Channels for SqlLog {
    fn create_channel<'a>(&'a self, channel: &'a Channel) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let created = self
                .timed(async {
                    let mut tx = self.pool.begin().await?;
                    let inserted = sqlx::query(&format!(
                        "INSERT INTO channels ({CHANNEL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7) \
                         ON CONFLICT (room) DO NOTHING"
                    ))
                    .bind(channel.room.as_str())
                    .bind(channel.title.as_str())
                    .bind(channel.topic.as_str())
                    .bind(i64::from(channel.private))
                    .bind(channel.created_by.as_str())
                    .bind(ms_of_rfc3339(&channel.created_at) as i64)
                    .bind(ms_of_rfc3339(&channel.updated_at) as i64)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if inserted == 0 {
                        return Ok(false);
                    }
                    insert_members(&mut tx, channel).await?;
                    tx.commit().await?;
                    Ok(true)
                })
                .await?;
            if created {
                Ok(())
            } else {
                Err(StoreError::Exists(format!(
                    "room {} has a channel already",
                    channel.room
                )))
            }
        })
    }

    fn channel<'a>(
        &'a self,
        room: &'a RoomName,
    ) -> BoxFuture<'a, Result<Option<Channel>, StoreError>> {
        Box::pin(async move {
            let sql = format!("SELECT {CHANNEL_COLUMNS} FROM channels WHERE room = $1");
            let row = self
                .timed(
                    sqlx::query(&sql)
                        .bind(room.as_str())
                        .fetch_optional(&self.pool),
                )
                .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let mut channels = [channel_of(&row)?];
            self.with_members(&mut channels).await?;
            let [channel] = channels;
            Ok(Some(channel))
        })
    }

    fn private_member<'a>(
        &'a self,
        room: &'a RoomName,
        user: &'a str,
    ) -> BoxFuture<'a, Result<Option<bool>, StoreError>> {
        Box::pin(async move {
            let row = self
                .timed(
                    sqlx::query(
                        "SELECT c.private, COUNT(m.user_id) FROM channels c LEFT JOIN \
                         channel_members m ON m.room = c.room AND m.user_id = $2 \
                         WHERE c.room = $1 GROUP BY c.private",
                    )
                    .bind(room.as_str())
                    .bind(user)
                    .fetch_optional(&self.pool),
                )
                .await?;
            let Some(row) = row else {
                return Ok(None);
            };
            let private: i64 = row.try_get(0).map_err(unavailable)?;
            let member: i64 = row.try_get(1).map_err(unavailable)?;
            Ok((private != 0).then_some(member > 0))
        })
    }

    fn closed_to<'a>(
        &'a self,
        rooms: &'a [RoomName],
        user: &'a str,
    ) -> BoxFuture<'a, Result<Vec<RoomName>, StoreError>> {
        Box::pin(async move {
            let mut closed = Vec::new();
            for chunk in rooms.chunks(MAX_ROWS) {
                let list: Vec<String> = (2..=chunk.len() + 1).map(|i| format!("${i}")).collect();
                let sql = format!(
                    "SELECT room FROM channels c WHERE c.private <> 0 AND c.room IN ({}) AND NOT \
                     EXISTS (SELECT 1 FROM channel_members m WHERE m.room = c.room AND m.user_id = $1)",
                    list.join(", ")
                );
                let mut query = sqlx::query(&sql).bind(user);
                for room in chunk {
                    query = query.bind(room.as_str());
                }
                for row in self.timed(query.fetch_all(&self.pool)).await? {
                    let room: String = row.try_get(0).map_err(unavailable)?;
                    if let Ok(room) = RoomName::parse(&room) {
                        closed.push(room);
                    }
                }
            }
            Ok(closed)
        })
    }

    fn private_channels<'a>(
        &'a self,
        rooms: &'a [RoomName],
    ) -> BoxFuture<'a, Result<Vec<Channel>, StoreError>> {
        Box::pin(async move {
            let mut private = Vec::new();
            for chunk in rooms.chunks(MAX_ROWS) {
                let list: Vec<String> = (1..=chunk.len()).map(|i| format!("${i}")).collect();
                let sql = format!(
                    "SELECT {CHANNEL_COLUMNS} FROM channels WHERE private <> 0 AND room IN ({})",
                    list.join(", ")
                );
                let mut query = sqlx::query(&sql);
                for room in chunk {
                    query = query.bind(room.as_str());
                }
                for row in self.timed(query.fetch_all(&self.pool)).await? {
                    private.push(channel_of(&row)?);
                }
            }
            self.with_members(&mut private).await?;
            Ok(private)
        })
    }

    fn list_channels<'a>(
        &'a self,
        user: Option<&'a str>,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Channel>, StoreError>> {
        Box::pin(async move {
            let visible = if user.is_some() {
                "AND (private = 0 OR EXISTS (SELECT 1 FROM channel_members m \
                 WHERE m.room = channels.room AND m.user_id = $3))"
            } else {
                ""
            };
            let sql = format!(
                "SELECT {CHANNEL_COLUMNS} FROM channels WHERE room > $1 {visible} \
                 ORDER BY room LIMIT $2"
            );
            let mut query = sqlx::query(&sql)
                .bind(after.unwrap_or(""))
                .bind(limit as i64);
            if let Some(user) = user {
                query = query.bind(user);
            }
            let rows = self.timed(query.fetch_all(&self.pool)).await?;
            let mut channels = rows.iter().map(channel_of).collect::<Result<Vec<_>, _>>()?;
            self.with_members(&mut channels).await?;
            Ok(channels)
        })
    }

    fn update_channel<'a>(&'a self, channel: &'a Channel) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let updated = self
                .timed(async {
                    let mut tx = self.pool.begin().await?;
                    let updated = sqlx::query(
                        "UPDATE channels SET title = $2, topic = $3, private = $4, updated_at = $5 \
                         WHERE room = $1",
                    )
                    .bind(channel.room.as_str())
                    .bind(channel.title.as_str())
                    .bind(channel.topic.as_str())
                    .bind(i64::from(channel.private))
                    .bind(ms_of_rfc3339(&channel.updated_at) as i64)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if updated == 0 {
                        return Ok(false);
                    }
                    sqlx::query("DELETE FROM channel_members WHERE room = $1")
                        .bind(channel.room.as_str())
                        .execute(&mut *tx)
                        .await?;
                    insert_members(&mut tx, channel).await?;
                    tx.commit().await?;
                    Ok(true)
                })
                .await?;
            if updated {
                Ok(())
            } else {
                Err(StoreError::NotFound)
            }
        })
    }

    fn delete_channel<'a>(&'a self, room: &'a RoomName) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            self.timed(async {
                let mut tx = self.pool.begin().await?;
                let deleted = sqlx::query("DELETE FROM channels WHERE room = $1")
                    .bind(room.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if deleted == 0 {
                    return Ok(false);
                }
                // The room's and its threads' reactions, read positions and messages;
                // its `rooms` row (the last offset) stays.
                for sql in [
                    "DELETE FROM channel_members WHERE room = $1",
                    "DELETE FROM reactions WHERE room = $1 OR room IN \
                     (SELECT DISTINCT room FROM messages WHERE thread_parent = $1)",
                    "DELETE FROM read_positions WHERE room = $1 OR room IN \
                     (SELECT DISTINCT room FROM messages WHERE thread_parent = $1)",
                    "DELETE FROM messages WHERE room = $1 OR thread_parent = $1",
                ] {
                    sqlx::query(sql)
                        .bind(room.as_str())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(true)
            })
            .await
        })
    }
}

impl RequestKeys for SqlLog {
    fn claim<'a>(
        &'a self,
        key: &'a str,
        fingerprint: &'a str,
        result: &'a str,
        now_ms: u64,
        expires_ms: u64,
    ) -> BoxFuture<'a, Result<Claim, StoreError>> {
        Box::pin(async move {
            self.timed(
                sqlx::query("DELETE FROM request_keys WHERE key = $1 AND expires_at <= $2")
                    .bind(key)
                    .bind(now_ms as i64)
                    .execute(&self.pool),
            )
            .await?;
            let inserted = self
                .timed(
                    sqlx::query(
                        "INSERT INTO request_keys (key, fingerprint, result, expires_at) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (key) DO NOTHING",
                    )
                    .bind(key)
                    .bind(fingerprint)
                    .bind(result)
                    .bind(expires_ms as i64)
                    .execute(&self.pool),
                )
                .await?;
            if inserted.rows_affected() == 1 {
                return Ok(Claim::Fresh);
            }
            let row = self
                .timed(
                    sqlx::query("SELECT fingerprint, result FROM request_keys WHERE key = $1")
                        .bind(key)
                        .fetch_optional(&self.pool),
                )
                .await?;
            let Some(row) = row else {
                // Released between the two statements: its request failed; this one
                // may be retried.
                return Ok(Claim::Pending {
                    fingerprint: fingerprint.to_owned(),
                });
            };
            let held: String = row.try_get(0).map_err(unavailable)?;
            let result: Option<String> = row.try_get(1).map_err(unavailable)?;
            Ok(match result {
                None => Claim::Pending { fingerprint: held },
                Some(result) => Claim::Done {
                    fingerprint: held,
                    result,
                },
            })
        })
    }

    fn settle<'a>(
        &'a self,
        key: &'a str,
        result: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.timed(
                sqlx::query("UPDATE request_keys SET result = $1 WHERE key = $2")
                    .bind(result)
                    .bind(key)
                    .execute(&self.pool),
            )
            .await
            .map(drop)
        })
    }

    fn replace<'a>(
        &'a self,
        key: &'a str,
        old: &'a str,
        new: &'a str,
        expires_ms: u64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let done = self
                .timed(
                    sqlx::query(
                        "UPDATE request_keys SET result = $1, expires_at = $2 \
                         WHERE key = $3 AND result = $4",
                    )
                    .bind(new)
                    .bind(expires_ms as i64)
                    .bind(key)
                    .bind(old)
                    .execute(&self.pool),
                )
                .await?;
            Ok(done.rows_affected() == 1)
        })
    }

    fn release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.timed(
                sqlx::query("DELETE FROM request_keys WHERE key = $1")
                    .bind(key)
                    .execute(&self.pool),
            )
            .await
            .map(drop)
        })
    }
}

impl MessageLog for SqlLog {
    fn attach(&self, committed: Weak<dyn Committed>) {
        let _ = self.committed.set(committed);
    }

    fn append(&self, entry: Unstored) -> Appended {
        let (reply, settled) = oneshot::channel();
        let queued = self.queue.try_send(Pending { entry, reply });
        Box::pin(async move {
            match queued {
                Ok(()) => settled.await.unwrap_or_else(|_| {
                    Err(StoreError::Unavailable("the message log stopped".into()))
                }),
                Err(mpsc::error::TrySendError::Full(_)) => Err(StoreError::Unavailable(
                    "too many messages waiting to be stored".into(),
                )),
                Err(mpsc::error::TrySendError::Closed(_)) => Err(StoreError::Unavailable(
                    "the server is shutting down".into(),
                )),
            }
        })
    }

    fn after<'a>(
        &'a self,
        room: &'a RoomName,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Message>, StoreError>> {
        Box::pin(async move {
            let sql = format!(
                "SELECT {COLUMNS} FROM messages WHERE room = $1 AND room_offset > $2 \
                 ORDER BY room_offset LIMIT $3"
            );
            let rows = self
                .timed(
                    sqlx::query(&sql)
                        .bind(room.as_str())
                        .bind(after as i64)
                        .bind(limit as i64)
                        .fetch_all(&self.pool),
                )
                .await?;
            rows.iter().map(message_of).collect()
        })
    }

    fn bounds<'a>(&'a self, room: &'a RoomName) -> BoxFuture<'a, Result<RoomBounds, StoreError>> {
        Box::pin(async move {
            let row = self
                .timed(
                    sqlx::query(
                        "SELECT last_offset, (SELECT MIN(room_offset) FROM messages \
                         WHERE room = $1) AS first FROM rooms WHERE name = $1",
                    )
                    .bind(room.as_str())
                    .fetch_optional(&self.pool),
                )
                .await?;
            let Some(row) = row else {
                return Ok(RoomBounds::default());
            };
            let last: i64 = row.try_get(0).map_err(unavailable)?;
            let first: Option<i64> = row.try_get(1).map_err(unavailable)?;
            Ok(RoomBounds {
                first: first.map(|f| f as u64),
                last: last as u64,
            })
        })
    }

    fn find(&self, id: Uuid) -> BoxFuture<'_, Result<Option<Message>, StoreError>> {
        Box::pin(async move {
            let sql = format!("SELECT {COLUMNS} FROM messages WHERE id = $1");
            let row = self
                .timed(
                    sqlx::query(&sql)
                        .bind(id.to_string())
                        .fetch_optional(&self.pool),
                )
                .await?;
            row.as_ref().map(message_of).transpose()
        })
    }

    fn offset_of<'a>(
        &'a self,
        room: &'a RoomName,
        at: MessageRef,
    ) -> BoxFuture<'a, Result<Option<u64>, StoreError>> {
        Box::pin(async move {
            let id = match at {
                MessageRef::Offset(offset) => return Ok(Some(offset)),
                MessageRef::Id(id) => id,
            };
            let row = self
                .timed(
                    sqlx::query("SELECT room_offset FROM messages WHERE room = $1 AND id = $2")
                        .bind(room.as_str())
                        .bind(id.to_string())
                        .fetch_optional(&self.pool),
                )
                .await?;
            row.map(|r| r.try_get::<i64, _>(0).map(|o| o as u64))
                .transpose()
                .map_err(unavailable)
        })
    }

    fn page<'a>(
        &'a self,
        room: &'a RoomName,
        before: Option<MessageRef>,
        limit: usize,
    ) -> BoxFuture<'a, Result<HistoryPage, StoreError>> {
        Box::pin(async move {
            let newest_first = "ORDER BY room_offset DESC LIMIT";
            let sql = match before {
                None => format!(
                    "SELECT {COLUMNS} FROM messages WHERE room = $1 AND room_offset > $2 \
                     {newest_first} $3"
                ),
                Some(MessageRef::Offset(_)) => format!(
                    "SELECT {COLUMNS} FROM messages WHERE room = $1 AND room_offset < $2 \
                     {newest_first} $3"
                ),
                Some(MessageRef::Id(_)) => format!(
                    "SELECT {COLUMNS} FROM messages WHERE room = $1 AND room_offset < \
                     (SELECT room_offset FROM messages WHERE id = $2 AND room = $1) \
                     {newest_first} $3"
                ),
            };
            let query = sqlx::query(&sql).bind(room.as_str());
            let query = match before {
                None => query.bind(0i64),
                Some(MessageRef::Offset(o)) => query.bind(o as i64),
                Some(MessageRef::Id(id)) => query.bind(id.to_string()),
            };
            // One more than asked: whether older messages exist.
            let rows = self
                .timed(query.bind(limit as i64 + 1).fetch_all(&self.pool))
                .await?;
            let has_more = rows.len() > limit;
            let mut messages = rows
                .iter()
                .take(limit)
                .map(message_of)
                .collect::<Result<Vec<_>, _>>()?;
            messages.reverse();
            Ok(HistoryPage { messages, has_more })
        })
    }

    fn edit<'a>(
        &'a self,
        room: &'a RoomName,
        id: Uuid,
        author: Option<&'a str>,
        content: String,
    ) -> BoxFuture<'a, Result<Message, StoreError>> {
        let data = edited_data(content, &now_rfc3339());
        Box::pin(self.rewrite(room, id, author, data, "edited_at"))
    }

    fn delete<'a>(
        &'a self,
        room: &'a RoomName,
        id: Uuid,
        author: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Message, StoreError>> {
        let data = tombstone_data(&now_rfc3339());
        Box::pin(self.rewrite(room, id, author, data, "deleted_at"))
    }

    fn prune(&self, retention: Retention, now_ms: u64) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(async move {
            let cutoff = retention.cutoff_ms(now_ms) as i64;
            let mut removed = self
                .prune_steps(
                    "DELETE FROM messages WHERE (room, room_offset) IN (SELECT room, \
                     room_offset FROM messages WHERE created_at < $1 LIMIT $2)",
                    ("", cutoff),
                )
                .await?;
            // Expired request keys go with the messages, and anonymous users' read
            // positions a day after their last move.
            self.timed(
                sqlx::query("DELETE FROM request_keys WHERE expires_at <= $1")
                    .bind(now_ms as i64)
                    .execute(&self.pool),
            )
            .await?;
            // Reactions go with the age of the messages (a reaction is never older
            // than its message).
            self.timed(
                sqlx::query("DELETE FROM reactions WHERE created_at < $1")
                    .bind(cutoff)
                    .execute(&self.pool),
            )
            .await?;
            let stale = now_ms.saturating_sub(ANONYMOUS_POSITION_TTL_MS) as i64;
            self.timed(
                sqlx::query("DELETE FROM read_positions WHERE anonymous = 1 AND updated_at < $1")
                    .bind(stale)
                    .execute(&self.pool),
            )
            .await?;
            let Some(limit) = retention.limit else {
                return Ok(removed);
            };
            let rooms = self
                .timed(
                    sqlx::query("SELECT name, last_offset FROM rooms WHERE last_offset > $1")
                        .bind(limit as i64)
                        .fetch_all(&self.pool),
                )
                .await?;
            for row in rooms {
                let name: String = row.try_get(0).map_err(unavailable)?;
                let last: i64 = row.try_get(1).map_err(unavailable)?;
                let gone = self
                    .prune_steps(
                        "DELETE FROM messages WHERE (room, room_offset) IN (SELECT room, \
                         room_offset FROM messages WHERE room = $1 AND room_offset <= $2 \
                         LIMIT $3)",
                        (&name, last - limit as i64),
                    )
                    .await?;
                if gone > 0 {
                    // The reactions of the messages that went.
                    self.timed(
                        sqlx::query(
                            "DELETE FROM reactions WHERE room = $1 AND message_id NOT IN \
                             (SELECT id FROM messages WHERE room = $1)",
                        )
                        .bind(&name)
                        .execute(&self.pool),
                    )
                    .await?;
                }
                removed += gone;
            }
            Ok(removed)
        })
    }

    fn search<'a>(
        &'a self,
        rooms: &'a [RoomName],
        query: &'a str,
        before: Option<Uuid>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Message>, StoreError>> {
        Box::pin(async move {
            if rooms.is_empty() {
                return Ok(Vec::new());
            }
            let (text, query) = if self.sqlite {
                (
                    "rowid IN (SELECT rowid FROM messages_fts WHERE messages_fts MATCH $1)"
                        .to_owned(),
                    fts5_query(query),
                )
            } else {
                (
                    format!("{PG_SEARCH_VECTOR} @@ plainto_tsquery('simple', $1) AND deleted_at IS NULL"),
                    query.to_owned(),
                )
            };
            let cursor = match before {
                Some(before) => {
                    let row = self
                        .timed(
                            sqlx::query("SELECT created_at FROM messages WHERE id = $1")
                                .bind(before.to_string())
                                .fetch_optional(&self.pool),
                        )
                        .await?;
                    let Some(row) = row else {
                        return Err(StoreError::NotFound);
                    };
                    Some((
                        row.try_get::<i64, _>(0).map_err(unavailable)?,
                        before.to_string(),
                    ))
                }
                None => None,
            };
            let rooms_list: Vec<String> = (0..rooms.len()).map(|i| format!("${}", i + 2)).collect();
            let next = rooms.len() + 2;
            let older = if cursor.is_some() {
                format!(
                    " AND (created_at < ${next} OR (created_at = ${next} AND id < ${}))",
                    next + 1
                )
            } else {
                String::new()
            };
            let limit_at = if cursor.is_some() { next + 2 } else { next };
            let sql = format!(
                "SELECT {COLUMNS} FROM messages WHERE {text} AND room IN ({}){older} \
                 ORDER BY created_at DESC, id DESC LIMIT ${limit_at}",
                rooms_list.join(", ")
            );
            let mut q = sqlx::query(&sql).bind(query);
            for room in rooms {
                q = q.bind(room.as_str());
            }
            if let Some((at, id)) = &cursor {
                q = q.bind(*at).bind(id.as_str());
            }
            let rows = self
                .timed(q.bind(limit as i64).fetch_all(&self.pool))
                .await?;
            rows.iter().map(message_of).collect()
        })
    }

    fn thread_summaries<'a>(
        &'a self,
        roots: &'a [Uuid],
    ) -> BoxFuture<'a, Result<HashMap<Uuid, ThreadSummary>, StoreError>> {
        Box::pin(async move {
            let mut summaries = HashMap::new();
            for chunk in roots.chunks(MAX_ROWS) {
                let names: Vec<String> =
                    chunk.iter().map(|r| thread_room(*r).to_string()).collect();
                let list: Vec<String> = (1..=names.len()).map(|i| format!("${i}")).collect();
                let list = list.join(", ");
                let sql = format!(
                    "SELECT r.name, r.last_offset, (SELECT MAX(m.created_at) FROM messages m \
                     WHERE m.room = r.name) FROM rooms r WHERE r.name IN ({list}) AND \
                     r.last_offset > 0"
                );
                let mut query = sqlx::query(&sql);
                for name in &names {
                    query = query.bind(name.as_str());
                }
                for row in self.timed(query.fetch_all(&self.pool)).await? {
                    let name: String = row.try_get(0).map_err(unavailable)?;
                    let last: i64 = row.try_get(1).map_err(unavailable)?;
                    let at: Option<i64> = row.try_get(2).map_err(unavailable)?;
                    // Every reply pruned: nothing to show.
                    let Some(at) = at else {
                        continue;
                    };
                    if let Some(root) = thread_root(&name) {
                        let summary = ThreadSummary {
                            reply_count: last.max(0) as u64,
                            last_reply_at: rfc3339_of_ms(at.max(0) as u64),
                        };
                        summaries.insert(root, summary);
                    }
                }
            }
            Ok(summaries)
        })
    }

    fn drain(&self) -> BoxFuture<'_, ()> {
        self.stop.cancel();
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        Box::pin(async move {
            if let Some(writer) = writer {
                if let Err(e) = writer.await {
                    warn!(error = %e, "message log writer failed");
                }
            }
        })
    }
}

/// Commits queued appends, batch by batch, until stopped and empty.
async fn write_loop(
    pool: AnyPool,
    mut rx: mpsc::Receiver<Pending>,
    committed: Arc<OnceLock<Weak<dyn Committed>>>,
    timeout: Duration,
    stop: CancellationToken,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut stopping = false;
    // The writer keeps one connection: its page cache stays warm (an SQLite connection
    // re-reads what another connection wrote) and no batch waits for the pool.
    let mut held: Option<PoolConnection<Any>> = None;
    loop {
        tokio::select! {
            biased;
            () = stop.cancelled(), if !stopping => {
                // Refuse new appends; what is queued is still written.
                stopping = true;
                rx.close();
                continue;
            }
            n = rx.recv_many(&mut batch, MAX_BATCH) => if n == 0 { return },
        }
        let entries: Vec<Insert<'_>> = batch
            .iter()
            .map(|p| (&p.entry.message, p.entry.sender_name.as_deref()))
            .collect();
        let writing = async {
            let conn = match held.as_mut() {
                Some(conn) => conn,
                None => held.insert(pool.acquire().await?),
            };
            commit(conn, &entries).await
        };
        let outcome = match tokio::time::timeout(timeout, writing).await {
            Ok(Ok(offsets)) => Ok(offsets),
            Ok(Err(e)) => Err(unavailable(e)),
            Err(_) => Err(StoreError::Unavailable(
                "the database did not commit in time".into(),
            )),
        };
        if outcome.is_err() {
            // In an unknown state (or broken): closed, and a fresh one next time.
            if let Some(conn) = held.take() {
                drop(conn.detach());
            }
        }
        match outcome {
            Ok(offsets) => {
                let stored: Vec<Stored> = batch
                    .iter_mut()
                    .zip(offsets)
                    .map(|(pending, offset)| {
                        let origin = pending.entry.origin.take();
                        let mut message = std::mem::replace(
                            &mut pending.entry.message,
                            Message::chat(None, String::new(), String::new()),
                        );
                        message.offset = Some(offset);
                        Stored {
                            message: Arc::new(message),
                            origin,
                        }
                    })
                    .collect();
                if let Some(chat) = committed.get().and_then(Weak::upgrade) {
                    chat.committed(&stored);
                }
                for (pending, stored) in batch.drain(..).zip(stored) {
                    let _ = pending.reply.send(Ok(stored.message));
                }
            }
            Err(e) => {
                warn!(error = %e, messages = batch.len(), "messages not stored");
                for pending in batch.drain(..) {
                    let _ = pending.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Stores `messages` in one transaction; their offsets, in order.
async fn commit(
    conn: &mut AnyConnection,
    messages: &[Insert<'_>],
) -> Result<Vec<u64>, sqlx::Error> {
    let mut attempt = 0;
    loop {
        match try_commit(conn, messages).await {
            Err(e) if attempt < RETRIES && is_retryable(&e) => attempt += 1,
            result => return result,
        }
    }
}

/// A message to insert and its sender's display name.
type Insert<'a> = (&'a Message, Option<&'a str>);

async fn try_commit(
    conn: &mut AnyConnection,
    messages: &[Insert<'_>],
) -> Result<Vec<u64>, sqlx::Error> {
    let now = now_ms() as i64;
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for (message, _) in messages {
        *counts.entry(room_key(message)).or_default() += 1;
    }
    let mut tx = conn.begin().await?;
    // Each room's new last offset; rooms in name order (a consistent lock order).
    let mut next: BTreeMap<String, i64> = BTreeMap::new();
    let rooms: Vec<(&str, i64)> = counts.into_iter().collect();
    for chunk in power_of_two_chunks(&rooms, MAX_ROWS) {
        let sql = format!(
            "INSERT INTO rooms (name, created_at, last_offset) VALUES {} \
             ON CONFLICT (name) DO UPDATE SET last_offset = rooms.last_offset + \
             excluded.last_offset RETURNING name, last_offset",
            placeholders(chunk.len(), 3)
        );
        let mut query = sqlx::query(&sql);
        for (name, count) in chunk {
            query = query.bind(*name).bind(now).bind(*count);
        }
        for row in query.fetch_all(&mut *tx).await? {
            let name: String = row.try_get(0)?;
            let last: i64 = row.try_get(1)?;
            let count = rooms
                .binary_search_by(|(n, _)| (*n).cmp(name.as_str()))
                .map_or(0, |i| rooms[i].1);
            next.insert(name, last - count + 1);
        }
    }
    let mut offsets = Vec::with_capacity(messages.len());
    for (message, _) in messages {
        let slot = next
            .get_mut(room_key(message))
            .ok_or_else(|| sqlx::Error::Protocol("the room upsert returned no offset".into()))?;
        offsets.push(*slot as u64);
        *slot += 1;
    }
    let rows: Vec<(Insert<'_>, u64)> = messages
        .iter()
        .copied()
        .zip(offsets.iter().copied())
        .collect();
    for chunk in power_of_two_chunks(&rows, MAX_ROWS) {
        let sql = format!(
            "INSERT INTO messages (room, room_offset, id, sender_id, sender_name, kind, data, \
             created_at, sender_unverified, thread_parent, search_text) VALUES {}",
            placeholders(chunk.len(), 11)
        );
        let mut query = sqlx::query(&sql);
        for ((message, name), offset) in chunk {
            query = query
                .bind(room_key(message))
                .bind(*offset as i64)
                .bind(message.id.to_string())
                .bind(message.from.as_str())
                .bind(*name)
                .bind(message.kind.as_str())
                .bind(message.data.to_string())
                .bind(ms_of_rfc3339(&message.timestamp) as i64)
                .bind(i64::from(
                    message.user.as_ref().is_some_and(|u| u.unverified),
                ))
                .bind(message.thread.as_ref().map(|t| t.room.as_str()))
                .bind(search_text(&message.data));
        }
        query.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(offsets)
}

/// `items` in consecutive chunks whose lengths are powers of two, at most `max`.
fn power_of_two_chunks<T>(items: &[T], max: usize) -> Vec<&[T]> {
    let mut chunks = Vec::new();
    let mut rest = items;
    while !rest.is_empty() {
        let len = rest.len().min(max);
        let size = 1 << (usize::BITS - 1 - len.leading_zeros());
        let (chunk, tail) = rest.split_at(size);
        chunks.push(chunk);
        rest = tail;
    }
    chunks
}

/// `($1, $2, $3), ($4, $5, $6)` for `rows` rows of `columns` values.
fn placeholders(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|r| {
            let values: Vec<String> = (1..=columns)
                .map(|c| format!("${}", r * columns + c))
                .collect();
            format!("({})", values.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The message in `row` (selected as [`COLUMNS`]).
fn message_of(row: &AnyRow) -> Result<Message, StoreError> {
    let corrupt = |what: &str| StoreError::Unavailable(format!("unreadable stored {what}"));
    let room: String = row.try_get(0).map_err(unavailable)?;
    let offset: i64 = row.try_get(1).map_err(unavailable)?;
    let id: String = row.try_get(2).map_err(unavailable)?;
    let from: String = row.try_get(3).map_err(unavailable)?;
    let kind: String = row.try_get(4).map_err(unavailable)?;
    let data: String = row.try_get(5).map_err(unavailable)?;
    let created: i64 = row.try_get(6).map_err(unavailable)?;
    let name: Option<String> = row.try_get(7).map_err(unavailable)?;
    let unverified: Option<i64> = row.try_get(8).map_err(unavailable)?;
    let user = name.map(|name| UserRef {
        id: from.clone(),
        name,
        unverified: unverified == Some(1),
    });
    let parent: Option<String> = row.try_get(9).map_err(unavailable)?;
    let thread = parent.and_then(|parent| {
        Some(ThreadRef {
            id: thread_root(&room)?,
            room: RoomName::parse(&parent).ok()?,
        })
    });
    Ok(Message {
        id: Uuid::parse_str(&id).map_err(|_| corrupt("id"))?,
        kind: MessageType::parse(&kind).ok_or_else(|| corrupt("type"))?,
        room: if room.is_empty() {
            None
        } else {
            Some(RoomName::parse(&room).map_err(|_| corrupt("room"))?)
        },
        from,
        user,
        data: serde_json::from_str(&data).map_err(|_| corrupt("data"))?,
        timestamp: rfc3339_of_ms(created.max(0) as u64),
        offset: Some(offset as u64),
        reactions: None,
        thread,
        reply_count: None,
        last_reply_at: None,
    })
}

/// Deadlocks and serialization failures: the transaction may simply be run again.
fn is_retryable(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db)
        if db.code().is_some_and(|c| c == "40P01" || c == "40001"))
}

fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(describe(&e))
}

/// What went wrong, without the URL (sqlx's errors never carry the password, but the
/// whole configuration may be echoed by some; keep to the error's own text).
fn describe(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => format!("database error: {}", db.message()),
        sqlx::Error::PoolTimedOut => "no database connection available in time".into(),
        sqlx::Error::Io(io) => format!("database connection: {io}"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_powers_of_two_and_cover_everything() {
        let items: Vec<usize> = (0..300).collect();
        let chunks = power_of_two_chunks(&items, 128);
        let sizes: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
        assert_eq!(sizes, [128, 128, 32, 8, 4]);
        let flat: Vec<usize> = chunks.concat();
        assert_eq!(flat, items);
        assert!(power_of_two_chunks::<u8>(&[], 128).is_empty());
    }

    #[test]
    fn placeholders_number_in_order() {
        assert_eq!(placeholders(2, 3), "($1, $2, $3), ($4, $5, $6)");
    }
}
