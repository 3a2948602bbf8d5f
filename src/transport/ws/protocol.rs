//! The raw WebSocket wire format: decoding client frames into requests, encoding
//! server frames. Pure functions; the connection driver lives in `ws.rs`.

use serde::Deserialize;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use crate::chat::{
    display_name, excerpt, ChatError, ChatEvent, Message, MessageRef, MessageType, RoomName,
    Sender, Status, MAX_HISTORY_PAGE,
};
use crate::transport::bodies::{DEFAULT_HISTORY_PAGE, DEFAULT_SEARCH_PAGE};

/// A request decoded from one client text frame.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// `{"type":"chat","room"?,"data":{"content":"...","request_id"?}}`
    Chat {
        /// Target room as named by the client, if any.
        room: Option<RoomName>,
        /// The message text (non-empty).
        content: String,
        /// When set, the message is acknowledged (once stored) with this id.
        request_id: Option<String>,
        /// `data.thread`: a thread's root; the message is a reply in that thread.
        thread: Option<Uuid>,
    },
    /// `{"type":"typing","room"?,"data":{"typing":true}}`
    Typing {
        /// The room (default: the connection's).
        room: Option<RoomName>,
        /// Whether the user is typing.
        typing: bool,
    },
    /// `{"type":"presence","data":{"status":"away"}}`
    Status(Status),
    /// `{"type":"system","data":{"request":"...","request_id"?,...}}`
    Request {
        /// Echoed in the reply.
        request_id: Option<String>,
        /// What is asked.
        request: Request,
    },
    /// A frame of the Streamly chat service (seed 003):
    /// `{"type":"message","data":{"room"?,"message":"...","username"?}}`. The connection
    /// receives Streamly frames from then on ([`streamly_frame`]).
    Streamly {
        /// Target room (default: the connection's).
        room: Option<RoomName>,
        /// The message text (non-empty).
        content: String,
        /// The name the client goes by, checked as a display name; taken only where no
        /// token or backend named the user, marked unverified.
        username: Option<String>,
    },
    /// `{"type":"ping"}`: answered with a pong.
    Ping,
    /// `{"type":"pong"}`: accepted and ignored.
    Pong,
}

/// A `system` request: the raw protocol's counterpart of socket.io's acked events.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// `room:join {room, since?}`
    Join {
        /// The room.
        room: RoomName,
        /// Last message seen (offset or id), to recover what was missed.
        since: Option<MessageRef>,
    },
    /// `room:leave {room}`
    Leave {
        /// The room.
        room: RoomName,
    },
    /// `message:history {room, before?, limit?}`
    History {
        /// The room.
        room: RoomName,
        /// Page before this message (offset or id).
        before: Option<MessageRef>,
        /// Page size (default 50, at most 100).
        limit: usize,
        /// A thread's root: page its replies instead.
        thread: Option<Uuid>,
    },
    /// `message:search {room?, q, before?, limit?}`
    Search {
        /// The room (`None`: the connection's rooms).
        room: Option<RoomName>,
        /// The words.
        q: String,
        /// The last message of the page before.
        before: Option<Uuid>,
        /// Page size (default 20, at most 50).
        limit: usize,
    },
    /// `thread:open {room, id}`: the replies to message `id` reach this connection.
    ThreadOpen {
        /// The root's room.
        room: RoomName,
        /// The root message.
        id: Uuid,
    },
    /// `thread:close {room, id}`
    ThreadClose {
        /// The root's room.
        room: RoomName,
        /// The root message.
        id: Uuid,
    },
    /// `message:edit {room, id, content}`
    Edit {
        /// The room.
        room: RoomName,
        /// The message.
        id: Uuid,
        /// New content.
        content: String,
    },
    /// `message:delete {room, id}`
    Delete {
        /// The room.
        room: RoomName,
        /// The message.
        id: Uuid,
    },
    /// `presence:list {room}`
    PresenceList {
        /// The room.
        room: RoomName,
    },
    /// `message:read {room, offset}`: the user has read `room` up to `offset`.
    Read {
        /// The room.
        room: RoomName,
        /// The offset read up to.
        offset: u64,
    },
    /// `message:react {room, id, emoji, add?}`: adds (default) or takes back a reaction.
    React {
        /// The room.
        room: RoomName,
        /// The message.
        id: Uuid,
        /// The reaction.
        emoji: String,
        /// Add (`true`, the default) or take back.
        add: bool,
    },
    /// `room:unread {room?}`: the user's read position and unread count in `room`, or in
    /// each room they have a position in.
    Unread {
        /// The room (`None`: every room).
        room: Option<RoomName>,
    },
    /// `rpc {method, params?}` (or a frame of type `rpc`): answered by the application's
    /// backend through the RPC hook.
    Rpc {
        /// The method the backend serves.
        method: String,
        /// Its parameters, as the client sent them.
        params: Value,
    },
}

impl Request {
    /// The request's name, as in socket.io's event names.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Join { .. } => "room:join",
            Self::Leave { .. } => "room:leave",
            Self::History { .. } => "message:history",
            Self::Edit { .. } => "message:edit",
            Self::Delete { .. } => "message:delete",
            Self::PresenceList { .. } => "presence:list",
            Self::Read { .. } => "message:read",
            Self::React { .. } => "message:react",
            Self::ThreadOpen { .. } => "thread:open",
            Self::Search { .. } => "message:search",
            Self::ThreadClose { .. } => "thread:close",
            Self::Unread { .. } => "room:unread",
            Self::Rpc { .. } => "rpc",
        }
    }

    /// Whether the request reads the store or Redis, or calls the backend (and so counts
    /// against the read rate limit): all but `room:leave`.
    pub fn reads_store(&self) -> bool {
        !matches!(self, Self::Leave { .. })
    }
}

#[derive(Deserialize)]
struct RawFrame {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    room: Option<Value>,
    #[serde(default)]
    data: Option<Value>,
}

fn room_field(value: Option<Value>, what: &str) -> Result<Option<RoomName>, ChatError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => RoomName::parse(&s).map(Some),
        Some(_) => Err(ChatError::invalid(format!("{what} must be a string"))),
    }
}

fn required_room(data: &mut Map<String, Value>) -> Result<RoomName, ChatError> {
    room_field(data.remove("room"), "data.room")?
        .ok_or_else(|| ChatError::invalid("data.room is missing"))
}

fn id_field(data: &mut Map<String, Value>, key: &str) -> Result<Option<Uuid>, ChatError> {
    match data.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Uuid::parse_str(&s)
            .map(Some)
            .map_err(|_| ChatError::invalid(format!("data.{key} is not a message id"))),
        Some(_) => Err(ChatError::invalid(format!("data.{key} must be a string"))),
    }
}

fn ref_field(data: &mut Map<String, Value>, key: &str) -> Result<Option<MessageRef>, ChatError> {
    let bad = || ChatError::invalid(format!("data.{key} is not an offset or a message id"));
    match data.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => MessageRef::parse(&s).map(Some).ok_or_else(bad),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|o| Some(MessageRef::Offset(o)))
            .ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

fn request_id_field(data: &mut Map<String, Value>) -> Result<Option<String>, ChatError> {
    match data.remove("request_id") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() <= 64 => Ok(Some(s)),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(_) => Err(ChatError::invalid("data.request_id must be a short string")),
    }
}

fn content_field(data: &mut Map<String, Value>) -> Result<String, ChatError> {
    match data.remove("content") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(ChatError::invalid("data.content must not be empty")),
        Some(_) => Err(ChatError::invalid("data.content must be a string")),
        None => Err(ChatError::invalid("data.content is missing")),
    }
}

fn data_object(data: Option<Value>) -> Result<Map<String, Value>, ChatError> {
    match data {
        Some(Value::Object(data)) => Ok(data),
        Some(_) => Err(ChatError::invalid("data must be an object")),
        None => Err(ChatError::invalid("data is missing")),
    }
}

/// Decodes one text frame. Every failure is an `INVALID_PAYLOAD` [`ChatError`].
pub fn decode(text: &str) -> Result<ClientFrame, ChatError> {
    let raw: RawFrame = serde_json::from_str(text)
        .map_err(|e| ChatError::invalid(format!("frame is not a JSON message object: {e}")))?;
    match raw.kind.as_deref().unwrap_or("chat") {
        "chat" => {
            let room = room_field(raw.room, "room")?;
            let mut data =
                data_object(raw.data).map_err(|_| ChatError::invalid("data.content is missing"))?;
            Ok(ClientFrame::Chat {
                room,
                request_id: request_id_field(&mut data)?,
                thread: id_field(&mut data, "thread")?,
                content: content_field(&mut data)?,
            })
        }
        "typing" => {
            let room = room_field(raw.room, "room")?;
            let typing = match data_object(raw.data)?.remove("typing") {
                Some(Value::Bool(b)) => b,
                _ => return Err(ChatError::invalid("data.typing must be true or false")),
            };
            Ok(ClientFrame::Typing { room, typing })
        }
        "presence" => {
            let status = data_object(raw.data)?
                .remove("status")
                .and_then(|v| serde_json::from_value::<Status>(v).ok())
                .filter(|s| *s != Status::Offline)
                .ok_or_else(|| ChatError::invalid("data.status must be online, away or busy"))?;
            Ok(ClientFrame::Status(status))
        }
        "system" => decode_request(data_object(raw.data)?),
        "rpc" => {
            let mut data = data_object(raw.data)?;
            data.insert("request".into(), Value::String("rpc".into()));
            decode_request(data)
        }
        "message" => decode_streamly(data_object(raw.data)?),
        "ping" => Ok(ClientFrame::Ping),
        "pong" => Ok(ClientFrame::Pong),
        known @ ("notification" | "error") => Err(ChatError::invalid(format!(
            "type {known:?} cannot be sent by clients"
        ))),
        other => Err(ChatError::invalid(format!(
            "unknown type {:?}",
            excerpt(other, 64)
        ))),
    }
}

fn decode_streamly(mut data: Map<String, Value>) -> Result<ClientFrame, ChatError> {
    let room = room_field(data.remove("room"), "data.room")?;
    let content = match data.remove("message") {
        Some(Value::String(s)) if !s.is_empty() => s,
        Some(Value::String(_)) => return Err(ChatError::invalid("data.message must not be empty")),
        Some(_) => return Err(ChatError::invalid("data.message must be a string")),
        None => return Err(ChatError::invalid("data.message is missing")),
    };
    let username = match data.remove("username") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(display_name(&s).map_err(|e| match e {
            ChatError::InvalidPayload(why) => ChatError::invalid(format!("data.username: {why}")),
            other => other,
        })?),
        Some(_) => return Err(ChatError::invalid("data.username must be a string")),
    };
    Ok(ClientFrame::Streamly {
        room,
        content,
        username,
    })
}

fn decode_request(mut data: Map<String, Value>) -> Result<ClientFrame, ChatError> {
    let request_id = request_id_field(&mut data)?;
    let name = match data.remove("request") {
        Some(Value::String(s)) => s,
        _ => return Err(ChatError::invalid("data.request is missing")),
    };
    let request = match name.as_str() {
        "room:join" => Request::Join {
            room: required_room(&mut data)?,
            since: ref_field(&mut data, "since")?,
        },
        "room:leave" => Request::Leave {
            room: required_room(&mut data)?,
        },
        "message:history" => Request::History {
            room: required_room(&mut data)?,
            before: ref_field(&mut data, "before")?,
            limit: match data.remove("limit") {
                None | Some(Value::Null) => DEFAULT_HISTORY_PAGE,
                Some(Value::Number(n)) => n
                    .as_u64()
                    .filter(|n| (1..=MAX_HISTORY_PAGE as u64).contains(n))
                    .map(|n| n as usize)
                    .ok_or_else(|| {
                        ChatError::invalid(format!("data.limit must be 1-{MAX_HISTORY_PAGE}"))
                    })?,
                Some(_) => return Err(ChatError::invalid("data.limit must be a number")),
            },
            thread: id_field(&mut data, "thread")?,
        },
        "message:search" => Request::Search {
            room: room_field(data.remove("room"), "data.room")?,
            q: match data.remove("q") {
                Some(Value::String(q)) => q,
                _ => return Err(ChatError::invalid("data.q must be a string")),
            },
            before: id_field(&mut data, "before")?,
            limit: match data.remove("limit") {
                None | Some(Value::Null) => DEFAULT_SEARCH_PAGE,
                Some(Value::Number(n)) => n
                    .as_u64()
                    .map(|n| n as usize)
                    .ok_or_else(|| ChatError::invalid("data.limit must be a number"))?,
                Some(_) => return Err(ChatError::invalid("data.limit must be a number")),
            },
        },
        "thread:open" => Request::ThreadOpen {
            room: required_room(&mut data)?,
            id: id_field(&mut data, "id")?
                .ok_or_else(|| ChatError::invalid("data.id is missing"))?,
        },
        "thread:close" => Request::ThreadClose {
            room: required_room(&mut data)?,
            id: id_field(&mut data, "id")?
                .ok_or_else(|| ChatError::invalid("data.id is missing"))?,
        },
        "message:edit" => Request::Edit {
            room: required_room(&mut data)?,
            id: id_field(&mut data, "id")?
                .ok_or_else(|| ChatError::invalid("data.id is missing"))?,
            content: content_field(&mut data)?,
        },
        "message:delete" => Request::Delete {
            room: required_room(&mut data)?,
            id: id_field(&mut data, "id")?
                .ok_or_else(|| ChatError::invalid("data.id is missing"))?,
        },
        "presence:list" => Request::PresenceList {
            room: required_room(&mut data)?,
        },
        "message:read" => Request::Read {
            room: required_room(&mut data)?,
            offset: match data.remove("offset") {
                Some(Value::Number(n)) => n
                    .as_u64()
                    .ok_or_else(|| ChatError::invalid("data.offset must be an offset"))?,
                _ => return Err(ChatError::invalid("data.offset must be an offset")),
            },
        },
        "message:react" => Request::React {
            room: required_room(&mut data)?,
            id: id_field(&mut data, "id")?
                .ok_or_else(|| ChatError::invalid("data.id is missing"))?,
            emoji: match data.remove("emoji") {
                Some(Value::String(e)) => e,
                _ => return Err(ChatError::invalid("data.emoji must be a string")),
            },
            add: match data.remove("add") {
                None | Some(Value::Null) => true,
                Some(Value::Bool(add)) => add,
                Some(_) => return Err(ChatError::invalid("data.add must be true or false")),
            },
        },
        "room:unread" => Request::Unread {
            room: room_field(data.remove("room"), "data.room")?,
        },
        "rpc" => Request::Rpc {
            method: match data.remove("method") {
                Some(Value::String(m)) if !m.is_empty() && m.len() <= 128 => m,
                _ => {
                    return Err(ChatError::invalid(
                        "data.method must be a 1-128 byte string",
                    ))
                }
            },
            params: data.remove("params").unwrap_or(Value::Null),
        },
        other => {
            return Err(ChatError::invalid(format!(
                "unknown request {:?}",
                excerpt(other, 64)
            )))
        }
    };
    Ok(ClientFrame::Request {
        request_id,
        request,
    })
}

/// The welcome frame sent first on every connection (not to `?format=streamly` ones).
pub fn welcome(client_id: &str, sender: &Sender, room: Option<&RoomName>) -> Message {
    let mut data = json!({ "event": "welcome", "client_id": client_id, "user": sender.user });
    if let Some(user) = sender.message_user() {
        data["name"] = json!(user.name);
        if user.unverified {
            data["unverified"] = json!(true);
        }
    }
    if let Some(room) = room {
        data["room"] = json!(room);
    }
    Message::from_server(MessageType::System, room.cloned(), data)
}

/// The answer to a client ping.
pub fn pong() -> Message {
    Message::from_server(MessageType::Pong, None, json!({}))
}

/// An error frame: `{"type":"error","data":{"code":"...","message":"..."}}`.
pub fn error(err: &ChatError, request_id: Option<&str>) -> Message {
    let mut data = json!({ "code": err.code(), "message": err.to_string() });
    if let Some(ms) = err.retry_after_ms() {
        data["retry_after_ms"] = json!(ms);
    }
    if let Some(id) = request_id {
        data["request_id"] = json!(id);
    }
    Message::from_server(MessageType::Error, None, data)
}

/// The ack of a stored chat message in `room`: `{"type":"system","data":{"reply":
/// "chat","request_id","status":"ok","id","offset","timestamp","degraded"?}}`.
pub fn stored(body: Value, room: Option<RoomName>, request_id: &str) -> Message {
    let mut frame = reply("chat", Some(request_id), body);
    frame.room = room;
    frame
}

/// The reply to a `system` request: `body` plus `reply` and `request_id`.
pub fn reply(request: &str, request_id: Option<&str>, mut body: Value) -> Message {
    body["reply"] = json!(request);
    if let Some(id) = request_id {
        body["request_id"] = json!(id);
    }
    Message::from_server(MessageType::System, None, body)
}

/// The Streamly frame of a stored message with a text `content` (chat messages, and
/// the backend's notifications): `{"type":"message","data":{"id","room","message",
/// "username","timestamp"}}`; `None` for anything else, which Streamly clients do not
/// receive.
pub fn streamly_frame(event: &ChatEvent) -> Option<Vec<u8>> {
    let message = event.as_message()?;
    let content = message.data.get("content")?.as_str()?;
    let username = message
        .user
        .as_ref()
        .map_or(message.from.as_str(), |u| u.name.as_str());
    let frame = json!({
        "type": "message",
        "data": {
            "id": message.id,
            "room": message.room,
            "message": content,
            "username": username,
            "timestamp": message.timestamp,
        }
    });
    serde_json::to_vec(&frame).ok()
}

/// The frame a raw client receives for a chat event.
pub fn frame_for(event: &ChatEvent) -> Message {
    match event {
        ChatEvent::Message { message } => (**message).clone(),
        ChatEvent::Updated { message } => Message::from_server(
            MessageType::Notification,
            message.room.clone(),
            json!({ "event": "message:updated", "message": message }),
        ),
        ChatEvent::Deleted { room, id } => Message::from_server(
            MessageType::Notification,
            Some(room.clone()),
            json!({ "event": "message:deleted", "id": id }),
        ),
        ChatEvent::Presence { room, user, status } => Message::new(
            MessageType::Presence,
            Some(room.clone()),
            user.id.clone(),
            json!({ "user": user, "status": status }),
        ),
        ChatEvent::Typing { room, user, typing } => Message::new(
            MessageType::Typing,
            Some(room.clone()),
            user.id.clone(),
            json!({ "user": user, "typing": typing }),
        ),
        ChatEvent::Reactions {
            room,
            id,
            reactions,
            user,
            emoji,
            add,
        } => Message::from_server(
            MessageType::Notification,
            Some(room.clone()),
            json!({ "event": "message:reactions", "id": id, "reactions": reactions,
                    "user": user, "emoji": emoji, "add": add }),
        ),
        ChatEvent::ThreadUpdated {
            room,
            id,
            reply_count,
            last_reply_at,
        } => Message::from_server(
            MessageType::Notification,
            Some(room.clone()),
            json!({ "event": "thread:updated", "id": id, "reply_count": reply_count,
                    "last_reply_at": last_reply_at }),
        ),
        ChatEvent::Receipt { room, receipts } => Message::from_server(
            MessageType::Notification,
            Some(room.clone()),
            json!({ "event": "receipt:update", "receipts": receipts }),
        ),
        ChatEvent::ChannelUpdated { channel } => Message::from_server(
            MessageType::Notification,
            Some(channel.room.clone()),
            json!({ "event": "channel:updated", "channel": channel }),
        ),
        ChatEvent::ChannelDeleted { room } => Message::from_server(
            MessageType::Notification,
            Some(room.clone()),
            json!({ "event": "channel:deleted" }),
        ),
        ChatEvent::Removed { room, user, reason } => Message::from_server(
            MessageType::Notification,
            Some(room.clone()),
            json!({ "event": "room:removed", "user": user, "reason": reason }),
        ),
        ChatEvent::Ended { reason, .. } => Message::from_server(
            MessageType::Notification,
            None,
            json!({ "event": "session:ended", "reason": reason }),
        ),
        // Commands are applied by the chat, never delivered.
        ChatEvent::Command { .. } => Message::from_server(MessageType::System, None, json!({})),
        ChatEvent::Emitted {
            selection,
            event,
            args,
            ..
        } => Message::from_server(
            MessageType::Notification,
            match selection.rooms.as_slice() {
                [room] => Some(room.clone()),
                _ => None,
            },
            json!({ "event": event, "args": args }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::ErrorCode;
    use proptest::prelude::*;

    #[test]
    fn decodes_chat_ping_and_pong() {
        assert_eq!(
            decode(r#"{"type":"chat","data":{"content":"hi"},"from":"spoof"}"#),
            Ok(ClientFrame::Chat {
                room: None,
                content: "hi".into(),
                request_id: None,
                thread: None,
            })
        );
        assert_eq!(
            decode(r#"{"type":"chat","data":{"content":"hi","request_id":"s1"}}"#),
            Ok(ClientFrame::Chat {
                room: None,
                content: "hi".into(),
                request_id: Some("s1".into()),
                thread: None,
            })
        );
        assert_eq!(
            decode(r#"{"type":"system","data":{"request":"room:join","room":"r","since":41}}"#),
            Ok(ClientFrame::Request {
                request_id: None,
                request: Request::Join {
                    room: RoomName::parse("r").unwrap(),
                    since: Some(MessageRef::Offset(41)),
                }
            })
        );
        assert_eq!(
            decode(r#"{"type":"chat","room":"lobby","data":{"content":"x"}}"#),
            Ok(ClientFrame::Chat {
                room: RoomName::parse("lobby").ok(),
                content: "x".into(),
                request_id: None,
                thread: None,
            })
        );
        assert_eq!(decode(r#"{"type":"ping"}"#), Ok(ClientFrame::Ping));
        assert_eq!(decode(r#"{"type":"pong"}"#), Ok(ClientFrame::Pong));
        assert_eq!(
            decode(
                r#"{"type":"system","data":{"request":"message:history","room":"r","request_id":"7"}}"#
            ),
            Ok(ClientFrame::Request {
                request_id: Some("7".into()),
                request: Request::History {
                    room: RoomName::parse("r").unwrap(),
                    before: None,
                    limit: DEFAULT_HISTORY_PAGE,
                    thread: None,
                }
            })
        );
        assert_eq!(
            decode(r#"{"type":"presence","data":{"status":"away"}}"#),
            Ok(ClientFrame::Status(Status::Away))
        );
    }

    #[test]
    fn decodes_streamly_frames_and_product_requests() {
        assert_eq!(
            decode(r#"{"type":"message","data":{"room":"r","message":"hi","username":" sam "}}"#),
            Ok(ClientFrame::Streamly {
                room: RoomName::parse("r").ok(),
                content: "hi".into(),
                username: Some("sam".into()),
            })
        );
        assert_eq!(
            decode(r#"{"type":"message","data":{"message":"hi","username":""}}"#),
            Ok(ClientFrame::Streamly {
                room: None,
                content: "hi".into(),
                username: None,
            })
        );
        let root = Uuid::now_v7();
        let reply = format!(r#"{{"type":"chat","data":{{"content":"re","thread":"{root}"}}}}"#);
        assert!(matches!(
            decode(&reply),
            Ok(ClientFrame::Chat { thread: Some(t), .. }) if t == root
        ));
        let read = r#"{"type":"system","data":{"request":"message:read","room":"r","offset":4}}"#;
        assert!(matches!(
            decode(read),
            Ok(ClientFrame::Request {
                request: Request::Read { offset: 4, .. },
                ..
            })
        ));
        let react = format!(
            r#"{{"type":"system","data":{{"request":"message:react","room":"r","id":"{root}","emoji":"👍"}}}}"#
        );
        assert!(matches!(
            decode(&react),
            Ok(ClientFrame::Request {
                request: Request::React { add: true, .. },
                ..
            })
        ));
        for bad in [
            r#"{"type":"message","data":{"message":""}}"#,
            r#"{"type":"message","data":{"message":5}}"#,
            r#"{"type":"message","data":{"message":"x","username":7}}"#,
            r#"{"type":"message","data":{"message":"x","username":"a
b"}}"#,
            r#"{"type":"message"}"#,
            r#"{"type":"system","data":{"request":"message:read","room":"r","offset":-1}}"#,
            r#"{"type":"system","data":{"request":"message:read","room":"r"}}"#,
            r#"{"type":"system","data":{"request":"message:react","room":"r","id":"x","emoji":"y"}}"#,
            r#"{"type":"chat","data":{"content":"x","thread":"not-an-id"}}"#,
        ] {
            let err = decode(bad).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidPayload, "{bad}");
        }
    }

    #[test]
    fn streamly_frames_carry_exactly_the_seed_keys() {
        let mut message = Message::chat(RoomName::parse("r").ok(), "u1".into(), "hi".into());
        let event = ChatEvent::Message {
            message: std::sync::Arc::new(message.clone()),
        };
        let frame: Value = serde_json::from_slice(&streamly_frame(&event).unwrap()).unwrap();
        assert_eq!(frame["type"], "message");
        assert_eq!(frame["data"]["username"], "u1", "no name: the id");
        message.user = Some(crate::chat::UserRef {
            id: "u1".into(),
            name: "Sam".into(),
            unverified: true,
        });
        let event = ChatEvent::Message {
            message: std::sync::Arc::new(message),
        };
        let frame: Value = serde_json::from_slice(&streamly_frame(&event).unwrap()).unwrap();
        let mut keys: Vec<&String> = frame["data"].as_object().unwrap().keys().collect();
        keys.sort();
        assert_eq!(keys, ["id", "message", "room", "timestamp", "username"]);
        assert_eq!(frame["data"]["username"], "Sam");
        let typing = ChatEvent::Typing {
            room: RoomName::parse("r").unwrap(),
            user: crate::chat::UserRef {
                id: "u1".into(),
                name: "Sam".into(),
                unverified: false,
            },
            typing: true,
        };
        assert!(
            streamly_frame(&typing).is_none(),
            "only messages reach Streamly clients"
        );
    }

    #[test]
    fn rejects_malformed_frames_as_invalid_payload() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        for bad in [
            "",
            "nope",
            "[]",
            "42",
            "null",
            r#"{"type":5}"#,
            r#"{"type":"chat"}"#,
            r#"{"type":"chat","data":{}}"#,
            r#"{"type":"chat","data":{"content":""}}"#,
            r#"{"type":"chat","data":{"content":7}}"#,
            r#"{"type":"chat","data":"hi"}"#,
            r#"{"type":"chat","room":"a b","data":{"content":"x"}}"#,
            r#"{"type":"chat","room":9,"data":{"content":"x"}}"#,
            r#"{"type":"system","data":{}}"#,
            r#"{"type":"shout"}"#,
            &deep,
        ] {
            let err = decode(bad).unwrap_err();
            assert_eq!(err.code(), ErrorCode::InvalidPayload, "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn decode_never_panics(s in "\\PC{0,300}") {
            let _ = decode(&s);
        }

        #[test]
        fn decode_never_panics_on_json_like_input(
            s in r#"\{("type"|"room"|"data"|"content"|:|,|\{|\}|\[|\]|"chat"|"ping"|null|1|"x"){0,40}"#
        ) {
            let _ = decode(&s);
        }
    }
}
