//! [`ChatService`]: the use cases both transports call (join, leave, post, disconnect).

use std::sync::{Arc, OnceLock};

use tracing::warn;

use super::{
    ChatError, ConnId, Delivery, Interest, LocalFanout, Membership, Message, RoomName, Sender,
    Transport,
};
use crate::bus::{Bus, Receipt};

/// A message accepted by the chat: delivered to local members, queued for other pods.
#[derive(Debug)]
pub struct Posted {
    /// The message as sent.
    pub message: Arc<Message>,
    /// Settles once the bus published it to other pods (or could not).
    pub receipt: Receipt,
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

    /// Adds the connection to `room` if its identity may join it. The receipt settles once messages other pods
    /// send to `room` reach this pod.
    pub fn join(&self, sender: &Sender, room: &RoomName) -> Result<Receipt, ChatError> {
        sender.may_join(room)?;
        match self.membership.join(&sender.conn, room) {
            None => Err(ChatError::Internal("connection is not registered".into())),
            Some(Interest::Gained) => Ok(self.bus.interest(room, true)),
            Some(_) => Ok(self.bus.settled()),
        }
    }

    /// Removes the connection from `room` (leaving a room one is not in is not an error).
    pub fn leave(&self, conn: &ConnId, room: &RoomName) {
        if self.membership.leave(conn, room) == Interest::Lost {
            drop(self.bus.interest(room, false));
        }
    }

    /// Forgets the connection and every room membership it had.
    pub fn disconnect(&self, conn: &ConnId) {
        for room in self.membership.disconnect(conn) {
            drop(self.bus.interest(&room, false));
        }
    }

    /// Sends a chat message to `room` (or to everyone when `None`): delivers it to local
    /// members at once and queues it for other pods. Never waits, so calls made in one
    /// order are delivered everywhere in that order.
    pub fn post(
        &self,
        sender: &Sender,
        room: Option<RoomName>,
        content: String,
    ) -> Result<Posted, ChatError> {
        if content.is_empty() {
            return Err(ChatError::invalid("content must be a non-empty string"));
        }
        if content
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(ChatError::invalid(
                "content must not contain control characters (other than tab and newlines)",
            ));
        }
        if let Some(room) = &room {
            if !self.membership.is_member(&sender.conn, room) {
                return Err(ChatError::Channel(format!("not a member of room {room}")));
            }
        }
        let limit = self.limits.max_message_bytes;
        if content.len() > limit {
            return Err(ChatError::TooLarge {
                size: content.len(),
                limit,
            });
        }
        let message = Message::chat(room, sender.user.clone(), content);
        let size = message.to_json().len();
        if size > limit {
            return Err(ChatError::TooLarge { size, limit });
        }
        let delivery = Delivery {
            message: Arc::new(message),
            origin: Some(sender.conn.clone()),
        };
        self.deliver_local(&delivery);
        let receipt = self.bus.publish(&delivery);
        Ok(Posted {
            message: delivery.message,
            receipt,
        })
    }

    /// Hands a delivery to every local transport, in order.
    pub fn deliver_local(&self, delivery: &Delivery) {
        for fanout in self.fanouts.get().map(Vec::as_slice).unwrap_or_default() {
            fanout.deliver(delivery);
        }
    }
}
