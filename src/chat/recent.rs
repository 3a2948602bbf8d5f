//! The chat messages this pod delivered lately, per room with local members, and what
//! they prove. Recovery answers from here alone only when nothing can be missing: the
//! room's log records every delivery from the moment its subscription was confirmed
//! (its proof), and a loss on the bus (a full inbound queue, a lost connection) voids
//! the proof until the next confirmation. Otherwise recovery reads the store and takes
//! from here only what the store may not have yet.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use uuid::Uuid;

use super::{Message, RoomName};

/// Most messages kept per room, whatever the history limit.
pub const MAX_RECENT_PER_ROOM: usize = 1024;

/// One room's recent deliveries, numbered in delivery order.
struct RoomLog {
    log: VecDeque<(u64, Arc<Message>)>,
    next: u64,
    /// `(first, losses)`: every delivery numbered `first` or later is in `log`, provided
    /// the bus's loss count is still `losses`.
    proof: Option<(u64, u64)>,
}

impl RoomLog {
    fn proven_from(&self, losses: u64) -> Option<u64> {
        self.proof
            .filter(|(_, l)| *l == losses)
            .map(|(first, _)| first)
    }
}

/// Recently delivered messages by room, oldest first; never more than the history
/// retains, so recovery never reaches further back than history would. Only rooms
/// [`Recent::open`]ed are kept: a late delivery to a room this pod left is not recorded.
pub struct Recent {
    per_room: usize,
    rooms: HashMap<RoomName, RoomLog>,
}

impl Recent {
    /// Keeps up to `history_limit` (at most [`MAX_RECENT_PER_ROOM`]) messages per room.
    pub fn new(history_limit: usize) -> Self {
        Self {
            per_room: history_limit.clamp(1, MAX_RECENT_PER_ROOM),
            rooms: HashMap::new(),
        }
    }

    /// Starts recording `room` (it got its first local member), unproven.
    pub fn open(&mut self, room: &RoomName) {
        self.rooms.entry(room.clone()).or_insert_with(|| RoomLog {
            log: VecDeque::new(),
            next: 0,
            proof: None,
        });
    }

    /// The room's subscription is confirmed while the bus's loss count is `losses`: every
    /// delivery from now on is recorded. An older proof still valid is kept (it reaches
    /// further back).
    pub fn prove(&mut self, room: &RoomName, losses: u64) {
        if let Some(room) = self.rooms.get_mut(room) {
            if room.proven_from(losses).is_none() {
                room.proof = Some((room.next, losses));
            }
        }
    }

    /// Records a delivered message (of an open room).
    pub fn push(&mut self, room: &RoomName, message: Arc<Message>) {
        let Some(room) = self.rooms.get_mut(room) else {
            return;
        };
        if room.log.len() >= self.per_room {
            room.log.pop_front();
        }
        room.log.push_back((room.next, message));
        room.next += 1;
    }

    /// Replaces an edited message.
    pub fn update(&mut self, room: &RoomName, message: &Message) {
        if let Some((_, slot)) = self
            .rooms
            .get_mut(room)
            .and_then(|r| r.log.iter_mut().find(|(_, m)| m.id == message.id))
        {
            *slot = Arc::new(message.clone());
        }
    }

    /// Removes a deleted message.
    pub fn remove(&mut self, room: &RoomName, id: Uuid) {
        if let Some(room) = self.rooms.get_mut(room) {
            room.log.retain(|(_, m)| m.id != id);
        }
    }

    /// Stops recording a room (no local member left).
    pub fn forget(&mut self, room: &RoomName) {
        self.rooms.remove(room);
    }

    /// The number the next delivery to `room` will get.
    pub fn mark(&self, room: &RoomName) -> u64 {
        self.rooms.get(room).map_or(0, |r| r.next)
    }

    /// The messages after `id`, when `id` is here and every delivery since it is too.
    pub fn after(&self, room: &RoomName, id: Uuid, losses: u64) -> Option<Vec<Message>> {
        let room = self.rooms.get(room)?;
        let first = room.proven_from(losses)?;
        let at = room.log.iter().position(|(_, m)| m.id == id)?;
        if room.log[at].0 < first {
            return None;
        }
        Some(
            room.log
                .iter()
                .skip(at + 1)
                .map(|(_, m)| (**m).clone())
                .collect(),
        )
    }

    /// Every message of `room` newer than `id` (UUID v7 order) and not in `known`, when
    /// every delivery since [`Recent::mark`] gave `mark` is here; `None` otherwise.
    pub fn newer_than(
        &self,
        room: &RoomName,
        id: Uuid,
        known: &[Message],
        mark: u64,
        losses: u64,
    ) -> Option<Vec<Message>> {
        let room = self.rooms.get(room)?;
        if room.proven_from(losses)? > mark {
            return None;
        }
        Some(
            room.log
                .iter()
                .filter(|(_, m)| m.id > id && !known.iter().any(|k| k.id == m.id))
                .map(|(_, m)| (**m).clone())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room() -> RoomName {
        RoomName::parse("r").unwrap()
    }

    fn msg(n: u32) -> Arc<Message> {
        Arc::new(Message::chat(Some(room()), "u".into(), format!("m{n}")))
    }

    #[test]
    fn a_room_left_is_not_recreated_by_a_late_delivery() {
        let mut recent = Recent::new(100);
        recent.open(&room());
        recent.prove(&room(), 0);
        let first = msg(1);
        recent.push(&room(), first.clone());
        recent.forget(&room());
        recent.push(&room(), msg(2));
        assert_eq!(recent.after(&room(), first.id, 0), None);
    }

    #[test]
    fn only_deliveries_after_the_proof_and_before_a_loss_count() {
        let mut recent = Recent::new(100);
        recent.open(&room());
        let early = msg(1);
        recent.push(&room(), early.clone());
        recent.prove(&room(), 0);
        let late = msg(2);
        recent.push(&room(), late.clone());
        recent.push(&room(), msg(3));
        // Before the proof, messages of other pods may have been missed.
        assert_eq!(recent.after(&room(), early.id, 0), None);
        assert_eq!(recent.after(&room(), late.id, 0).map(|m| m.len()), Some(1));
        // A loss on the bus voids it.
        assert_eq!(recent.after(&room(), late.id, 1), None);
        assert_eq!(recent.newer_than(&room(), late.id, &[], 3, 1), None);
        recent.prove(&room(), 1);
        assert_eq!(recent.after(&room(), late.id, 1), None);
        assert!(recent.newer_than(&room(), late.id, &[], 3, 1).is_some());
    }
}
