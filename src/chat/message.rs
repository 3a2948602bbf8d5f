//! The `realtime.Message` model shared by both transports, and its constructors.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{RoomName, UserRef};

/// Kind of a [`Message`], the `type` key on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageType {
    /// A user's chat message.
    Chat,
    /// An online/offline status change.
    Presence,
    /// A server notification.
    Notification,
    /// A system message (welcome, replies to requests).
    System,
    /// An error reply.
    Error,
    /// A client-initiated heartbeat.
    Ping,
    /// The answer to a ping.
    Pong,
    /// A typing indicator.
    Typing,
}

impl MessageType {
    /// The type as the wire (and the message log) spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Presence => "presence",
            Self::Notification => "notification",
            Self::System => "system",
            Self::Error => "error",
            Self::Ping => "ping",
            Self::Pong => "pong",
            Self::Typing => "typing",
        }
    }

    /// The type spelled `s`, if any.
    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Chat,
            Self::Presence,
            Self::Notification,
            Self::System,
            Self::Error,
            Self::Ping,
            Self::Pong,
            Self::Typing,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

/// Sender name used on messages the server itself originates.
pub const SERVER_SENDER: &str = "server";

/// One `realtime.Message`: `{id,type,room,from,data,timestamp}`, plus `offset` on chat
/// messages once stored; `room` is omitted for global messages. Server-assigned fields
/// are set by [`Message::new`] and, for `offset`, by the message log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// UUID v7, set by the server.
    pub id: Uuid,
    /// What kind of message this is.
    #[serde(rename = "type")]
    pub kind: MessageType,
    /// The room it was sent to; `None` for global messages.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<RoomName>,
    /// Identity of the sender (never taken from the client).
    pub from: String,
    /// The sender as others see them (`{id, name, unverified?}`), on chat messages whose
    /// sender has a display name; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<UserRef>,
    /// Type-specific payload, e.g. `{"content":"hi"}` for chat.
    pub data: Value,
    /// RFC 3339 UTC time with milliseconds, set by the server.
    pub timestamp: String,
    /// The message's place in its room: 1, 2, 3, ... without gaps, given by the message
    /// log when it stored the message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// Each emoji's count of reactions, on messages read from history that have any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reactions: Option<super::ReactionCounts>,
    /// On a thread reply: the thread's root message and its room (the reply itself is in
    /// the thread's own room, `thread:{root id}`, with offsets of its own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thread: Option<ThreadRef>,
    /// On a thread's root read from history: how many replies it has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_count: Option<u64>,
    /// On a thread's root read from history: when its last reply was sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_reply_at: Option<String>,
}

/// The thread a reply belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadRef {
    /// The root message's id.
    pub id: Uuid,
    /// The root message's room.
    pub room: RoomName,
}

const RFC3339_MILLIS: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

impl Message {
    /// A new message stamped now with a fresh UUID v7.
    pub fn new(kind: MessageType, room: Option<RoomName>, from: String, data: Value) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind,
            room,
            from,
            user: None,
            data,
            timestamp: now_rfc3339(),
            offset: None,
            reactions: None,
            thread: None,
            reply_count: None,
            last_reply_at: None,
        }
    }

    /// A chat message carrying `content`.
    pub fn chat(room: Option<RoomName>, from: String, content: String) -> Self {
        Self::new(
            MessageType::Chat,
            room,
            from,
            serde_json::json!({ "content": content }),
        )
    }

    /// A message from the server itself.
    pub fn from_server(kind: MessageType, room: Option<RoomName>, data: Value) -> Self {
        Self::new(kind, room, SERVER_SENDER.to_owned(), data)
    }

    /// The JSON encoding of this message.
    pub fn to_json(&self) -> String {
        // A Message holds only strings, a UUID and a serde_json::Value: encoding cannot fail.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

/// The current UTC time as RFC 3339 with milliseconds, e.g. `2026-01-15T10:30:00.123Z`.
pub fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(RFC3339_MILLIS)
        .unwrap_or_default()
}

/// Unix milliseconds `ms` as RFC 3339 with milliseconds (the form of `timestamp`).
pub fn rfc3339_of_ms(ms: u64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(RFC3339_MILLIS).ok())
        .unwrap_or_default()
}

/// Unix milliseconds of an RFC 3339 `timestamp` (0 when it does not parse).
pub fn ms_of_rfc3339(timestamp: &str) -> u64 {
    OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000).max(0) as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_message_has_exactly_the_spec_keys() {
        let room = RoomName::parse("lobby").ok();
        let msg = Message::chat(room, "alice".into(), "hi".into());
        let v: Value = serde_json::from_str(&msg.to_json()).unwrap();
        let mut keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        keys.sort();
        assert_eq!(keys, ["data", "from", "id", "room", "timestamp", "type"]);
        assert_eq!(v["type"], "chat");
        assert_eq!(v["data"]["content"], "hi");
        assert_eq!(msg.id.get_version_num(), 7);
    }

    #[test]
    fn timestamps_round_trip_through_milliseconds() {
        let ts = now_rfc3339();
        assert_eq!(rfc3339_of_ms(ms_of_rfc3339(&ts)), ts);
        assert_eq!(ms_of_rfc3339("not a time"), 0);
    }

    #[test]
    fn a_stored_message_carries_its_offset() {
        let mut msg = Message::chat(None, "a".into(), "hi".into());
        msg.offset = Some(7);
        let v: Value = serde_json::from_str(&msg.to_json()).unwrap();
        assert_eq!(v["offset"], 7);
    }

    #[test]
    fn message_types_spell_as_serde_does() {
        for t in [
            "chat",
            "presence",
            "notification",
            "system",
            "error",
            "ping",
            "pong",
            "typing",
        ] {
            let parsed = MessageType::parse(t).unwrap();
            assert_eq!(serde_json::to_value(parsed).unwrap(), t);
        }
        assert_eq!(MessageType::parse("nope"), None);
    }

    #[test]
    fn global_message_omits_room() {
        let msg = Message::chat(None, "a".into(), "hi".into());
        assert!(!msg.to_json().contains("\"room\""));
    }

    #[test]
    fn timestamp_is_rfc3339_utc_with_millis() {
        let ts = now_rfc3339();
        assert_eq!(ts.len(), 24, "{ts}");
        assert!(ts.ends_with('Z') && ts.as_bytes()[10] == b'T' && ts.as_bytes()[19] == b'.');
        assert!(OffsetDateTime::parse(&ts, &time::format_description::well_known::Rfc3339).is_ok());
    }
}
