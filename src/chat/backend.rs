//! What the application's backend does through the server API: publish as the server
//! or on behalf of a user (once per idempotency key), remove a user from a room or end
//! all of a user's connections on every pod, moderate any message, and read presence,
//! history and a user's connections without a user's room rules.

use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

use super::{
    now_ms, Accepted, Asked, ChatError, ChatEvent, Claim, ConnId, Delivery, HistoryPage, Message,
    MessageRef, MessageType, PodConnections, Posted, Receipt, RoomName, RoomsCommand, Selection,
    Sender, Status, Unstored, UserRef,
};
use crate::chat::service::{check_page_limit, encoded_len, MAX_OFFSET_FIELD};
use crate::chat::ChatService;

/// How long an idempotency key is remembered.
pub const IDEMPOTENCY_WINDOW: Duration = Duration::from_secs(600);

/// Longest idempotency key accepted.
pub const MAX_IDEMPOTENCY_KEY: usize = 255;

/// How long after its key was taken a message is surely stored or failed: a repeat
/// before then gets CONFLICT, after it the log is asked.
pub const SETTLED_WITHIN: Duration = Duration::from_secs(30);

/// What a key holds while its message is on its way: the message's id, and when the
/// outcome is surely known.
struct Marker {
    id: Uuid,
    settled_by: u64,
}

impl Marker {
    fn for_message(id: Uuid, now: u64) -> Self {
        Self {
            id,
            settled_by: now + SETTLED_WITHIN.as_millis() as u64,
        }
    }

    fn parse(held: &str) -> Option<Self> {
        let value: Value = serde_json::from_str(held).ok()?;
        let pending = value.get("pending")?;
        Some(Self {
            id: Uuid::parse_str(pending.get("id")?.as_str()?).ok()?,
            settled_by: pending.get("settled_by")?.as_u64()?,
        })
    }
}

impl std::fmt::Display for Marker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value =
            serde_json::json!({ "pending": { "id": self.id, "settled_by": self.settled_by } });
        write!(f, "{value}")
    }
}

/// Longest reason shown to a removed or disconnected user.
pub const MAX_REASON: usize = 256;

/// A message the backend publishes.
#[derive(Debug, Clone)]
pub struct Publication {
    /// Its room; `None`: to everyone.
    pub room: Option<RoomName>,
    /// `chat` (on behalf of a user), `notification` or `system`.
    pub kind: MessageType,
    /// The user it is sent as, or the server.
    pub from: String,
    /// The display name kept beside it.
    pub name: Option<String>,
    /// Its `data`, an object; a `content`, when present, is checked like a user's.
    pub data: Value,
}

/// The outcome of a publish with an idempotency key.
#[derive(Debug)]
pub enum Published {
    /// Published now.
    Now(Accepted),
    /// Published by an earlier request with the same key: that message.
    Before(Box<Message>),
}

impl ChatService {
    /// Publishes `publication` to its room (or everyone): stored in the log, then
    /// delivered like a user's message, to members of both transports on every pod.
    /// Membership and room rules do not apply; size and content rules do.
    pub fn publish(&self, publication: Publication) -> Result<Posted, ChatError> {
        let entry = self.prepare(publication)?;
        Ok(self.queue(entry, None))
    }

    /// Checks `publication` and makes its message (with its id).
    fn prepare(&self, publication: Publication) -> Result<Unstored, ChatError> {
        let Publication {
            room,
            kind,
            from,
            name,
            data,
        } = publication;
        if room.as_ref().is_some_and(RoomName::is_thread) {
            return Err(ChatError::invalid(
                "a thread's room takes replies from its members only",
            ));
        }
        if !matches!(
            kind,
            MessageType::Chat | MessageType::Notification | MessageType::System
        ) {
            return Err(ChatError::invalid(
                "type must be chat, notification or system",
            ));
        }
        let Some(fields) = data.as_object() else {
            return Err(ChatError::invalid("data must be an object"));
        };
        match fields.get("content") {
            Some(Value::String(content)) => self.check_content(content)?,
            Some(_) => return Err(ChatError::invalid("content must be a string")),
            None if kind == MessageType::Chat => {
                return Err(ChatError::invalid("a chat message needs a content"))
            }
            None => {}
        }
        let mut message = Message::new(kind, room, from, data);
        message.user = name.as_ref().map(|name| UserRef {
            id: message.from.clone(),
            name: name.clone(),
            unverified: false,
        });
        let size = encoded_len(&message) + MAX_OFFSET_FIELD;
        let limit = self.settings.max_message_bytes;
        if size > limit {
            return Err(ChatError::TooLarge { size, limit });
        }
        Ok(Unstored {
            message,
            sender_name: name,
            origin: None,
        })
    }

    /// [`ChatService::publish`] at most once per `key` within [`IDEMPOTENCY_WINDOW`],
    /// across pods: a repeat gets the first one's message. `fingerprint` names the
    /// request; a key reused for another request is refused.
    ///
    /// The key holds the id of the message it publishes from the start. A repeat while
    /// that message may still be on its way to the log gets CONFLICT; later, the log is
    /// asked: the message is there (the repeat gets it), or it never was stored (the
    /// repeat publishes, and of two such repeats one wins the key). So a failure whose
    /// outcome is unknown (a commit timeout) never leads to a second copy.
    pub async fn publish_once(
        &self,
        key: &str,
        fingerprint: &str,
        publication: Publication,
    ) -> Result<Published, ChatError> {
        if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY || key.chars().any(char::is_control) {
            return Err(ChatError::invalid(format!(
                "Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY} printable characters"
            )));
        }
        let entry = self.prepare(publication)?;
        let now = now_ms();
        let expires = now + IDEMPOTENCY_WINDOW.as_millis() as u64;
        let marker = Marker::for_message(entry.message.id, now).to_string();
        let reused = || ChatError::invalid("this Idempotency-Key was used for a different request");
        let running = || {
            ChatError::Conflict(
                "a request with this Idempotency-Key is still running; retry later".into(),
            )
        };
        let held = match self
            .keys
            .claim(key, fingerprint, &marker, now, expires)
            .await?
        {
            Claim::Fresh => return self.publish_keyed(key, entry).await,
            Claim::Pending { .. } => return Err(running()),
            Claim::Done {
                fingerprint: held, ..
            } if held != fingerprint => return Err(reused()),
            Claim::Done { result, .. } => result,
        };
        let Some(earlier) = Marker::parse(&held) else {
            return serde_json::from_str(&held)
                .map(|message| Published::Before(Box::new(message)))
                .map_err(|e| ChatError::Internal(format!("unreadable stored result: {e}")));
        };
        if now < earlier.settled_by {
            return Err(running());
        }
        if let Some(message) = self.log.find(earlier.id).await? {
            self.settle_key(key, &message.to_json()).await;
            return Ok(Published::Before(Box::new(message)));
        }
        // Never stored: this repeat publishes, unless another one took the key first.
        if self.keys.replace(key, &held, &marker, expires).await? {
            self.publish_keyed(key, entry).await
        } else {
            Err(running())
        }
    }

    /// Publishes `entry` for the request holding `key`, recording its result; after a
    /// failure the key keeps its marker (see [`ChatService::publish_once`]).
    async fn publish_keyed(&self, key: &str, entry: Unstored) -> Result<Published, ChatError> {
        let accepted = self.queue(entry, None).stored().await?;
        self.settle_key(key, &accepted.message.to_json()).await;
        Ok(Published::Now(accepted))
    }

    async fn settle_key(&self, key: &str, result: &str) {
        if let Err(e) = self.keys.settle(key, result).await {
            // The marker stays: a repeat finds the message in the log.
            tracing::warn!(error = %e, "idempotency key not settled");
        }
    }

    /// Removes every connection of `user` from `room`, on every pod; the room (the user
    /// included) hears `room:removed` first.
    pub fn remove_user(&self, room: RoomName, user: String, reason: Option<String>) -> Receipt {
        let reason = reason.map(|r| super::excerpt(&r, MAX_REASON).to_owned());
        self.emit(ChatEvent::Removed { room, user, reason }, None)
    }

    /// Ends every connection of `user`, on every pod; each hears `session:ended` first.
    pub fn end_user(&self, user: String, reason: Option<String>) -> Receipt {
        let reason = reason.map(|r| super::excerpt(&r, MAX_REASON).to_owned());
        self.emit(ChatEvent::Ended { user, reason }, None)
    }

    /// This pod's part of [`ChatService::remove_user`], after the room heard it.
    pub(super) fn remove_local(&self, room: &RoomName, user: &str) {
        let Some(chat) = self.me.upgrade() else {
            return;
        };
        for (conn, _) in self.membership().conns_of_user(user, Some(room)) {
            chat.leave_conn(&conn, user, room);
        }
    }

    /// This pod's part of [`ChatService::end_user`]: tells each local connection of
    /// `user`, closes it and forgets it.
    pub(super) fn end_local(&self, user: &str, notice: &Delivery) {
        let Some(chat) = self.me.upgrade() else {
            return;
        };
        let conns: Vec<(ConnId, _)> = self.membership().conns_of_user(user, None);
        for (conn, transport) in conns {
            for fanout in self.fanouts() {
                fanout.end(&conn, transport, notice);
            }
            chat.disconnect(&conn);
        }
    }

    /// Emits socket.io event `event(args)` to the connections `selection` chooses, on
    /// every pod (raw clients: a `notification`); not stored.
    pub fn emit_everywhere(
        &self,
        selection: Selection,
        event: String,
        args: Vec<serde_json::Value>,
    ) -> Receipt {
        let event = ChatEvent::Emitted {
            selection,
            event,
            args,
            volatile: false,
        };
        self.emit(event, None)
    }

    /// Applies `command` to the connections `selection` chooses, on every pod.
    pub fn command_everywhere(&self, selection: Selection, command: RoomsCommand) -> Receipt {
        self.emit(ChatEvent::Command { selection, command }, None)
    }

    /// Applies a command of the backend to this pod's connections `selection` chooses:
    /// joins (as the connection's own join would, except for other users' `user:`
    /// rooms, which stay closed), leaves, or disconnects.
    pub fn apply(self: &std::sync::Arc<Self>, selection: &Selection, command: &RoomsCommand) {
        for (conn, user, _) in self.membership().conns_selected(selection) {
            match command {
                RoomsCommand::Join(rooms) => {
                    let sender = self.backend_sender(&conn, &user);
                    for room in rooms {
                        if let Err(e) = self.join(&sender, room) {
                            tracing::debug!(conn = %conn, room = %room, error = %e, "backend join refused");
                        }
                    }
                }
                RoomsCommand::Leave(rooms) => {
                    for room in rooms {
                        self.leave_conn(&conn, &user, room);
                    }
                }
                RoomsCommand::Disconnect => {
                    let notice = Delivery::new(
                        ChatEvent::Ended {
                            user: user.clone(),
                            reason: None,
                        },
                        None,
                    );
                    if let Some(transport) = self.membership().transport_of(&conn) {
                        for fanout in self.fanouts() {
                            fanout.end(&conn, transport, &notice);
                        }
                    }
                    self.disconnect(&conn);
                }
            }
        }
    }

    /// The identity a backend command acts with for `conn`: its user, no room grants
    /// needed (but another user's `user:` room stays closed).
    fn backend_sender(&self, conn: &ConnId, user: &str) -> Sender {
        let (name, name_unverified) = self.membership().name_of(conn);
        Sender {
            conn: conn.clone(),
            user: user.to_owned(),
            name,
            name_unverified,
            anonymous: false,
            allowed_rooms: None,
            may_post_globally: true,
            ip: None,
        }
    }

    /// Replaces the content of any message `id` in `room`; the room gets
    /// `message:updated`.
    pub async fn moderate_edit(
        &self,
        room: &RoomName,
        id: Uuid,
        content: String,
    ) -> Result<Message, ChatError> {
        self.check_content(&content)?;
        let message = self.log.edit(room, id, None, content).await?;
        self.edited(&message);
        Ok(message)
    }

    /// Deletes any message `id` in `room`; the room gets `message:deleted`.
    pub async fn moderate_delete(&self, room: &RoomName, id: Uuid) -> Result<(), ChatError> {
        self.log.delete(room, id, None).await?;
        self.deleted(room, id);
        Ok(())
    }

    /// Who is online in `room`, across pods.
    pub async fn room_presence(
        &self,
        room: &RoomName,
    ) -> Result<Vec<(UserRef, Status)>, ChatError> {
        if self.single_node() {
            return Ok(self.presence.list(room));
        }
        Ok(self.presence_store.list(room).await?)
    }

    /// A page of `room`'s history.
    pub async fn room_page(
        &self,
        room: &RoomName,
        before: Option<MessageRef>,
        limit: usize,
    ) -> Result<HistoryPage, ChatError> {
        check_page_limit(limit)?;
        Ok(self.log.page(room, before, limit).await?)
    }

    /// `user`'s connections on every pod (everyone's, up to 5000 a pod, when `None`;
    /// this pod first); `complete` is false when a pod did not answer in time.
    pub async fn user_connections(&self, user: Option<&str>) -> Result<Asked, ChatError> {
        let mut asked =
            self.bus
                .ask_connections(user)
                .await
                .map_err(|e| ChatError::Unavailable {
                    reason: e.to_string(),
                    retry_after_ms: super::ports::STORE_RETRY_AFTER_MS,
                })?;
        asked.answers.insert(
            0,
            PodConnections {
                pod: self.bus.pod_id(),
                connections: self
                    .membership()
                    .connections_of_user(user, super::ports::MAX_LISTED_CONNECTIONS),
            },
        );
        Ok(asked)
    }
}
