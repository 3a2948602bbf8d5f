//! Presence in this process's memory: one node's, or several in-process pods' shared
//! one in tests. (The message log in memory is [`super::log::memory`].)

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};

use futures_util::future::BoxFuture;

use crate::chat::{
    PresenceChanges, PresenceState, PresenceStore, RoomName, Status, StoreError, UserRef,
};

/// Presence in memory: one node's, or shared by several in-process pods (tests), each
/// through its own handle ([`MemoryPresence::pod`]). A pod counts as alive until
/// [`MemoryPresence::stop`].
#[derive(Clone)]
pub struct MemoryPresence {
    shared: Arc<Mutex<Shared>>,
    pod: Arc<str>,
}

impl Default for MemoryPresence {
    fn default() -> Self {
        Self {
            shared: Arc::default(),
            pod: Arc::from("local"),
        }
    }
}

#[derive(Default)]
struct Shared {
    rooms: HashMap<RoomName, BTreeMap<String, Record>>,
    dead: HashSet<Arc<str>>,
    /// Each pod's member count per room, as of its last sync.
    counts: HashMap<Arc<str>, Vec<(RoomName, usize)>>,
}

/// A user in a room: how others see them, and the pods that have them.
struct Record {
    user: UserRef,
    status: Status,
    pods: BTreeSet<Arc<str>>,
}

impl Shared {
    /// Adds `pod` to the user's record; `true` when no live pod had them.
    fn online(&mut self, pod: &Arc<str>, room: &RoomName, user: &UserRef, status: Status) -> bool {
        let dead = &self.dead;
        let record = self
            .rooms
            .entry(room.clone())
            .or_default()
            .entry(user.id.clone())
            .or_insert_with(|| Record {
                user: user.clone(),
                status,
                pods: BTreeSet::new(),
            });
        record.pods.retain(|p| !dead.contains(p));
        let first = record.pods.is_empty();
        record.pods.insert(pod.clone());
        record.user = user.clone();
        record.status = status;
        first
    }

    /// Removes `pod` from the user's record; `true` when no live pod has them.
    fn offline(&mut self, pod: &Arc<str>, room: &RoomName, user: &str) -> bool {
        let Some(users) = self.rooms.get_mut(room) else {
            return true;
        };
        let last = users.get_mut(user).is_none_or(|record| {
            record.pods.remove(pod);
            record.pods.retain(|p| !self.dead.contains(p));
            record.pods.is_empty()
        });
        if last {
            users.remove(user);
        }
        if users.is_empty() {
            self.rooms.remove(room);
        }
        last
    }
}

impl MemoryPresence {
    /// Another pod's handle on the same presence (several in-process pods in tests).
    pub fn pod(&self, pod: &str) -> Self {
        Self {
            shared: self.shared.clone(),
            pod: Arc::from(pod),
        }
    }

    /// Marks this handle's pod dead: its records no longer count.
    pub fn stop(&self) {
        self.lock().dead.insert(self.pod.clone());
    }

    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl PresenceStore for MemoryPresence {
    fn online<'a>(
        &'a self,
        room: &'a RoomName,
        user: &'a UserRef,
        status: Status,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let first = self.lock().online(&self.pod, room, user, status);
        Box::pin(std::future::ready(Ok(first)))
    }

    fn offline<'a>(
        &'a self,
        room: &'a RoomName,
        user: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        let last = self.lock().offline(&self.pod, room, user);
        Box::pin(std::future::ready(Ok(last)))
    }

    fn list<'a>(
        &'a self,
        room: &'a RoomName,
    ) -> BoxFuture<'a, Result<Vec<(UserRef, Status)>, StoreError>> {
        let shared = self.lock();
        let users = shared
            .rooms
            .get(room)
            .map(|users| {
                users
                    .values()
                    .filter(|r| r.pods.iter().any(|p| !shared.dead.contains(p)))
                    .map(|r| (r.user.clone(), r.status))
                    .collect()
            })
            .unwrap_or_default();
        Box::pin(std::future::ready(Ok(users)))
    }

    fn sync<'a>(
        &'a self,
        state: &'a PresenceState,
    ) -> BoxFuture<'a, Result<PresenceChanges, StoreError>> {
        let mut shared = self.lock();
        let mut changes = PresenceChanges::default();
        for (room, user, status) in &state.online {
            let had = shared
                .rooms
                .get(room)
                .and_then(|users| users.get(&user.id))
                .is_some_and(|r| r.pods.contains(&self.pod));
            if shared.online(&self.pod, room, user, *status) && !had {
                changes.online.push((room.clone(), user.clone()));
            }
        }
        for (room, user) in &state.departed {
            if shared.offline(&self.pod, room, &user.id) {
                changes.offline.push((room.clone(), user.clone()));
            }
        }
        shared.counts.insert(self.pod.clone(), state.rooms.clone());
        // Dead pods' users in the rooms served here.
        let Shared { rooms, dead, .. } = &mut *shared;
        for (room, _) in &state.rooms {
            let Some(users) = rooms.get_mut(room) else {
                continue;
            };
            users.retain(|_, record| {
                let before = record.pods.len();
                record.pods.retain(|p| !dead.contains(p));
                let gone = before > 0 && record.pods.is_empty();
                if gone {
                    changes.offline.push((room.clone(), record.user.clone()));
                }
                !gone
            });
        }
        Box::pin(std::future::ready(Ok(changes)))
    }

    fn rooms<'a>(
        &'a self,
        local: &'a [(RoomName, usize)],
    ) -> BoxFuture<'a, Result<Vec<(String, u64)>, StoreError>> {
        let shared = self.lock();
        let mut rooms: BTreeMap<String, u64> = BTreeMap::new();
        let others = shared
            .counts
            .iter()
            .filter(|(pod, _)| **pod != self.pod && !shared.dead.contains(*pod))
            .flat_map(|(_, counts)| counts.iter());
        for (room, n) in local.iter().chain(others) {
            *rooms.entry(room.to_string()).or_default() += *n as u64;
        }
        Box::pin(std::future::ready(Ok(rooms.into_iter().collect())))
    }
}
