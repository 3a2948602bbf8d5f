//! [`ChatEvent`]: everything the chat delivers to room members, for both transports and
//! across pods. Transports map each kind to their wire (socket.io event name and
//! payload; a `realtime.Message` frame).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Message, RoomName, Selection};

/// A user as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    /// User id (token `sub`, or the client id of an anonymous connection).
    pub id: String,
    /// Display name.
    pub name: String,
    /// The name is the client's own choice (an anonymous connection's `auth.name` or
    /// `?name=`), not vouched for by a token or the backend. Omitted when `false`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unverified: bool,
}

/// A user's presence status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Connected and active.
    Online,
    /// Connected, away.
    Away,
    /// Connected, do not disturb.
    Busy,
    /// No connection left (after the grace period).
    Offline,
}

/// Something that happened in a room (or, for global messages, everywhere).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ChatEvent {
    /// A new chat message (`message:new`).
    Message {
        /// The message, shared (never copied) by the recent log and every delivery.
        message: Arc<Message>,
    },
    /// A message was edited (`message:updated`).
    Updated {
        /// The message as it is now.
        message: Message,
    },
    /// A message was deleted (`message:deleted`).
    Deleted {
        /// Its room.
        room: RoomName,
        /// Its id.
        id: Uuid,
    },
    /// A user came online, went offline or changed status (`presence:update`).
    Presence {
        /// The room.
        room: RoomName,
        /// Who.
        user: UserRef,
        /// The new status.
        status: Status,
    },
    /// A user started or stopped typing (`user:typing`).
    Typing {
        /// The room.
        room: RoomName,
        /// Who.
        user: UserRef,
        /// Whether they are typing.
        typing: bool,
    },
    /// Users' read positions in a room moved (`receipt:update`): the room's members
    /// (the readers' other devices included) see how far they have read. Coalesced: at
    /// most one per room per second from each pod, each user's newest position.
    Receipt {
        /// The room.
        room: RoomName,
        /// Each reader's newest position, once.
        receipts: Vec<super::ReadReceipt>,
    },
    /// A user added or took back a reaction (`message:reactions`): the message's counts
    /// after it.
    Reactions {
        /// The message's room.
        room: RoomName,
        /// The message.
        id: Uuid,
        /// Each emoji's count, after the change.
        reactions: super::ReactionCounts,
        /// Who reacted.
        user: UserRef,
        /// With what.
        emoji: String,
        /// Added (`true`) or taken back.
        add: bool,
    },
    /// A thread got a reply (`thread:updated`), told to the root's room.
    ThreadUpdated {
        /// The root's room.
        room: RoomName,
        /// The root message.
        id: Uuid,
        /// Replies so far.
        reply_count: u64,
        /// When the last one was sent.
        last_reply_at: String,
    },
    /// A channel was created or changed (`channel:updated`): its room's members hear
    /// it, then each pod removes the local connections it no longer admits.
    ChannelUpdated {
        /// The channel as it is now.
        channel: super::Channel,
    },
    /// A channel was deleted with its messages (`channel:deleted`): its room's members
    /// hear it, then leave the room on every pod.
    ChannelDeleted {
        /// The room.
        room: RoomName,
    },
    /// The application's backend removed a user from a room (`room:removed`): every
    /// member hears it, the user's connections in the room included, then those leave.
    Removed {
        /// The room.
        room: RoomName,
        /// The user id removed.
        user: String,
        /// Why, as the backend put it (shown to the user).
        reason: Option<String>,
    },
    /// An event the application's backend emitted with the socket.io Redis emitter: handed
    /// as it is to the selected local connections (socket.io: that event; raw: a
    /// `notification`). Never stored and never relayed: every pod reads it from Redis.
    Emitted {
        /// Which connections.
        selection: Selection,
        /// The socket.io event name.
        event: String,
        /// Its arguments.
        args: Vec<serde_json::Value>,
        /// Whether it may be dropped under load.
        volatile: bool,
    },
    /// An operator's command (the admin UI) to the connections `selection` chooses, on
    /// every pod: each pod applies it to its own. Never delivered to anyone.
    Command {
        /// Which connections.
        selection: Selection,
        /// What they do.
        command: super::RoomsCommand,
    },
    /// The application's backend ended every connection of a user, on every pod. Never
    /// delivered to a room: each pod tells the user's own connections (`session:ended`)
    /// and closes them.
    Ended {
        /// The user id.
        user: String,
        /// Why, as the backend put it (shown to the user).
        reason: Option<String>,
    },
}

impl ChatEvent {
    /// The room the event belongs to; `None` for global messages.
    pub fn room(&self) -> Option<&RoomName> {
        match self {
            Self::Message { message } => message.room.as_ref(),
            Self::Updated { message } => message.room.as_ref(),
            Self::Deleted { room, .. }
            | Self::Presence { room, .. }
            | Self::Typing { room, .. }
            | Self::Receipt { room, .. }
            | Self::Reactions { room, .. }
            | Self::ThreadUpdated { room, .. }
            | Self::Removed { room, .. }
            | Self::ChannelDeleted { room } => Some(room),
            Self::ChannelUpdated { channel } => Some(&channel.room),
            Self::Ended { .. } | Self::Emitted { .. } | Self::Command { .. } => None,
        }
    }

    /// A short name of the kind, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Message { .. } => "message",
            Self::Updated { .. } => "updated",
            Self::Deleted { .. } => "deleted",
            Self::Presence { .. } => "presence",
            Self::Typing { .. } => "typing",
            Self::Receipt { .. } => "receipt",
            Self::Reactions { .. } => "reactions",
            Self::ThreadUpdated { .. } => "thread",
            Self::Removed { .. } => "removed",
            Self::ChannelUpdated { .. } => "channel_updated",
            Self::ChannelDeleted { .. } => "channel_deleted",
            Self::Ended { .. } => "ended",
            Self::Emitted { .. } => "emitted",
            Self::Command { .. } => "command",
        }
    }

    /// Whether the event may be dropped under load (typing indicators).
    pub fn is_volatile(&self) -> bool {
        matches!(
            self,
            Self::Typing { .. } | Self::Emitted { volatile: true, .. }
        )
    }

    /// The chat message, for new messages.
    pub fn as_message(&self) -> Option<&Message> {
        match self {
            Self::Message { message } => Some(message),
            _ => None,
        }
    }
}
