//! What the chat hands to transports for delivery, and the seam transports implement.

use std::sync::Arc;

use super::{ConnId, Message};

/// One message to deliver to local members: to `message.room`, or to everyone when the
/// room is `None`. `origin` is the local sending connection, which is skipped.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The message, shared by every transport and recipient.
    pub message: Arc<Message>,
    /// The sending connection when it is on this pod.
    pub origin: Option<ConnId>,
}

/// A transport's local fan-out: encodes a [`Delivery`] once for its wire and hands it to
/// each of its local recipients' bounded queues. Never waits, so the caller's order is
/// the order every recipient sees.
pub trait LocalFanout: Send + Sync + 'static {
    /// Delivers to this transport's local members.
    fn deliver(&self, delivery: &Delivery);
}
