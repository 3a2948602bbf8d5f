//! One order per room on this pod: chat messages reach local members in offset order,
//! each once, whether they were posted here or came from other pods. A room with local
//! members is anchored at the log's last offset when it got its first member; from then
//! a message is handed on only when every earlier one has been. One arriving early waits
//! (bounded) while the chat fetches the missing ones from the log; one already handed on
//! is dropped. The chat holds the room's shard lock around every call, so what is handed
//! on leaves in the order returned.

use std::collections::{BTreeMap, HashMap};

use tokio::sync::watch;

use super::{Delivery, RoomName};

/// Early messages one room keeps while it waits for missing ones; later arrivals are
/// dropped and read back from the log.
pub const MAX_PENDING: usize = 4096;

/// One room's place in its log on this pod.
struct RoomSequence {
    /// The next offset to hand on; `None` until anchored.
    next: Option<u64>,
    /// Messages that arrived before their turn, by offset.
    pending: BTreeMap<u64, Delivery>,
    /// Messages may exist past everything seen (some were dropped here, or the bus lost
    /// some): read the log to its end.
    behind: bool,
    /// A fill (a read of the log for missing messages) is under way.
    filling: bool,
    /// Tells joiners waiting for the anchor that it is set.
    anchored: watch::Sender<bool>,
}

impl RoomSequence {
    fn new() -> Self {
        Self {
            next: None,
            pending: BTreeMap::new(),
            behind: false,
            filling: false,
            anchored: watch::Sender::new(false),
        }
    }

    /// Hands on what is now in turn.
    fn drain(&mut self, ready: &mut Vec<Delivery>) {
        let Some(next) = self.next.as_mut() else {
            return;
        };
        while let Some(delivery) = self.pending.remove(next) {
            ready.push(delivery);
            *next += 1;
        }
    }

    fn has_gap(&self) -> bool {
        self.next.is_some() && (self.behind || !self.pending.is_empty())
    }
}

/// What an offer asks of the chat.
#[derive(Debug, Default)]
pub struct Offered {
    /// Deliveries to hand to the members now, in this order.
    pub ready: Vec<Delivery>,
    /// A gap opened with no fill under way: start one.
    pub fill: bool,
}

/// The rooms of one shard.
#[derive(Default)]
pub struct Sequences {
    rooms: HashMap<RoomName, RoomSequence>,
}

impl Sequences {
    /// Starts ordering `room` (it got its first local member), not anchored yet; the
    /// receiver tells when it is.
    pub fn open(&mut self, room: &RoomName) -> watch::Receiver<bool> {
        self.rooms
            .entry(room.clone())
            .or_insert_with(RoomSequence::new)
            .anchored
            .subscribe()
    }

    /// Tells when `room` is anchored (`None` when it is not open).
    pub fn anchored(&self, room: &RoomName) -> Option<watch::Receiver<bool>> {
        self.rooms.get(room).map(|r| r.anchored.subscribe())
    }

    /// Stops ordering `room` (its last local member left).
    pub fn forget(&mut self, room: &RoomName) {
        self.rooms.remove(room);
    }

    /// Anchors `room` after the log's `last` offset: every later message is handed on
    /// (and any early one already waiting). Returns what is now in turn.
    pub fn anchor(&mut self, room: &RoomName, last: u64) -> Offered {
        let mut offered = Offered::default();
        let Some(seq) = self.rooms.get_mut(room) else {
            return offered;
        };
        if seq.next.is_some() {
            return offered;
        }
        let first_waiting = seq.pending.keys().next().copied();
        seq.next = Some(first_waiting.map_or(last + 1, |w| w.min(last + 1)));
        seq.anchored.send_replace(true);
        seq.drain(&mut offered.ready);
        if seq.has_gap() && !seq.filling {
            seq.filling = true;
            offered.fill = true;
        }
        offered
    }

    /// The message at `offset` of `room` arrived (posted here, from another pod, or
    /// read from the log).
    pub fn offer(&mut self, room: &RoomName, offset: u64, delivery: &Delivery) -> Offered {
        let mut offered = Offered::default();
        // No local member: nobody here to deliver to.
        let Some(seq) = self.rooms.get_mut(room) else {
            return offered;
        };
        match seq.next {
            Some(next) if offset < next => return offered,
            Some(next) if offset == next => {
                offered.ready.push(delivery.clone());
                seq.next = Some(next + 1);
                seq.drain(&mut offered.ready);
            }
            _ => {
                if seq.pending.len() < MAX_PENDING {
                    seq.pending.insert(offset, delivery.clone());
                } else {
                    seq.behind = true;
                }
            }
        }
        if seq.has_gap() && !seq.filling {
            seq.filling = true;
            offered.fill = true;
        }
        offered
    }

    /// For a fill: the first offset still missing in `room`, or `None` (the fill ends)
    /// when nothing is missing or the room is gone.
    pub fn missing(&mut self, room: &RoomName) -> Option<u64> {
        let seq = self.rooms.get_mut(room)?;
        if seq.has_gap() {
            return seq.next;
        }
        seq.filling = false;
        None
    }

    /// For a fill: the log holds nothing after `next` - 1 beyond what it returned.
    pub fn caught_up(&mut self, room: &RoomName) {
        if let Some(seq) = self.rooms.get_mut(room) {
            seq.behind = false;
        }
    }

    /// For a fill: the log has no message at the missing offsets (they are no longer
    /// kept); continue from `to` (the first the log has, or the first waiting).
    pub fn skip(&mut self, room: &RoomName, to: Option<u64>) -> Offered {
        let mut offered = Offered::default();
        if let Some(seq) = self.rooms.get_mut(room) {
            let to = to.or_else(|| seq.pending.keys().next().copied());
            if let (Some(next), Some(to)) = (seq.next, to) {
                seq.next = Some(next.max(to));
                seq.drain(&mut offered.ready);
            }
        }
        offered
    }

    /// The bus may have lost messages: every anchored room reads the log to its end.
    /// Returns the rooms that need a fill started.
    pub fn lost(&mut self) -> Vec<RoomName> {
        let mut start = Vec::new();
        for (room, seq) in &mut self.rooms {
            if seq.next.is_none() {
                continue;
            }
            seq.behind = true;
            if !seq.filling {
                seq.filling = true;
                start.push(room.clone());
            }
        }
        start
    }

    /// `room` may be behind the log (a client saw more): read the log to its end.
    /// Returns whether a fill needs starting.
    pub fn lag(&mut self, room: &RoomName) -> bool {
        let Some(seq) = self.rooms.get_mut(room).filter(|s| s.next.is_some()) else {
            return false;
        };
        seq.behind = true;
        !std::mem::replace(&mut seq.filling, true)
    }

    /// The next offset `room` hands on, once anchored.
    pub fn next(&self, room: &RoomName) -> Option<u64> {
        self.rooms.get(room).and_then(|r| r.next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::{ChatEvent, Message};
    use std::sync::Arc;

    fn room() -> RoomName {
        RoomName::parse("r").unwrap()
    }

    fn at(offset: u64) -> (u64, Delivery) {
        let mut message = Message::chat(Some(room()), "a".into(), offset.to_string());
        message.offset = Some(offset);
        let event = ChatEvent::Message {
            message: Arc::new(message),
        };
        (offset, Delivery::new(event, None))
    }

    fn offsets(offered: &Offered) -> Vec<u64> {
        offered
            .ready
            .iter()
            .filter_map(|d| d.event.as_message().and_then(|m| m.offset))
            .collect()
    }

    fn offer(seqs: &mut Sequences, offset: u64) -> Offered {
        let (o, d) = at(offset);
        seqs.offer(&room(), o, &d)
    }

    #[test]
    fn messages_leave_in_offset_order_once() {
        let mut seqs = Sequences::default();
        let anchored = seqs.open(&room());
        assert!(!*anchored.borrow());
        assert!(
            offsets(&offer(&mut seqs, 6)).is_empty(),
            "waits for the anchor"
        );
        let offered = seqs.anchor(&room(), 4);
        assert!(*anchored.borrow());
        assert!(offsets(&offered).is_empty());
        assert!(offered.fill, "5 is missing");
        let offered = offer(&mut seqs, 5);
        assert_eq!(offsets(&offered), [5, 6]);
        assert!(!offered.fill, "a fill is already under way");
        assert!(
            offsets(&offer(&mut seqs, 5)).is_empty(),
            "a repeat is dropped"
        );
        assert_eq!(offsets(&offer(&mut seqs, 7)), [7]);
        assert_eq!(seqs.missing(&room()), None, "the fill ends");
        assert_eq!(seqs.next(&room()), Some(8));
    }

    #[test]
    fn an_anchor_keeps_earlier_waiting_messages() {
        let mut seqs = Sequences::default();
        seqs.open(&room());
        offer(&mut seqs, 3);
        // The log already had 3 when it was asked: 3 is still handed on.
        assert_eq!(offsets(&seqs.anchor(&room(), 3)), [3]);
    }

    #[test]
    fn a_room_without_members_takes_nothing() {
        let mut seqs = Sequences::default();
        assert!(offsets(&offer(&mut seqs, 1)).is_empty());
        seqs.open(&room());
        seqs.forget(&room());
        assert!(offsets(&offer(&mut seqs, 1)).is_empty());
    }

    #[test]
    fn a_loss_sends_every_anchored_room_to_the_log() {
        let mut seqs = Sequences::default();
        seqs.open(&room());
        seqs.anchor(&room(), 0);
        assert_eq!(seqs.lost(), [room()]);
        assert_eq!(seqs.missing(&room()), Some(1));
        seqs.caught_up(&room());
        assert_eq!(seqs.missing(&room()), None);
    }

    #[test]
    fn a_skip_moves_past_offsets_the_log_no_longer_has() {
        let mut seqs = Sequences::default();
        seqs.open(&room());
        seqs.anchor(&room(), 0);
        offer(&mut seqs, 4);
        assert_eq!(offsets(&seqs.skip(&room(), None)), [4]);
        assert_eq!(seqs.next(&room()), Some(5));
    }

    #[test]
    fn waiting_messages_are_bounded() {
        let mut seqs = Sequences::default();
        seqs.open(&room());
        seqs.anchor(&room(), 0);
        for offset in 2..(MAX_PENDING as u64 + 10) {
            offer(&mut seqs, offset);
        }
        assert_eq!(seqs.rooms[&room()].pending.len(), MAX_PENDING);
        assert!(seqs.rooms[&room()].behind);
    }
}
