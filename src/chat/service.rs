//! [`ChatService`]: the use cases both transports call. Membership and posting are
//! synchronous and never wait, so calls made in one order are delivered everywhere in
//! that order; history and recovery talk to the stores asynchronously. Presence
//! announcements live in `announce.rs`.

use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tracing::{debug, warn};
use uuid::Uuid;

use super::presence::{Joined, LocalPresence};
use super::recent::Recent;
use super::typing::TypingTracker;
use super::{
    now_rfc3339, Bus, BusStatus, ChatError, ChatEvent, ConnId, Delivery, Encodings, HistoryPage,
    HistoryStore, Inbound, Interest, LocalFanout, Mailbox, Membership, Message, PresenceStore,
    Receipt, RoomName, Sender, Transport,
};
use crate::telemetry::metrics;

/// Locks over local fan-out: deliveries to rooms of different shards never wait for
/// each other; deliveries to one room are handed over in one order.
const DELIVERY_SHARDS: usize = 64;

/// Most messages one history request returns.
pub const MAX_HISTORY_PAGE: usize = 100;

/// A message accepted by the chat: delivered to local members, queued for other pods.
#[derive(Debug)]
pub struct Posted {
    /// The message as sent.
    pub message: Arc<Message>,
    /// Settles once the message is stored and published to other pods (or could not be).
    pub receipt: Receipt,
}

/// What the chat enforces and how long it waits.
#[derive(Debug, Clone, Copy)]
pub struct ChatSettings {
    /// Largest encoded message, in bytes (MAX_MESSAGE_BYTES).
    pub max_message_bytes: usize,
    /// Silence after a user's last connection leaves before "offline" (PRESENCE_GRACE).
    pub presence_grace: Duration,
    /// How often this pod renews its presence records (a third of PRESENCE_TTL).
    pub presence_heartbeat: Duration,
    /// A typing indicator not refreshed for this long is ended by the server.
    pub typing_timeout: Duration,
    /// Messages retained per room (HISTORY_LIMIT): recovery reaches no further back.
    pub history_limit: usize,
}

/// The stores the chat keeps its state in.
pub struct Stores {
    /// Room histories.
    pub history: Arc<dyn HistoryStore>,
    /// Presence across pods.
    pub presence: Arc<dyn PresenceStore>,
}

/// The chat domain: validates and decides, then hands events to the local fan-outs of
/// both transports and to the bus for other pods.
pub struct ChatService {
    membership: Membership,
    fanouts: OnceLock<Vec<Arc<dyn LocalFanout>>>,
    pub(super) bus: Arc<dyn Bus>,
    pub(super) settings: ChatSettings,
    history: Arc<dyn HistoryStore>,
    pub(super) presence_store: Arc<dyn PresenceStore>,
    pub(super) presence: LocalPresence,
    pub(super) typing: TypingTracker,
    /// Per shard of rooms, also the delivery lock: local deliveries to a room and
    /// recovery hand-overs in it never interleave.
    recent: Box<[Mutex<Recent>]>,
    /// Orders global deliveries.
    global: Mutex<()>,
    shard_of: std::collections::hash_map::RandomState,
    /// Presence changes the store missed, applied by the next sync.
    pub(super) presence_unsynced: super::announce::Unsynced,
}

impl ChatService {
    /// A chat publishing to `bus`. Call [`ChatService::set_fanouts`] before serving and
    /// run [`ChatService::run_background`].
    pub fn new(bus: Arc<dyn Bus>, stores: Stores, settings: ChatSettings) -> Self {
        Self {
            membership: Membership::default(),
            fanouts: OnceLock::new(),
            bus,
            settings,
            history: stores.history,
            presence_store: stores.presence,
            presence: LocalPresence::default(),
            typing: TypingTracker::new(settings.typing_timeout),
            recent: (0..DELIVERY_SHARDS)
                .map(|_| Mutex::new(Recent::new(settings.history_limit)))
                .collect(),
            global: Mutex::new(()),
            shard_of: std::collections::hash_map::RandomState::new(),
            presence_unsynced: Default::default(),
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

    /// The delivery lock and recent log of `room`'s shard.
    fn recent(&self, room: &RoomName) -> MutexGuard<'_, Recent> {
        let shard = (self.shard_of.hash_one(room) as usize) % self.recent.len();
        self.recent[shard].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// No other pod: the recent log would only repeat the history in this process, and
    /// the local presence counts are the whole truth.
    pub(super) fn single_node(&self) -> bool {
        self.bus.status() == BusStatus::Disabled
    }

    /// Drops expired history (stores that expire by themselves do nothing).
    pub(super) fn history_sweep(&self) {
        self.history.sweep();
    }

    /// Registers a new connection, with its transport's `mailbox` for fan-out.
    pub fn connect(&self, sender: &Sender, transport: Transport, mailbox: Option<Mailbox>) {
        self.membership
            .connect(sender.conn.clone(), transport, &sender.user, mailbox);
        metrics::connected(transport);
    }

    /// Adds the connection to `room` if its identity may join it. The receipt settles
    /// once messages other pods send to `room` reach this pod.
    pub fn join(self: &Arc<Self>, sender: &Sender, room: &RoomName) -> Result<Receipt, ChatError> {
        let receipt = self.enter(sender, room)?;
        self.go_live(&sender.conn, room);
        Ok(receipt)
    }

    /// Makes a member of `room` get deliveries, telling the transports.
    fn go_live(&self, conn: &ConnId, room: &RoomName) {
        if let Some(transport) = self.membership.set_live(conn, room) {
            for fanout in self.fanouts() {
                fanout.joined(conn, transport, room);
            }
        }
    }

    fn fanouts(&self) -> &[Arc<dyn LocalFanout>] {
        self.fanouts.get().map(Vec::as_slice).unwrap_or_default()
    }

    /// Adds the connection to `room`, not live yet.
    fn enter(self: &Arc<Self>, sender: &Sender, room: &RoomName) -> Result<Receipt, ChatError> {
        sender.may_join(room)?;
        let receipt = match self.membership.join(&sender.conn, room) {
            None => return Err(ChatError::Internal("connection is not registered".into())),
            Some((true, Interest::Gained)) => {
                if !self.single_node() {
                    self.recent(room).open(room);
                }
                self.bus.interest(room, true)
            }
            Some((true, _)) => self.bus.settled(),
            // Already a member: nothing changes, presence included.
            Some((false, _)) => return Ok(self.proving(room, self.bus.settled())),
        };
        if let Joined::First(status) = self.presence.join(room, &sender.user_ref()) {
            let (chat, room, user) = (self.clone(), room.clone(), sender.user_ref());
            tokio::spawn(async move { chat.announce_online(room, user, status).await });
        }
        Ok(self.proving(room, receipt))
    }

    /// `receipt` of a subscription to `room`, which, once it settles with the bus up,
    /// proves the room's recent log complete from then on.
    fn proving(self: &Arc<Self>, room: &RoomName, receipt: Receipt) -> Receipt {
        let (chat, room) = (self.clone(), room.clone());
        Receipt::from_future(Box::pin(async move {
            // Read before the subscription settles: a loss meanwhile voids the proof.
            let losses = chat.bus.losses();
            let outcome = receipt.outcome().await;
            if outcome.is_ok() && chat.bus.status() != BusStatus::Down {
                chat.recent(&room).prove(&room, losses);
            }
            outcome
        }))
    }

    /// Removes the connection from `room` (leaving a room one is not in is not an error).
    pub fn leave(self: &Arc<Self>, sender: &Sender, room: &RoomName) {
        if !self.membership.is_member(&sender.conn, room) {
            return;
        }
        let transport = self.membership.transport_of(&sender.conn);
        let interest = self.membership.leave(&sender.conn, room);
        if let Some(transport) = transport {
            for fanout in self.fanouts() {
                fanout.left(&sender.conn, transport, room);
            }
        }
        self.left(room, &sender.user, interest);
    }

    /// Forgets the connection and every room membership it had.
    pub fn disconnect(self: &Arc<Self>, conn: &ConnId) {
        let Some(departed) = self.membership.disconnect(conn) else {
            return;
        };
        metrics::disconnected(departed.transport);
        for (room, interest) in departed.rooms {
            for fanout in self.fanouts() {
                fanout.left(conn, departed.transport, &room);
            }
            self.left(&room, &departed.user, interest);
        }
    }

    fn left(self: &Arc<Self>, room: &RoomName, user: &str, interest: Interest) {
        if interest == Interest::Lost {
            drop(self.bus.interest(room, false));
            self.recent(room).forget(room);
        }
        if let Some(grace) = self.presence.leave(room, user) {
            let (chat, room, user) = (self.clone(), room.clone(), user.to_owned());
            let wait = self.settings.presence_grace;
            tokio::spawn(async move {
                tokio::select! {
                    () = grace.cancelled() => {}
                    () = tokio::time::sleep(wait) => chat.announce_offline(room, user).await,
                }
            });
        }
    }

    /// Delivers `event` here and publishes it to other pods.
    pub(super) fn emit(&self, event: ChatEvent, origin: Option<ConnId>) -> Receipt {
        let delivery = Delivery::new(event, origin);
        self.deliver_local(&delivery);
        self.bus.publish(&delivery)
    }

    /// Sends a chat message to `room` (or to everyone when `None`): delivers it to local
    /// members at once, stores it and queues it for other pods. Never waits.
    pub fn post(
        &self,
        sender: &Sender,
        room: Option<RoomName>,
        content: String,
    ) -> Result<Posted, ChatError> {
        self.check_content(&content)?;
        match &room {
            Some(room) if !self.membership.is_member(&sender.conn, room) => {
                return Err(ChatError::Channel(format!("not a member of room {room}")));
            }
            Some(_) => {}
            None => sender.may_post_global()?,
        }
        let message = Message::chat(room, sender.user.clone(), content);
        // Encoded once: this JSON is the size checked, the raw frame, the socket.io
        // payload, the bus envelope's core and the stored record.
        let json = message.to_json();
        let limit = self.settings.max_message_bytes;
        if json.len() > limit {
            let size = json.len();
            return Err(ChatError::TooLarge { size, limit });
        }
        let message = Arc::new(message);
        if let Some(room) = &message.room {
            self.typing.set(room, &sender.user_ref(), false);
        }
        let delivery = Delivery {
            event: Arc::new(ChatEvent::Message {
                message: message.clone(),
            }),
            origin: Some(sender.conn.clone()),
            encoded: Arc::new(Encodings::with_message(json)),
        };
        // Stored under the room's delivery lock, just before its fan-out: a recovery
        // reading the store under that lock sees a message exactly when it was delivered.
        self.deliver(&delivery, Some(&message));
        let receipt = self.bus.publish(&delivery);
        Ok(Posted { message, receipt })
    }

    fn check_content(&self, content: &str) -> Result<(), ChatError> {
        if content.is_empty() {
            return Err(ChatError::invalid("content must be a non-empty string"));
        }
        let limit = self.settings.max_message_bytes;
        if content.len() > limit {
            return Err(ChatError::TooLarge {
                size: content.len(),
                limit,
            });
        }
        if content
            .chars()
            .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
        {
            return Err(ChatError::invalid(
                "content must not contain control characters (other than tab and newlines)",
            ));
        }
        Ok(())
    }

    /// Hands a delivery to every local transport, in order: under the lock of its room's
    /// shard (global deliveries: under their own), so one room's deliveries reach every
    /// member in one order and rooms never wait for each other's fan-out.
    pub fn deliver_local(&self, delivery: &Delivery) {
        self.deliver(delivery, None);
    }

    /// [`ChatService::deliver_local`], storing `new` (a message posted here) first.
    fn deliver(&self, delivery: &Delivery, new: Option<&Message>) {
        let fanouts = self.fanouts();
        let reached = match delivery.event.room() {
            Some(room) => {
                let mut recent = self.recent(room);
                if let Some(message) = new {
                    self.history.append(message);
                }
                match &*delivery.event {
                    ChatEvent::Message { message } => recent.push(room, message.clone()),
                    ChatEvent::Updated { message } => recent.update(room, message),
                    ChatEvent::Deleted { id, .. } => recent.remove(room, *id),
                    _ => {}
                }
                let recipients = self.membership.recipients(Some(room));
                for fanout in fanouts {
                    fanout.deliver(delivery, &recipients);
                }
                audience(delivery, &recipients)
            }
            None => {
                let _order = self.global.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(message) = new {
                    self.history.append(message);
                }
                let recipients = self.membership.recipients(None);
                for fanout in fanouts {
                    fanout.deliver(delivery, &recipients);
                }
                audience(delivery, &recipients)
            }
        };
        metrics::messages_out(delivery.event.kind(), reached as u64);
    }

    /// Joins `room` and hands over what the connection missed since message `since`:
    /// `attach(messages, recovered)` runs while no delivery to the room can slip in, and
    /// must queue `messages` and then subscribe the connection to live delivery.
    /// `recovered` is true only when nothing after `since` can be missing: from this
    /// pod's proven recent log, or from the store plus what this pod delivered since the
    /// read, with no loss on the bus meanwhile. Otherwise `recovered` is false with no
    /// messages (the client pages history). On an error, `attach` has not run.
    pub async fn recover(
        self: &Arc<Self>,
        sender: &Sender,
        room: &RoomName,
        since: Uuid,
        attach: impl FnOnce(Vec<Message>, bool),
    ) -> Result<(), ChatError> {
        let receipt = self.enter(sender, room)?;
        if let Err(e) = receipt.outcome().await {
            debug!(error = %e, "recovering without a confirmed subscription");
        }
        if self.single_node() {
            // One node, history in this process: the store under the delivery lock is
            // the whole truth (every message is stored just before its fan-out).
            let _delivering = self.recent(room);
            if let Some(found) = self.history.since_now(room, since) {
                match found {
                    Ok(Some(missed)) => attach(missed, true),
                    Ok(None) => attach(Vec::new(), false),
                    Err(e) => {
                        drop(_delivering);
                        self.leave(sender, room);
                        return Err(e.into());
                    }
                }
                self.go_live(&sender.conn, room);
                return Ok(());
            }
        }
        let mark = {
            let recent = self.recent(room);
            if let Some(missed) = recent.after(room, since, self.bus.losses()) {
                attach(missed, true);
                self.go_live(&sender.conn, room);
                return Ok(());
            }
            recent.mark(room)
        };
        let losses = self.bus.losses();
        let stored = self.history.since(room, since).await;
        let recent = self.recent(room);
        let newer = recent.newer_than(room, since, stored_slice(&stored), mark, losses);
        match (stored, newer) {
            (Ok(Some(mut missed)), Some(newer)) if self.bus.losses() == losses => {
                missed.extend(newer);
                attach(missed, true);
                self.go_live(&sender.conn, room);
            }
            (Ok(_), _) => {
                attach(Vec::new(), false);
                self.go_live(&sender.conn, room);
            }
            (Err(e), _) => {
                drop(recent);
                self.leave(sender, room);
                return Err(e.into());
            }
        }
        Ok(())
    }

    /// A page of `room`'s history, for anyone who may join the room.
    pub async fn history(
        &self,
        sender: &Sender,
        room: &RoomName,
        before: Option<Uuid>,
        limit: usize,
    ) -> Result<HistoryPage, ChatError> {
        sender.may_join(room)?;
        if limit == 0 || limit > MAX_HISTORY_PAGE {
            return Err(ChatError::invalid(format!(
                "limit must be 1-{MAX_HISTORY_PAGE}"
            )));
        }
        Ok(self.history.page(room, before, limit).await?)
    }

    /// Replaces the content of the sender's message `id`; the room gets `message:updated`.
    pub async fn edit(
        &self,
        sender: &Sender,
        room: &RoomName,
        id: Uuid,
        content: String,
    ) -> Result<Message, ChatError> {
        self.check_content(&content)?;
        sender.may_join(room)?;
        let message = self
            .history
            .edit(room, id, &sender.user, content, now_rfc3339())
            .await?;
        drop(self.emit(
            ChatEvent::Updated {
                message: message.clone(),
            },
            None,
        ));
        Ok(message)
    }

    /// Deletes the sender's message `id`; the room gets `message:deleted`.
    pub async fn delete(
        &self,
        sender: &Sender,
        room: &RoomName,
        id: Uuid,
    ) -> Result<(), ChatError> {
        sender.may_join(room)?;
        self.history.delete(room, id, &sender.user).await?;
        drop(self.emit(
            ChatEvent::Deleted {
                room: room.clone(),
                id,
            },
            None,
        ));
        Ok(())
    }

    /// The sender starts or stops typing in `room`; the others get `user:typing`.
    pub fn typing(&self, sender: &Sender, room: &RoomName, typing: bool) -> Result<(), ChatError> {
        if !self.membership.is_member(&sender.conn, room) {
            return Err(ChatError::Channel(format!("not a member of room {room}")));
        }
        let user = sender.user_ref();
        self.typing.set(room, &user, typing);
        drop(self.emit(
            ChatEvent::Typing {
                room: room.clone(),
                user,
                typing,
            },
            Some(sender.conn.clone()),
        ));
        Ok(())
    }

    /// Active rooms with member counts, across pods.
    pub async fn active_rooms(&self) -> Result<Vec<(String, u64)>, ChatError> {
        let local = self.membership.rooms();
        if self.single_node() {
            return Ok(local
                .iter()
                .map(|(r, n)| (r.to_string(), *n as u64))
                .collect());
        }
        Ok(self.presence_store.rooms(&local).await?)
    }
}

/// How many of `recipients` a delivery reaches (its origin is skipped).
fn audience(delivery: &Delivery, recipients: &super::Recipients<'_>) -> usize {
    let origin = delivery
        .origin
        .as_ref()
        .is_some_and(|o| recipients.contains(o));
    recipients.len().saturating_sub(usize::from(origin))
}

fn stored_slice(stored: &Result<Option<Vec<Message>>, super::StoreError>) -> &[Message] {
    match stored {
        Ok(Some(missed)) => missed,
        _ => &[],
    }
}

impl Inbound for ChatService {
    fn deliver(&self, delivery: &Delivery) {
        self.deliver_local(delivery);
    }
}
