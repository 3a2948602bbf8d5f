//! [`ChatEvent`]: everything the chat delivers to room members, for both transports and
//! across pods. Transports map each kind to their wire (socket.io event name and
//! payload; a `realtime.Message` frame).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Message, RoomName};

/// A user as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRef {
    /// User id (token `sub`, or the client id of an anonymous connection).
    pub id: String,
    /// Display name.
    pub name: String,
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
}

impl ChatEvent {
    /// The room the event belongs to; `None` for global messages.
    pub fn room(&self) -> Option<&RoomName> {
        match self {
            Self::Message { message } => message.room.as_ref(),
            Self::Updated { message } => message.room.as_ref(),
            Self::Deleted { room, .. }
            | Self::Presence { room, .. }
            | Self::Typing { room, .. } => Some(room),
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
        }
    }

    /// Whether the event may be dropped under load (typing indicators).
    pub fn is_volatile(&self) -> bool {
        matches!(self, Self::Typing { .. })
    }

    /// The chat message, for new messages.
    pub fn as_message(&self) -> Option<&Message> {
        match self {
            Self::Message { message } => Some(message),
            _ => None,
        }
    }
}
