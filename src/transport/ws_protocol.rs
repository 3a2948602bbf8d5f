//! The raw WebSocket wire format: decoding client frames into requests, encoding
//! server frames. Pure functions; the connection driver lives in `ws.rs`.

use serde::Deserialize;
use serde_json::{json, Value};

use crate::chat::{excerpt, ChatError, Message, MessageType, RoomName};

/// A request decoded from one client text frame.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// `{"type":"chat","room"?,"data":{"content":"..."}}`
    Chat {
        /// Target room as named by the client, if any.
        room: Option<RoomName>,
        /// The message text (non-empty).
        content: String,
    },
    /// `{"type":"ping"}`: answered with a pong.
    Ping,
    /// `{"type":"pong"}`: accepted and ignored.
    Pong,
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

/// Decodes one text frame. Every failure is an `INVALID_PAYLOAD` [`ChatError`].
pub fn decode(text: &str) -> Result<ClientFrame, ChatError> {
    let raw: RawFrame = serde_json::from_str(text)
        .map_err(|e| ChatError::invalid(format!("frame is not a JSON message object: {e}")))?;
    match raw.kind.as_deref().unwrap_or("chat") {
        "chat" => {
            let room = match raw.room {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(RoomName::parse(&s)?),
                Some(_) => return Err(ChatError::invalid("room must be a string")),
            };
            let content = match raw.data {
                Some(Value::Object(mut data)) => match data.remove("content") {
                    Some(Value::String(s)) if !s.is_empty() => s,
                    Some(Value::String(_)) => {
                        return Err(ChatError::invalid("data.content must not be empty"))
                    }
                    Some(_) => return Err(ChatError::invalid("data.content must be a string")),
                    None => return Err(ChatError::invalid("data.content is missing")),
                },
                Some(_) => return Err(ChatError::invalid("data must be an object")),
                None => return Err(ChatError::invalid("data.content is missing")),
            };
            Ok(ClientFrame::Chat { room, content })
        }
        "ping" => Ok(ClientFrame::Ping),
        "pong" => Ok(ClientFrame::Pong),
        known @ ("presence" | "notification" | "system" | "error") => Err(ChatError::invalid(
            format!("type {known:?} cannot be sent by clients"),
        )),
        other => Err(ChatError::invalid(format!(
            "unknown type {:?}",
            excerpt(other, 64)
        ))),
    }
}

/// The welcome frame sent first on every connection.
pub fn welcome(client_id: &str, room: Option<&RoomName>) -> Message {
    let mut data = json!({ "event": "welcome", "client_id": client_id });
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
pub fn error(err: &ChatError) -> Message {
    let mut data = json!({ "code": err.code(), "message": err.to_string() });
    if let Some(ms) = err.retry_after_ms() {
        data["retry_after_ms"] = json!(ms);
    }
    Message::from_server(MessageType::Error, None, data)
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
                content: "hi".into()
            })
        );
        assert_eq!(
            decode(r#"{"type":"chat","room":"lobby","data":{"content":"x"}}"#),
            Ok(ClientFrame::Chat {
                room: RoomName::parse("lobby").ok(),
                content: "x".into()
            })
        );
        assert_eq!(decode(r#"{"type":"ping"}"#), Ok(ClientFrame::Ping));
        assert_eq!(decode(r#"{"type":"pong"}"#), Ok(ClientFrame::Pong));
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
