//! Local presence bookkeeping: how many of a user's connections are in each room on this
//! pod, their status, and the grace timers that keep a quick reconnect silent. The
//! cluster-wide truth lives in a [`super::PresenceStore`].

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use tokio_util::sync::CancellationToken;

use super::{RoomName, Status, UserRef};

/// A user's local presence in one room.
pub struct Local {
    /// Connections of the user in the room, on this pod.
    pub conns: usize,
    /// How others see the user.
    pub user: UserRef,
    /// The status the user set.
    pub status: Status,
    /// Pending offline announcement, cancelled by a quick reconnect.
    pub grace: Option<CancellationToken>,
    /// Whether the presence store has this pod's record of the user (and "online" was
    /// decided): until then, the heartbeat writes it again.
    pub recorded: bool,
}

/// What a join means for presence.
pub enum Joined {
    /// First local connection: announce online (if first cluster-wide).
    First(Status),
    /// A reconnect within the grace period, or another tab: nothing to announce.
    Quiet,
}

/// Presence of local users, by room and user id.
#[derive(Default)]
pub struct LocalPresence {
    entries: Mutex<HashMap<(RoomName, String), Local>>,
}

impl LocalPresence {
    fn lock(&self) -> MutexGuard<'_, HashMap<(RoomName, String), Local>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one more connection of `user` in `room`.
    pub fn join(&self, room: &RoomName, user: &UserRef) -> Joined {
        let mut entries = self.lock();
        let entry = entries
            .entry((room.clone(), user.id.clone()))
            .or_insert_with(|| Local {
                conns: 0,
                user: user.clone(),
                status: Status::Online,
                grace: None,
                recorded: false,
            });
        entry.conns += 1;
        if let Some(grace) = entry.grace.take() {
            grace.cancel();
            return Joined::Quiet;
        }
        if entry.conns == 1 {
            Joined::First(entry.status)
        } else {
            Joined::Quiet
        }
    }

    /// Counts one connection less; when it was the last, arms and returns a grace token.
    pub fn leave(&self, room: &RoomName, user: &str) -> Option<CancellationToken> {
        let mut entries = self.lock();
        let entry = entries.get_mut(&(room.clone(), user.to_owned()))?;
        entry.conns = entry.conns.saturating_sub(1);
        if entry.conns > 0 {
            return None;
        }
        let token = CancellationToken::new();
        entry.grace = Some(token.clone());
        Some(token)
    }

    /// After the grace: forgets the entry if nobody came back; returns the user then.
    pub fn expire(&self, room: &RoomName, user: &str) -> Option<UserRef> {
        let mut entries = self.lock();
        let key = (room.clone(), user.to_owned());
        if entries.get(&key).is_some_and(|e| e.conns == 0) {
            return entries.remove(&key).map(|e| e.user);
        }
        None
    }

    /// Notes that the store has this pod's record of `user` in `room`; `false` when it
    /// already had it (so "online" was announced already) or the user is gone.
    pub fn recorded(&self, room: &RoomName, user: &str) -> bool {
        self.lock()
            .get_mut(&(room.clone(), user.to_owned()))
            .is_some_and(|e| !std::mem::replace(&mut e.recorded, true))
    }

    /// Notes that the store may have lost this pod's records (a failed write).
    pub fn unrecord(&self, room: &RoomName, user: &str) {
        if let Some(e) = self.lock().get_mut(&(room.clone(), user.to_owned())) {
            e.recorded = false;
        }
    }

    /// Every user counted online here (connected, or within the grace), by room.
    pub fn snapshot(&self) -> Vec<(RoomName, UserRef, Status)> {
        self.lock()
            .iter()
            .map(|((room, _), e)| (room.clone(), e.user.clone(), e.status))
            .collect()
    }

    /// The users counted online in `room` here, by id.
    pub fn list(&self, room: &RoomName) -> Vec<(UserRef, Status)> {
        let mut users: Vec<(UserRef, Status)> = self
            .lock()
            .iter()
            .filter(|((r, _), _)| r == room)
            .map(|(_, e)| (e.user.clone(), e.status))
            .collect();
        users.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        users
    }

    /// Whether `user` is counted online in `room` here.
    pub fn contains(&self, room: &RoomName, user: &str) -> bool {
        self.lock().contains_key(&(room.clone(), user.to_owned()))
    }

    /// Sets `user`'s status in every room they are in here; returns those rooms.
    pub fn set_status(&self, user: &str, status: Status) -> Vec<(RoomName, UserRef)> {
        self.lock()
            .iter_mut()
            .filter(|((_, u), e)| u == user && e.conns > 0)
            .map(|((room, _), e)| {
                e.status = status;
                (room.clone(), e.user.clone())
            })
            .collect()
    }
}
