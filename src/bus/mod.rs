//! The bus carries chat deliveries between pods. The chat delivers to its own pod's
//! members first, then publishes here; a bus hands what other pods published to
//! [`crate::chat::ChatService::deliver_local`].
//!
//! [`LocalBus`] is the single-node default (no other pods: nothing to do);
//! [`redis::RedisBus`] rides Redis pub/sub.

pub mod redis;

use std::fmt;

use futures_util::future::BoxFuture;
use tokio::sync::oneshot;

use crate::chat::{Delivery, RoomName};

/// Why a delivery did not reach other pods.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// The pub/sub backend is unreachable.
    #[error("redis is unavailable")]
    Unavailable,
    /// The backend did not answer in time.
    #[error("redis did not answer in time")]
    Timeout,
    /// The outgoing queue is full.
    #[error("outgoing queue is full")]
    Backlog,
    /// The backend refused the operation.
    #[error("redis error: {0}")]
    Backend(String),
}

/// Health of the pod-to-pod link, as `/health` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BusStatus {
    /// Single node: no bus.
    Disabled,
    /// Connected.
    Up,
    /// Configured but not connected.
    Down,
}

impl BusStatus {
    /// The status as `/health` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Up => "up",
            Self::Down => "down",
        }
    }
}

impl fmt::Display for BusStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one publish, available once the bus has tried.
#[derive(Debug)]
pub struct Receipt(ReceiptState);

enum ReceiptState {
    Ready(Result<(), BusError>),
    Pending(oneshot::Receiver<Result<(), BusError>>),
    Future(BoxFuture<'static, Result<(), BusError>>),
}

impl fmt::Debug for ReceiptState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ready(r) => f.debug_tuple("Ready").field(r).finish(),
            Self::Pending(_) => f.write_str("Pending"),
            Self::Future(_) => f.write_str("Future"),
        }
    }
}

impl Receipt {
    /// A receipt that is already settled.
    pub fn ready(result: Result<(), BusError>) -> Self {
        Self(ReceiptState::Ready(result))
    }

    /// A receipt settled later through the returned sender.
    pub fn pending() -> (oneshot::Sender<Result<(), BusError>>, Self) {
        let (tx, rx) = oneshot::channel();
        (tx, Self(ReceiptState::Pending(rx)))
    }

    /// A receipt settled by `future`.
    pub fn from_future(future: BoxFuture<'static, Result<(), BusError>>) -> Self {
        Self(ReceiptState::Future(future))
    }

    /// The same receipt, settling as [`BusError::Timeout`] after `limit`.
    pub fn with_deadline(self, limit: std::time::Duration) -> Self {
        if let ReceiptState::Ready(_) = self.0 {
            return self;
        }
        Self::from_future(Box::pin(async move {
            tokio::time::timeout(limit, self.outcome())
                .await
                .unwrap_or(Err(BusError::Timeout))
        }))
    }

    /// Waits for the outcome.
    pub async fn outcome(self) -> Result<(), BusError> {
        match self.0 {
            ReceiptState::Ready(result) => result,
            ReceiptState::Pending(rx) => rx.await.unwrap_or(Err(BusError::Unavailable)),
            ReceiptState::Future(future) => future.await,
        }
    }
}

/// Pod-to-pod fan-out.
pub trait Bus: Send + Sync + 'static {
    /// Queues a delivery for the other pods without waiting; the receipt tells the outcome.
    /// Deliveries published in one order reach every other pod in that order.
    fn publish(&self, delivery: &Delivery) -> Receipt;

    /// Tells the bus this pod gained (`true`) or lost (`false`) its last member of `room`,
    /// so it subscribes only to rooms with local members. The receipt settles once the
    /// change is in place (for a gain: once other pods' messages for `room` arrive here).
    fn interest(&self, room: &RoomName, interested: bool) -> Receipt;

    /// Settles once every interest change asked for so far is in place.
    fn settled(&self) -> Receipt;

    /// Health of the link.
    fn status(&self) -> BusStatus;

    /// Deliveries that did not reach other pods, since start.
    fn undelivered(&self) -> u64 {
        0
    }
}

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
