//! History and presence state: in memory on one node ([`memory`]), in Redis across pods
//! ([`redis`]). The chat talks to the traits; only the Redis implementations know keys.

pub mod memory;
pub mod redis;

use futures_util::future::BoxFuture;
use uuid::Uuid;

use crate::chat::{ChatError, Message, RoomName, Status, UserRef};

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No such message (or no longer retained).
    #[error("no message with that id in this room")]
    NotFound,
    /// Only the author may do this.
    #[error("only the author may change this message")]
    NotAuthor,
    /// The backend could not be reached or did not answer in time.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

impl From<StoreError> for ChatError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ChatError::invalid(e.to_string()),
            StoreError::NotAuthor => ChatError::Forbidden(e.to_string()),
            StoreError::Unavailable(_) => ChatError::Internal(e.to_string()),
        }
    }
}

/// One page of history, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    /// The messages, oldest first.
    pub messages: Vec<Message>,
    /// Whether older messages exist before the first one.
    pub has_more: bool,
}

/// Retention of each room's history.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// Most messages kept per room (HISTORY_LIMIT).
    pub limit: usize,
    /// Longest a message is kept (HISTORY_TTL).
    pub ttl: std::time::Duration,
}

impl Retention {
    /// Whether `message` is past the TTL at `now_ms` (Unix milliseconds).
    pub fn expired(&self, message: &Message, now_ms: u64) -> bool {
        message_ms(&message.id).saturating_add(self.ttl.as_millis() as u64) < now_ms
    }
}

/// The page of `log` (oldest first) that ends just before message `before` (or at the
/// newest), at most `limit` long. An unknown `before` gives an empty page.
pub fn page_of(log: &[Message], before: Option<Uuid>, limit: usize) -> HistoryPage {
    let end = match before {
        Some(id) => log.iter().position(|m| m.id == id).unwrap_or(0),
        None => log.len(),
    };
    let start = end.saturating_sub(limit);
    HistoryPage {
        messages: log[start..end].to_vec(),
        has_more: start > 0,
    }
}

/// Replaces `message`'s content if `author` wrote it.
pub fn apply_edit(
    message: &mut Message,
    author: &str,
    content: String,
    edited_at: String,
) -> Result<(), StoreError> {
    if message.from != author {
        return Err(StoreError::NotAuthor);
    }
    message.data = serde_json::json!({ "content": content, "edited_at": edited_at });
    Ok(())
}

/// Unix milliseconds encoded in a UUID v7 (0 for other versions).
pub fn message_ms(id: &Uuid) -> u64 {
    id.get_timestamp().map_or(0, |ts| {
        let (secs, nanos) = ts.to_unix();
        secs * 1000 + u64::from(nanos) / 1_000_000
    })
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Each room's chat history.
pub trait HistoryStore: Send + Sync + 'static {
    /// Stores a new message at once. Stores that persist through the bus pipeline (so a
    /// message is stored before other pods see it) do nothing here.
    fn append(&self, message: &Message);

    /// Up to `limit` messages before `before` (or the newest), oldest first.
    fn page<'a>(
        &'a self,
        room: &'a RoomName,
        before: Option<Uuid>,
        limit: usize,
    ) -> BoxFuture<'a, Result<HistoryPage, StoreError>>;

    /// Every message after `after`, oldest first; `None` when `after` is not retained.
    fn since<'a>(
        &'a self,
        room: &'a RoomName,
        after: Uuid,
    ) -> BoxFuture<'a, Result<Option<Vec<Message>>, StoreError>>;

    /// Replaces the content of `author`'s message `id` and returns it as it is now.
    fn edit<'a>(
        &'a self,
        room: &'a RoomName,
        id: Uuid,
        author: &'a str,
        content: String,
        edited_at: String,
    ) -> BoxFuture<'a, Result<Message, StoreError>>;

    /// Drops expired messages (stores that expire by themselves do nothing).
    fn sweep(&self) {}

    /// Deletes `author`'s message `id`.
    fn delete<'a>(
        &'a self,
        room: &'a RoomName,
        id: Uuid,
        author: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// Who is online in which room, across pods.
pub trait PresenceStore: Send + Sync + 'static {
    /// Records `user` online in `room` from this pod; `true` when no other pod had them.
    fn online<'a>(
        &'a self,
        room: &'a RoomName,
        user: &'a UserRef,
        status: Status,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Removes this pod's record of `user` in `room`; `true` when no other pod has them.
    fn offline<'a>(
        &'a self,
        room: &'a RoomName,
        user: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// The users online in `room`, each once.
    fn list<'a>(
        &'a self,
        room: &'a RoomName,
    ) -> BoxFuture<'a, Result<Vec<(UserRef, Status)>, StoreError>>;

    /// Refreshes this pod's liveness and room counts, and returns the users of dead pods,
    /// in `rooms`, that are now offline everywhere (each reported by one pod only).
    fn heartbeat<'a>(
        &'a self,
        rooms: &'a [(RoomName, usize)],
    ) -> BoxFuture<'a, Result<Vec<(RoomName, UserRef)>, StoreError>>;

    /// Active rooms with member counts, across pods, given this pod's own `local` counts.
    fn rooms<'a>(
        &'a self,
        local: &'a [(RoomName, usize)],
    ) -> BoxFuture<'a, Result<Vec<(String, u64)>, StoreError>>;
}
