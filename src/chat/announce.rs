//! Presence use cases of [`ChatService`]: "online" and "offline" announcements decided by
//! the presence store (atomically across pods), status changes, the presence list, and
//! the background loop that ends stale typing indicators and keeps the store true: it
//! renews this pod's entries every heartbeat and, after a failed write, syncs again
//! every [`RETRY_EVERY`] until the store has everything.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::{
    ChatError, ChatEvent, ChatService, Happened, PresenceState, RoomName, Sender, Status, UserRef,
};

/// How often presence is synced again while the store missed a change.
pub const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Presence changes the store did not take, for the next sync.
#[derive(Default)]
pub struct Unsynced {
    /// A write failed since the last successful sync.
    dirty: AtomicBool,
    /// Users who left this pod while the store could not be told, once each (bounded
    /// by the distinct users and rooms, however long the store is away).
    departed: Mutex<HashMap<(RoomName, String), UserRef>>,
}

impl Unsynced {
    /// Syncs again every [`RETRY_EVERY`] until a sync succeeds.
    pub(super) fn mark(&self) {
        if !self.dirty.swap(true, Ordering::AcqRel) {
            info!("presence store missed a change; syncing again every second");
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(RoomName, String), UserRef>> {
        self.departed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn depart(&self, room: RoomName, user: UserRef) {
        self.lock().insert((room, user.id.clone()), user);
        self.mark();
    }

    fn take_departed(&self) -> Vec<(RoomName, UserRef)> {
        std::mem::take(&mut *self.lock())
            .into_iter()
            .map(|((room, _), user)| (room, user))
            .collect()
    }

    fn restore_departed(&self, departed: Vec<(RoomName, UserRef)>) {
        let mut slot = self.lock();
        for (room, user) in departed {
            // A departure recorded meanwhile is the newer one.
            slot.entry((room, user.id.clone())).or_insert(user);
        }
        drop(slot);
        self.mark();
    }
}

impl ChatService {
    /// Tells `room` that `user` came online (their first connection, across pods) or went
    /// offline (their last), and the backend that they joined or left (a room they are
    /// in: presence:global is no room a user joins by connecting).
    fn announce(&self, room: RoomName, user: UserRef, status: Status) {
        if room.is_global_presence() {
            return drop(self.emit(ChatEvent::Presence { room, user, status }, None));
        }
        self.observe(|| match status {
            Status::Offline => Happened::Left {
                room: room.clone(),
                user: user.clone(),
            },
            _ => Happened::Joined {
                room: room.clone(),
                user: user.clone(),
            },
        });
        drop(self.emit(ChatEvent::Presence { room, user, status }, None));
    }

    /// A user's first local connection joined `room`: records it, and announces
    /// "online" when no other pod had them.
    pub(super) async fn announce_online(&self, room: RoomName, user: UserRef, status: Status) {
        if self.single_node() {
            // The local count is the whole truth: no store to ask.
            return self.announce(room, user, status);
        }
        match self.presence_store.online(&room, &user, status).await {
            Ok(first) => {
                if self.presence.recorded(&room, &user.id) && first {
                    self.announce(room, user, status);
                }
            }
            Err(e) => {
                debug!(error = %e, "presence not recorded; retrying");
                self.presence_unsynced.mark();
            }
        }
    }

    /// After the grace: announces "offline" when the user's last connection on every
    /// pod is gone.
    pub(super) async fn announce_offline(&self, room: RoomName, user: String) {
        let Some(user) = self.presence.expire(&room, &user) else {
            return;
        };
        self.typing.set(&room, &user, false);
        if self.single_node() {
            return self.announce(room, user, Status::Offline);
        }
        match self.presence_store.offline(&room, &user.id).await {
            Ok(true) => self.announce(room, user, Status::Offline),
            Ok(false) => {}
            Err(e) => {
                debug!(error = %e, "presence not removed; retrying");
                self.presence_unsynced.depart(room, user);
            }
        }
    }

    /// Sets the sender's status in every room they are in; those rooms get `presence:update`.
    pub async fn set_status(&self, sender: &Sender, status: Status) -> Result<(), ChatError> {
        if status == Status::Offline {
            return Err(ChatError::invalid("status must be online, away or busy"));
        }
        for (room, user) in self.presence.set_status(&sender.user, status) {
            if self.single_node() {
                drop(self.emit(ChatEvent::Presence { room, user, status }, None));
                continue;
            }
            if let Err(e) = self.presence_store.online(&room, &user, status).await {
                debug!(error = %e, "status not recorded; retrying");
                self.presence.unrecord(&room, &user.id);
                self.presence_unsynced.mark();
            }
            drop(self.emit(ChatEvent::Presence { room, user, status }, None));
        }
        Ok(())
    }

    /// Who is online in `room`, for anyone who may join it.
    pub async fn presence_list(
        &self,
        sender: &Sender,
        room: &RoomName,
    ) -> Result<Vec<(UserRef, Status)>, ChatError> {
        self.admits(sender, room).await?;
        if self.single_node() {
            return Ok(self.presence.list(room));
        }
        Ok(self.presence_store.list(room).await?)
    }

    /// Brings the presence store in line with this pod: renews every local entry (and
    /// writes again the ones it lost), applies missed departures, reaps dead pods'
    /// entries; announces what changed.
    async fn sync_presence(&self) {
        if self.single_node() {
            return;
        }
        let retrying = self.presence_unsynced.dirty.swap(false, Ordering::AcqRel);
        let online = self.presence.snapshot();
        // Someone who left and came back is online, not departed.
        let departed: Vec<_> = self
            .presence_unsynced
            .take_departed()
            .into_iter()
            .filter(|(room, user)| !self.presence.contains(room, &user.id))
            .collect();
        if self.directory.take_lost(self.bus.losses()) {
            self.directory
                .replace_all(|| self.membership().room_connections());
        }
        let state = PresenceState {
            online,
            departed,
            rooms: self.membership().rooms(),
        };
        match self.presence_store.sync(&state).await {
            Ok(changes) => {
                if retrying {
                    info!("presence store synced again");
                }
                for (room, user) in changes.online {
                    if self.presence.recorded(&room, &user.id) {
                        self.announce(room, user, Status::Online);
                    }
                }
                for (room, user, _) in &state.online {
                    self.presence.recorded(room, &user.id);
                }
                for (room, user) in changes.offline {
                    self.announce(room, user, Status::Offline);
                }
            }
            Err(e) => {
                debug!(error = %e, "presence sync failed; retrying");
                self.presence_unsynced.restore_departed(state.departed);
            }
        }
    }

    /// Ends stale typing indicators, keeps presence synced, and watches the message log
    /// (gaps after bus losses, the retention prune) until `cancel`.
    pub async fn run_background(self: Arc<Self>, cancel: CancellationToken) {
        tokio::spawn(self.clone().watch_log(cancel.clone()));
        tokio::spawn(self.clone().write_directory(cancel.clone()));
        let mut typing_tick = tokio::time::interval(Duration::from_millis(250));
        let mut presence_tick = tokio::time::interval(self.settings.presence_heartbeat);
        let mut retry_tick = tokio::time::interval(RETRY_EVERY);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = typing_tick.tick() => {
                    for (room, user) in self.typing.expired() {
                        drop(self.emit(ChatEvent::Typing { room, user, typing: false }, None));
                    }
                }
                _ = presence_tick.tick() => {
                    self.sync_presence().await;
                    if !self.single_node() {
                        self.recheck_channels().await;
                    }
                }
                _ = retry_tick.tick() => {
                    if self.presence_unsynced.dirty.load(Ordering::Acquire) {
                        self.sync_presence().await;
                    }
                }
            }
        }
    }
}
