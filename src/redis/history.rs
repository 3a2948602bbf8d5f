//! Room histories in Redis: `messages:{room}` is a list of message JSON, newest last,
//! trimmed to HISTORY_LIMIT and expiring HISTORY_TTL after the last message. The bus
//! appends in its ordered publish pipeline ([`append_to`]), so a message is stored before
//! it is published; the history store reads and changes the lists.

use redis::AsyncCommands;

use super::{LinkError, RedisLink};
use crate::chat::{message_ms, now_ms, Message, Retention, RoomName};

/// Messages [`sent_since`] reads first, from the newest back.
const RECENT_TAIL: usize = 64;

/// The list holding `room`'s messages.
pub fn key(room: &RoomName) -> String {
    format!("messages:{room}")
}

/// Adds the commands storing a message of `room`, encoded as `json`, under `retention`
/// to `pipe`.
pub fn append_to(pipe: &mut redis::Pipeline, room: &RoomName, json: &[u8], retention: Retention) {
    let key = key(room);
    pipe.cmd("RPUSH").arg(&key).arg(json).ignore();
    pipe.cmd("LTRIM")
        .arg(&key)
        .arg(-(retention.limit as i64))
        .arg(-1)
        .ignore();
    pipe.cmd("PEXPIRE")
        .arg(&key)
        .arg(retention.ttl.as_millis() as u64)
        .ignore();
}

/// The unexpired messages of `room` from list index `start` (negative: from the end)
/// to the newest, oldest first.
pub async fn load_from(
    link: &RedisLink,
    room: &RoomName,
    start: isize,
    retention: Retention,
) -> Result<Vec<Message>, LinkError> {
    let key = key(room);
    let raw: Vec<String> = link
        .with_conn(|mut c| async move { c.lrange(key, start, -1).await })
        .await?;
    let now = now_ms();
    Ok(raw
        .iter()
        .filter_map(|item| serde_json::from_str::<Message>(item).ok())
        .filter(|m| !retention.expired(m, now))
        .collect())
}

/// The retained messages of `room` whose id (UUID v7) was made at Unix ms `since_ms` or
/// later, oldest first.
pub async fn sent_since(
    link: &RedisLink,
    room: &RoomName,
    since_ms: u64,
    retention: Retention,
) -> Result<Vec<Message>, LinkError> {
    // Usually a short tail holds them all; read the whole list only when it may not.
    let mut log = load_from(link, room, -(RECENT_TAIL as isize), retention).await?;
    if log.len() >= RECENT_TAIL && log.first().is_some_and(|m| message_ms(&m.id) >= since_ms) {
        log = load_from(link, room, 0, retention).await?;
    }
    log.retain(|m| message_ms(&m.id) >= since_ms);
    Ok(log)
}
