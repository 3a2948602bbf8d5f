//! [`RedisBus`]: chat deliveries between pods on Redis pub/sub channels
//! `realtime:global` and `realtime:room:{name}`. Outgoing deliveries go through one
//! bounded queue and are published in order, pipelined; a pod subscribes to a room's
//! channel only while it has local members; its own echoes are ignored.
//!
//! Each chat message reaches a pod's members once: the pod remembers the ids of the last
//! [`SEEN_IDS`] messages it delivered or sent and drops repeats (a reconnecting Redis
//! connection may overlap the one it replaces). When the Redis connection is lost,
//! messages published to it meanwhile are missed; once the link is back (subscribed
//! again) the pod reads each of its rooms' histories and delivers, in stored order, the
//! messages it has not seen that were sent after the last PING answered before the loss
//! (less [`GAP_SLACK`] for clocks) and after the room got its first local member. Global
//! messages are not stored, so they are not recovered.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use uuid::Uuid;

use crate::chat::{
    now_ms, Bus, BusError, BusStatus, ChatEvent, Delivery, Form, Inbound, Receipt, Retention,
    RoomName,
};
use crate::redis::{history, ChanItem, GapMarker, LinkError, RedisLink, HEARTBEAT};

/// Channel of global messages.
pub const GLOBAL_CHANNEL: &str = "realtime:global";
/// Prefix of room channels: `realtime:room:{name}`.
pub const ROOM_CHANNEL_PREFIX: &str = "realtime:room:";
/// Outgoing deliveries waiting to be published, at most.
pub const OUTGOING_QUEUE: usize = 8192;
/// Publishes sent in one pipeline, at most.
const PUBLISH_BATCH: usize = 256;
/// Chat message ids a pod remembers (delivered or sent), to drop repeats.
pub const SEEN_IDS: usize = 16_384;
/// Recovery after a lost connection reaches this far before the last answered PING,
/// for clock differences between pods (message ids carry the sender's clock).
pub const GAP_SLACK: Duration = Duration::from_secs(5);
/// Recovery gives up after this many failed history reads.
const RECOVER_ATTEMPTS: usize = 10;

/// The last [`SEEN_IDS`] chat message ids, oldest first.
#[derive(Default)]
struct Seen {
    order: VecDeque<Uuid>,
    ids: HashSet<Uuid>,
}

impl Seen {
    /// Remembers `id`; `false` when it was already known.
    fn insert(&mut self, id: Uuid) -> bool {
        if !self.ids.insert(id) {
            return false;
        }
        self.order.push_back(id);
        if self.order.len() > SEEN_IDS {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        true
    }
}

/// The channel a delivery travels on.
pub fn channel_for(room: Option<&RoomName>) -> String {
    match room {
        Some(room) => format!("{ROOM_CHANNEL_PREFIX}{room}"),
        None => GLOBAL_CHANNEL.to_owned(),
    }
}

/// What travels on the bus: the event and the pod it came from.
#[derive(Serialize, Deserialize)]
struct Envelope<P, E> {
    pod: P,
    event: E,
}

struct Outgoing {
    channel: String,
    payload: Bytes,
    /// A chat message's room and JSON, stored in the same pipeline, before the PUBLISH.
    record: Option<(RoomName, Bytes)>,
    done: oneshot::Sender<Result<(), BusError>>,
}

/// The envelope of `delivery` from `pod`. A chat message's JSON, made once by the chat,
/// is put in as it is.
fn envelope(pod: &str, delivery: &Delivery) -> Result<Vec<u8>, serde_json::Error> {
    match delivery.message_json() {
        Some(json) => {
            let mut out = Vec::with_capacity(json.len() + pod.len() + 48);
            out.extend_from_slice(br#"{"pod":"#);
            serde_json::to_writer(&mut out, pod)?;
            out.extend_from_slice(br#","event":{"kind":"message","message":"#);
            out.extend_from_slice(&json);
            out.extend_from_slice(b"}}");
            Ok(out)
        }
        None => serde_json::to_vec(&Envelope {
            pod,
            event: &*delivery.event,
        }),
    }
}

/// The Redis chat bus of one pod.
pub struct RedisBus {
    link: RedisLink,
    pod: String,
    outgoing: mpsc::Sender<Outgoing>,
    wanted: Mutex<HashSet<RoomName>>,
    /// Unix ms when each wanted room got its first local member.
    joined_at: Mutex<HashMap<RoomName, u64>>,
    seen: Mutex<Seen>,
    wanted_changed: Notify,
    /// Generation of the latest interest change asked for.
    requested: AtomicU64,
    /// Generation of the latest interest change in place.
    synced: watch::Sender<u64>,
    timeout: Duration,
    history: Option<Retention>,
    undelivered: AtomicU64,
    inbound_tx: mpsc::Sender<ChanItem>,
}

/// The receiving ends a [`RedisBus`] hands to its tasks.
pub struct BusTasks {
    outgoing: mpsc::Receiver<Outgoing>,
    inbound: mpsc::Receiver<ChanItem>,
}

impl RedisBus {
    /// A bus for pod `pod` on `link`, storing chat messages in the rooms' Redis histories
    /// under `history` (in the publish pipeline, just before each message's PUBLISH).
    /// Start [`RedisBus::run`] with the returned tasks.
    pub fn new(
        link: RedisLink,
        pod: String,
        timeout: Duration,
        history: Option<Retention>,
        inbound_queue: usize,
    ) -> (Arc<Self>, BusTasks) {
        let (outgoing_tx, outgoing) = mpsc::channel(OUTGOING_QUEUE);
        let (inbound_tx, inbound) = mpsc::channel(inbound_queue.max(1));
        link.watch_gaps(inbound_tx.clone());
        let bus = Arc::new(Self {
            link,
            pod,
            outgoing: outgoing_tx,
            wanted: Mutex::default(),
            joined_at: Mutex::default(),
            seen: Mutex::default(),
            wanted_changed: Notify::new(),
            requested: AtomicU64::new(0),
            synced: watch::Sender::new(0),
            timeout,
            history,
            undelivered: AtomicU64::new(0),
            inbound_tx,
        });
        (bus, BusTasks { outgoing, inbound })
    }

    /// This pod's id, carried in every envelope it publishes.
    pub fn pod(&self) -> &str {
        &self.pod
    }

    /// Runs the publisher, the subscription keeper and the inbound pump, handing other
    /// pods' deliveries to `inbound`, until `drain`: then stops taking deliveries in and
    /// returns once every delivery queued before it is published (or failed).
    pub async fn run(
        self: Arc<Self>,
        tasks: BusTasks,
        inbound: Arc<dyn Inbound>,
        drain: CancellationToken,
    ) {
        tokio::join!(
            self.clone().publish_loop(tasks.outgoing, drain.clone()),
            self.clone().subscription_loop(drain.clone()),
            self.clone().inbound_loop(tasks.inbound, inbound, drain),
        );
    }

    /// Remembers a chat message id; `false` when it was already seen.
    fn first_sight(&self, id: Uuid) -> bool {
        self.seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id)
    }

    fn count_undelivered(&self, n: u64, err: &BusError) {
        let before = self.undelivered.fetch_add(n, Ordering::Relaxed);
        // Log the first failure and then every 1000th, not every message.
        if before == 0 || (before + n) / 1000 != before / 1000 {
            warn!(error = %err, total = before + n, "messages did not reach other pods");
        }
    }

    async fn publish_loop(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<Outgoing>,
        drain: CancellationToken,
    ) {
        let mut batch = Vec::with_capacity(PUBLISH_BATCH);
        let mut draining = false;
        loop {
            let received = if draining {
                rx.recv_many(&mut batch, PUBLISH_BATCH).await
            } else {
                tokio::select! {
                    () = drain.cancelled() => {
                        // No new deliveries; publish what is queued, then stop.
                        rx.close();
                        draining = true;
                        continue;
                    }
                    n = rx.recv_many(&mut batch, PUBLISH_BATCH) => n,
                }
            };
            if received == 0 {
                if draining {
                    debug!("bus queue drained");
                }
                return;
            }
            let mut pipe = redis::pipe();
            for item in &batch {
                if let (Some(retention), Some((room, json))) = (self.history, &item.record) {
                    history::append_to(&mut pipe, room, json, retention);
                }
                pipe.cmd("PUBLISH")
                    .arg(&item.channel)
                    .arg(&item.payload[..])
                    .ignore();
            }
            let started = std::time::Instant::now();
            let result = self.link.pipeline(&pipe).await.map_err(BusError::from);
            crate::telemetry::metrics::redis_publish(started.elapsed(), result.is_ok());
            if let Err(e) = &result {
                self.count_undelivered(batch.len() as u64, e);
            }
            for item in batch.drain(..) {
                // The poster may have stopped waiting; that is fine.
                let _ = item.done.send(result.clone());
            }
        }
    }

    async fn subscription_loop(self: Arc<Self>, cancel: CancellationToken) {
        if let Err(e) = self
            .link
            .subscribe(GLOBAL_CHANNEL.to_owned(), self.inbound_tx.clone())
            .await
        {
            debug!(error = %e, "global subscribe deferred until redis is back");
        }
        let mut subscribed: HashSet<RoomName> = HashSet::new();
        loop {
            let generation = self.requested.load(Ordering::Acquire);
            let wanted = self
                .wanted
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            for room in wanted.difference(&subscribed) {
                if let Err(e) = self
                    .link
                    .subscribe(channel_for(Some(room)), self.inbound_tx.clone())
                    .await
                {
                    debug!(room = %room, error = %e, "subscribe deferred until redis is back");
                }
            }
            for room in subscribed.difference(&wanted) {
                if let Err(e) = self.link.unsubscribe(&channel_for(Some(room))).await {
                    debug!(room = %room, error = %e, "unsubscribe failed");
                }
            }
            subscribed = wanted;
            self.synced.send_replace(generation);
            tokio::select! {
                () = cancel.cancelled() => return,
                () = self.wanted_changed.notified() => {}
            }
        }
    }

    async fn inbound_loop(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<ChanItem>,
        chat: Arc<dyn Inbound>,
        cancel: CancellationToken,
    ) {
        let mut dropped = self.link.inbound_dropped();
        loop {
            let (channel, payload) = tokio::select! {
                () = cancel.cancelled() => return,
                item = rx.recv() => match item { Some(item) => item, None => return },
            };
            // Pushes dropped at a full queue went missing somewhere before this one (the
            // link's loss count, which recovery reads, already says so).
            let now_dropped = self.link.inbound_dropped();
            if now_dropped != dropped {
                debug!(
                    dropped = now_dropped - dropped,
                    "other pods' messages dropped here"
                );
                dropped = now_dropped;
            }
            if let Some(gap) = GapMarker::of(&channel, &payload) {
                // Later pushes wait in the queue until the gap is filled, so order holds.
                self.recover(gap, &*chat, &cancel).await;
                continue;
            }
            let envelope: Envelope<String, ChatEvent> = match serde_json::from_slice(&payload) {
                Ok(envelope) => envelope,
                Err(e) => {
                    debug!(channel, error = %e, "ignoring an unreadable bus message");
                    continue;
                }
            };
            if envelope.pod == self.pod {
                continue;
            }
            if channel != channel_for(envelope.event.room()) {
                debug!(channel, "ignoring a bus message on the wrong channel");
                continue;
            }
            if let ChatEvent::Message { message } = &envelope.event {
                if !self.first_sight(message.id) {
                    debug!(channel, "ignoring a repeated bus message");
                    continue;
                }
            }
            chat.deliver(&Delivery::new(envelope.event, None));
        }
    }
}

impl RedisBus {
    /// After a lost connection: waits until the link is back, then delivers what was
    /// missed meanwhile from the rooms' histories.
    async fn recover(&self, gap: GapMarker, chat: &dyn Inbound, cancel: &CancellationToken) {
        let mut ups = self.link.ups();
        let from_ms = gap.last_ok_ms.saturating_sub(GAP_SLACK.as_millis() as u64);
        let mut failures = 0;
        let mut waited = Duration::ZERO;
        loop {
            // Back up after the loss, or (should the loss have been marked late) up for
            // a while: every channel is subscribed again, so what the histories hold
            // now plus what arrives from here on is everything.
            let back = *ups.borrow_and_update() > gap.ups || waited >= 3 * HEARTBEAT;
            if back && self.link.is_up() {
                match self.fill(from_ms, chat).await {
                    Ok(0) => return,
                    Ok(n) => {
                        info!(
                            messages = n,
                            "delivered messages missed while redis was unreachable"
                        );
                        return;
                    }
                    Err(e) => {
                        failures += 1;
                        if failures >= RECOVER_ATTEMPTS {
                            warn!(error = %e, "messages missed while redis was unreachable are not recovered");
                            return;
                        }
                        debug!(error = %e, "history read for recovery failed; retrying");
                    }
                }
            }
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = ups.changed() => {}
                () = tokio::time::sleep(HEARTBEAT) => waited += HEARTBEAT,
            }
        }
    }

    /// Delivers the stored messages of every wanted room sent since `from_ms` (and since
    /// the room got local members) that this pod has not seen; returns how many.
    async fn fill(&self, from_ms: u64, chat: &dyn Inbound) -> Result<usize, LinkError> {
        let Some(retention) = self.history else {
            return Ok(0);
        };
        let rooms: Vec<(RoomName, u64)> = {
            let wanted = self.wanted.lock().unwrap_or_else(|e| e.into_inner());
            let joined = self.joined_at.lock().unwrap_or_else(|e| e.into_inner());
            wanted
                .iter()
                .map(|r| (r.clone(), joined.get(r).copied().unwrap_or(u64::MAX)))
                .collect()
        };
        let mut delivered = 0;
        for (room, joined) in rooms {
            for message in
                history::sent_since(&self.link, &room, from_ms.max(joined), retention).await?
            {
                if self.first_sight(message.id) {
                    let message = Arc::new(message);
                    chat.deliver(&Delivery::new(ChatEvent::Message { message }, None));
                    delivered += 1;
                }
            }
        }
        Ok(delivered)
    }

    /// A receipt settling once the subscription keeper has applied `generation`.
    fn synced_at(&self, generation: u64) -> Receipt {
        if *self.synced.borrow() >= generation {
            return Receipt::ready(Ok(()));
        }
        let mut rx = self.synced.subscribe();
        let limit = self.timeout;
        Receipt::from_future(Box::pin(async move {
            match tokio::time::timeout(limit, rx.wait_for(|g| *g >= generation)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(_)) => Err(BusError::Unavailable),
                Err(_) => Err(BusError::Timeout),
            }
        }))
    }
}

impl Bus for RedisBus {
    fn publish(&self, delivery: &Delivery) -> Receipt {
        let mut failed = None;
        let payload = delivery.encoded.get(Form::BusEnvelope, || {
            envelope(&self.pod, delivery).unwrap_or_else(|e| {
                failed = Some(e.to_string());
                Vec::new()
            })
        });
        if let Some(e) = failed {
            return Receipt::ready(Err(BusError::Backend(e)));
        }
        if !self.link.is_up() {
            self.count_undelivered(1, &BusError::Unavailable);
            return Receipt::ready(Err(BusError::Unavailable));
        }
        if let Some(message) = delivery.event.as_message() {
            // Its echo, or its copy in the history after a lost connection, is no news here.
            self.first_sight(message.id);
        }
        let (done, receipt) = Receipt::pending();
        let item = Outgoing {
            channel: channel_for(delivery.event.room()),
            payload,
            record: delivery.event.room().cloned().zip(delivery.message_json()),
            done,
        };
        match self.outgoing.try_send(item) {
            // Whoever waits for the outcome waits at most REDIS_TIMEOUT, even when
            // earlier publishes are still queued in front of this one.
            Ok(()) => receipt.with_deadline(self.timeout),
            Err(_) => {
                self.count_undelivered(1, &BusError::Backlog);
                Receipt::ready(Err(BusError::Backlog))
            }
        }
    }

    fn interest(&self, room: &RoomName, interested: bool) -> Receipt {
        let mut wanted = self.wanted.lock().unwrap_or_else(|e| e.into_inner());
        let mut joined = self.joined_at.lock().unwrap_or_else(|e| e.into_inner());
        if interested {
            wanted.insert(room.clone());
            joined.entry(room.clone()).or_insert_with(now_ms);
        } else {
            wanted.remove(room);
            joined.remove(room);
        }
        drop(joined);
        let generation = self.requested.fetch_add(1, Ordering::AcqRel) + 1;
        drop(wanted);
        self.wanted_changed.notify_one();
        if interested {
            self.synced_at(generation)
        } else {
            Receipt::ready(Ok(()))
        }
    }

    fn settled(&self) -> Receipt {
        self.synced_at(self.requested.load(Ordering::Acquire))
    }

    fn undelivered(&self) -> u64 {
        self.undelivered.load(Ordering::Relaxed)
    }

    fn inbound_dropped(&self) -> u64 {
        self.link.inbound_dropped()
    }

    fn losses(&self) -> u64 {
        self.link.losses()
    }

    fn status(&self) -> BusStatus {
        if self.link.is_up() {
            BusStatus::Up
        } else {
            BusStatus::Down
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_envelope_built_from_shared_json_decodes_to_the_event() {
        let room = RoomName::parse("r").unwrap();
        let message = Arc::new(crate::chat::Message::chat(
            Some(room),
            "ann".into(),
            "hi \"there\"".into(),
        ));
        let delivery = Delivery::new(ChatEvent::Message { message }, None);
        let bytes = envelope("pod \"1\"", &delivery).unwrap();
        let decoded: Envelope<String, ChatEvent> = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(decoded.pod, "pod \"1\"");
        assert_eq!(decoded.event, *delivery.event);
    }

    #[test]
    fn seen_ids_drop_repeats_and_forget_the_oldest_beyond_the_bound() {
        let mut seen = Seen::default();
        let first = Uuid::now_v7();
        assert!(seen.insert(first));
        assert!(!seen.insert(first), "a repeat is no news");
        for _ in 0..SEEN_IDS {
            assert!(seen.insert(Uuid::now_v7()));
        }
        assert_eq!(seen.order.len(), SEEN_IDS);
        assert_eq!(seen.ids.len(), SEEN_IDS);
        assert!(seen.insert(first), "the oldest id was forgotten");
    }
}
