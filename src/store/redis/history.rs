//! Room histories in Redis lists (layout in [`crate::redis::history`]): pages, recovery
//! reads, edits and deletes. Appends ride the bus's publish pipeline.

use futures_util::future::BoxFuture;
use uuid::Uuid;

use crate::chat::{HistoryPage, HistoryStore, Message, Retention, RoomName, StoreError};
use crate::redis::{history, RedisLink};
use crate::store::{apply_edit, page_of};

/// Room histories in Redis lists.
pub struct RedisHistory {
    link: RedisLink,
    retention: Retention,
}

/// Edits or deletes one message of a list, atomically, if `author` wrote it.
/// Returns `{"ok", old_json}`, `{"forbidden"}` or `{"missing"}`.
const CHANGE_SCRIPT: &str = r#"
local items = redis.call('LRANGE', KEYS[1], 0, -1)
for i, item in ipairs(items) do
  local ok, m = pcall(cjson.decode, item)
  if ok and m.id == ARGV[1] then
    if m.from ~= ARGV[2] then return {'forbidden'} end
    if ARGV[3] == '' then
      redis.call('LREM', KEYS[1], 1, item)
    else
      redis.call('LSET', KEYS[1], i - 1, ARGV[3])
    end
    return {'ok', item}
  end
end
return {'missing'}
"#;

impl RedisHistory {
    /// Histories on `link` with `retention`.
    pub fn new(link: RedisLink, retention: Retention) -> Self {
        Self { link, retention }
    }

    async fn load(&self, room: &RoomName) -> Result<Vec<Message>, StoreError> {
        Ok(history::load_from(&self.link, room, 0, self.retention).await?)
    }

    async fn change(
        &self,
        room: &RoomName,
        id: Uuid,
        author: &str,
        replacement: String,
    ) -> Result<Message, StoreError> {
        let key = history::key(room);
        let (id, author) = (id.to_string(), author.to_owned());
        let reply: Vec<String> = self
            .link
            .with_conn(|mut c| async move {
                redis::Script::new(CHANGE_SCRIPT)
                    .key(key)
                    .arg(id)
                    .arg(author)
                    .arg(replacement)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        match reply.first().map(String::as_str) {
            Some("ok") => reply
                .get(1)
                .and_then(|old| serde_json::from_str(old).ok())
                .ok_or(StoreError::NotFound),
            Some("forbidden") => Err(StoreError::NotAuthor),
            _ => Err(StoreError::NotFound),
        }
    }
}

impl HistoryStore for RedisHistory {
    fn append(&self, _message: &Message) {}

    fn page<'a>(
        &'a self,
        room: &'a RoomName,
        before: Option<Uuid>,
        limit: usize,
    ) -> BoxFuture<'a, Result<HistoryPage, StoreError>> {
        Box::pin(async move {
            let log = self.load(room).await?;
            Ok(page_of(&log, before, limit))
        })
    }

    fn since<'a>(
        &'a self,
        room: &'a RoomName,
        after: Uuid,
    ) -> BoxFuture<'a, Result<Option<Vec<Message>>, StoreError>> {
        Box::pin(async move {
            let log = self.load(room).await?;
            Ok(log
                .iter()
                .position(|m| m.id == after)
                .map(|i| log[i + 1..].to_vec()))
        })
    }

    fn edit<'a>(
        &'a self,
        room: &'a RoomName,
        id: Uuid,
        author: &'a str,
        content: String,
        edited_at: String,
    ) -> BoxFuture<'a, Result<Message, StoreError>> {
        Box::pin(async move {
            // Build the new JSON here (not in Lua) so stored messages keep one encoding.
            let log = self.load(room).await?;
            let mut message = log
                .into_iter()
                .find(|m| m.id == id)
                .ok_or(StoreError::NotFound)?;
            apply_edit(&mut message, author, content, edited_at)?;
            self.change(room, id, author, message.to_json()).await?;
            Ok(message)
        })
    }

    fn delete<'a>(
        &'a self,
        room: &'a RoomName,
        id: Uuid,
        author: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { self.change(room, id, author, String::new()).await.map(drop) })
    }
}
