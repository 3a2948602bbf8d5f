//! The ports the chat needs from the outside, as traits: the pod-to-pod [`Bus`] (and the
//! [`Inbound`] side it hands other pods' deliveries to), the [`MessageLog`] (and the
//! [`Committed`] side it hands stored messages to) and the cluster-wide
//! [`PresenceStore`]. `bus/` and `store/` implement them, in memory, in SQL databases
//! and in Redis; nothing here knows how.

use std::fmt;
use std::sync::{Arc, Weak};

use futures_util::future::BoxFuture;
use tokio::sync::oneshot;
use uuid::Uuid;

use super::{
    Channel, ChatError, ConnId, Delivery, Message, Retention, RoomName, Selection, Status,
    UserConnection, UserRef,
};

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

    /// This pod's id among the pods (`local` on one node).
    fn pod_id(&self) -> String {
        LOCAL_POD.to_owned()
    }

    /// Asks every other pod which connections `user` has there (every connection, up to
    /// [`MAX_LISTED_CONNECTIONS`] a pod, when `None`); the answers that came within the
    /// bus's timeout (a pod that did not answer in time is left out).
    fn ask_connections<'a>(
        &'a self,
        _user: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Asked, BusError>> {
        // No other pod to ask: nobody is missing.
        Box::pin(std::future::ready(Ok(Asked {
            answers: Vec::new(),
            complete: true,
        })))
    }
}

/// Connections one pod lists at most when asked for all of them.
pub const MAX_LISTED_CONNECTIONS: usize = 5000;

/// The pod id of a single node.
pub const LOCAL_POD: &str = "local";

/// One pod's connections of a user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PodConnections {
    /// The pod.
    pub pod: String,
    /// The user's connections there.
    pub connections: Vec<UserConnection>,
}

/// Other pods' answers to a question.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Asked {
    /// Each answering pod's connections of the user (pods without any included).
    pub answers: Vec<PodConnections>,
    /// Whether every pod subscribed when the question went out answered in time.
    pub complete: bool,
}

/// Where a bus hands what other pods published: the chat's side of the bus. Losses
/// are not reported here: the chat reads [`Bus::losses`] when it needs a proof.
pub trait Inbound: Send + Sync + 'static {
    /// Delivers another pod's event to this pod's members, in the order received.
    fn deliver(&self, delivery: &Delivery);

    /// This pod's connections of `user` (everyone's when `None`), for another pod's
    /// question.
    fn connections_of(&self, user: Option<&str>) -> Vec<UserConnection>;

    /// Applies a command of the application's backend (the socket.io Redis emitter's
    /// `socketsJoin`, `socketsLeave`, `disconnectSockets`) to this pod's connections
    /// that `selection` chooses; every pod gets it from Redis itself.
    fn command(&self, selection: &Selection, command: &RoomsCommand);
}

/// What the backend asks of the connections a selection chooses.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "do", content = "rooms", rename_all = "snake_case")]
pub enum RoomsCommand {
    /// Join these rooms.
    Join(Vec<RoomName>),
    /// Leave these rooms.
    Leave(Vec<RoomName>),
    /// Disconnect.
    Disconnect,
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
    /// The backend could not be reached, did not answer in time, or its queue is full.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// A bounded collection is full (a message's different emojis).
    #[error("{0}")]
    TooMany(String),
    /// The record exists already (a channel of that room).
    #[error("{0}")]
    Exists(String),
}

/// How long a client refused with `UNAVAILABLE` should wait before sending again.
pub const STORE_RETRY_AFTER_MS: u64 = 1000;

impl From<StoreError> for ChatError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ChatError::invalid(e.to_string()),
            StoreError::NotAuthor => ChatError::Forbidden(e.to_string()),
            StoreError::TooMany(_) => ChatError::invalid(e.to_string()),
            StoreError::Exists(_) => ChatError::Conflict(e.to_string()),
            StoreError::Unavailable(_) => ChatError::Unavailable {
                reason: e.to_string(),
                retry_after_ms: STORE_RETRY_AFTER_MS,
            },
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

/// A place in a room's log, as clients name it: an offset, or (for compatibility) the
/// id of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageRef {
    /// The message with this offset.
    Offset(u64),
    /// The message with this id.
    Id(Uuid),
}

impl MessageRef {
    /// An offset (`"42"`) or a message id (a UUID).
    pub fn parse(s: &str) -> Option<Self> {
        match s.parse::<u64>() {
            Ok(offset) => Some(Self::Offset(offset)),
            Err(_) => Uuid::parse_str(s).ok().map(Self::Id),
        }
    }
}

/// A JSON number is an offset; a string an offset or a message id.
impl<'de> serde::Deserialize<'de> for MessageRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Offset(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Offset(offset) => Ok(Self::Offset(offset)),
            Raw::Text(text) => Self::parse(&text)
                .ok_or_else(|| serde::de::Error::custom("expected an offset or a message id")),
        }
    }
}

/// A chat message handed to the log, with what its delivery needs once stored.
#[derive(Debug)]
pub struct Unstored {
    /// The message, without an offset yet.
    pub message: Message,
    /// The sender's display name, kept beside the message.
    pub sender_name: Option<String>,
    /// The local connection that sent it (skipped by the local fan-out).
    pub origin: Option<ConnId>,
}

/// A message the log has committed, with its offset.
#[derive(Debug, Clone)]
pub struct Stored {
    /// The message as stored (its `offset` set), shared by every delivery.
    pub message: Arc<Message>,
    /// The local connection that sent it.
    pub origin: Option<ConnId>,
}

/// Where a log hands what it committed: the chat's side of the log.
pub trait Committed: Send + Sync + 'static {
    /// `stored` are committed, in offset order within each room. Called before their
    /// appends settle, so an acknowledged message has been handed on.
    fn committed(&self, stored: &[Stored]);
}

/// The outcome of one [`MessageLog::append`]: the message as stored.
pub type Appended = BoxFuture<'static, Result<Arc<Message>, StoreError>>;

/// What the log holds of one room.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RoomBounds {
    /// The oldest offset still kept (`None`: nothing kept).
    pub first: Option<u64>,
    /// The last offset given out (0: none yet).
    pub last: u64,
}

/// The message log: every chat message, stored in one order per room (offsets 1, 2,
/// 3, ... without gaps) before anyone receives it.
pub trait MessageLog: Send + Sync + 'static {
    /// Connects the log to where it hands committed messages (once, before appends).
    fn attach(&self, committed: Weak<dyn Committed>);

    /// Queues `entry` for storing and returns at once; entries queued in one order get
    /// offsets in that order. Once committed the message goes to [`Committed`], then the
    /// returned future settles. A message that cannot be stored settles with an error
    /// and is handed to no one.
    fn append(&self, entry: Unstored) -> Appended;

    /// The stored messages of `room` after offset `after`, oldest first, at most `limit`.
    fn after<'a>(
        &'a self,
        room: &'a RoomName,
        after: u64,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Message>, StoreError>>;

    /// The oldest kept and the last given offset of `room`.
    fn bounds<'a>(&'a self, room: &'a RoomName) -> BoxFuture<'a, Result<RoomBounds, StoreError>>;

    /// The message with id `id`, in any room (global messages included), if it is kept.
    fn find(&self, id: Uuid) -> BoxFuture<'_, Result<Option<Message>, StoreError>>;

    /// The offset of `at` in `room`, if that message is kept.
    fn offset_of<'a>(
        &'a self,
        room: &'a RoomName,
        at: MessageRef,
    ) -> BoxFuture<'a, Result<Option<u64>, StoreError>>;

    /// Up to `limit` messages before `before` (or the newest), oldest first. Deleted
    /// messages appear as tombstones.
    fn page<'a>(
        &'a self,
        room: &'a RoomName,
        before: Option<MessageRef>,
        limit: usize,
    ) -> BoxFuture<'a, Result<HistoryPage, StoreError>>;

    /// Replaces the content of message `id` (only when `author` wrote it, unless `None`:
    /// moderation) and returns it as it is now.
    fn edit<'a>(
        &'a self,
        room: &'a RoomName,
        id: Uuid,
        author: Option<&'a str>,
        content: String,
    ) -> BoxFuture<'a, Result<Message, StoreError>>;

    /// Deletes message `id` (only when `author` wrote it, unless `None`), keeping its
    /// tombstone; returns the tombstone.
    fn delete<'a>(
        &'a self,
        room: &'a RoomName,
        id: Uuid,
        author: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Message, StoreError>>;

    /// Removes, in bounded steps, what `retention` no longer keeps at `now_ms`; returns
    /// how many messages went.
    fn prune(&self, retention: Retention, now_ms: u64) -> BoxFuture<'_, Result<u64, StoreError>>;

    /// Refuses new appends and settles every queued one (stored and handed on, or
    /// failed); resolves once done.
    fn drain(&self) -> BoxFuture<'_, ()>;

    /// Up to `limit` stored messages of `rooms` whose text has every word of `query`
    /// (case-insensitively; tombstones never match), newest first, older than message
    /// `before` (the last of an earlier page) when given.
    fn search<'a>(
        &'a self,
        rooms: &'a [RoomName],
        query: &'a str,
        before: Option<Uuid>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Message>, StoreError>>;

    /// The thread of each of `roots` that has replies: how many (its room's last offset)
    /// and when the last one was sent. The default asks [`MessageLog::bounds`] and
    /// [`MessageLog::page`] of each thread's room.
    fn thread_summaries<'a>(
        &'a self,
        roots: &'a [Uuid],
    ) -> BoxFuture<'a, Result<std::collections::HashMap<Uuid, ThreadSummary>, StoreError>> {
        Box::pin(async move {
            let mut summaries = std::collections::HashMap::new();
            for root in roots {
                let room = super::thread_room(*root);
                let last = self.bounds(&room).await?.last;
                if last == 0 {
                    continue;
                }
                let page = self.page(&room, None, 1).await?;
                // Every reply pruned: nothing to show.
                let Some(last_reply_at) = page.messages.last().map(|m| m.timestamp.clone()) else {
                    continue;
                };
                summaries.insert(
                    *root,
                    ThreadSummary {
                        reply_count: last,
                        last_reply_at,
                    },
                );
            }
            Ok(summaries)
        })
    }
}

/// A thread as its root shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ThreadSummary {
    /// Replies so far (deleted ones included, as tombstones).
    pub reply_count: u64,
    /// When the last reply was sent (RFC 3339).
    pub last_reply_at: String,
}

/// What [`RequestKeys::claim`] found under a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The key was free (or expired): it is now held for this request.
    Fresh,
    /// A request with this key is still running.
    Pending {
        /// Its request's fingerprint.
        fingerprint: String,
    },
    /// A request with this key finished.
    Done {
        /// Its request's fingerprint.
        fingerprint: String,
        /// Its result, as it was recorded.
        result: String,
    },
}

/// Keys of requests that take effect once (the server API's `Idempotency-Key`), shared
/// by every pod that shares the log.
pub trait RequestKeys: Send + Sync + 'static {
    /// Holds `key` for a request with `fingerprint` until `expires_ms` (Unix ms), with
    /// `result` recorded at once (a placeholder the request replaces), unless an
    /// unexpired request holds it at `now_ms`; what was found.
    fn claim<'a>(
        &'a self,
        key: &'a str,
        fingerprint: &'a str,
        result: &'a str,
        now_ms: u64,
        expires_ms: u64,
    ) -> BoxFuture<'a, Result<Claim, StoreError>>;

    /// Records `result` for the request holding `key`.
    fn settle<'a>(&'a self, key: &'a str, result: &'a str)
        -> BoxFuture<'a, Result<(), StoreError>>;

    /// Replaces `key`'s result `old` with `new` (expiring at `expires_ms`) if it is still
    /// `old`; whether it was (of two requests replacing the same result, one wins).
    fn replace<'a>(
        &'a self,
        key: &'a str,
        old: &'a str,
        new: &'a str,
        expires_ms: u64,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Lets go of `key` (its request failed; a retry may run).
    fn release<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// A user's place in a room and what they have not read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Unread {
    /// The offset the user has read up to (0: nothing yet).
    pub read_offset: u64,
    /// Chat messages after it sent by others and not deleted, counted up to the cap
    /// ([`MAX_UNREAD_COUNT`]).
    pub unread: u64,
    /// The room's last offset.
    pub last_offset: u64,
}

/// Unread messages are counted up to this many (a client shows "999+").
pub const MAX_UNREAD_COUNT: u64 = 999;

/// Where each user has read up to in each room (`message:read`), kept beside the log
/// and shared by every pod that shares it. Positions only move forward.
pub trait ReadPositions: Send + Sync + 'static {
    /// Moves `user`'s position in `room` forward to `offset` at `now_ms` (never back);
    /// `anonymous`: the user is a connection id, kept for a day only. The position now,
    /// and whether this call moved it.
    fn mark_read<'a>(
        &'a self,
        room: &'a RoomName,
        user: &'a str,
        anonymous: bool,
        offset: u64,
        now_ms: u64,
    ) -> BoxFuture<'a, Result<(u64, bool), StoreError>>;

    /// `user`'s position and unread count in `room`.
    fn unread<'a>(
        &'a self,
        room: &'a RoomName,
        user: &'a str,
    ) -> BoxFuture<'a, Result<Unread, StoreError>>;

    /// `user`'s rooms with a position, most recently read first, at most `limit`.
    fn unread_rooms<'a>(
        &'a self,
        user: &'a str,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<(RoomName, Unread)>, StoreError>>;
}

/// Each emoji's count of reactions on one message.
pub type ReactionCounts = std::collections::BTreeMap<String, u64>;

/// Reactions on messages (`message:react`): one per user, emoji and message, kept
/// beside the log and shared by every pod that shares it.
pub trait Reactions: Send + Sync + 'static {
    /// Adds (`add`) or takes back `user`'s `emoji` on message `id` of `room` at `now_ms`;
    /// whether that changed anything, and the message's counts after. Adding a new emoji
    /// to a message that has [`MAX_EMOJIS_PER_MESSAGE`] already fails (`TooMany`).
    fn react<'a>(
        &'a self,
        room: &'a RoomName,
        id: Uuid,
        user: &'a str,
        emoji: &'a str,
        add: bool,
        now_ms: u64,
    ) -> BoxFuture<'a, Result<(bool, ReactionCounts), StoreError>>;

    /// The counts of each of `ids` that has reactions.
    fn counts<'a>(
        &'a self,
        ids: &'a [Uuid],
    ) -> BoxFuture<'a, Result<std::collections::HashMap<Uuid, ReactionCounts>, StoreError>>;
}

/// Channels: rooms as records (title, topic, private with members), kept beside the log
/// and shared by every pod that shares it.
pub trait Channels: Send + Sync + 'static {
    /// Stores `channel` (its members included); `Exists` when its room has one.
    fn create_channel<'a>(&'a self, channel: &'a Channel) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The channel of `room`, with its members, if it has one.
    fn channel<'a>(
        &'a self,
        room: &'a RoomName,
    ) -> BoxFuture<'a, Result<Option<Channel>, StoreError>>;

    /// Whether `room` is a private channel, and if so whether `user` is a member: `None`
    /// for a room without a channel or a public one.
    fn private_member<'a>(
        &'a self,
        room: &'a RoomName,
        user: &'a str,
    ) -> BoxFuture<'a, Result<Option<bool>, StoreError>>;

    /// Those of `rooms` that are private channels without `user` among their members.
    fn closed_to<'a>(
        &'a self,
        rooms: &'a [RoomName],
        user: &'a str,
    ) -> BoxFuture<'a, Result<Vec<RoomName>, StoreError>>;

    /// Those of `rooms` that are private channels, with their members.
    fn private_channels<'a>(
        &'a self,
        rooms: &'a [RoomName],
    ) -> BoxFuture<'a, Result<Vec<Channel>, StoreError>>;

    /// Up to `limit` channels `user` may see (public ones, and private ones they are a
    /// member of), by room name after `after`.
    fn list_channels<'a>(
        &'a self,
        user: Option<&'a str>,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Vec<Channel>, StoreError>>;

    /// Replaces the record of `channel.room` (members included); `NotFound` without one.
    fn update_channel<'a>(&'a self, channel: &'a Channel) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Removes the channel of `room` with its messages (its threads' included),
    /// reactions and read positions; offsets given out stay given (a new channel of the
    /// same name continues after them). Whether there was one.
    fn delete_channel<'a>(&'a self, room: &'a RoomName) -> BoxFuture<'a, Result<bool, StoreError>>;
}

/// Different emojis one message may carry at most.
pub const MAX_EMOJIS_PER_MESSAGE: usize = 50;

/// Anonymous users' read positions are kept this long after their last move.
pub const ANONYMOUS_POSITION_TTL_MS: u64 = 24 * 3600 * 1000;

/// The content and edit time of an edited message's `data`.
pub fn edited_data(content: String, edited_at: &str) -> serde_json::Value {
    serde_json::json!({ "content": content, "edited_at": edited_at })
}

/// The `data` of a deleted message's tombstone.
pub fn tombstone_data(deleted_at: &str) -> serde_json::Value {
    serde_json::json!({ "deleted": true, "deleted_at": deleted_at })
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

/// A local connection joined or left a room, as the presence store records it for
/// operators (Streamly's `connections:{room}` and `rooms:active` sets in Redis).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnectionChange {
    /// The connection joined the room.
    Joined(RoomName, ConnId),
    /// The connection left the room (or ended).
    Left(RoomName, ConnId),
    /// This pod's connections are exactly these, in these rooms (after a change that did
    /// not reach the store): the store replaces this pod's records with them.
    Replace(Vec<(RoomName, ConnId)>),
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

    /// Records local connections joining and leaving rooms, in the order given, beside
    /// this pod's liveness (dead pods' records are removed by the next [`sync`] of a live
    /// pod); `true` when this pod's liveness had lapsed, so that its records may have
    /// been removed as a dead pod's (the caller then replaces them). A store that keeps no
    /// such records does nothing.
    ///
    /// [`sync`]: PresenceStore::sync
    fn connections_changed<'a>(
        &'a self,
        _changes: &'a [ConnectionChange],
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(std::future::ready(Ok(false)))
    }
}

/// A message about to be stored, as the application's backend judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// Its room (`None`: global).
    pub room: Option<RoomName>,
    /// Who sends it.
    pub user: UserRef,
    /// Its text.
    pub content: String,
    /// For an edit: the id of the message it changes.
    pub edit: Option<Uuid>,
}

/// What the backend says of a [`Draft`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Store and deliver it as it is.
    Allow,
    /// Store and deliver it with this content instead.
    Replace(String),
    /// Refuse it: the sender gets this error, nobody gets the message.
    Refuse(ChatError),
}

/// The application's backend judging messages before they are stored (the message
/// hook). An error (the backend is slow or down) refuses the message.
pub trait MessageFilter: Send + Sync + 'static {
    /// Judges `draft`.
    fn check(&self, draft: Draft) -> BoxFuture<'static, Result<Verdict, ChatError>>;
}

/// Something the application's backend is told about (webhooks).
#[derive(Debug, Clone, PartialEq)]
pub enum Happened {
    /// A message was stored (once, on the pod that stored it).
    Stored(Arc<Message>),
    /// A message was edited.
    Edited(Box<Message>),
    /// A message was deleted.
    Deleted {
        /// Its room.
        room: RoomName,
        /// Its id.
        id: Uuid,
    },
    /// A user came online in a room (their first connection in it, across pods).
    Joined {
        /// The room.
        room: RoomName,
        /// Who.
        user: UserRef,
    },
    /// A user went offline in a room (their last connection left it, across pods).
    Left {
        /// The room.
        room: RoomName,
        /// Who.
        user: UserRef,
    },
}

/// Where the chat tells what happened; never waits (a full queue drops, and counts).
pub trait Observer: Send + Sync + 'static {
    /// Takes note of `happened`.
    fn observe(&self, happened: Happened);
}
