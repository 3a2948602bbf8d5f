//! Cross-pod stores in Redis.
//!
//! - `messages:{room}`: a list of message JSON, newest last, trimmed to HISTORY_LIMIT and
//!   expiring HISTORY_TTL after the last message. Appends ride the bus's ordered
//!   pipeline ([`RedisHistory::append_to`]) so a message is stored before it is published.
//! - `presence:{room}`: a hash of `{pod}|{user}` to `[user, status]`.
//! - `pod:{pod}`: this pod's liveness, refreshed every heartbeat, expiring after
//!   PRESENCE_TTL: entries of pods whose key is gone belong to dead pods.
//! - `rooms:active`: a hash of `{pod}|{room}` to that pod's member count.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures_util::future::BoxFuture;
use redis::AsyncCommands;
use uuid::Uuid;

use super::{
    apply_edit, message_ms, now_ms, page_of, HistoryPage, HistoryStore, PresenceStore, Retention,
    StoreError,
};
use crate::bus::redis::RedisLink;
use crate::bus::BusError;
use crate::chat::{Message, RoomName, Status, UserRef};

impl From<BusError> for StoreError {
    fn from(e: BusError) -> Self {
        StoreError::Unavailable(e.to_string())
    }
}

/// Messages [`RedisHistory::sent_since`] reads first, from the newest back.
const RECENT_TAIL: usize = 64;

fn history_key(room: &RoomName) -> String {
    format!("messages:{room}")
}

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

    /// Adds the commands storing `message` to `pipe` (before its PUBLISH).
    pub fn append_to(&self, pipe: &mut redis::Pipeline, message: &Message) {
        let Some(room) = &message.room else { return };
        let key = history_key(room);
        pipe.cmd("RPUSH").arg(&key).arg(message.to_json()).ignore();
        pipe.cmd("LTRIM")
            .arg(&key)
            .arg(-(self.retention.limit as i64))
            .arg(-1)
            .ignore();
        pipe.cmd("PEXPIRE")
            .arg(&key)
            .arg(self.retention.ttl.as_millis() as u64)
            .ignore();
    }

    /// The retained messages of `room` whose id (UUID v7) was made at Unix ms
    /// `since_ms` or later, oldest first.
    pub async fn sent_since(
        &self,
        room: &RoomName,
        since_ms: u64,
    ) -> Result<Vec<Message>, StoreError> {
        // Usually a short tail holds them all; read the whole list only when it may not.
        let mut log = self.load_from(room, -(RECENT_TAIL as isize)).await?;
        if log.len() >= RECENT_TAIL && log.first().is_some_and(|m| message_ms(&m.id) >= since_ms) {
            log = self.load(room).await?;
        }
        log.retain(|m| message_ms(&m.id) >= since_ms);
        Ok(log)
    }

    async fn load(&self, room: &RoomName) -> Result<Vec<Message>, StoreError> {
        self.load_from(room, 0).await
    }

    /// The messages from list index `start` (negative: from the end) to the newest.
    async fn load_from(&self, room: &RoomName, start: isize) -> Result<Vec<Message>, StoreError> {
        let key = history_key(room);
        let raw: Vec<String> = self
            .link
            .with_conn(|mut c| async move { c.lrange(key, start, -1).await })
            .await?;
        let now = now_ms();
        Ok(raw
            .iter()
            .filter_map(|item| serde_json::from_str::<Message>(item).ok())
            .filter(|m| !self.retention.expired(m, now))
            .collect())
    }

    async fn change(
        &self,
        room: &RoomName,
        id: Uuid,
        author: &str,
        replacement: String,
    ) -> Result<Message, StoreError> {
        let key = history_key(room);
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

/// Presence and active rooms in Redis, with per-pod liveness keys.
pub struct RedisPresence {
    link: RedisLink,
    pod: String,
    ttl: std::time::Duration,
}

const ROOMS_KEY: &str = "rooms:active";

fn presence_key(room: &RoomName) -> String {
    format!("presence:{room}")
}

fn pod_key(pod: &str) -> String {
    format!("pod:{pod}")
}

type Entries = HashMap<String, String>;

/// The pods named by `{pod}|...` fields.
fn pods_in(entries: &Entries) -> HashSet<String> {
    entries
        .keys()
        .filter_map(|f| f.split_once('|'))
        .map(|(p, _)| p.to_owned())
        .collect()
}

impl RedisPresence {
    /// Presence for pod `pod`, whose records die `ttl` after its last heartbeat.
    pub fn new(link: RedisLink, pod: String, ttl: std::time::Duration) -> Self {
        Self { link, pod, ttl }
    }

    fn field(&self, user: &str) -> String {
        format!("{}|{user}", self.pod)
    }

    async fn entries(&self, room: &RoomName) -> Result<Entries, StoreError> {
        let key = presence_key(room);
        Ok(self
            .link
            .with_conn(|mut c| async move { c.hgetall(key).await })
            .await?)
    }

    /// Which of `pods` are alive (this pod always is).
    async fn alive(&self, pods: HashSet<String>) -> Result<HashSet<String>, StoreError> {
        let others: Vec<String> = pods.into_iter().filter(|p| *p != self.pod).collect();
        let mut alive = HashSet::from([self.pod.clone()]);
        if others.is_empty() {
            return Ok(alive);
        }
        let keys: Vec<String> = others.iter().map(|p| pod_key(p)).collect();
        let found: Vec<Option<String>> = self
            .link
            .with_conn(
                |mut c| async move { redis::cmd("MGET").arg(keys).query_async(&mut c).await },
            )
            .await?;
        alive.extend(
            others
                .into_iter()
                .zip(found)
                .filter(|(_, v)| v.is_some())
                .map(|(p, _)| p),
        );
        Ok(alive)
    }

    /// Whether `user` has a record of an alive pod other than this one in `entries`.
    async fn elsewhere(&self, entries: &Entries, user: &str) -> Result<bool, StoreError> {
        let pods: HashSet<String> = entries
            .keys()
            .filter_map(|f| f.split_once('|'))
            .filter(|(pod, u)| *u == user && *pod != self.pod)
            .map(|(pod, _)| pod.to_owned())
            .collect();
        if pods.is_empty() {
            return Ok(false);
        }
        Ok(self.alive(pods).await?.len() > 1)
    }
}

fn decode_entry(value: &str) -> Option<(UserRef, Status)> {
    serde_json::from_str(value).ok()
}

impl PresenceStore for RedisPresence {
    fn online<'a>(
        &'a self,
        room: &'a RoomName,
        user: &'a UserRef,
        status: Status,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let key = presence_key(room);
            let field = self.field(&user.id);
            let value = serde_json::to_string(&(user, status)).unwrap_or_default();
            let ttl = self.ttl.as_millis() as u64 * 4;
            self.link
                .with_conn(|mut c| async move {
                    redis::pipe()
                        .hset(&key, field, value)
                        .ignore()
                        .pexpire(&key, ttl as i64)
                        .ignore()
                        .query_async::<()>(&mut c)
                        .await
                })
                .await?;
            let entries = self.entries(room).await?;
            Ok(!self.elsewhere(&entries, &user.id).await?)
        })
    }

    fn offline<'a>(
        &'a self,
        room: &'a RoomName,
        user: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let key = presence_key(room);
            let field = self.field(user);
            self.link
                .with_conn(|mut c| async move { c.hdel::<_, _, ()>(key, field).await })
                .await?;
            let entries = self.entries(room).await?;
            Ok(!self.elsewhere(&entries, user).await?)
        })
    }

    fn list<'a>(
        &'a self,
        room: &'a RoomName,
    ) -> BoxFuture<'a, Result<Vec<(UserRef, Status)>, StoreError>> {
        Box::pin(async move {
            let entries = self.entries(room).await?;
            let pods = pods_in(&entries);
            let alive = self.alive(pods).await?;
            let mut users: BTreeMap<String, (UserRef, Status)> = BTreeMap::new();
            for (field, value) in &entries {
                let Some((pod, _)) = field.split_once('|') else {
                    continue;
                };
                if !alive.contains(pod) {
                    continue;
                }
                if let Some((user, status)) = decode_entry(value) {
                    users.entry(user.id.clone()).or_insert((user, status));
                }
            }
            Ok(users.into_values().collect())
        })
    }

    fn heartbeat<'a>(
        &'a self,
        rooms: &'a [(RoomName, usize)],
    ) -> BoxFuture<'a, Result<Vec<(RoomName, UserRef)>, StoreError>> {
        Box::pin(async move {
            // 1. This pod is alive, with these room counts.
            let ttl = self.ttl.as_millis() as u64;
            let pod = pod_key(&self.pod);
            let prefix = format!("{}|", self.pod);
            let current: Entries = self
                .link
                .with_conn(|mut c| async move { c.hgetall(ROOMS_KEY).await })
                .await?;
            let mut pipe = redis::pipe();
            pipe.cmd("SET").arg(&pod).arg(1).arg("PX").arg(ttl).ignore();
            let stale: Vec<&String> = current
                .keys()
                .filter(|f| f.starts_with(&prefix))
                .filter(|f| !rooms.iter().any(|(r, _)| f[prefix.len()..] == *r.as_str()))
                .collect();
            if !stale.is_empty() {
                pipe.hdel(ROOMS_KEY, stale).ignore();
            }
            for (room, n) in rooms {
                pipe.hset(ROOMS_KEY, format!("{prefix}{room}"), *n as u64)
                    .ignore();
            }
            self.link
                .with_conn(|mut c| async move { pipe.query_async::<()>(&mut c).await })
                .await?;

            // 2. Dead pods' records in rooms this pod serves: remove them; whoever
            //    removes a record reports its user offline if no other pod has them.
            let mut gone = Vec::new();
            for (room, _) in rooms {
                let entries = self.entries(room).await?;
                let alive = self.alive(pods_in(&entries)).await?;
                for (field, value) in &entries {
                    let Some((pod, user)) = field.split_once('|') else {
                        continue;
                    };
                    if alive.contains(pod) {
                        continue;
                    }
                    let key = presence_key(room);
                    let f = field.clone();
                    let removed: u64 = self
                        .link
                        .with_conn(|mut c| async move { c.hdel(key, f).await })
                        .await?;
                    if removed == 1 && !self.elsewhere(&entries, user).await? {
                        if let Some((user, _)) = decode_entry(value) {
                            gone.push((room.clone(), user));
                        }
                    }
                }
            }
            // 3. Forget dead pods' room counts.
            let alive = self.alive(pods_in(&current)).await?;
            let dead: Vec<String> = current
                .into_keys()
                .filter(|f| f.split_once('|').is_some_and(|(p, _)| !alive.contains(p)))
                .collect();
            if !dead.is_empty() {
                self.link
                    .with_conn(|mut c| async move { c.hdel::<_, _, ()>(ROOMS_KEY, dead).await })
                    .await?;
            }
            Ok(gone)
        })
    }

    fn rooms<'a>(
        &'a self,
        local: &'a [(RoomName, usize)],
    ) -> BoxFuture<'a, Result<Vec<(String, u64)>, StoreError>> {
        Box::pin(async move {
            let entries: Entries = self
                .link
                .with_conn(|mut c| async move { c.hgetall(ROOMS_KEY).await })
                .await?;
            let pods = pods_in(&entries);
            let alive = self.alive(pods).await?;
            let mut counts: BTreeMap<String, u64> = BTreeMap::new();
            for (field, n) in &entries {
                let Some((pod, room)) = field.split_once('|') else {
                    continue;
                };
                if pod != self.pod && alive.contains(pod) {
                    *counts.entry(room.to_owned()).or_default() += n.parse::<u64>().unwrap_or(0);
                }
            }
            for (room, n) in local {
                *counts.entry(room.to_string()).or_default() += *n as u64;
            }
            Ok(counts.into_iter().collect())
        })
    }
}
