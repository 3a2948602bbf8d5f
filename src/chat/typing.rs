//! Typing indicators that expire: a user who said "typing" and sent no refresh within
//! the timeout is announced as stopped by the server.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::time::Instant;

use super::{RoomName, UserRef};

/// Who is typing where, until when.
pub struct TypingTracker {
    timeout: Duration,
    until: Mutex<HashMap<(RoomName, String), (UserRef, Instant)>>,
}

impl TypingTracker {
    /// Indicators last `timeout` without a refresh.
    pub fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            until: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<(RoomName, String), (UserRef, Instant)>> {
        self.until.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records a typing (refresh) or a stop.
    pub fn set(&self, room: &RoomName, user: &UserRef, typing: bool) {
        let key = (room.clone(), user.id.clone());
        if typing {
            self.lock()
                .insert(key, (user.clone(), Instant::now() + self.timeout));
        } else {
            self.lock().remove(&key);
        }
    }

    /// Removes and returns the indicators past their time.
    pub fn expired(&self) -> Vec<(RoomName, UserRef)> {
        let now = Instant::now();
        let mut until = self.lock();
        let gone: Vec<_> = until
            .iter()
            .filter(|(_, (_, t))| *t <= now)
            .map(|(k, _)| k.clone())
            .collect();
        gone.into_iter()
            .filter_map(|k| until.remove(&k).map(|(user, _)| (k.0, user)))
            .collect()
    }
}
