//! The chat messages this pod delivered lately, per room with local members: the part
//! of recovery that the store may not have yet (a message delivered here before it was
//! stored, or stored after the store was read).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use uuid::Uuid;

use super::{Message, RoomName};

/// Most messages kept per room, whatever the history limit.
pub const MAX_RECENT_PER_ROOM: usize = 1024;

/// Recently delivered messages by room, oldest first; never more than the history
/// retains, so recovery never reaches further back than history would.
pub struct Recent {
    per_room: usize,
    rooms: HashMap<RoomName, VecDeque<Arc<Message>>>,
}

impl Recent {
    /// Keeps up to `history_limit` (at most [`MAX_RECENT_PER_ROOM`]) messages per room.
    pub fn new(history_limit: usize) -> Self {
        Self {
            per_room: history_limit.clamp(1, MAX_RECENT_PER_ROOM),
            rooms: HashMap::new(),
        }
    }

    /// Records a delivered message.
    pub fn push(&mut self, room: &RoomName, message: Arc<Message>) {
        let log = self.rooms.entry(room.clone()).or_default();
        if log.len() >= self.per_room {
            log.pop_front();
        }
        log.push_back(message);
    }

    /// Replaces an edited message.
    pub fn update(&mut self, room: &RoomName, message: &Message) {
        if let Some(slot) = self
            .rooms
            .get_mut(room)
            .and_then(|log| log.iter_mut().find(|m| m.id == message.id))
        {
            *slot = Arc::new(message.clone());
        }
    }

    /// Removes a deleted message.
    pub fn remove(&mut self, room: &RoomName, id: Uuid) {
        if let Some(log) = self.rooms.get_mut(room) {
            log.retain(|m| m.id != id);
        }
    }

    /// Forgets a room (no local member left).
    pub fn forget(&mut self, room: &RoomName) {
        self.rooms.remove(room);
    }

    /// The messages after `id`, when `id` is still here.
    pub fn after(&self, room: &RoomName, id: Uuid) -> Option<Vec<Message>> {
        let log = self.rooms.get(room)?;
        let at = log.iter().position(|m| m.id == id)?;
        Some(log.iter().skip(at + 1).map(|m| (**m).clone()).collect())
    }

    /// Every message of `room` newer than `id` (UUID v7 order) and not in `known`.
    pub fn newer_than(&self, room: &RoomName, id: Uuid, known: &[Message]) -> Vec<Message> {
        self.rooms.get(room).map_or_else(Vec::new, |log| {
            log.iter()
                .filter(|m| m.id > id && !known.iter().any(|k| k.id == m.id))
                .map(|m| (**m).clone())
                .collect()
        })
    }
}
