//! [`ChatService`]: the use cases both transports call. Membership and posting are
//! synchronous and never wait, so calls made in one order are delivered everywhere in
//! that order; history, presence and recovery talk to the stores asynchronously.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use uuid::Uuid;

use super::presence::{Joined, LocalPresence};
use super::recent::Recent;
use super::typing::TypingTracker;
use super::{
    now_rfc3339, ChatError, ChatEvent, ConnId, Delivery, Interest, LocalFanout, Membership,
    Message, RoomName, Sender, Status, Transport, UserRef,
};
use crate::bus::{Bus, Receipt};
use crate::store::{HistoryPage, HistoryStore, PresenceStore};
use crate::telemetry::metrics;

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
    bus: Arc<dyn Bus>,
    settings: ChatSettings,
    history: Arc<dyn HistoryStore>,
    presence_store: Arc<dyn PresenceStore>,
    presence: LocalPresence,
    typing: TypingTracker,
    /// Also the delivery lock: local deliveries and recovery hand-overs never interleave.
    recent: Mutex<Recent>,
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
            recent: Mutex::new(Recent::new(settings.history_limit)),
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

    fn recent(&self) -> MutexGuard<'_, Recent> {
        self.recent.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new connection.
    pub fn connect(&self, sender: &Sender, transport: Transport) {
        self.membership
            .connect(sender.conn.clone(), transport, &sender.user);
        metrics::connected(transport);
    }

    /// Adds the connection to `room` if its identity may join it. The receipt settles
    /// once messages other pods send to `room` reach this pod.
    pub fn join(self: &Arc<Self>, sender: &Sender, room: &RoomName) -> Result<Receipt, ChatError> {
        sender.may_join(room)?;
        let receipt = match self.membership.join(&sender.conn, room) {
            None => return Err(ChatError::Internal("connection is not registered".into())),
            Some((true, Interest::Gained)) => self.bus.interest(room, true),
            Some((true, _)) => self.bus.settled(),
            // Already a member: nothing changes, presence included.
            Some((false, _)) => return Ok(self.bus.settled()),
        };
        if let Joined::First(status) = self.presence.join(room, &sender.user_ref()) {
            let (chat, room, user) = (self.clone(), room.clone(), sender.user_ref());
            tokio::spawn(async move { chat.announce_online(room, user, status).await });
        }
        Ok(receipt)
    }

    async fn announce_online(&self, room: RoomName, user: UserRef, status: Status) {
        match self.presence_store.online(&room, &user, status).await {
            Ok(true) => drop(self.emit(ChatEvent::Presence { room, user, status }, None)),
            Ok(false) => {}
            Err(e) => debug!(error = %e, "presence not recorded"),
        }
    }

    /// Removes the connection from `room` (leaving a room one is not in is not an error).
    pub fn leave(self: &Arc<Self>, sender: &Sender, room: &RoomName) {
        if !self.membership.is_member(&sender.conn, room) {
            return;
        }
        let interest = self.membership.leave(&sender.conn, room);
        self.left(room, &sender.user, interest);
    }

    /// Forgets the connection and every room membership it had.
    pub fn disconnect(self: &Arc<Self>, conn: &ConnId) {
        let Some(departed) = self.membership.disconnect(conn) else {
            return;
        };
        metrics::disconnected(departed.transport);
        for (room, interest) in departed.rooms {
            self.left(&room, &departed.user, interest);
        }
    }

    fn left(self: &Arc<Self>, room: &RoomName, user: &str, interest: Interest) {
        if interest == Interest::Lost {
            drop(self.bus.interest(room, false));
            self.recent().forget(room);
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

    async fn announce_offline(&self, room: RoomName, user: String) {
        let Some(user) = self.presence.expire(&room, &user) else {
            return;
        };
        self.typing.set(&room, &user, false);
        match self.presence_store.offline(&room, &user.id).await {
            Ok(true) => drop(self.emit(
                ChatEvent::Presence {
                    room,
                    user,
                    status: Status::Offline,
                },
                None,
            )),
            Ok(false) => {}
            Err(e) => debug!(error = %e, "presence not removed"),
        }
    }

    /// Delivers `event` here and publishes it to other pods.
    fn emit(&self, event: ChatEvent, origin: Option<ConnId>) -> Receipt {
        let delivery = Delivery {
            event: Arc::new(event),
            origin,
        };
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
        let size = message.to_json().len();
        let limit = self.settings.max_message_bytes;
        if size > limit {
            return Err(ChatError::TooLarge { size, limit });
        }
        let message = Arc::new(message);
        if let Some(room) = &message.room {
            self.typing.set(room, &sender.user_ref(), false);
        }
        let delivery = Delivery {
            event: Arc::new(ChatEvent::Message {
                message: (*message).clone(),
            }),
            origin: Some(sender.conn.clone()),
        };
        self.deliver_local(&delivery);
        self.history.append(&message);
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

    /// Hands a delivery to every local transport, in order.
    pub fn deliver_local(&self, delivery: &Delivery) {
        let mut recent = self.recent();
        match (&*delivery.event, delivery.event.room()) {
            (ChatEvent::Message { message }, Some(room)) => {
                recent.push(room, Arc::new(message.clone()));
            }
            (ChatEvent::Updated { message }, Some(room)) => recent.update(room, message),
            (ChatEvent::Deleted { id, .. }, Some(room)) => recent.remove(room, *id),
            _ => {}
        }
        for fanout in self.fanouts.get().map(Vec::as_slice).unwrap_or_default() {
            fanout.deliver(delivery);
        }
        drop(recent);
        let audience = match delivery.event.room() {
            Some(room) => self.membership.room_size(room),
            None => self.membership.connection_count(),
        };
        let origin_counted =
            delivery
                .origin
                .as_ref()
                .is_some_and(|o| match delivery.event.room() {
                    Some(room) => self.membership.is_member(o, room),
                    None => true,
                });
        let recipients = audience.saturating_sub(usize::from(origin_counted));
        metrics::messages_out(delivery.event.kind(), recipients as u64);
    }

    /// Joins `room` and hands over what the connection missed since message `since`:
    /// `attach(messages, recovered)` runs while no delivery to the room can slip in, and
    /// must queue `messages` and then subscribe the connection to live delivery.
    /// `recovered` is false when `since` is older than the retained history.
    pub async fn recover(
        self: &Arc<Self>,
        sender: &Sender,
        room: &RoomName,
        since: Uuid,
        attach: impl FnOnce(Vec<Message>, bool),
    ) -> Result<(), ChatError> {
        let receipt = self.join(sender, room)?;
        if let Err(e) = receipt.outcome().await {
            debug!(error = %e, "recovering without a confirmed subscription");
        }
        {
            let recent = self.recent();
            if let Some(missed) = recent.after(room, since) {
                attach(missed, true);
                return Ok(());
            }
        }
        let stored = self.history.since(room, since).await;
        let recent = self.recent();
        match (stored, recent.after(room, since)) {
            (_, Some(missed)) => attach(missed, true),
            (Ok(Some(mut missed)), None) => {
                let newer = recent.newer_than(room, since, &missed);
                missed.extend(newer);
                attach(missed, true);
            }
            (Ok(None), None) => attach(Vec::new(), false),
            (Err(e), None) => {
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

    /// Sets the sender's status in every room they are in; those rooms get `presence:update`.
    pub async fn set_status(&self, sender: &Sender, status: Status) -> Result<(), ChatError> {
        if status == Status::Offline {
            return Err(ChatError::invalid("status must be online, away or busy"));
        }
        for (room, user) in self.presence.set_status(&sender.user, status) {
            if let Err(e) = self.presence_store.online(&room, &user, status).await {
                debug!(error = %e, "status not recorded");
            }
            drop(self.emit(ChatEvent::Presence { room, user, status }, None));
        }
        Ok(())
    }

    /// Who is online in `room`, for anyone who may join it.
    pub async fn presence_list(
        &self,
        sender: &Sender,
        room: &RoomName,
    ) -> Result<Vec<(UserRef, Status)>, ChatError> {
        sender.may_join(room)?;
        Ok(self.presence_store.list(room).await?)
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
        Ok(self.presence_store.rooms(&local).await?)
    }

    /// Ends stale typing indicators and renews presence until `cancel`.
    pub async fn run_background(self: Arc<Self>, cancel: CancellationToken) {
        let mut typing_tick = tokio::time::interval(Duration::from_millis(250));
        let mut presence_tick = tokio::time::interval(self.settings.presence_heartbeat);
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                _ = typing_tick.tick() => {
                    for (room, user) in self.typing.expired() {
                        drop(self.emit(ChatEvent::Typing { room, user, typing: false }, None));
                    }
                }
                _ = presence_tick.tick() => {
                    self.history.sweep();
                    let rooms = self.membership.rooms();
                    match self.presence_store.heartbeat(&rooms).await {
                        Ok(gone) => {
                            for (room, user) in gone {
                                let status = Status::Offline;
                                drop(self.emit(ChatEvent::Presence { room, user, status }, None));
                            }
                        }
                        Err(e) => debug!(error = %e, "presence heartbeat failed"),
                    }
                }
            }
        }
    }
}
