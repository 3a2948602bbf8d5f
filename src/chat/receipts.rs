//! Read receipts and unread counts: `message:read` moves a user's read position in a
//! room forward (kept in the database, [`super::ReadPositions`]); the room hears
//! `receipt:update`, at most once per user and room per second from this pod (the last
//! position of the second wins), and unread counts are read from the log.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{now_ms, ChatError, ChatEvent, ChatService, RoomName, Sender, Unread, UserRef};

/// At most one `receipt:update` per user and room in this long (from one pod).
pub const RECEIPT_EVERY: Duration = Duration::from_secs(1);

/// Rooms a per-user unread summary lists at most.
pub const MAX_UNREAD_ROOMS: usize = 100;

/// Per (room, user) whose receipt went within the last [`RECEIPT_EVERY`].
type Recent = HashMap<(RoomName, String), Slot>;

/// One user's receipts in one room within a second.
struct Slot {
    /// The offset last sent.
    sent: u64,
    /// The newest position waiting to go when the second ends.
    waiting: Option<(UserRef, u64)>,
}

/// Receipts waiting for their user's second to pass.
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
        self.may_use(sender, room)?;
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

    /// Tells `room` that `user` read up to `offset`: now, or when their second ends; never
    /// a position below one already sent or waiting (two devices' reads may finish in
    /// either order).
    fn receipt(self: &Arc<Self>, room: &RoomName, user: UserRef, offset: u64) {
        let key = (room.clone(), user.id.clone());
        {
            let mut recent = self.receipts.lock();
            if let Some(slot) = recent.get_mut(&key) {
                // Sent within the second: the newest goes when it ends.
                let newest = slot.waiting.as_ref().map_or(slot.sent, |(_, o)| *o);
                if offset > newest {
                    slot.waiting = Some((user, offset));
                }
                return;
            }
            recent.insert(
                key.clone(),
                Slot {
                    sent: offset,
                    waiting: None,
                },
            );
        }
        self.send_receipt(room.clone(), user, offset);
        let chat = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(RECEIPT_EVERY).await;
                let next = {
                    let mut recent = chat.receipts.lock();
                    let Some(slot) = recent.get_mut(&key) else {
                        return;
                    };
                    match slot.waiting.take() {
                        Some(next) => {
                            slot.sent = next.1;
                            next
                        }
                        None => {
                            recent.remove(&key);
                            return;
                        }
                    }
                };
                chat.send_receipt(key.0.clone(), next.0, next.1);
            }
        });
    }

    fn send_receipt(&self, room: RoomName, user: UserRef, offset: u64) {
        drop(self.emit(ChatEvent::Receipt { room, user, offset }, None));
    }
}
