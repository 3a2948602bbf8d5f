//! Read receipts and unread counts: `message:read` moves a user's read position in a
//! room forward (kept in the database, [`super::ReadPositions`]); the room hears
//! `receipt:update` with the positions that moved, at most once per room per second from
//! this pod (each user's newest position of the second), and unread counts are read from
//! the log. One event per room and second, however many read: in a room of N members
//! where R read, N deliveries a second instead of N x R.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{now_ms, ChatError, ChatEvent, ChatService, RoomName, Sender, Unread, UserRef};

/// At most one `receipt:update` per room in this long (from one pod).
pub const RECEIPT_EVERY: Duration = Duration::from_secs(1);

/// Rooms a per-user unread summary lists at most.
pub const MAX_UNREAD_ROOMS: usize = 100;

/// Users one `receipt:update` names at most; more wait for the next second.
pub const MAX_RECEIPTS_PER_UPDATE: usize = 500;

/// One user's read position, as `receipt:update` carries it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReadReceipt {
    /// Who read.
    pub user: UserRef,
    /// The offset they have read up to.
    pub offset: u64,
}

/// Per room whose receipts went within the last [`RECEIPT_EVERY`].
type Recent = HashMap<RoomName, Window>;

/// One room's receipts within a second.
#[derive(Default)]
struct Window {
    /// The offset each reader of the last update was sent.
    sent: HashMap<String, u64>,
    /// The newest positions waiting to go when the second ends, by user id.
    waiting: BTreeMap<String, ReadReceipt>,
}

impl Window {
    /// Queues `receipt` unless it is not newer than what was sent or waits.
    fn offer(&mut self, receipt: ReadReceipt) {
        let id = &receipt.user.id;
        let newest = self
            .waiting
            .get(id)
            .map(|r| r.offset)
            .or_else(|| self.sent.get(id).copied());
        if newest.is_none_or(|n| receipt.offset > n) {
            self.waiting.insert(id.clone(), receipt);
        }
    }

    /// Takes up to [`MAX_RECEIPTS_PER_UPDATE`] waiting receipts, noting them as sent (only
    /// the last update's are kept: the window stays as small as one second's readers).
    fn take(&mut self) -> Vec<ReadReceipt> {
        self.sent.clear();
        let mut batch = Vec::new();
        while batch.len() < MAX_RECEIPTS_PER_UPDATE {
            let Some((id, receipt)) = self.waiting.pop_first() else {
                break;
            };
            self.sent.insert(id, receipt.offset);
            batch.push(receipt);
        }
        batch
    }
}

/// Receipts waiting for their room's second to pass.
#[derive(Default)]
pub(super) struct Receipts {
    recent: Mutex<Recent>,
}

impl Receipts {
    fn lock(&self) -> std::sync::MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl ChatService {
    /// Records that the sender has read `room` up to `offset` (clamped to the room's last
    /// offset; a position never moves back); the position now. When it moved, the room
    /// hears `receipt:update`.
    pub async fn mark_read(
        self: &Arc<Self>,
        sender: &Sender,
        room: &RoomName,
        offset: u64,
    ) -> Result<u64, ChatError> {
        self.may_use(sender, room).await?;
        if !self.membership().is_member(&sender.conn, room) {
            return Err(ChatError::Channel(format!("not a member of room {room}")));
        }
        let last = self.log.bounds(room).await?.last;
        let offset = offset.min(last);
        let (now, moved) = self
            .reads
            .mark_read(room, &sender.user, sender.anonymous, offset, now_ms())
            .await?;
        if moved {
            self.receipt(room, sender.user_ref(), now);
        }
        Ok(now)
    }

    /// The sender's read position and unread count in `room`.
    pub async fn unread(&self, sender: &Sender, room: &RoomName) -> Result<Unread, ChatError> {
        self.admits(sender, room).await?;
        Ok(self.reads.unread(room, &sender.user).await?)
    }

    /// The sender's rooms with a read position, most recently read first, with unread
    /// counts (at most [`MAX_UNREAD_ROOMS`]).
    pub async fn unread_rooms(
        &self,
        sender: &Sender,
    ) -> Result<Vec<(RoomName, Unread)>, ChatError> {
        let rooms = self
            .reads
            .unread_rooms(&sender.user, MAX_UNREAD_ROOMS)
            .await?;
        let names: Vec<RoomName> = rooms.iter().map(|(room, _)| room.clone()).collect();
        let open = self.open_to(sender, names).await?;
        Ok(rooms
            .into_iter()
            .filter(|(room, _)| open.contains(room))
            .collect())
    }

    /// Tells `room` that `user` read up to `offset`: now when the room's receipts are
    /// quiet, else with the others of the room when its second ends; never a position
    /// below one already sent or waiting (two devices' reads may finish in either order).
    fn receipt(self: &Arc<Self>, room: &RoomName, user: UserRef, offset: u64) {
        let receipt = ReadReceipt { user, offset };
        let first = {
            let mut recent = self.receipts.lock();
            if let Some(window) = recent.get_mut(room) {
                window.offer(receipt);
                return;
            }
            let mut window = Window::default();
            window.offer(receipt);
            let first = window.take();
            recent.insert(room.clone(), window);
            first
        };
        self.send_receipts(room.clone(), first);
        let (chat, room) = (self.clone(), room.clone());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RECEIPT_EVERY).await;
                let next = {
                    let mut recent = chat.receipts.lock();
                    let Some(window) = recent.get_mut(&room) else {
                        return;
                    };
                    let next = window.take();
                    if next.is_empty() {
                        recent.remove(&room);
                        return;
                    }
                    next
                };
                chat.send_receipts(room.clone(), next);
            }
        });
    }

    fn send_receipts(&self, room: RoomName, receipts: Vec<ReadReceipt>) {
        drop(self.emit(ChatEvent::Receipt { room, receipts }, None));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receipt(user: &str, offset: u64) -> ReadReceipt {
        ReadReceipt {
            user: UserRef {
                id: user.into(),
                name: user.into(),
                unverified: false,
            },
            offset,
        }
    }

    #[test]
    fn a_window_keeps_each_users_newest_position_and_never_an_older_one() {
        let mut window = Window::default();
        window.offer(receipt("a", 3));
        assert_eq!(window.take(), [receipt("a", 3)]);
        window.offer(receipt("a", 2));
        window.offer(receipt("b", 1));
        window.offer(receipt("a", 5));
        window.offer(receipt("a", 4));
        assert_eq!(window.take(), [receipt("a", 5), receipt("b", 1)]);
        window.offer(receipt("b", 1));
        assert!(window.take().is_empty());
        for i in 0..MAX_RECEIPTS_PER_UPDATE + 1 {
            window.offer(receipt(&format!("u{i:04}"), 9));
        }
        assert_eq!(window.take().len(), MAX_RECEIPTS_PER_UPDATE);
        assert_eq!(window.take().len(), 1);
    }
}
