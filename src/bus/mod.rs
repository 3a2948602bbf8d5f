//! The bus carries chat deliveries between pods. The chat delivers to its own pod's
//! members first, then publishes here; a bus delivers what other pods publish to this
//! pod's members through [`crate::chat::ChatService::deliver_local`].
//!
//! [`LocalBus`] is the single-node default: there are no other pods, so it does nothing.

use futures_util::future::BoxFuture;

use crate::chat::{Delivery, RoomName};

/// Why a delivery did not reach other pods.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The pub/sub backend is unreachable.
    #[error("bus unavailable: {0}")]
    Unavailable(String),
}

/// Pod-to-pod fan-out.
pub trait Bus: Send + Sync + 'static {
    /// Publishes a delivery to the other pods.
    fn publish<'a>(&'a self, delivery: &'a Delivery) -> BoxFuture<'a, Result<(), BusError>>;

    /// Tells the bus this pod gained (`true`) or lost (`false`) its last member of `room`,
    /// so it subscribes only to rooms with local members.
    fn interest(&self, room: &RoomName, interested: bool);

    /// Health of the backend for /health: `disabled`, `up` or `down`.
    fn status(&self) -> &'static str;
}

/// The single-node bus: nothing to publish to.
#[derive(Debug, Default)]
pub struct LocalBus;

impl Bus for LocalBus {
    fn publish<'a>(&'a self, _delivery: &'a Delivery) -> BoxFuture<'a, Result<(), BusError>> {
        Box::pin(std::future::ready(Ok(())))
    }

    fn interest(&self, _room: &RoomName, _interested: bool) {}

    fn status(&self) -> &'static str {
        "disabled"
    }
}
