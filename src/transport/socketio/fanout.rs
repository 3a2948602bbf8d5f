//! The socket.io side of local fan-out: one broadcast per delivery (socketioxide encodes
//! the packet once), restricted to this pod, skipping the sending socket.

use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use futures_util::FutureExt;
use socketioxide::adapter::Adapter;
use socketioxide::socket::Sid;
use socketioxide::SocketIo;
use socketioxide::{BroadcastError, SocketError};
use tracing::debug;

use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::chat::{ChatEvent, ConnId, Delivery, LocalFanout, Recipients, RoomName, Transport};

/// Retries of a disconnect refused by a full send buffer, and their spacing.
const DISCONNECT_RETRIES: usize = 50;
const DISCONNECT_RETRY_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// Event carrying a chat message to clients.
pub const EVENT_MESSAGE_NEW: &str = "message:new";

/// The socket.io event name and payload of a chat event.
pub fn event_for(event: &ChatEvent) -> (&'static str, Value) {
    match event {
        ChatEvent::Message { message } => (EVENT_MESSAGE_NEW, json!(message)),
        ChatEvent::Updated { message } => ("message:updated", json!(message)),
        ChatEvent::Deleted { room, id } => ("message:deleted", json!({ "room": room, "id": id })),
        ChatEvent::Presence { room, user, status } => (
            "presence:update",
            json!({ "room": room, "user": user, "status": status }),
        ),
        ChatEvent::Typing { room, user, typing } => (
            "user:typing",
            json!({ "room": room, "user": user, "typing": typing }),
        ),
        ChatEvent::Reactions {
            room,
            id,
            reactions,
            user,
            emoji,
            add,
        } => (
            "message:reactions",
            json!({ "room": room, "id": id, "reactions": reactions, "user": user,
                    "emoji": emoji, "add": add }),
        ),
        ChatEvent::ThreadUpdated {
            room,
            id,
            reply_count,
            last_reply_at,
        } => (
            "thread:updated",
            json!({ "room": room, "id": id, "reply_count": reply_count,
                    "last_reply_at": last_reply_at }),
        ),
        ChatEvent::Receipt { room, receipts } => (
            "receipt:update",
            json!({ "room": room, "receipts": receipts }),
        ),
        ChatEvent::ChannelUpdated { channel } => (
            "channel:updated",
            json!({ "room": channel.room, "channel": channel }),
        ),
        ChatEvent::ChannelDeleted { room } => ("channel:deleted", json!({ "room": room })),
        ChatEvent::Removed { room, user, reason } => (
            "room:removed",
            json!({ "room": room, "user": user, "reason": reason }),
        ),
        ChatEvent::Ended { reason, .. } => ("session:ended", json!({ "reason": reason })),
        // Emitted events keep their own name: the fan-out emits them itself.
        ChatEvent::Emitted { args, .. } => ("emitted", json!(args)),
        // Commands are applied by the chat, never delivered.
        ChatEvent::Command { .. } => ("command", Value::Null),
    }
}

/// Local socket.io fan-out, attached to the server once it is built.
pub struct SioFanout<A: Adapter> {
    io: OnceLock<SocketIo<A>>,
    dropped: Arc<AtomicU64>,
}

impl<A: Adapter> SioFanout<A> {
    /// A fan-out counting into `dropped` each message a socket's full buffer refused.
    pub fn new(dropped: Arc<AtomicU64>) -> Self {
        Self {
            io: OnceLock::new(),
            dropped,
        }
    }

    /// Connects the fan-out to the socket.io server.
    pub fn attach(&self, io: SocketIo<A>) {
        if self.io.set(io).is_err() {
            debug!("socket.io fan-out already attached");
        }
    }
}

impl<A: Adapter> SioFanout<A> {
    fn with_socket(&self, conn: &ConnId, f: impl FnOnce(socketioxide::extract::SocketRef<A>)) {
        let socket = self
            .io
            .get()
            .and_then(|io| io.of("/"))
            .zip(Sid::from_str(conn.as_str()).ok())
            .and_then(|(ns, sid)| ns.get_socket(sid));
        if let Some(socket) = socket {
            f(socket);
        }
    }
}

impl<A: Adapter> LocalFanout for SioFanout<A> {
    fn joined(&self, conn: &ConnId, transport: Transport, room: &RoomName) {
        if transport == Transport::SocketIo {
            self.with_socket(conn, |socket| socket.join(room.to_string()));
        }
    }

    fn left(&self, conn: &ConnId, transport: Transport, room: &RoomName) {
        if transport == Transport::SocketIo {
            self.with_socket(conn, |socket| socket.leave(room.to_string()));
        }
    }

    fn end(&self, conn: &ConnId, transport: Transport, notice: &Delivery) {
        if transport != Transport::SocketIo {
            return;
        }
        self.with_socket(conn, |socket| {
            let (name, payload) = event_for(&notice.event);
            // The DISCONNECT packet follows the notice on the same queue.
            if let Err(e) = socket.emit(name, &payload) {
                debug!(error = %e, "session end notice not sent");
            }
            // A full send buffer refuses the DISCONNECT packet: try again shortly, so the
            // socket does not stay open after the chat forgot it.
            if let Err(e) = socket.clone().disconnect() {
                debug!(error = %e, "socket.io disconnect deferred");
                tokio::spawn(async move {
                    for _ in 0..DISCONNECT_RETRIES {
                        tokio::time::sleep(DISCONNECT_RETRY_EVERY).await;
                        if !socket.connected() || socket.clone().disconnect().is_ok() {
                            return;
                        }
                    }
                    tracing::warn!(sid = %socket.id, "socket.io socket could not be disconnected");
                });
            }
        });
    }

    fn deliver(&self, delivery: &Delivery, _recipients: &Recipients<'_>) {
        // socketioxide broadcasts to its own rooms, which mirror the chat's index
        // (`joined`/`left` below): one packet encoding per delivery.
        // `of` rather than the root shortcuts: those panic once `io.close()` removed "/".
        let Some(ns) = self.io.get().and_then(|io| io.of("/")) else {
            return;
        };
        if let ChatEvent::Emitted {
            selection,
            event,
            args,
            volatile,
        } = &*delivery.event
        {
            let mut ops = ns.local();
            if !selection.rooms.is_empty() {
                ops = ops.to(rooms_param(&selection.rooms));
            }
            if !selection.except.is_empty() {
                ops = ops.except(rooms_param(&selection.except));
            }
            if *volatile {
                ops = ops.volatile();
            }
            return self.count(ops.emit(event, &Args(args)).now_or_never());
        }
        let origin = delivery
            .origin
            .as_ref()
            .and_then(|c| Sid::from_str(c.as_str()).ok())
            .and_then(|sid| ns.get_socket(sid));
        let ops = match origin {
            Some(socket) => socket.broadcast().local(),
            None => ns.local(),
        };
        let ops = match delivery.event.room() {
            Some(room) => ops.to(room.to_string()),
            None => ops,
        };
        let ops = if delivery.event.is_volatile() {
            ops.volatile()
        } else {
            ops
        };
        // A chat message's payload is its JSON made once by the chat, passed through raw.
        let shared = delivery.message_json();
        let raw = shared
            .as_deref()
            .and_then(|json| serde_json::from_slice::<&RawValue>(json).ok());
        // A local broadcast completes synchronously; poll it once to keep order.
        let emitted = match raw {
            Some(raw) => ops.emit(EVENT_MESSAGE_NEW, raw).now_or_never(),
            None => {
                let (name, payload) = event_for(&delivery.event);
                ops.emit(name, &payload).now_or_never()
            }
        };
        self.count(emitted);
    }
}

/// Several socket.io event arguments: socketioxide sends a tuple's elements as
/// separate arguments.
pub(super) struct Args<'a>(pub(super) &'a [Value]);

impl serde::Serialize for Args<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut tuple = serializer.serialize_tuple(self.0.len())?;
        for arg in self.0 {
            tuple.serialize_element(arg)?;
        }
        tuple.end()
    }
}

fn rooms_param(rooms: &[RoomName]) -> Vec<String> {
    rooms.iter().map(ToString::to_string).collect()
}

impl<A: Adapter> SioFanout<A> {
    /// Counts what a local broadcast could not hand over.
    fn count(&self, emitted: Option<Result<(), BroadcastError>>) {
        match emitted {
            Some(Ok(())) => {}
            Some(Err(BroadcastError::Socket(errors))) => {
                let full = errors
                    .iter()
                    .filter(|e| matches!(e, SocketError::InternalChannelFull))
                    .count();
                self.dropped.fetch_add(full as u64, Ordering::Relaxed);
            }
            Some(Err(e)) => debug!(error = %e, "socket.io broadcast incomplete"),
            None => tracing::warn!("socket.io local broadcast did not complete at once"),
        }
    }
}
