//! [`ChatService`]: the use cases both transports call. Membership calls are
//! synchronous and never wait; a post is queued to the message log at once (so one
//! connection's messages are stored in the order sent) and delivered once stored, in
//! offset order (`sequence.rs`). Recovery and gap fills live in `recovery.rs`, presence
//! announcements in `announce.rs`.

use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::Duration;

use tracing::warn;
use uuid::Uuid;

use super::posting::Posting;
use super::presence::{Joined, LocalPresence};
use super::sequence::Sequences;
use super::typing::TypingTracker;
use super::{
    Appended, Bus, BusStatus, ChatError, ChatEvent, Committed, ConnId, Delivery, Encodings,
    HistoryPage, Inbound, Interest, LocalFanout, Mailbox, Membership, Message, MessageLog,
    MessageRef, NewConnection, PresenceStore, Receipt, RequestKeys, Retention, RoomName, Sender,
    Stored, Transport, Unstored,
};
use super::{Draft, Happened, MessageFilter, Observer, Verdict};
use crate::telemetry::metrics;

/// Locks over local fan-out: deliveries to rooms of different shards never wait for
/// each other; deliveries to one room are handed over in one order.
const DELIVERY_SHARDS: usize = 64;

/// Most messages one history request returns.
pub const MAX_HISTORY_PAGE: usize = 100;

/// A message accepted by the chat and queued to the message log.
pub struct Posted {
    appended: Appended,
    published: tokio::sync::oneshot::Receiver<Receipt>,
    id: Uuid,
    chat: Weak<ChatService>,
}

/// A posted message once stored.
#[derive(Debug)]
pub struct Accepted {
    /// The message as stored, with its offset.
    pub message: Arc<Message>,
    /// Settles once other pods have it (or could not be given it).
    pub published: Receipt,
}

impl Posted {
    /// Waits until the message is stored (and handed to the local members and the bus):
    /// the message with its offset, or why it was not stored (then nobody got it).
    pub async fn stored(self) -> Result<Accepted, ChatError> {
        match self.appended.await {
            Ok(message) => {
                let published = self
                    .published
                    .await
                    .unwrap_or_else(|_| Receipt::ready(Err(super::BusError::Unavailable)));
                Ok(Accepted { message, published })
            }
            Err(e) => {
                if let Some(chat) = self.chat.upgrade() {
                    chat.posting().remove(&self.id);
                }
                Err(e.into())
            }
        }
    }
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
    /// What the message log keeps (HISTORY_TTL, HISTORY_LIMIT), applied by the prune.
    pub retention: Retention,
}

/// The stores the chat keeps its state in.
pub struct Stores {
    /// The message log.
    pub log: Arc<dyn MessageLog>,
    /// Presence across pods.
    pub presence: Arc<dyn PresenceStore>,
    /// Idempotency keys of the server API, kept beside the log.
    pub keys: Arc<dyn RequestKeys>,
    /// Users' read positions, kept beside the log.
    pub reads: Arc<dyn super::ReadPositions>,
    /// Reactions on messages, kept beside the log.
    pub reactions: Arc<dyn super::Reactions>,
    /// Channels, kept beside the log.
    pub channels: Arc<dyn super::Channels>,
}

/// The chat domain: validates and decides, then hands events to the local fan-outs of
/// both transports and to the bus for other pods.
pub struct ChatService {
    /// This service, for the tasks it starts.
    pub(super) me: Weak<ChatService>,
    membership: Membership,
    fanouts: OnceLock<Vec<Arc<dyn LocalFanout>>>,
    pub(super) bus: Arc<dyn Bus>,
    pub(super) settings: ChatSettings,
    pub(super) log: Arc<dyn MessageLog>,
    pub(super) keys: Arc<dyn RequestKeys>,
    pub(super) reads: Arc<dyn super::ReadPositions>,
    pub(super) reactions: Arc<dyn super::Reactions>,
    pub(super) channels: Arc<dyn super::Channels>,
    /// Channel changes applied here so far (a join checked before one is checked again).
    pub(super) channel_epoch: std::sync::atomic::AtomicU64,
    pub(super) presence_store: Arc<dyn PresenceStore>,
    pub(super) presence: LocalPresence,
    pub(super) typing: TypingTracker,
    /// Per shard of rooms, also the delivery lock: local deliveries to a room and
    /// recovery hand-overs in it never interleave, and leave in offset order.
    sequences: Box<[Mutex<Sequences>]>,
    /// Orders global deliveries.
    global: Mutex<()>,
    shard_of: std::collections::hash_map::RandomState,
    /// Presence changes the store missed, applied by the next sync.
    pub(super) presence_unsynced: super::announce::Unsynced,
    /// Messages posted here and not handed on yet.
    posting: Mutex<Posting>,
    /// Local connections' joins and leaves not yet told to the presence store.
    pub(super) directory: super::directory::Directory,
    /// Read receipts sent within the last second, per user and room.
    pub(super) receipts: super::receipts::Receipts,
    /// The room of each thread with local members (a connection that leaves a room
    /// leaves its threads too).
    pub(super) thread_parents: Mutex<std::collections::HashMap<RoomName, RoomName>>,
    /// The application's backend judging messages (the message hook).
    filter: OnceLock<Arc<dyn MessageFilter>>,
    /// Where the backend is told what happened (webhooks).
    observer: OnceLock<Arc<dyn Observer>>,
}

impl ChatService {
    /// A chat publishing to `bus` and storing in `stores.log` (which it attaches to).
    /// Call [`ChatService::set_fanouts`] before serving and run
    /// [`ChatService::run_background`].
    pub fn new(bus: Arc<dyn Bus>, stores: Stores, settings: ChatSettings) -> Arc<Self> {
        let chat = Arc::new_cyclic(|me| Self {
            me: me.clone(),
            membership: Membership::default(),
            fanouts: OnceLock::new(),
            bus,
            settings,
            log: stores.log,
            keys: stores.keys,
            reads: stores.reads,
            reactions: stores.reactions,
            channels: stores.channels,
            channel_epoch: Default::default(),
            presence_store: stores.presence,
            presence: LocalPresence::default(),
            typing: TypingTracker::new(settings.typing_timeout),
            sequences: (0..DELIVERY_SHARDS)
                .map(|_| Mutex::new(Sequences::default()))
                .collect(),
            global: Mutex::new(()),
            shard_of: std::collections::hash_map::RandomState::new(),
            presence_unsynced: Default::default(),
            posting: Mutex::default(),
            directory: Default::default(),
            receipts: Default::default(),
            thread_parents: Mutex::default(),
            filter: OnceLock::new(),
            observer: OnceLock::new(),
        });
        let committed: Arc<dyn Committed> = chat.clone();
        chat.log.attach(Arc::downgrade(&committed));
        chat
    }

    /// Installs the transports' local fan-outs (once; later calls are ignored).
    pub fn set_fanouts(&self, fanouts: Vec<Arc<dyn LocalFanout>>) {
        if self.fanouts.set(fanouts).is_err() {
            warn!("chat fan-outs were already set");
        }
    }

    /// Connects the application's backend: the message hook and the webhooks (once;
    /// later calls are ignored).
    pub fn set_backend(
        &self,
        filter: Option<Arc<dyn MessageFilter>>,
        observer: Option<Arc<dyn Observer>>,
    ) {
        if let Some(filter) = filter {
            let _ = self.filter.set(filter);
        }
        if let Some(observer) = observer {
            let _ = self.observer.set(observer);
        }
    }

    /// Whether messages go to the backend's message hook before they are stored.
    pub fn judges_messages(&self) -> bool {
        self.filter.get().is_some()
    }

    /// Tells the backend what `happened` makes, when it listens.
    pub(super) fn observe(&self, happened: impl FnOnce() -> Happened) {
        if let Some(observer) = self.observer.get() {
            observer.observe(happened());
        }
    }

    /// [`ChatService::post`] after the backend's message hook allowed (or replaced) the
    /// message; without a hook, the same as `post`. The caller holds the connection's
    /// turn across the wait, so its messages keep their order.
    pub async fn submit(
        &self,
        sender: &Sender,
        room: Option<RoomName>,
        content: String,
    ) -> Result<Posted, ChatError> {
        if self.filter.get().is_none() {
            return self.post(sender, room, content);
        }
        // What the chat would refuse anyway is refused without asking.
        self.check_content(&content)?;
        match &room {
            Some(room) if !self.membership.is_member(&sender.conn, room) => {
                return Err(ChatError::Channel(format!("not a member of room {room}")));
            }
            Some(_) => {}
            None => sender.may_post_global()?,
        }
        let content = self.judge(sender, room.clone(), content).await?;
        self.post(sender, room, content)
    }

    /// The content the backend's message hook lets `sender` send to `room` (its
    /// replacement, or the content itself; without a hook, the content), or its refusal.
    pub(super) async fn judge(
        &self,
        sender: &Sender,
        room: Option<RoomName>,
        content: String,
    ) -> Result<String, ChatError> {
        let Some(filter) = self.filter.get() else {
            return Ok(content);
        };
        let draft = Draft {
            room,
            user: sender.user_ref(),
            content,
            edit: None,
        };
        let content = draft.content.clone();
        match filter.check(draft).await? {
            Verdict::Allow => Ok(content),
            Verdict::Replace(replaced) => Ok(replaced),
            Verdict::Refuse(e) => Err(e),
        }
    }

    /// The local membership table.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    pub(super) fn posting(&self) -> MutexGuard<'_, Posting> {
        self.posting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The delivery lock and message order of `room`'s shard.
    pub(super) fn sequences(&self, room: &RoomName) -> MutexGuard<'_, Sequences> {
        let shard = (self.shard_of.hash_one(room) as usize) % self.sequences.len();
        self.sequences[shard]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Marks every anchored room as possibly behind the log; the rooms needing a fill.
    pub(super) fn all_lost(&self) -> Vec<RoomName> {
        let mut rooms = Vec::new();
        for shard in self.sequences.iter() {
            rooms.extend(shard.lock().unwrap_or_else(|e| e.into_inner()).lost());
        }
        rooms
    }

    /// No other pod: the local presence counts are the whole truth.
    pub(super) fn single_node(&self) -> bool {
        self.bus.status() == BusStatus::Disabled
    }

    /// Registers a new connection, with its transport's `mailbox` for fan-out.
    pub fn connect(&self, sender: &Sender, transport: Transport, mailbox: Option<Mailbox>) {
        let listed = self.membership.connect_from(
            NewConnection {
                conn: sender.conn.clone(),
                transport,
                user: &sender.user,
                name: sender.name.clone(),
                name_unverified: sender.name_unverified,
                address: sender.ip,
            },
            mailbox,
        );
        metrics::connected(transport);
        for fanout in self.fanouts() {
            fanout.connected(&listed);
        }
        // Every connection is present in presence:global, which nobody joins by being
        // connected: its members are those who asked to hear it.
        if let Some(chat) = self.me.upgrade() {
            chat.count_present(sender, &RoomName::global_presence());
        }
    }

    /// Adds the connection to `room` if its identity may join it. The receipt settles
    /// once messages other pods send to `room` reach this pod and the room's place in
    /// the log is known here.
    pub fn join(self: &Arc<Self>, sender: &Sender, room: &RoomName) -> Result<Receipt, ChatError> {
        let receipt = self.enter(sender, room)?;
        self.go_live(&sender.conn, room);
        Ok(receipt)
    }

    /// Makes a member of `room` get deliveries, telling the transports.
    pub(super) fn go_live(&self, conn: &ConnId, room: &RoomName) {
        if let Some(transport) = self.membership.set_live(conn, room) {
            for fanout in self.fanouts() {
                fanout.joined(conn, transport, room);
            }
        }
    }

    pub(super) fn fanouts(&self) -> &[Arc<dyn LocalFanout>] {
        self.fanouts.get().map(Vec::as_slice).unwrap_or_default()
    }

    /// Adds the connection to `room`, not live yet.
    pub(super) fn enter(
        self: &Arc<Self>,
        sender: &Sender,
        room: &RoomName,
    ) -> Result<Receipt, ChatError> {
        sender.may_join(room)?;
        self.enter_checked(sender, room)
    }

    /// [`ChatService::enter`] once the caller checked that `sender` may join `room` (a
    /// thread's room, whose root's room was checked).
    pub(super) fn enter_checked(
        self: &Arc<Self>,
        sender: &Sender,
        room: &RoomName,
    ) -> Result<Receipt, ChatError> {
        let joined = self.membership.join(&sender.conn, room);
        if let Some((true, _)) = joined {
            self.record_join(&sender.conn, room);
        }
        let receipt = match joined {
            None => return Err(ChatError::Internal("connection is not registered".into())),
            Some((true, Interest::Gained)) => {
                let anchored = self.sequences(room).open(room);
                let subscribed = self.bus.interest(room, true);
                return Ok(self.anchoring(sender, room, subscribed, anchored));
            }
            Some((true, _)) => self.bus.settled(),
            // Already a member: nothing changes, presence included.
            Some((false, _)) => {
                let anchored = self.sequences(room).anchored(room);
                return Ok(self.once_anchored(self.bus.settled(), anchored));
            }
        };
        self.announce_join(sender, room);
        let anchored = self.sequences(room).anchored(room);
        Ok(self.once_anchored(receipt, anchored))
    }

    /// Announces `sender` online in `room` if this is their first connection in it
    /// (presence:global counts connections, not members: `connect` counts them there).
    pub(super) fn announce_join(self: &Arc<Self>, sender: &Sender, room: &RoomName) {
        if !room.is_global_presence() {
            self.count_present(sender, room);
        }
    }

    /// Counts one more connection of `sender` in `room`'s presence, announcing them
    /// online if it is their first.
    fn count_present(self: &Arc<Self>, sender: &Sender, room: &RoomName) {
        if let Joined::First(status) = self.presence.join(room, &sender.user_ref()) {
            let (chat, room, user) = (self.clone(), room.clone(), sender.user_ref());
            tokio::spawn(async move { chat.announce_online(room, user, status).await });
        }
    }

    /// Removes the connection from `room` (leaving a room one is not in is not an error).
    pub fn leave(self: &Arc<Self>, sender: &Sender, room: &RoomName) {
        self.leave_conn(&sender.conn, &sender.user, room);
    }

    /// Removes `conn`, a connection of `user`, from `room`.
    pub(super) fn leave_conn(self: &Arc<Self>, conn: &ConnId, user: &str, room: &RoomName) {
        if !self.membership.is_member(conn, room) {
            return;
        }
        let transport = self.membership.transport_of(conn);
        let interest = self.membership.leave(conn, room);
        self.record_leave(conn, room);
        if let Some(transport) = transport {
            for fanout in self.fanouts() {
                fanout.left(conn, transport, room);
            }
        }
        self.left(room, user, interest);
        if !room.is_thread() {
            self.leave_threads_of(conn, user, room);
        }
    }

    /// Forgets the connection and every room membership it had.
    pub fn disconnect(self: &Arc<Self>, conn: &ConnId) {
        let Some(departed) = self.membership.disconnect(conn) else {
            return;
        };
        metrics::disconnected(departed.transport);
        for fanout in self.fanouts() {
            fanout.disconnected(conn, departed.transport);
        }
        for (room, interest) in departed.rooms {
            self.record_leave(conn, &room);
            for fanout in self.fanouts() {
                fanout.left(conn, departed.transport, &room);
            }
            self.left(&room, &departed.user, interest);
        }
        self.presence_left(&RoomName::global_presence(), &departed.user);
    }

    fn left(self: &Arc<Self>, room: &RoomName, user: &str, interest: Interest) {
        if interest == Interest::Lost {
            drop(self.bus.interest(room, false));
            self.sequences(room).forget(room);
            if room.is_thread() {
                self.forget_thread(room);
            }
        }
        if !room.is_global_presence() {
            self.presence_left(room, user);
        }
    }

    /// One connection of `user` less in `room`'s presence: after the grace, when it was
    /// the last, `user` is announced offline there.
    fn presence_left(self: &Arc<Self>, room: &RoomName, user: &str) {
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

    /// Sends a chat message to `room` (or to everyone when `None`): queues it to the
    /// message log at once; once stored it goes to local members (in offset order) and
    /// to other pods. Never waits; [`Posted::stored`] tells the outcome.
    pub fn post(
        &self,
        sender: &Sender,
        room: Option<RoomName>,
        content: String,
    ) -> Result<Posted, ChatError> {
        self.check_content(&content)?;
        match &room {
            Some(room) if room.is_thread() => {
                return Err(ChatError::invalid(
                    "reply in a thread with {room, content, thread: <root id>}",
                ));
            }
            Some(room) if room.is_global_presence() => {
                return Err(ChatError::Channel(format!(
                    "{room} carries presence only; nobody sends to it"
                )));
            }
            Some(room) if !self.membership.is_member(&sender.conn, room) => {
                return Err(ChatError::Channel(format!("not a member of room {room}")));
            }
            Some(_) => {}
            None => sender.may_post_global()?,
        }
        let mut message = Message::chat(room, sender.user.clone(), content);
        message.user = sender.message_user();
        // The offset the log adds is counted at its widest.
        self.queue_from(sender, message)
    }

    /// Queues `sender`'s `message` to the log once its size (counting the widest offset
    /// the log adds) is within MAX_MESSAGE_BYTES; ends the sender's typing there.
    pub(super) fn queue_from(
        &self,
        sender: &Sender,
        message: Message,
    ) -> Result<Posted, ChatError> {
        let size = encoded_len(&message) + MAX_OFFSET_FIELD;
        let limit = self.settings.max_message_bytes;
        if size > limit {
            return Err(ChatError::TooLarge { size, limit });
        }
        if let Some(room) = &message.room {
            self.typing.set(room, &sender.user_ref(), false);
        }
        Ok(self.queue(
            Unstored {
                message,
                sender_name: sender.name.clone(),
                origin: Some(sender.conn.clone()),
            },
            Some(sender.conn.clone()),
        ))
    }

    /// Queues `entry` to the log, its publish receipt going to the returned handle.
    pub(super) fn queue(&self, entry: Unstored, origin: Option<ConnId>) -> Posted {
        let (published_tx, published) = tokio::sync::oneshot::channel();
        let id = entry.message.id;
        self.posting().insert(id, origin, published_tx);
        let appended = self.log.append(entry);
        Posted {
            appended,
            published,
            id,
            chat: self.me.clone(),
        }
    }

    pub(super) fn check_content(&self, content: &str) -> Result<(), ChatError> {
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
    /// member in one order and rooms never wait for each other's fan-out. A stored chat
    /// message goes through its room's order instead (`ChatService::sequenced`).
    pub fn deliver_local(&self, delivery: &Delivery) {
        match &*delivery.event {
            ChatEvent::Ended { user, .. } => return self.end_local(user, delivery),
            ChatEvent::Command { selection, command } => {
                if let Some(chat) = self.me.upgrade() {
                    chat.apply(selection, command);
                }
                return;
            }
            ChatEvent::Emitted { selection, .. } => {
                let _order = self.global.lock().unwrap_or_else(|e| e.into_inner());
                let recipients = self.membership.selected(selection);
                for fanout in self.fanouts() {
                    fanout.deliver(delivery, &recipients);
                }
                metrics::messages_out(delivery.event.kind(), recipients.len() as u64);
                return;
            }
            _ => {}
        }
        match delivery.event.room() {
            Some(room) => {
                let _order = self.sequences(room);
                self.fan_out(delivery, Some(room));
            }
            None => {
                let _order = self.global.lock().unwrap_or_else(|e| e.into_inner());
                self.fan_out(delivery, None);
            }
        }
        match &*delivery.event {
            ChatEvent::Removed { room, user, .. } => self.remove_local(room, user),
            ChatEvent::ChannelUpdated { channel } => {
                self.apply_channel(&channel.room, Some(channel))
            }
            ChatEvent::ChannelDeleted { room } => self.apply_channel(room, None),
            _ => {}
        }
    }

    /// Hands a stored chat message on in its room's offset order: now if it is next,
    /// later (once the missing ones are fetched from the log) if it is early, never if
    /// it was already handed on.
    pub(super) fn sequenced(&self, delivery: &Delivery) {
        let (Some(room), Some(offset)) = (
            delivery.event.room(),
            delivery.event.as_message().and_then(|m| m.offset),
        ) else {
            return self.deliver_local(delivery);
        };
        let mut order = self.sequences(room);
        let offered = order.offer(room, offset, delivery);
        for ready in &offered.ready {
            self.fan_out(ready, Some(room));
        }
        drop(order);
        if offered.fill {
            self.start_fill(room.clone());
        }
    }

    /// Fans `delivery` out to the local members of `room` (everyone for `None`); the
    /// caller holds the order lock.
    pub(super) fn fan_out(&self, delivery: &Delivery, room: Option<&RoomName>) {
        let recipients = self.membership.recipients(room);
        for fanout in self.fanouts() {
            fanout.deliver(delivery, &recipients);
        }
        let reached = audience(delivery, &recipients);
        metrics::messages_out(delivery.event.kind(), reached as u64);
    }

    /// A page of `room`'s history, for anyone who may join the room.
    pub async fn history(
        &self,
        sender: &Sender,
        room: &RoomName,
        before: Option<MessageRef>,
        limit: usize,
    ) -> Result<HistoryPage, ChatError> {
        self.admits(sender, room).await?;
        check_page_limit(limit)?;
        let page = self.log.page(room, before, limit).await?;
        let page = self.with_reactions(page).await?;
        self.with_threads(page).await
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
        self.may_use(sender, room).await?;
        let content = match self.filter.get() {
            None => content,
            Some(filter) => {
                let draft = Draft {
                    room: Some(room.clone()),
                    user: sender.user_ref(),
                    content,
                    edit: Some(id),
                };
                let content = draft.content.clone();
                match filter.check(draft).await? {
                    Verdict::Allow => content,
                    Verdict::Replace(replaced) => replaced,
                    Verdict::Refuse(e) => return Err(e),
                }
            }
        };
        let message = self.log.edit(room, id, Some(&sender.user), content).await?;
        self.edited(&message);
        Ok(message)
    }

    /// Tells the room (`message:updated`) and the backend that `message` was edited.
    pub(super) fn edited(&self, message: &Message) {
        self.observe(|| Happened::Edited(Box::new(message.clone())));
        drop(self.emit(
            ChatEvent::Updated {
                message: message.clone(),
            },
            None,
        ));
    }

    /// Tells the room (`message:deleted`) and the backend that message `id` was deleted.
    pub(super) fn deleted(&self, room: &RoomName, id: Uuid) {
        self.observe(|| Happened::Deleted {
            room: room.clone(),
            id,
        });
        drop(self.emit(
            ChatEvent::Deleted {
                room: room.clone(),
                id,
            },
            None,
        ));
    }

    /// Deletes the sender's message `id`; the room gets `message:deleted`.
    pub async fn delete(
        &self,
        sender: &Sender,
        room: &RoomName,
        id: Uuid,
    ) -> Result<(), ChatError> {
        self.may_use(sender, room).await?;
        self.log.delete(room, id, Some(&sender.user)).await?;
        self.deleted(room, id);
        Ok(())
    }

    /// The sender starts or stops typing in `room`; the others get `user:typing`.
    pub fn typing(&self, sender: &Sender, room: &RoomName, typing: bool) -> Result<(), ChatError> {
        if room.is_global_presence() {
            return Err(ChatError::Channel(format!("{room} carries presence only")));
        }
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

/// Refuses a history page size outside 1-[`MAX_HISTORY_PAGE`].
pub(super) fn check_page_limit(limit: usize) -> Result<(), ChatError> {
    if limit == 0 || limit > MAX_HISTORY_PAGE {
        return Err(ChatError::invalid(format!(
            "limit must be 1-{MAX_HISTORY_PAGE}"
        )));
    }
    Ok(())
}

/// The widest `"offset":N` the log adds to a message's JSON.
pub(super) const MAX_OFFSET_FIELD: usize = r#","offset":18446744073709551615"#.len();

/// The length of `message`'s JSON, measured without keeping it.
pub(super) fn encoded_len(message: &Message) -> usize {
    struct Count(usize);
    impl std::io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    // A Message holds only strings, a UUID and a JSON value: encoding cannot fail.
    let _ = serde_json::to_writer(&mut count, message);
    count.0
}

impl Inbound for ChatService {
    fn deliver(&self, delivery: &Delivery) {
        self.sequenced(delivery);
    }

    fn connections_of(&self, user: Option<&str>) -> Vec<super::UserConnection> {
        let limit = super::ports::MAX_LISTED_CONNECTIONS;
        self.membership.connections_of_user(user, limit)
    }

    fn command(&self, selection: &super::Selection, command: &super::RoomsCommand) {
        if let Some(chat) = self.me.upgrade() {
            chat.apply(selection, command);
        }
    }
}

impl Committed for ChatService {
    fn committed(&self, stored: &[Stored]) {
        for stored in stored {
            // Encoded once here: the raw frame, the socket.io payload and the bus
            // envelope's core share this JSON.
            let delivery = Delivery {
                encoded: Arc::new(Encodings::with_message(stored.message.to_json())),
                event: Arc::new(ChatEvent::Message {
                    message: stored.message.clone(),
                }),
                origin: stored.origin.clone(),
            };
            self.sequenced(&delivery);
            self.thread_replied(&stored.message);
            self.observe(|| Happened::Stored(stored.message.clone()));
            let receipt = self.bus.publish(&delivery);
            match self.posting().remove(&stored.message.id) {
                Some(ack) => {
                    let _ = ack.send(receipt);
                }
                None => drop(receipt),
            }
        }
    }
}
