//! Event webhooks: what happened in the chat (message stored, edited, deleted; user
//! joined, left a room), POSTed to WEBHOOK_URL as `{"events":[...]}` in batches of up
//! to [`BATCH`] events and [`BATCH_BYTES`], at least once: a batch the backend did not
//! take (a 5xx, 408, 429, no answer in time) is sent again with backoff until it is; one
//! it refuses for good (another 4xx) is dropped, counted and logged, and the next goes.
//! Events wait in a queue bounded in count (WEBHOOK_QUEUE) and bytes
//! ([`QUEUE_BYTES`]); when it is full, new events are dropped and counted. Each event has
//! an `id` (UUID v7) for the backend to drop repeats.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::client::{HookClient, HookError};
use crate::chat::{now_rfc3339, Happened, Observer};
use crate::telemetry::metrics;

/// Events sent in one request, at most.
pub const BATCH: usize = 100;
/// Bytes of events sent in one request, at most (a single larger event goes alone).
pub const BATCH_BYTES: usize = 256 * 1024;
/// Bytes of events waiting, at most.
pub const QUEUE_BYTES: usize = 64 * 1024 * 1024;
/// The first wait before a failed batch is sent again; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Waiting {
    /// Each event's JSON, oldest first.
    events: VecDeque<String>,
    /// Their bytes.
    bytes: usize,
    /// Events taken for the request in flight.
    in_flight: usize,
}

struct Queue {
    waiting: Mutex<Waiting>,
    capacity: usize,
    ready: Notify,
    /// Notified whenever the queue is empty and nothing is in flight.
    idle: Notify,
}

/// The webhook sender: a queue and the task that empties it. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    queue: Arc<Queue>,
    stop: CancellationToken,
}

/// The JSON of one event.
fn event_json(happened: Happened) -> String {
    let (kind, data) = match happened {
        Happened::Stored(message) => ("message.stored", json!({ "message": message })),
        Happened::Edited(message) => ("message.edited", json!({ "message": message })),
        Happened::Deleted { room, id } => ("message.deleted", json!({ "room": room, "id": id })),
        Happened::Joined { room, user } => ("room.joined", json!({ "room": room, "user": user })),
        Happened::Left { room, user } => ("room.left", json!({ "room": room, "user": user })),
    };
    json!({ "id": Uuid::now_v7(), "type": kind, "time": now_rfc3339(), "data": data }).to_string()
}

impl Webhooks {
    /// Starts the sender to `url` with a queue of `capacity` events.
    pub fn start(client: HookClient, url: String, capacity: usize) -> Self {
        let queue = Arc::new(Queue {
            waiting: Mutex::default(),
            capacity: capacity.max(1),
            ready: Notify::new(),
            idle: Notify::new(),
        });
        let stop = CancellationToken::new();
        tokio::spawn(send_loop(queue.clone(), client, url, stop.clone()));
        Self { queue, stop }
    }

    /// Waits until every queued event was delivered, at most `limit`, then stops the
    /// sender.
    pub async fn drain(&self, limit: Duration) {
        let _stop = self.stop.clone().drop_guard();
        let done = async {
            loop {
                let idle = self.queue.idle.notified();
                {
                    let waiting = self.queue.lock();
                    if waiting.events.is_empty() && waiting.in_flight == 0 {
                        return;
                    }
                }
                idle.await;
            }
        };
        if tokio::time::timeout(limit, done).await.is_err() {
            let waiting = self.queue.lock();
            let left = waiting.events.len() + waiting.in_flight;
            tracing::warn!(left, "webhook events not delivered before shutdown");
        }
    }
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next batch (marked in flight), or none.
    fn take(&self) -> Vec<String> {
        let mut waiting = self.lock();
        let mut batch = Vec::new();
        let mut bytes = 0;
        while let Some(next) = waiting.events.front() {
            if batch.len() == BATCH || (!batch.is_empty() && bytes + next.len() > BATCH_BYTES) {
                break;
            }
            bytes += next.len();
            if let Some(event) = waiting.events.pop_front() {
                batch.push(event);
            }
        }
        waiting.bytes -= bytes;
        waiting.in_flight = batch.len();
        batch
    }

    fn done(&self) {
        let mut waiting = self.lock();
        waiting.in_flight = 0;
        if waiting.events.is_empty() {
            self.idle.notify_waiters();
        }
    }
}

impl Observer for Webhooks {
    fn observe(&self, happened: Happened) {
        let event = event_json(happened);
        let mut waiting = self.queue.lock();
        if waiting.events.len() >= self.queue.capacity || waiting.bytes + event.len() > QUEUE_BYTES
        {
            drop(waiting);
            metrics::webhook_events("dropped", 1);
            return;
        }
        waiting.bytes += event.len();
        waiting.events.push_back(event);
        drop(waiting);
        self.queue.ready.notify_one();
    }
}

/// Whether the backend refused a batch for good: a 4xx but 408 and 429.
fn refused_for_good(e: &HookError) -> bool {
    matches!(e, HookError::Status(code) if (400..500).contains(code) && *code != 408 && *code != 429)
}

/// Sends batches until `stop`.
async fn send_loop(queue: Arc<Queue>, client: HookClient, url: String, stop: CancellationToken) {
    loop {
        let ready = queue.ready.notified();
        let batch = queue.take();
        if batch.is_empty() {
            queue.done();
            tokio::select! {
                () = stop.cancelled() => return,
                () = ready => continue,
            }
        }
        let mut body = Vec::with_capacity(batch.iter().map(|e| e.len() + 1).sum::<usize>() + 12);
        body.extend_from_slice(b"{\"events\":[");
        for (i, event) in batch.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(event.as_bytes());
        }
        body.extend_from_slice(b"]}");
        let n = batch.len() as u64;
        let mut backoff = FIRST_BACKOFF;
        loop {
            match client.call_bytes("webhook", &url, body.clone()).await {
                Ok(_) => {
                    metrics::webhook_events("sent", n);
                    break;
                }
                Err(e) if refused_for_good(&e) => {
                    metrics::webhook_events("dropped", n);
                    tracing::warn!(error = %e, events = n, "webhook batch refused; dropped");
                    break;
                }
                Err(e) => {
                    metrics::webhook_events("failed", n);
                    tracing::debug!(error = %e, retry_in = ?backoff, "webhook batch not taken");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        queue.done();
    }
}
