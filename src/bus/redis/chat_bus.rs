//! [`RedisBus`]: chat deliveries between pods on Redis pub/sub channels
//! `realtime:global` and `realtime:room:{name}`. Outgoing deliveries go through one
//! bounded queue and are published in order, pipelined; a pod subscribes to a room's
//! channel only while it has local members; its own echoes are ignored.
//!
//! The bus is best effort: messages published while a connection is lost, or dropped
//! at a full inbound queue, are missed here and counted in [`Bus::losses`]. Chat
//! messages carry their offsets, so the chat drops repeats and reads what was missed
//! from the message log; the bus keeps no history of its own.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use futures_util::future::BoxFuture;

use super::emitter;
use crate::chat::{
    Asked, Bus, BusError, BusStatus, ChatEvent, Delivery, Form, Inbound, PodConnections, Receipt,
    RoomName,
};
use crate::redis::{ChanItem, RedisLink};

/// Channel of global messages.
pub const GLOBAL_CHANNEL: &str = "realtime:global";
/// Prefix of room channels: `realtime:room:{name}`.
pub const ROOM_CHANNEL_PREFIX: &str = "realtime:room:";
/// Channel of questions every pod answers (a user's connections).
pub const ASK_CHANNEL: &str = "realtime:ask";
/// Prefix of a pod's answer channel: `realtime:answer:{pod}`.
pub const ANSWER_CHANNEL_PREFIX: &str = "realtime:answer:";
/// Answers to one question kept at most (one per pod).
const MAX_ANSWERS: usize = 1024;
/// Outgoing deliveries waiting to be published, at most.
pub const OUTGOING_QUEUE: usize = 8192;
/// Publishes sent in one pipeline, at most.
const PUBLISH_BATCH: usize = 256;
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

/// A question to every pod: which connections `user` has there.
#[derive(Serialize, Deserialize)]
struct Question {
    pod: String,
    id: String,
    /// `None`: every connection.
    user: Option<String>,
}

/// One pod's answer to a [`Question`].
#[derive(Serialize, Deserialize)]
struct Answer {
    id: String,
    #[serde(flatten)]
    connections: PodConnections,
}

struct Outgoing {
    channel: String,
    payload: Bytes,
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
    wanted_changed: Notify,
    /// Generation of the latest interest change asked for.
    requested: AtomicU64,
    /// Generation of the latest interest change in place.
    synced: watch::Sender<u64>,
    timeout: Duration,
    undelivered: AtomicU64,
    inbound_tx: mpsc::Sender<ChanItem>,
    /// Questions this pod asked and waits on, by id.
    asks: Mutex<HashMap<String, mpsc::Sender<PodConnections>>>,
    /// Whether what the socket.io Redis emitter publishes is read (REDIS_EMITTER).
    emitter: bool,
}

/// The receiving ends a [`RedisBus`] hands to its tasks.
pub struct BusTasks {
    outgoing: mpsc::Receiver<Outgoing>,
    inbound: mpsc::Receiver<ChanItem>,
}

impl RedisBus {
    /// A bus for pod `pod` on `link`. Start [`RedisBus::run`] with the returned tasks.
    pub fn new(
        link: RedisLink,
        pod: String,
        timeout: Duration,
        inbound_queue: usize,
        emitter: bool,
    ) -> (Arc<Self>, BusTasks) {
        let (outgoing_tx, outgoing) = mpsc::channel(OUTGOING_QUEUE);
        let (inbound_tx, inbound) = mpsc::channel(inbound_queue.max(1));
        let bus = Arc::new(Self {
            link,
            pod,
            outgoing: outgoing_tx,
            wanted: Mutex::default(),
            wanted_changed: Notify::new(),
            requested: AtomicU64::new(0),
            synced: watch::Sender::new(0),
            timeout,
            undelivered: AtomicU64::new(0),
            inbound_tx,
            asks: Mutex::default(),
            emitter,
        });
        (bus, BusTasks { outgoing, inbound })
    }

    /// Where the socket.io Redis emitter's requests go (they share their channel with
    /// the socket.io adapter's, which hands them over): the bus's inbound queue, when
    /// REDIS_EMITTER is on.
    pub fn emitter_requests(&self) -> Option<mpsc::Sender<ChanItem>> {
        self.emitter.then(|| self.inbound_tx.clone())
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
        let fixed = [
            GLOBAL_CHANNEL.to_owned(),
            ASK_CHANNEL.to_owned(),
            self.answer_channel(),
        ];
        for channel in fixed {
            if let Err(e) = self.link.subscribe(channel, self.inbound_tx.clone()).await {
                debug!(error = %e, "subscribe deferred until redis is back");
            }
        }
        if self.emitter {
            // Every room's: a room joined by the emitter's socketsJoin gets the emit that
            // follows it (a per-room subscription would come too late).
            let pattern = emitter::BROADCAST_PATTERN.to_owned();
            if let Err(e) = self.link.psubscribe(pattern, self.inbound_tx.clone()).await {
                debug!(error = %e, "emitter psubscribe deferred until redis is back");
            }
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
            // link's loss count, which the chat watches, already says so).
            let now_dropped = self.link.inbound_dropped();
            if now_dropped != dropped {
                debug!(
                    dropped = now_dropped - dropped,
                    "other pods' messages dropped here"
                );
                dropped = now_dropped;
            }
            if self.emitter && emitter::is_broadcast(&channel) {
                match emitter::decode_broadcast(&payload) {
                    Ok(event) => chat.deliver(&Delivery::new(event, None)),
                    Err(why) => debug!(channel, why, "ignoring an emitter broadcast"),
                }
                continue;
            }
            if self.emitter && channel == emitter::REQUEST_CHANNEL {
                match emitter::decode_request(&payload) {
                    Ok((selection, command)) => chat.command(&selection, &command),
                    Err(why) => debug!(why, "ignoring an emitter request"),
                }
                continue;
            }
            if channel == ASK_CHANNEL {
                self.answer(&payload, chat.as_ref());
                continue;
            }
            if channel.starts_with(ANSWER_CHANNEL_PREFIX) {
                self.take_answer(&payload);
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
            chat.deliver(&Delivery::new(envelope.event, None));
        }
    }
}

impl RedisBus {
    fn answer_channel(&self) -> String {
        format!("{ANSWER_CHANNEL_PREFIX}{}", self.pod)
    }

    /// Answers another pod's question on its answer channel (queued with deliveries).
    fn answer(&self, payload: &[u8], chat: &dyn Inbound) {
        let question: Question = match serde_json::from_slice(payload) {
            Ok(question) => question,
            Err(e) => return debug!(error = %e, "ignoring an unreadable question"),
        };
        if question.pod == self.pod {
            return;
        }
        let answer = Answer {
            id: question.id,
            connections: PodConnections {
                pod: self.pod.clone(),
                connections: chat.connections_of(question.user.as_deref()),
            },
        };
        let Ok(payload) = serde_json::to_vec(&answer) else {
            return;
        };
        let (done, _receipt) = oneshot::channel();
        let item = Outgoing {
            channel: format!("{ANSWER_CHANNEL_PREFIX}{}", question.pod),
            payload: Bytes::from(payload),
            done,
        };
        if self.outgoing.try_send(item).is_err() {
            debug!("answer dropped at a full outgoing queue");
        }
    }

    /// Hands another pod's answer to the question waiting for it.
    fn take_answer(&self, payload: &[u8]) {
        let answer: Answer = match serde_json::from_slice(payload) {
            Ok(answer) => answer,
            Err(e) => return debug!(error = %e, "ignoring an unreadable answer"),
        };
        let asks = self.asks.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(waiting) = asks.get(&answer.id) {
            // A full channel means more answers than pods: the extra ones go.
            let _ = waiting.try_send(answer.connections);
        }
    }

    async fn ask(&self, user: Option<&str>) -> Result<Asked, BusError> {
        if !self.link.is_up() {
            return Err(BusError::Unavailable);
        }
        let id = uuid::Uuid::now_v7().to_string();
        let (tx, mut rx) = mpsc::channel(MAX_ANSWERS);
        self.asks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), tx);
        // The question is forgotten however this ends (a caller that gives up included).
        struct Forget<'a>(&'a RedisBus, &'a str);
        impl Drop for Forget<'_> {
            fn drop(&mut self) {
                self.0
                    .asks
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .remove(self.1);
            }
        }
        let _forget = Forget(self, &id);
        let result = async {
            let (_, subscribed): (String, u64) = self
                .link
                .query(redis::cmd("PUBSUB").arg("NUMSUB").arg(ASK_CHANNEL))
                .await?;
            let expected = subscribed.saturating_sub(1) as usize;
            let question = Question {
                pod: self.pod.clone(),
                id: id.clone(),
                user: user.map(str::to_owned),
            };
            let payload =
                serde_json::to_vec(&question).map_err(|e| BusError::Backend(e.to_string()))?;
            self.link
                .query::<redis::Value>(redis::cmd("PUBLISH").arg(ASK_CHANNEL).arg(payload))
                .await?;
            let mut answers = Vec::new();
            let deadline = tokio::time::sleep(self.timeout);
            tokio::pin!(deadline);
            while answers.len() < expected {
                tokio::select! {
                    () = &mut deadline => break,
                    answer = rx.recv() => match answer {
                        Some(answer) => answers.push(answer),
                        None => break,
                    },
                }
            }
            answers.sort_by(|a: &PodConnections, b| a.pod.cmp(&b.pod));
            let complete = answers.len() >= expected;
            Ok::<_, BusError>(Asked { answers, complete })
        }
        .await;
        result
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
        let (done, receipt) = Receipt::pending();
        let item = Outgoing {
            channel: channel_for(delivery.event.room()),
            payload,
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
        if interested {
            wanted.insert(room.clone());
        } else {
            wanted.remove(room);
        }
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

    fn pod_id(&self) -> String {
        self.pod.clone()
    }

    fn ask_connections<'a>(
        &'a self,
        user: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Asked, BusError>> {
        Box::pin(self.ask(user))
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
}
