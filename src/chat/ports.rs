//! The ports the chat needs from the outside, as traits: the pod-to-pod [`Bus`] (and the
//! [`Inbound`] side it hands other pods' deliveries to), the message [`HistoryStore`] and
//! the cluster-wide [`PresenceStore`]. `bus/` and `store/` implement them, in memory and
//! in Redis; nothing here knows how.

use std::fmt;

use futures_util::future::BoxFuture;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::{ChatError, Delivery, Message, RoomName, Status, UserRef};

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

    /// Other pods' deliveries dropped here at a full inbound queue, since start.
    fn inbound_dropped(&self) -> u64 {
        0
    }

    /// Events that may have cost this pod other pods' deliveries (drops, lost
    /// connections), since start. Unchanged between two reads: nothing was lost between.
    fn losses(&self) -> u64 {
        0
    }
}

/// Where a bus hands what other pods published: the chat's side of the bus. Losses
/// are not reported here: the chat reads [`Bus::losses`] when it needs a proof.
pub trait Inbound: Send + Sync + 'static {
    /// Delivers another pod's event to this pod's members, in the order received.
    fn deliver(&self, delivery: &Delivery);
}

/// Why a store operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// No such message (or no longer retained).
    #[error("no message with that id in this room")]
    NotFound,
    /// Only the author may do this.
    #[error("only the author may change this message")]
    NotAuthor,
    /// The backend could not be reached or did not answer in time.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

impl From<StoreError> for ChatError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ChatError::invalid(e.to_string()),
            StoreError::NotAuthor => ChatError::Forbidden(e.to_string()),
            StoreError::Unavailable(_) => ChatError::Internal(e.to_string()),
        }
    }
}

/// One page of history, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryPage {
    /// The messages, oldest first.
    pub messages: Vec<Message>,
    /// Whether older messages exist before the first one.
    pub has_more: bool,
}

/// Each room's chat history.
pub trait HistoryStore: Send + Sync + 'static {
    /// Stores a new message at once. Stores that persist through the bus pipeline (so a
    /// message is stored before other pods see it) do nothing here.
    fn append(&self, message: &Message);

    /// Up to `limit` messages before `before` (or the newest), oldest first.
    fn page<'a>(
        &'a self,
        room: &'a RoomName,
        before: Option<Uuid>,
        limit: usize,
    ) -> BoxFuture<'a, Result<HistoryPage, StoreError>>;

    /// [`HistoryStore::since`] answered at once, for a history in this process (`None`
    /// from stores that must be asked over the network). On one node the chat recovers
    /// from here alone, under the room's delivery lock, and keeps no recent log.
    fn since_now(
        &self,
        _room: &RoomName,
        _after: Uuid,
    ) -> Option<Result<Option<Vec<Message>>, StoreError>> {
        None
    }

    /// Every message after `after`, oldest first; `None` when `after` is not retained.
    fn since<'a>(
        &'a self,
        room: &'a RoomName,
        after: Uuid,
    ) -> BoxFuture<'a, Result<Option<Vec<Message>>, StoreError>>;

    /// Replaces the content of `author`'s message `id` and returns it as it is now.
    fn edit<'a>(
        &'a self,
        room: &'a RoomName,
        id: Uuid,
        author: &'a str,
        content: String,
        edited_at: String,
    ) -> BoxFuture<'a, Result<Message, StoreError>>;

    /// Drops expired messages (stores that expire by themselves do nothing).
    fn sweep(&self) {}

    /// Deletes `author`'s message `id`.
    fn delete<'a>(
        &'a self,
        room: &'a RoomName,
        id: Uuid,
        author: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// What this pod holds of presence, for [`PresenceStore::sync`].
#[derive(Debug, Default)]
pub struct PresenceState {
    /// Every user this pod counts online, by room (connected, or within PRESENCE_GRACE).
    pub online: Vec<(RoomName, UserRef, Status)>,
    /// Users who left this pod while the store could not be told.
    pub departed: Vec<(RoomName, UserRef)>,
    /// Rooms with local members, with their member counts.
    pub rooms: Vec<(RoomName, usize)>,
}

/// What a [`PresenceStore::sync`] changed across the cluster.
#[derive(Debug, Default, PartialEq)]
pub struct PresenceChanges {
    /// Entries of `online` that no pod had recorded (the first write was lost): online now.
    pub online: Vec<(RoomName, UserRef)>,
    /// Users now offline everywhere: departed from here, or their pods died.
    pub offline: Vec<(RoomName, UserRef)>,
}

/// Who is online in which room, across pods. Each change is atomic across pods: of two
/// pods recording the same user at once, one answers "first", and of two removing the
/// user's last records at once, one answers "last".
pub trait PresenceStore: Send + Sync + 'static {
    /// Records `user` online in `room` from this pod (its liveness first); `true` when no
    /// live pod had them yet.
    fn online<'a>(
        &'a self,
        room: &'a RoomName,
        user: &'a UserRef,
        status: Status,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Removes this pod's record of `user` in `room`; `true` when no live pod has them.
    fn offline<'a>(
        &'a self,
        room: &'a RoomName,
        user: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// The users online in `room` on live pods, each once.
    fn list<'a>(
        &'a self,
        room: &'a RoomName,
    ) -> BoxFuture<'a, Result<Vec<(UserRef, Status)>, StoreError>>;

    /// The heartbeat: renews this pod's liveness and each of its entries (writing again
    /// the ones the store lost or never got), applies the departures it missed, records
    /// the room counts and removes dead pods' entries in those rooms.
    fn sync<'a>(
        &'a self,
        state: &'a PresenceState,
    ) -> BoxFuture<'a, Result<PresenceChanges, StoreError>>;

    /// Active rooms with member counts, across pods, given this pod's own `local` counts.
    fn rooms<'a>(
        &'a self,
        local: &'a [(RoomName, usize)],
    ) -> BoxFuture<'a, Result<Vec<(String, u64)>, StoreError>>;
}
