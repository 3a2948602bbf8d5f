//! Implementations of the chat's [`crate::chat::Bus`] port, which carries deliveries
//! between pods. The chat delivers to its own pod's members first, then publishes; a
//! bus hands what other pods published to the chat's [`crate::chat::Inbound`].
//!
//! [`LocalBus`] is the single-node default (no other pods: nothing to do);
//! [`memory::MemoryBus`] joins several in-process pods (tests); [`redis::RedisBus`]
//! rides Redis pub/sub.

pub mod memory;
pub mod redis;

use crate::chat::{Bus, BusStatus, Delivery, Receipt, RoomName};

/// The single-node bus: nothing to publish to.
#[derive(Debug, Default)]
pub struct LocalBus;

impl Bus for LocalBus {
    fn publish(&self, _delivery: &Delivery) -> Receipt {
        Receipt::ready(Ok(()))
    }

    fn interest(&self, _room: &RoomName, _interested: bool) -> Receipt {
        Receipt::ready(Ok(()))
    }

    fn settled(&self) -> Receipt {
        Receipt::ready(Ok(()))
    }

    fn status(&self) -> BusStatus {
        BusStatus::Disabled
    }
}
