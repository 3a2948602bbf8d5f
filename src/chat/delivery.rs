//! What the chat hands to transports for delivery, and the seam transports implement.

use std::sync::Arc;

use super::{ChatEvent, ConnId};

/// One event to deliver to local members of its room (or to everyone for a global
/// message). `origin` is the local connection that caused it, which is skipped.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The event, shared by every transport and recipient.
    pub event: Arc<ChatEvent>,
    /// The causing connection when it is on this pod.
    pub origin: Option<ConnId>,
}

/// A transport's local fan-out: encodes a [`Delivery`] once for its wire and hands it to
/// each of its local recipients' bounded queues. Never waits, so the caller's order is
/// the order every recipient sees.
pub trait LocalFanout: Send + Sync + 'static {
    /// Delivers to this transport's local members.
    fn deliver(&self, delivery: &Delivery);
}
