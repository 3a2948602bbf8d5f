//! Which local connections are in which rooms, told to the presence store in order for
//! operators (in Redis: Streamly's `rooms:active` and `connections:{room}` sets). One
//! writer task hands the queued changes over in batches; a change that could not be
//! written (the store is down, the queue was full) makes the next presence sync replace
//! this pod's records with the membership index as it is then.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::{ChatService, ConnId, ConnectionChange, RoomName};

/// Changes queued at most; beyond, they are dropped and the next sync rewrites all.
const MAX_QUEUED: usize = 100_000;

/// The queue of connection changes not yet written to the presence store.
#[derive(Default)]
pub(super) struct Directory {
    queue: Mutex<Vec<ConnectionChange>>,
    ready: Notify,
    /// A change did not reach the store since the last full rewrite.
    lost: AtomicBool,
    /// The bus's loss count at the last full rewrite: a lost Redis connection may have
    /// lost the records too (a restarted Redis keeps nothing).
    losses_seen: AtomicU64,
}

impl Directory {
    fn push(&self, change: ConnectionChange) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        if queue.len() >= MAX_QUEUED {
            drop(queue);
            self.lost.store(true, Ordering::Release);
            return;
        }
        queue.push(change);
        drop(queue);
        self.ready.notify_one();
    }

    /// Replaces whatever is queued with this pod's connections as `snapshot` reads them
    /// (under the queue's lock: a change made after the snapshot is queued after it).
    pub(super) fn replace_all(&self, snapshot: impl FnOnce() -> Vec<(RoomName, ConnId)>) {
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        queue.clear();
        queue.push(ConnectionChange::Replace(snapshot()));
        drop(queue);
        self.ready.notify_one();
    }

    fn take(&self) -> Vec<ConnectionChange> {
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Whether a change was lost since the last call, or the link lost its connection
    /// (`losses`, the bus's count, moved): the caller rewrites everything, and calls
    /// [`Directory::lose`] if that fails too.
    pub(super) fn take_lost(&self, losses: u64) -> bool {
        let moved = self.losses_seen.swap(losses, Ordering::AcqRel) != losses;
        self.lost.swap(false, Ordering::AcqRel) || moved
    }

    /// Marks the records as untrue until the next full rewrite.
    pub(super) fn lose(&self) {
        self.lost.store(true, Ordering::Release);
    }
}

impl ChatService {
    /// Queues a local connection's join or leave for the presence store (not on one
    /// node: nothing to record).
    pub(super) fn record_connection(&self, change: ConnectionChange) {
        if !self.single_node() {
            self.directory.push(change);
        }
    }

    /// `conn` joined `room`.
    pub(super) fn record_join(&self, conn: &ConnId, room: &RoomName) {
        self.record_connection(ConnectionChange::Joined(room.clone(), conn.clone()));
    }

    /// `conn` left `room`.
    pub(super) fn record_leave(&self, conn: &ConnId, room: &RoomName) {
        self.record_connection(ConnectionChange::Left(room.clone(), conn.clone()));
    }

    /// Writes the queued changes, in order, until `cancel`.
    pub(super) async fn write_directory(self: Arc<Self>, cancel: CancellationToken) {
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = self.directory.ready.notified() => {}
            }
            let changes = self.directory.take();
            if changes.is_empty() {
                continue;
            }
            match self.presence_store.connections_changed(&changes).await {
                Ok(false) => {}
                Ok(true) => {
                    debug!("this pod's liveness had lapsed; rewriting its connection records");
                    self.directory.lose();
                    self.presence_unsynced.mark();
                }
                Err(e) => {
                    debug!(error = %e, "connection records not written; rewriting them");
                    self.directory.lose();
                    self.presence_unsynced.mark();
                }
            }
        }
    }
}
