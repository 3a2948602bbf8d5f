//! Single-node stores: history and presence in this process's memory, bounded.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, MutexGuard};

use futures_util::future::BoxFuture;
use uuid::Uuid;

use super::{
    apply_edit, now_ms, page_of, HistoryPage, HistoryStore, PresenceStore, Retention, StoreError,
};
use crate::chat::{Message, RoomName, Status, UserRef};

/// Rooms' histories in memory, each bounded by the retention.
pub struct MemoryHistory {
    retention: Retention,
    rooms: Mutex<HashMap<RoomName, VecDeque<Message>>>,
}

impl MemoryHistory {
    /// An empty history with `retention`.
    pub fn new(retention: Retention) -> Self {
        Self {
            retention,
            rooms: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<RoomName, VecDeque<Message>>> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn prune(&self, log: &mut VecDeque<Message>) {
        let now = now_ms();
        while log.len() > self.retention.limit
            || log.front().is_some_and(|m| self.retention.expired(m, now))
        {
            log.pop_front();
        }
    }

    fn with_room<T>(
        &self,
        room: &RoomName,
        f: impl FnOnce(&mut VecDeque<Message>) -> T,
    ) -> Option<T> {
        let mut rooms = self.lock();
        let log = rooms.get_mut(room)?;
        self.prune(log);
        Some(f(log))
    }
}

impl HistoryStore for MemoryHistory {
    fn sweep(&self) {
        let mut rooms = self.lock();
        for log in rooms.values_mut() {
            self.prune(log);
        }
        rooms.retain(|_, log| !log.is_empty());
    }

    fn append(&self, message: &Message) {
        let Some(room) = message.room.clone() else {
            return;
        };
        let mut rooms = self.lock();
        let log = rooms.entry(room).or_default();
        log.push_back(message.clone());
        self.prune(log);
    }

    fn page<'a>(
        &'a self,
        room: &'a RoomName,
        before: Option<Uuid>,
        limit: usize,
    ) -> BoxFuture<'a, Result<HistoryPage, StoreError>> {
        let page = self
            .with_room(room, |log| page_of(log.make_contiguous(), before, limit))
            .unwrap_or(HistoryPage {
                messages: Vec::new(),
                has_more: false,
            });
        Box::pin(std::future::ready(Ok(page)))
    }

    fn since<'a>(
        &'a self,
        room: &'a RoomName,
        after: Uuid,
    ) -> BoxFuture<'a, Result<Option<Vec<Message>>, StoreError>> {
        let found = self
            .with_room(room, |log| {
                log.iter()
                    .position(|m| m.id == after)
                    .map(|i| log.iter().skip(i + 1).cloned().collect())
            })
            .flatten();
        Box::pin(std::future::ready(Ok(found)))
    }

    fn edit<'a>(
        &'a self,
        room: &'a RoomName,
        id: Uuid,
        author: &'a str,
        content: String,
        edited_at: String,
    ) -> BoxFuture<'a, Result<Message, StoreError>> {
        let result = self
            .with_room(room, |log| {
                let message = log
                    .iter_mut()
                    .find(|m| m.id == id)
                    .ok_or(StoreError::NotFound)?;
                apply_edit(message, author, content, edited_at)?;
                Ok(message.clone())
            })
            .unwrap_or(Err(StoreError::NotFound));
        Box::pin(std::future::ready(result))
    }

    fn delete<'a>(
        &'a self,
        room: &'a RoomName,
        id: Uuid,
        author: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        let result = self
            .with_room(room, |log| {
                let at = log
                    .iter()
                    .position(|m| m.id == id)
                    .ok_or(StoreError::NotFound)?;
                if log[at].from != author {
                    return Err(StoreError::NotAuthor);
                }
                log.remove(at);
                Ok(())
            })
            .unwrap_or(Err(StoreError::NotFound));
        Box::pin(std::future::ready(result))
    }
}

/// Presence of one node: the chat's own local counts are the whole truth.
#[derive(Default)]
pub struct MemoryPresence {
    rooms: Mutex<RoomUsers>,
}

/// Users online by room, by user id.
type RoomUsers = HashMap<RoomName, BTreeMap<String, (UserRef, Status)>>;

impl MemoryPresence {
    fn lock(&self) -> MutexGuard<'_, RoomUsers> {
        self.rooms.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl PresenceStore for MemoryPresence {
    fn online<'a>(
        &'a self,
        room: &'a RoomName,
        user: &'a UserRef,
        status: Status,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let first = self
            .lock()
            .entry(room.clone())
            .or_default()
            .insert(user.id.clone(), (user.clone(), status))
            .is_none();
        Box::pin(std::future::ready(Ok(first)))
    }

    fn offline<'a>(
        &'a self,
        room: &'a RoomName,
        user: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let mut rooms = self.lock();
        let last = rooms
            .get_mut(room)
            .is_some_and(|users| users.remove(user).is_some());
        if rooms.get(room).is_some_and(BTreeMap::is_empty) {
            rooms.remove(room);
        }
        Box::pin(std::future::ready(Ok(last)))
    }

    fn list<'a>(
        &'a self,
        room: &'a RoomName,
    ) -> BoxFuture<'a, Result<Vec<(UserRef, Status)>, StoreError>> {
        let users = self
            .lock()
            .get(room)
            .map(|u| u.values().cloned().collect())
            .unwrap_or_default();
        Box::pin(std::future::ready(Ok(users)))
    }

    fn heartbeat<'a>(
        &'a self,
        _rooms: &'a [(RoomName, usize)],
    ) -> BoxFuture<'a, Result<Vec<(RoomName, UserRef)>, StoreError>> {
        Box::pin(std::future::ready(Ok(Vec::new())))
    }

    fn rooms<'a>(
        &'a self,
        local: &'a [(RoomName, usize)],
    ) -> BoxFuture<'a, Result<Vec<(String, u64)>, StoreError>> {
        let rooms = local
            .iter()
            .map(|(r, n)| (r.to_string(), *n as u64))
            .collect();
        Box::pin(std::future::ready(Ok(rooms)))
    }
}
