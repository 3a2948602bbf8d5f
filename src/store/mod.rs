//! The chat's stores ([`crate::chat::HistoryStore`], [`crate::chat::PresenceStore`]):
//! in memory on one node ([`memory`]), in Redis across pods ([`redis`]), plus the
//! helpers they share. Only the Redis implementations know keys.

pub mod memory;
pub mod redis;

use uuid::Uuid;

use crate::chat::{HistoryPage, Message, StoreError};

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
