//! Search: the stored messages of the rooms a user may read whose text has every word
//! of a query, newest first, paged (PostgreSQL full-text search, SQLite FTS5, or a scan
//! of the memory log).

use uuid::Uuid;

use super::{ChatError, ChatService, HistoryPage, RoomName, Sender};

/// Longest search query, in bytes.
pub const MAX_QUERY_BYTES: usize = 200;

/// Results one search page holds at most.
pub const MAX_SEARCH_PAGE: usize = 50;

impl ChatService {
    /// Up to `limit` messages matching every word of `query`, newest first, older than
    /// message `before` when given: in `room` (any room the sender may join), or without
    /// one in the rooms the connection is in. `has_more` says whether older ones match.
    pub async fn search(
        &self,
        sender: &Sender,
        room: Option<&RoomName>,
        query: &str,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<HistoryPage, ChatError> {
        let query = query.trim();
        if query.is_empty() || query.len() > MAX_QUERY_BYTES {
            return Err(ChatError::invalid(format!(
                "q must be 1-{MAX_QUERY_BYTES} bytes of words"
            )));
        }
        if query.chars().any(char::is_control) {
            return Err(ChatError::invalid("q must not contain control characters"));
        }
        if limit == 0 || limit > MAX_SEARCH_PAGE {
            return Err(ChatError::invalid(format!(
                "limit must be 1-{MAX_SEARCH_PAGE}"
            )));
        }
        let rooms = match room {
            Some(room) => {
                self.admits(sender, room).await?;
                vec![room.clone()]
            }
            None => self.membership().rooms_of(&sender.conn),
        };
        let mut messages = self.log.search(&rooms, query, before, limit + 1).await?;
        let has_more = messages.len() > limit;
        messages.truncate(limit);
        Ok(HistoryPage { messages, has_more })
    }
}
