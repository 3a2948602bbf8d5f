//! The message log in this process's memory: nothing survives a restart. Shared by the
//! pods of an in-process cluster, each through its own handle ([`MemoryLog::pod`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};

use futures_util::future::{ready, BoxFuture};
use uuid::Uuid;

use super::{check_author, room_key};
use crate::chat::ports::{edited_data, tombstone_data};
use crate::chat::{
    message_ms, now_rfc3339, thread_room, Appended, Channel, Channels, Claim, Committed,
    HistoryPage, Message, MessageLog, MessageRef, ReactionCounts, Reactions, ReadPositions,
    RequestKeys, Retention, RoomBounds, RoomName, StoreError, Stored, Unread, Unstored,
    ANONYMOUS_POSITION_TTL_MS, MAX_EMOJIS_PER_MESSAGE, MAX_UNREAD_COUNT,
};

/// Locks over the rooms: appends to rooms of different shards never wait for each other.
const SHARDS: usize = 64;

/// One room's kept messages, offsets contiguous, oldest first.
#[derive(Default)]
struct RoomLog {
    last: u64,
    messages: VecDeque<Message>,
}

impl RoomLog {
    fn index_of(&self, at: MessageRef) -> Option<usize> {
        match at {
            MessageRef::Offset(offset) => {
                let first = self.messages.front()?.offset?;
                let i = usize::try_from(offset.checked_sub(first)?).ok()?;
                (i < self.messages.len()).then_some(i)
            }
            MessageRef::Id(id) => self.messages.iter().position(|m| m.id == id),
        }
    }

    fn find_mut(&mut self, id: Uuid) -> Result<&mut Message, StoreError> {
        self.messages
            .iter_mut()
            .find(|m| m.id == id)
            .ok_or(StoreError::NotFound)
    }
}

struct Shared {
    shards: Box<[Mutex<HashMap<String, RoomLog>>]>,
    hasher: std::collections::hash_map::RandomState,
    keys: Mutex<HashMap<String, KeyEntry>>,
    reads: Mutex<HashMap<(String, String), Position>>,
    /// Per message: each emoji's users.
    reactions: Mutex<HashMap<Uuid, BTreeMap<String, BTreeSet<String>>>>,
    /// Channels by room.
    channels: Mutex<BTreeMap<String, Channel>>,
}

/// Channels kept at most.
const MAX_CHANNELS: usize = 100_000;

/// Read positions kept at most; when full, the least recently moved one goes.
const MAX_READ_POSITIONS: usize = 100_000;

/// One user's read position in one room.
struct Position {
    offset: u64,
    anonymous: bool,
    updated_ms: u64,
}

/// Request keys kept at most; when full, expired ones go first, then the soonest to
/// expire.
const MAX_REQUEST_KEYS: usize = 100_000;

struct KeyEntry {
    fingerprint: String,
    result: Option<String>,
    expires_ms: u64,
}

/// A message log in memory.
#[derive(Clone)]
pub struct MemoryLog {
    shared: Arc<Shared>,
    committed: Arc<OnceLock<Weak<dyn Committed>>>,
    draining: Arc<AtomicBool>,
}

impl Default for MemoryLog {
    fn default() -> Self {
        Self {
            shared: Arc::new(Shared {
                shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
                hasher: Default::default(),
                keys: Mutex::default(),
                reads: Mutex::default(),
                reactions: Mutex::default(),
                channels: Mutex::default(),
            }),
            committed: Arc::default(),
            draining: Arc::default(),
        }
    }
}

impl MemoryLog {
    /// Another pod's handle on the same messages, handing its own appends to its own
    /// [`Committed`].
    pub fn pod(&self) -> Self {
        Self {
            shared: self.shared.clone(),
            committed: Arc::default(),
            draining: Arc::default(),
        }
    }

    fn shard(&self, key: &str) -> MutexGuard<'_, HashMap<String, RoomLog>> {
        let i = (self.shared.hasher.hash_one(key) as usize) % self.shared.shards.len();
        self.shared.shards[i]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    fn with_room<T>(&self, room: &RoomName, f: impl FnOnce(Option<&mut RoomLog>) -> T) -> T {
        let mut shard = self.shard(room.as_str());
        f(shard.get_mut(room.as_str()))
    }

    /// Sets `data` of `author`'s live message `id`; the message as it is now.
    fn rewrite(
        &self,
        room: &RoomName,
        id: Uuid,
        author: Option<&str>,
        data: serde_json::Value,
    ) -> Result<Message, StoreError> {
        self.with_room(room, |log| {
            let message = log.ok_or(StoreError::NotFound)?.find_mut(id)?;
            check_author(message, author)?;
            if super::is_tombstone(message) {
                return Err(StoreError::NotFound);
            }
            message.data = data;
            Ok(message.clone())
        })
    }
}

impl MemoryLog {
    fn reads(&self) -> MutexGuard<'_, HashMap<(String, String), Position>> {
        self.shared.reads.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `user`'s unread count and the room's last offset, after `read_offset`.
    fn count_unread(&self, room: &RoomName, user: &str, read_offset: u64) -> Unread {
        self.with_room(room, |log| {
            let Some(log) = log else {
                return Unread {
                    read_offset,
                    ..Unread::default()
                };
            };
            let unread = log
                .messages
                .iter()
                .filter(|m| m.offset.is_some_and(|o| o > read_offset))
                .filter(|m| m.from != user && !super::is_tombstone(m))
                .take(MAX_UNREAD_COUNT as usize)
                .count() as u64;
            Unread {
                read_offset,
                unread,
                last_offset: log.last,
            }
        })
    }
}

impl ReadPositions for MemoryLog {
    fn mark_read<'a>(
        &'a self,
        room: &'a RoomName,
        user: &'a str,
        anonymous: bool,
        offset: u64,
        now_ms: u64,
    ) -> BoxFuture<'a, Result<(u64, bool), StoreError>> {
        let mut reads = self.reads();
        let key = (room.to_string(), user.to_owned());
        if !reads.contains_key(&key) && reads.len() >= MAX_READ_POSITIONS {
            let oldest = reads
                .iter()
                .min_by_key(|(_, p)| (!p.anonymous, p.updated_ms))
                .map(|(k, _)| k.clone());
            if let Some(oldest) = oldest {
                reads.remove(&oldest);
            }
        }
        let position = reads.entry(key).or_insert(Position {
            offset: 0,
            anonymous,
            updated_ms: now_ms,
        });
        let moved = offset > position.offset;
        position.offset = position.offset.max(offset);
        position.updated_ms = now_ms;
        Box::pin(ready(Ok((position.offset, moved))))
    }

    fn unread<'a>(
        &'a self,
        room: &'a RoomName,
        user: &'a str,
    ) -> BoxFuture<'a, Result<Unread, StoreError>> {
        let read_offset = self
            .reads()
            .get(&(room.to_string(), user.to_owned()))
            .map_or(0, |p| p.offset);
        Box::pin(ready(Ok(self.count_unread(room, user, read_offset))))
    }

    fn unread_rooms<'a>(
        &'a self,
        user: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<(RoomName, Unread)>, StoreError>> {
        let mut mine: Vec<(String, u64, u64)> = self
            .reads()
            .iter()
            .filter(|((_, u), _)| u == user)
            .map(|((room, _), p)| (room.clone(), p.offset, p.updated_ms))
            .collect();
        mine.sort_by_key(|(_, _, updated)| std::cmp::Reverse(*updated));
        let rooms = mine
            .into_iter()
            .take(limit)
            .filter_map(|(room, offset, _)| {
                let room = RoomName::parse(&room).ok()?;
                let unread = self.count_unread(&room, user, offset);
                Some((room, unread))
            })
            .collect();
        Box::pin(ready(Ok(rooms)))
    }
}

impl MemoryLog {
    fn reactions(&self) -> MutexGuard<'_, HashMap<Uuid, BTreeMap<String, BTreeSet<String>>>> {
        self.shared
            .reactions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }
}

fn counts_of(emojis: &BTreeMap<String, BTreeSet<String>>) -> ReactionCounts {
    emojis
        .iter()
        .map(|(emoji, users)| (emoji.clone(), users.len() as u64))
        .collect()
}

impl Reactions for MemoryLog {
    fn react<'a>(
        &'a self,
        _room: &'a RoomName,
        id: Uuid,
        user: &'a str,
        emoji: &'a str,
        add: bool,
        _now_ms: u64,
    ) -> BoxFuture<'a, Result<(bool, ReactionCounts), StoreError>> {
        let mut reactions = self.reactions();
        let emojis = reactions.entry(id).or_default();
        let changed = if add {
            if !emojis.contains_key(emoji) && emojis.len() >= MAX_EMOJIS_PER_MESSAGE {
                return Box::pin(ready(Err(StoreError::TooMany(format!(
                    "a message takes at most {MAX_EMOJIS_PER_MESSAGE} different emojis"
                )))));
            }
            emojis
                .entry(emoji.to_owned())
                .or_default()
                .insert(user.to_owned())
        } else {
            let removed = emojis
                .get_mut(emoji)
                .is_some_and(|users| users.remove(user));
            if emojis.get(emoji).is_some_and(BTreeSet::is_empty) {
                emojis.remove(emoji);
            }
            removed
        };
        let counts = counts_of(emojis);
        if emojis.is_empty() {
            reactions.remove(&id);
        }
        Box::pin(ready(Ok((changed, counts))))
    }

    fn counts<'a>(
        &'a self,
        ids: &'a [Uuid],
    ) -> BoxFuture<'a, Result<HashMap<Uuid, ReactionCounts>, StoreError>> {
        let reactions = self.reactions();
        let counts = ids
            .iter()
            .filter_map(|id| Some((*id, counts_of(reactions.get(id)?))))
            .collect();
        Box::pin(ready(Ok(counts)))
    }
}

impl MemoryLog {
    fn channels(&self) -> MutexGuard<'_, BTreeMap<String, Channel>> {
        self.shared
            .channels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets the messages of `room` (keeping its last offset), their reactions and
    /// the read positions there; the ids of the messages that went.
    fn purge_room(&self, room: &RoomName) -> Vec<Uuid> {
        let ids: Vec<Uuid> = self.with_room(room, |log| match log {
            Some(log) => log.messages.drain(..).map(|m| m.id).collect(),
            None => Vec::new(),
        });
        let mut reactions = self.reactions();
        for id in &ids {
            reactions.remove(id);
        }
        drop(reactions);
        self.reads().retain(|(r, _), _| r != room.as_str());
        ids
    }
}

impl Channels for MemoryLog {
    fn create_channel<'a>(&'a self, channel: &'a Channel) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut channels = self.channels();
        let result = if channels.contains_key(channel.room.as_str()) {
            Err(StoreError::Exists(format!(
                "room {} has a channel already",
                channel.room
            )))
        } else if channels.len() >= MAX_CHANNELS {
            Err(StoreError::TooMany(format!(
                "this server keeps at most {MAX_CHANNELS} channels in memory"
            )))
        } else {
            channels.insert(channel.room.to_string(), channel.clone());
            Ok(())
        };
        Box::pin(ready(result))
    }

    fn channel<'a>(
        &'a self,
        room: &'a RoomName,
    ) -> BoxFuture<'a, Result<Option<Channel>, StoreError>> {
        Box::pin(ready(Ok(self.channels().get(room.as_str()).cloned())))
    }

    fn private_member<'a>(
        &'a self,
        room: &'a RoomName,
        user: &'a str,
    ) -> BoxFuture<'a, Result<Option<bool>, StoreError>> {
        let found = self
            .channels()
            .get(room.as_str())
            .filter(|c| c.private)
            .map(|c| c.admits(user));
        Box::pin(ready(Ok(found)))
    }

    fn closed_to<'a>(
        &'a self,
        rooms: &'a [RoomName],
        user: &'a str,
    ) -> BoxFuture<'a, Result<Vec<RoomName>, StoreError>> {
        let channels = self.channels();
        let closed = rooms
            .iter()
            .filter(|r| channels.get(r.as_str()).is_some_and(|c| !c.admits(user)))
            .cloned()
            .collect();
        Box::pin(ready(Ok(closed)))
    }

    fn private_channels<'a>(
        &'a self,
        rooms: &'a [RoomName],
    ) -> BoxFuture<'a, Result<Vec<Channel>, StoreError>> {
        let channels = self.channels();
        let private = rooms
            .iter()
            .filter_map(|r| channels.get(r.as_str()).filter(|c| c.private).cloned())
            .collect();
        Box::pin(ready(Ok(private)))
    }

    fn list_channels<'a>(
        &'a self,
        user: Option<&'a str>,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Channel>, StoreError>> {
        let channels = self.channels();
        let from = after.map_or(std::ops::Bound::Unbounded, std::ops::Bound::Excluded);
        let list = channels
            .range::<str, _>((from, std::ops::Bound::Unbounded))
            .map(|(_, c)| c)
            .filter(|c| user.is_none_or(|u| c.admits(u)))
            .take(limit)
            .cloned()
            .collect();
        Box::pin(ready(Ok(list)))
    }

    fn update_channel<'a>(&'a self, channel: &'a Channel) -> BoxFuture<'a, Result<(), StoreError>> {
        let result = match self.channels().get_mut(channel.room.as_str()) {
            Some(kept) => {
                *kept = channel.clone();
                Ok(())
            }
            None => Err(StoreError::NotFound),
        };
        Box::pin(ready(result))
    }

    fn delete_channel<'a>(&'a self, room: &'a RoomName) -> BoxFuture<'a, Result<bool, StoreError>> {
        if self.channels().remove(room.as_str()).is_none() {
            return Box::pin(ready(Ok(false)));
        }
        for root in self.purge_room(room) {
            self.purge_room(&thread_room(root));
        }
        Box::pin(ready(Ok(true)))
    }
}

impl RequestKeys for MemoryLog {
    fn claim<'a>(
        &'a self,
        key: &'a str,
        fingerprint: &'a str,
        result: &'a str,
        now_ms: u64,
        expires_ms: u64,
    ) -> BoxFuture<'a, Result<Claim, StoreError>> {
        let mut keys = self.shared.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = keys.get(key).filter(|e| e.expires_ms > now_ms) {
            let fingerprint = entry.fingerprint.clone();
            return Box::pin(ready(Ok(match &entry.result {
                None => Claim::Pending { fingerprint },
                Some(result) => Claim::Done {
                    fingerprint,
                    result: result.clone(),
                },
            })));
        }
        if keys.len() >= MAX_REQUEST_KEYS {
            keys.retain(|_, e| e.expires_ms > now_ms);
        }
        if keys.len() >= MAX_REQUEST_KEYS {
            let soonest = keys
                .iter()
                .min_by_key(|(_, e)| e.expires_ms)
                .map(|(k, _)| k.clone());
            if let Some(soonest) = soonest {
                keys.remove(&soonest);
            }
        }
        keys.insert(
            key.to_owned(),
            KeyEntry {
                fingerprint: fingerprint.to_owned(),
                result: Some(result.to_owned()),
                expires_ms,
            },
        );
        Box::pin(ready(Ok(Claim::Fresh)))
    }

    fn settle<'a>(
        &'a self,
        key: &'a str,
        result: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut keys = self.shared.keys.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = keys.get_mut(key) {
            entry.result = Some(result.to_owned());
        }
        Box::pin(ready(Ok(())))
    }

    fn replace<'a>(
        &'a self,
        key: &'a str,
        old: &'a str,
        new: &'a str,
        expires_ms: u64,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let mut keys = self.shared.keys.lock().unwrap_or_else(|e| e.into_inner());
        let replaced = match keys.get_mut(key) {
            Some(entry) if entry.result.as_deref() == Some(old) => {
                entry.result = Some(new.to_owned());
                entry.expires_ms = expires_ms;
                true
            }
            _ => false,
        };
        Box::pin(ready(Ok(replaced)))
    }

    fn release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>> {
        let mut keys = self.shared.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.remove(key);
        Box::pin(ready(Ok(())))
    }
}

impl MessageLog for MemoryLog {
    fn attach(&self, committed: Weak<dyn Committed>) {
        let _ = self.committed.set(committed);
    }

    fn append(&self, entry: Unstored) -> Appended {
        if self.draining.load(Ordering::Relaxed) {
            return Box::pin(ready(Err(StoreError::Unavailable(
                "the server is shutting down".into(),
            ))));
        }
        let mut message = entry.message;
        let key = room_key(&message).to_owned();
        let mut shard = self.shard(&key);
        let log = shard.entry(key).or_default();
        log.last += 1;
        message.offset = Some(log.last);
        log.messages.push_back(message.clone());
        let stored = Stored {
            message: Arc::new(message),
            origin: entry.origin,
        };
        // Handed on under the room's lock: one room's messages leave in offset order.
        if let Some(chat) = self.committed.get().and_then(Weak::upgrade) {
            chat.committed(std::slice::from_ref(&stored));
        }
        drop(shard);
        Box::pin(ready(Ok(stored.message)))
    }

    fn after<'a>(
        &'a self,
        room: &'a RoomName,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Message>, StoreError>> {
        let found = self.with_room(room, |log| {
            log.map(|log| {
                log.messages
                    .iter()
                    .filter(|m| m.offset.is_some_and(|o| o > after))
                    .take(limit)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
        });
        Box::pin(ready(Ok(found)))
    }

    fn bounds<'a>(&'a self, room: &'a RoomName) -> BoxFuture<'a, Result<RoomBounds, StoreError>> {
        let bounds = self.with_room(room, |log| {
            log.map(|log| RoomBounds {
                first: log.messages.front().and_then(|m| m.offset),
                last: log.last,
            })
            .unwrap_or_default()
        });
        Box::pin(ready(Ok(bounds)))
    }

    fn find(&self, id: Uuid) -> BoxFuture<'_, Result<Option<Message>, StoreError>> {
        let found = self.shared.shards.iter().find_map(|shard| {
            let rooms = shard.lock().unwrap_or_else(|e| e.into_inner());
            rooms
                .values()
                .find_map(|log| log.messages.iter().find(|m| m.id == id).cloned())
        });
        Box::pin(ready(Ok(found)))
    }

    fn offset_of<'a>(
        &'a self,
        room: &'a RoomName,
        at: MessageRef,
    ) -> BoxFuture<'a, Result<Option<u64>, StoreError>> {
        // An offset is a place in the log whether or not its message is still kept.
        if let MessageRef::Offset(offset) = at {
            return Box::pin(ready(Ok(Some(offset))));
        }
        let found = self.with_room(room, |log| {
            let log = log?;
            let i = log.index_of(at)?;
            log.messages[i].offset
        });
        Box::pin(ready(Ok(found)))
    }

    fn page<'a>(
        &'a self,
        room: &'a RoomName,
        before: Option<MessageRef>,
        limit: usize,
    ) -> BoxFuture<'a, Result<HistoryPage, StoreError>> {
        let page = self.with_room(room, |log| {
            let Some(log) = log else {
                return HistoryPage {
                    messages: Vec::new(),
                    has_more: false,
                };
            };
            let end = match before {
                Some(MessageRef::Offset(o)) => log
                    .messages
                    .iter()
                    .position(|m| m.offset.is_some_and(|x| x >= o))
                    .unwrap_or(log.messages.len()),
                Some(at) => log.index_of(at).unwrap_or(0),
                None => log.messages.len(),
            };
            let start = end.saturating_sub(limit);
            HistoryPage {
                messages: log.messages.range(start..end).cloned().collect(),
                has_more: start > 0,
            }
        });
        Box::pin(ready(Ok(page)))
    }

    fn edit<'a>(
        &'a self,
        room: &'a RoomName,
        id: Uuid,
        author: Option<&'a str>,
        content: String,
    ) -> BoxFuture<'a, Result<Message, StoreError>> {
        let data = edited_data(content, &now_rfc3339());
        Box::pin(ready(self.rewrite(room, id, author, data)))
    }

    fn delete<'a>(
        &'a self,
        room: &'a RoomName,
        id: Uuid,
        author: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Message, StoreError>> {
        let data = tombstone_data(&now_rfc3339());
        Box::pin(ready(self.rewrite(room, id, author, data)))
    }

    fn prune(&self, retention: Retention, now_ms: u64) -> BoxFuture<'_, Result<u64, StoreError>> {
        let cutoff = retention.cutoff_ms(now_ms);
        let stale = now_ms.saturating_sub(ANONYMOUS_POSITION_TTL_MS);
        self.reads()
            .retain(|_, p| !p.anonymous || p.updated_ms >= stale);
        let mut removed = 0u64;
        for shard in self.shared.shards.iter() {
            let mut rooms = shard.lock().unwrap_or_else(|e| e.into_inner());
            for log in rooms.values_mut() {
                while log.messages.front().is_some_and(|m| {
                    message_ms(&m.id) < cutoff
                        || retention.limit.is_some_and(|l| log.messages.len() > l)
                }) {
                    if let Some(gone) = log.messages.pop_front() {
                        self.reactions().remove(&gone.id);
                    }
                    removed += 1;
                }
            }
        }
        Box::pin(ready(Ok(removed)))
    }

    fn search<'a>(
        &'a self,
        rooms: &'a [RoomName],
        query: &'a str,
        before: Option<Uuid>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Message>, StoreError>> {
        if let Some(cursor) = before {
            let kept = self.shared.shards.iter().any(|shard| {
                let rooms = shard.lock().unwrap_or_else(|e| e.into_inner());
                rooms
                    .values()
                    .any(|log| log.messages.iter().any(|m| m.id == cursor))
            });
            if !kept {
                return Box::pin(ready(Err(StoreError::NotFound)));
            }
        }
        let words: Vec<String> = query.split_whitespace().map(str::to_lowercase).collect();
        let mut found: Vec<Message> = Vec::new();
        for room in rooms {
            self.with_room(room, |log| {
                let Some(log) = log else { return };
                found.extend(
                    log.messages
                        .iter()
                        .filter(|m| {
                            let text = m.data.get("content").and_then(|c| c.as_str());
                            text.map(str::to_lowercase)
                                .is_some_and(|t| words.iter().all(|w| t.contains(w.as_str())))
                        })
                        .cloned(),
                );
            });
        }
        // UUID v7 ids sort by time: newest first, then older than the cursor.
        found.sort_by_key(|m| std::cmp::Reverse(m.id));
        found.retain(|m| before.is_none_or(|cursor| m.id < cursor));
        found.truncate(limit);
        Box::pin(ready(Ok(found)))
    }

    fn drain(&self) -> BoxFuture<'_, ()> {
        self.draining.store(true, Ordering::Relaxed);
        Box::pin(ready(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::MessageType;

    fn room(name: &str) -> RoomName {
        RoomName::parse(name).unwrap()
    }

    fn unstored(room_name: &str, from: &str, text: &str) -> Unstored {
        Unstored {
            message: Message::chat(Some(room(room_name)), from.into(), text.into()),
            sender_name: None,
            origin: None,
        }
    }

    async fn append(log: &MemoryLog, room_name: &str, text: &str) -> Arc<Message> {
        log.append(unstored(room_name, "alice", text))
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn offsets_count_up_per_room_without_gaps() {
        let log = MemoryLog::default();
        assert_eq!(append(&log, "a", "1").await.offset, Some(1));
        assert_eq!(append(&log, "a", "2").await.offset, Some(2));
        assert_eq!(append(&log, "b", "1").await.offset, Some(1));
        let other_pod = log.pod();
        assert_eq!(append(&other_pod, "a", "3").await.offset, Some(3));
        let after = log.after(&room("a"), 1, 10).await.unwrap();
        let offsets: Vec<_> = after.iter().map(|m| m.offset).collect();
        assert_eq!(offsets, [Some(2), Some(3)]);
        assert_eq!(
            log.bounds(&room("a")).await.unwrap(),
            RoomBounds {
                first: Some(1),
                last: 3
            }
        );
    }

    #[tokio::test]
    async fn pages_go_backwards_by_offset_or_id() {
        let log = MemoryLog::default();
        let mut ids = Vec::new();
        for i in 1..=5 {
            ids.push(append(&log, "a", &i.to_string()).await.id);
        }
        let page = log.page(&room("a"), None, 2).await.unwrap();
        assert_eq!(page.messages.len(), 2);
        assert_eq!(page.messages[0].offset, Some(4));
        assert!(page.has_more);
        let page = log
            .page(&room("a"), Some(MessageRef::Offset(3)), 10)
            .await
            .unwrap();
        assert_eq!(page.messages.len(), 2);
        assert!(!page.has_more);
        let page = log
            .page(&room("a"), Some(MessageRef::Id(ids[1])), 10)
            .await
            .unwrap();
        assert_eq!(page.messages.len(), 1);
    }

    #[tokio::test]
    async fn a_delete_leaves_a_tombstone_and_only_the_author_changes() {
        let log = MemoryLog::default();
        let m = append(&log, "a", "hi").await;
        assert_eq!(
            log.edit(&room("a"), m.id, Some("mallory"), "x".into())
                .await,
            Err(StoreError::NotAuthor)
        );
        let edited = log
            .edit(&room("a"), m.id, Some("alice"), "hey".into())
            .await
            .unwrap();
        assert_eq!(edited.data["content"], "hey");
        let gone = log.delete(&room("a"), m.id, Some("alice")).await.unwrap();
        assert!(super::super::is_tombstone(&gone));
        let page = log.page(&room("a"), None, 10).await.unwrap();
        assert_eq!(page.messages[0].offset, Some(1));
        assert_eq!(page.messages[0].data["deleted"], true);
        assert_eq!(page.messages[0].kind, MessageType::Chat);
    }

    #[tokio::test]
    async fn the_prune_keeps_the_count_and_offsets_stay() {
        let log = MemoryLog::default();
        for i in 1..=5 {
            append(&log, "a", &i.to_string()).await;
        }
        let retention = Retention {
            limit: Some(2),
            ttl: std::time::Duration::from_secs(3600),
        };
        assert_eq!(log.prune(retention, crate::chat::now_ms()).await, Ok(3));
        let bounds = log.bounds(&room("a")).await.unwrap();
        assert_eq!((bounds.first, bounds.last), (Some(4), 5));
        assert_eq!(append(&log, "a", "6").await.offset, Some(6));
    }

    #[tokio::test]
    async fn a_draining_log_refuses_appends() {
        let log = MemoryLog::default();
        log.drain().await;
        assert!(matches!(
            log.append(unstored("a", "alice", "late")).await,
            Err(StoreError::Unavailable(_))
        ));
    }
}
