//! The message log ([`crate::chat::MessageLog`]): in memory ([`memory`]; `DATABASE_URL=
//! memory`, and the in-process clusters of tests) or in an SQL database through sqlx
//! ([`sql`]; SQLite by default, PostgreSQL across pods), plus the rules they share.

pub mod memory;
pub mod sql;

pub use crate::config::LogLocation;

use crate::chat::{Message, StoreError};

/// The name a room is kept under: its own, or `""` for global messages.
pub fn room_key(message: &Message) -> &str {
    message.room.as_ref().map_or("", |r| r.as_str())
}

/// Checks that `author` wrote `message` (`None`: moderation through the server API,
/// any author).
pub fn check_author(message: &Message, author: Option<&str>) -> Result<(), StoreError> {
    if author.is_none_or(|author| message.from == author) {
        Ok(())
    } else {
        Err(StoreError::NotAuthor)
    }
}

/// Whether `message` is a deleted message's tombstone.
pub fn is_tombstone(message: &Message) -> bool {
    message.data.get("deleted").and_then(|v| v.as_bool()) == Some(true)
}
