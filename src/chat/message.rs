//! The `realtime.Message` model shared by both transports, and its constructors.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;
use uuid::Uuid;

use super::RoomName;

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

/// Sender name used on messages the server itself originates.
pub const SERVER_SENDER: &str = "server";

/// One `realtime.Message`: `{id,type,room,from,data,timestamp}`; `room` is omitted for
/// global messages. Server-assigned fields are set by [`Message::new`].
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
    /// Type-specific payload, e.g. `{"content":"hi"}` for chat.
    pub data: Value,
    /// RFC 3339 UTC time with milliseconds, set by the server.
    pub timestamp: String,
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
            data,
            timestamp: now_rfc3339(),
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
