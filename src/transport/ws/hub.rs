//! The raw WebSocket side's local registry: each connection's bounded outbox and closer,
//! indexed by room, and the [`LocalFanout`] that encodes a delivery once and offers the
//! same bytes to every recipient without waiting.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use super::protocol as ws_protocol;
use crate::chat::{ConnId, Delivery, Form, LocalFanout, Recipients, Transport};

/// WebSocket close codes chatwire sends.
pub mod close_code {
    /// The client went away or the connection ended normally.
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// Slow consumer or heartbeat timeout.
    pub const POLICY: u16 = 1008;
    /// The application's backend disconnected the user (server API).
    pub const ENDED: u16 = 4000;
    /// A frame exceeded MAX_MESSAGE_BYTES.
    pub const TOO_BIG: u16 = 1009;
    /// The client broke the WebSocket protocol.
    pub const PROTOCOL: u16 = 1002;
    /// A text frame was not valid UTF-8.
    pub const INVALID_DATA: u16 = 1007;
}

/// Ends one connection with a close code; the first reason given wins.
#[derive(Debug, Clone, Default)]
pub struct Closer {
    token: CancellationToken,
    reason: Arc<Mutex<Option<(u16, &'static str)>>>,
}

impl Closer {
    /// Asks the connection to close with `code` and `reason`.
    pub fn close(&self, code: u16, reason: &'static str) {
        let mut slot = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            *slot = Some((code, reason));
        }
        drop(slot);
        self.token.cancel();
    }

    /// Resolves once a close was asked for.
    pub async fn closed(&self) {
        self.token.cancelled().await;
    }

    /// Whether a close was asked for.
    pub fn is_closed(&self) -> bool {
        self.token.is_cancelled()
    }

    /// The close code and reason, once a close was asked for.
    pub fn reason(&self) -> Option<(u16, &'static str)> {
        *self.reason.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// An encoded frame waiting in an outbox, with the time it was queued.
#[derive(Debug)]
pub struct Queued {
    /// The frame.
    pub frame: Utf8Bytes,
    /// When the chat handed it over (delivery latency runs from here).
    pub at: Instant,
}

/// A connection's bounded queue of encoded frames. When full, frames are dropped and
/// counted; a queue that stays full for the slow-consumer timeout closes the connection.
/// The writer takes the whole queue at once, so an idle connection's queue holds no
/// allocation at all.
pub struct Outbox {
    queue: Mutex<VecDeque<Queued>>,
    capacity: usize,
    ready: Notify,
    closer: Closer,
    /// Milliseconds since the hub's epoch when the queue was first found full; 0 = not full.
    full_since_ms: AtomicU64,
    /// The connection speaks the Streamly dialect: it receives chat messages as Streamly
    /// frames (its own included, as Streamly's service echoes them) and nothing else.
    streamly: AtomicBool,
}

impl Outbox {
    /// An outbox of at most `capacity` frames, closing through `closer`.
    pub fn new(capacity: usize, closer: Closer) -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            ready: Notify::new(),
            closer,
            full_since_ms: AtomicU64::new(0),
            streamly: AtomicBool::new(false),
        }
    }

    /// From now on, deliveries reach this connection as Streamly frames.
    pub fn speak_streamly(&self) {
        self.streamly.store(true, Ordering::Relaxed);
    }

    /// Whether deliveries reach this connection as Streamly frames.
    pub fn speaks_streamly(&self) -> bool {
        self.streamly.load(Ordering::Relaxed)
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Queued>> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until frames were queued since the last [`Outbox::take`].
    pub async fn ready(&self) {
        self.ready.notified().await;
    }

    /// Everything queued, in order, leaving the outbox empty (and unallocated).
    pub fn take(&self) -> VecDeque<Queued> {
        std::mem::take(&mut *self.lock())
    }
}

/// Registry of the raw WebSocket connections on this pod, for closing them all. Which
/// rooms they are in is the chat's membership index, which holds each one's outbox as
/// its mailbox.
pub struct WsHub {
    conns: RwLock<HashMap<ConnId, Arc<Outbox>>>,
    epoch: Instant,
    slow_consumer_timeout: Duration,
    dropped: Arc<AtomicU64>,
}

impl WsHub {
    /// A hub closing connections whose outbox stays full for `slow_consumer_timeout`,
    /// counting dropped frames into `dropped` (shared with the socket.io side).
    pub fn new(slow_consumer_timeout: Duration, dropped: Arc<AtomicU64>) -> Self {
        Self {
            conns: RwLock::default(),
            epoch: Instant::now(),
            slow_consumer_timeout,
            dropped,
        }
    }

    fn conns(&self) -> std::sync::RwLockReadGuard<'_, HashMap<ConnId, Arc<Outbox>>> {
        self.conns.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a connection.
    pub fn register(&self, conn: ConnId, outbox: Arc<Outbox>) {
        let mut conns = self.conns.write().unwrap_or_else(|e| e.into_inner());
        conns.insert(conn, outbox);
    }

    /// Removes a connection.
    pub fn unregister(&self, conn: &ConnId) {
        let mut conns = self.conns.write().unwrap_or_else(|e| e.into_inner());
        conns.remove(conn);
    }

    /// Asks every connection to close with `code`.
    pub fn close_all(&self, code: u16, reason: &'static str) {
        for outbox in self.conns().values() {
            outbox.closer.close(code, reason);
        }
    }

    /// Number of connections registered.
    pub fn len(&self) -> usize {
        self.conns().len()
    }

    /// Whether no connection is registered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Messages dropped because a recipient's outbox (raw) or buffer (socket.io) was
    /// full, since start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Offers `frame` to one outbox without waiting; returns whether it was queued.
    pub fn offer(&self, outbox: &Outbox, frame: Utf8Bytes) -> bool {
        if outbox.closer.is_closed() {
            return false;
        }
        let mut queue = outbox.lock();
        if queue.len() < outbox.capacity {
            queue.push_back(Queued {
                frame,
                at: Instant::now(),
            });
            drop(queue);
            outbox.ready.notify_one();
            if outbox.full_since_ms.load(Ordering::Relaxed) != 0 {
                outbox.full_since_ms.store(0, Ordering::Relaxed);
            }
            true
        } else {
            drop(queue);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            let now = (self.epoch.elapsed().as_millis() as u64).max(1);
            let since = outbox.full_since_ms.load(Ordering::Relaxed);
            if since == 0 {
                outbox.full_since_ms.store(now, Ordering::Relaxed);
            } else if now - since >= self.slow_consumer_timeout.as_millis() as u64 {
                debug!("closing slow consumer");
                outbox.closer.close(close_code::POLICY, "slow consumer");
            }
            false
        }
    }
}

impl LocalFanout for WsHub {
    fn deliver(&self, delivery: &Delivery, recipients: &Recipients<'_>) {
        let mut frame: Option<Utf8Bytes> = None;
        let mut streamly: Option<Option<Utf8Bytes>> = None;
        recipients.for_each(Transport::Ws, |conn, mailbox| {
            let Some(outbox) = mailbox.and_then(|m| m.downcast_ref::<Outbox>()) else {
                return;
            };
            if outbox.speaks_streamly() {
                // Streamly's service echoes a message to its sender too.
                let frame = streamly.get_or_insert_with(|| encode_streamly(delivery));
                if let Some(frame) = frame {
                    self.offer(outbox, frame.clone());
                }
                return;
            }
            if delivery.origin.as_ref() == Some(conn) {
                return;
            }
            // Encoded once per delivery (a chat message: once per message, shared with
            // the other layers), the same bytes queued for every member.
            let frame = frame.get_or_insert_with(|| encode(delivery));
            self.offer(outbox, frame.clone());
        });
    }

    fn end(&self, conn: &ConnId, transport: Transport, notice: &Delivery) {
        if transport != Transport::Ws {
            return;
        }
        let Some(outbox) = self.conns().get(conn).cloned() else {
            return;
        };
        // The writer sends what is queued before the close frame.
        self.offer(&outbox, encode(notice));
        outbox
            .closer
            .close(close_code::ENDED, "disconnected by the server");
    }
}

/// The Streamly frame of `delivery`, made once per pod; `None`: not for Streamly clients.
fn encode_streamly(delivery: &Delivery) -> Option<Utf8Bytes> {
    let bytes = delivery.encoded.get(Form::Streamly, || {
        ws_protocol::streamly_frame(&delivery.event).unwrap_or_default()
    });
    if bytes.is_empty() {
        return None;
    }
    Utf8Bytes::try_from(bytes).ok()
}

/// The raw frame of `delivery`: a chat message's shared JSON, or its event's frame.
fn encode(delivery: &Delivery) -> Utf8Bytes {
    let bytes = delivery.message_json().unwrap_or_else(|| {
        delivery.encoded.get(Form::RawFrame, || {
            ws_protocol::frame_for(&delivery.event)
                .to_json()
                .into_bytes()
        })
    });
    // Made from JSON text, so never invalid; an empty frame is the fallback.
    Utf8Bytes::try_from(bytes).unwrap_or_default()
}
