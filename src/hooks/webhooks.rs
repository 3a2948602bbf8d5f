//! Event webhooks: what happened in the chat (message stored, edited, deleted; user
//! joined, left a room), POSTed to WEBHOOK_URL as `{"events":[...]}` in batches of up
//! to [`BATCH`], at least once: a batch the backend did not take (error, timeout) is
//! sent again with backoff until it does. Events wait in a bounded queue
//! (WEBHOOK_QUEUE); when it is full, new events are dropped and counted. Each event has
//! an `id` (UUID v7) for the backend to drop repeats.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::client::HookClient;
use crate::chat::{now_rfc3339, Happened, Observer};
use crate::telemetry::metrics;

/// Events sent in one request, at most.
pub const BATCH: usize = 100;
/// The first wait before a failed batch is sent again; it doubles up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// The longest wait between two attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);

struct Queue {
    events: Mutex<VecDeque<Value>>,
    capacity: usize,
    ready: Notify,
    /// Set once the queue is empty and nothing is in flight.
    idle: Notify,
    in_flight: std::sync::atomic::AtomicUsize,
}

/// The webhook sender: a queue and the task that empties it. Cheap to clone.
#[derive(Clone)]
pub struct Webhooks {
    queue: Arc<Queue>,
    stop: CancellationToken,
}

/// The JSON of one event.
fn event_json(happened: Happened) -> Value {
    let (kind, data) = match happened {
        Happened::Stored(message) => ("message.stored", json!({ "message": message })),
        Happened::Edited(message) => ("message.edited", json!({ "message": message })),
        Happened::Deleted { room, id } => ("message.deleted", json!({ "room": room, "id": id })),
        Happened::Joined { room, user } => ("room.joined", json!({ "room": room, "user": user })),
        Happened::Left { room, user } => ("room.left", json!({ "room": room, "user": user })),
    };
    json!({ "id": Uuid::now_v7(), "type": kind, "time": now_rfc3339(), "data": data })
}

impl Webhooks {
    /// Starts the sender to `url` with a queue of `capacity` events.
    pub fn start(client: HookClient, url: String, capacity: usize) -> Self {
        let queue = Arc::new(Queue {
            events: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            ready: Notify::new(),
            idle: Notify::new(),
            in_flight: Default::default(),
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
                if self.queue.lock().is_empty()
                    && self
                        .queue
                        .in_flight
                        .load(std::sync::atomic::Ordering::Acquire)
                        == 0
                {
                    return;
                }
                idle.await;
            }
        };
        if tokio::time::timeout(limit, done).await.is_err() {
            let left = self.queue.lock().len();
            tracing::warn!(left, "webhook events not delivered before shutdown");
        }
    }
}

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Value>> {
        self.events.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Observer for Webhooks {
    fn observe(&self, happened: Happened) {
        let mut events = self.queue.lock();
        if events.len() >= self.queue.capacity {
            drop(events);
            metrics::webhook_events("dropped", 1);
            return;
        }
        events.push_back(event_json(happened));
        drop(events);
        self.queue.ready.notify_one();
    }
}

/// Sends batches until `stop`.
async fn send_loop(queue: Arc<Queue>, client: HookClient, url: String, stop: CancellationToken) {
    use std::sync::atomic::Ordering;
    loop {
        let ready = queue.ready.notified();
        let batch: Vec<Value> = {
            let mut events = queue.lock();
            let n = events.len().min(BATCH);
            events.drain(..n).collect()
        };
        if batch.is_empty() {
            queue.idle.notify_waiters();
            tokio::select! {
                () = stop.cancelled() => return,
                () = ready => continue,
            }
        }
        queue.in_flight.store(batch.len(), Ordering::Release);
        let body = json!({ "events": batch });
        let mut backoff = FIRST_BACKOFF;
        loop {
            match client.call("webhook", &url, &body).await {
                Ok(_) => {
                    metrics::webhook_events("sent", batch.len() as u64);
                    break;
                }
                Err(e) => {
                    metrics::webhook_events("failed", batch.len() as u64);
                    tracing::debug!(error = %e, retry_in = ?backoff, "webhook batch not taken");
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        queue.in_flight.store(0, Ordering::Release);
    }
}
