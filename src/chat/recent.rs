//! The chat messages this pod delivered lately, per room with local members: the part
//! of recovery that the store may not have yet (a message delivered here before it was
//! stored, or stored after the store was read).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use uuid::Uuid;

use super::{Message, RoomName};

/// Messages kept per room.
pub const RECENT_PER_ROOM: usize = 1024;

/// Recently delivered messages by room, oldest first.
#[derive(Default)]
pub struct Recent {
    rooms: HashMap<RoomName, VecDeque<Arc<Message>>>,
}

impl Recent {
    /// Records a delivered message.
    pub fn push(&mut self, room: &RoomName, message: Arc<Message>) {
        let log = self.rooms.entry(room.clone()).or_default();
        if log.len() == RECENT_PER_ROOM {
            log.pop_front();
        }
        log.push_back(message);
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
