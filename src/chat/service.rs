//! [`ChatService`]: the use cases both transports call (join, leave, post, disconnect).

use std::sync::{Arc, OnceLock};

use tracing::{debug, warn};

use super::{
    ChatError, ConnId, Delivery, Interest, LocalFanout, Membership, Message, RoomName, Transport,
};
use crate::bus::Bus;

/// Who is acting: the connection and the identity messages are sent `from`.
#[derive(Debug, Clone)]
pub struct Sender {
    /// The local connection.
    pub conn: ConnId,
    /// The identity written into `from`.
    pub user: String,
}

/// Limits the chat enforces.
#[derive(Debug, Clone, Copy)]
pub struct ChatLimits {
    /// Largest encoded message, in bytes (MAX_MESSAGE_BYTES).
    pub max_message_bytes: usize,
}

/// The chat domain: validates and decides, then hands messages to the local fan-outs
/// of both transports and to the bus for other pods.
pub struct ChatService {
    membership: Membership,
    fanouts: OnceLock<Vec<Arc<dyn LocalFanout>>>,
    bus: Arc<dyn Bus>,
    limits: ChatLimits,
}

impl ChatService {
    /// A chat publishing to `bus`. Call [`ChatService::set_fanouts`] before serving.
    pub fn new(bus: Arc<dyn Bus>, limits: ChatLimits) -> Self {
        Self {
            membership: Membership::default(),
            fanouts: OnceLock::new(),
            bus,
            limits,
        }
    }

    /// Installs the transports' local fan-outs (once; later calls are ignored).
    pub fn set_fanouts(&self, fanouts: Vec<Arc<dyn LocalFanout>>) {
        if self.fanouts.set(fanouts).is_err() {
            warn!("chat fan-outs were already set");
        }
    }

    /// The local membership table.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Registers a new connection.
    pub fn connect(&self, conn: ConnId, transport: Transport) {
        self.membership.connect(conn, transport);
    }

    /// Adds the connection to `room`.
    pub fn join(&self, conn: &ConnId, room: &RoomName) -> Result<(), ChatError> {
        match self.membership.join(conn, room) {
            None => Err(ChatError::Internal("connection is not registered".into())),
            Some(Interest::Gained) => {
                self.bus.interest(room, true);
                Ok(())
            }
            Some(_) => Ok(()),
        }
    }

    /// Removes the connection from `room` (leaving a room one is not in is not an error).
    pub fn leave(&self, conn: &ConnId, room: &RoomName) {
        if self.membership.leave(conn, room) == Interest::Lost {
            self.bus.interest(room, false);
        }
    }

    /// Forgets the connection and every room membership it had.
    pub fn disconnect(&self, conn: &ConnId) {
        for room in self.membership.disconnect(conn) {
            self.bus.interest(&room, false);
        }
    }

    /// Sends a chat message to `room` (or to everyone when `None`) and returns it as sent.
    pub async fn post(
        &self,
        sender: &Sender,
        room: Option<RoomName>,
        content: String,
    ) -> Result<Arc<Message>, ChatError> {
        if content.is_empty() {
            return Err(ChatError::invalid("content must be a non-empty string"));
        }
        if let Some(room) = &room {
            if !self.membership.is_member(&sender.conn, room) {
                return Err(ChatError::Channel(format!("not a member of room {room}")));
            }
        }
        if content.len() > self.limits.max_message_bytes {
            return Err(ChatError::TooLarge {
                size: content.len(),
                limit: self.limits.max_message_bytes,
            });
        }
        let message = Message::chat(room, sender.user.clone(), content);
        let size = message.to_json().len();
        if size > self.limits.max_message_bytes {
            return Err(ChatError::TooLarge {
                size,
                limit: self.limits.max_message_bytes,
            });
        }
        let delivery = Delivery {
            message: Arc::new(message),
            origin: Some(sender.conn.clone()),
        };
        self.deliver_local(&delivery).await;
        if let Err(e) = self.bus.publish(&delivery).await {
            debug!(error = %e, "message did not reach other pods");
        }
        Ok(delivery.message)
    }

    /// Hands a delivery to every local transport, in order.
    pub async fn deliver_local(&self, delivery: &Delivery) {
        for fanout in self.fanouts.get().map(Vec::as_slice).unwrap_or_default() {
            fanout.deliver(delivery).await;
        }
    }
}
