//! The payloads of the client events, as the handlers in `mod.rs` decode them, and
//! [`check_event_payload`], the same decoding from raw bytes for the fuzz targets.

use serde::Deserialize;
use socketioxide::ParserError;
use uuid::Uuid;

use crate::chat::{excerpt, ChatError, MessageRef, RoomName, Status};

#[derive(Deserialize)]
pub(super) struct RoomRequest {
    pub(super) room: RoomName,
}

#[derive(Deserialize)]
pub(super) struct JoinRequest {
    pub(super) room: RoomName,
    #[serde(default)]
    pub(super) since: Option<MessageRef>,
}

#[derive(Deserialize)]
pub(super) struct HistoryRequest {
    pub(super) room: RoomName,
    #[serde(default)]
    pub(super) before: Option<MessageRef>,
    #[serde(default)]
    pub(super) limit: Option<usize>,
    /// A thread's root: page its replies instead.
    #[serde(default)]
    pub(super) thread: Option<Uuid>,
}

#[derive(Deserialize)]
pub(super) struct SearchRequest {
    #[serde(default)]
    pub(super) room: Option<RoomName>,
    pub(super) q: String,
    #[serde(default)]
    pub(super) before: Option<Uuid>,
    #[serde(default)]
    pub(super) limit: Option<usize>,
}

#[derive(Deserialize)]
pub(super) struct ThreadRequest {
    pub(super) room: RoomName,
    pub(super) id: Uuid,
}

#[derive(Deserialize)]
pub(super) struct EditRequest {
    pub(super) room: RoomName,
    pub(super) id: Uuid,
    pub(super) content: String,
}

#[derive(Deserialize)]
pub(super) struct DeleteRequest {
    pub(super) room: RoomName,
    pub(super) id: Uuid,
}

#[derive(Deserialize)]
pub(super) struct StatusRequest {
    pub(super) status: Status,
}

#[derive(Deserialize)]
pub(super) struct TypingRequest {
    pub(super) room: RoomName,
    pub(super) typing: bool,
}

#[derive(Deserialize)]
pub(super) struct ReadRequest {
    pub(super) room: RoomName,
    pub(super) offset: u64,
}

#[derive(Deserialize)]
pub(super) struct ReactRequest {
    pub(super) room: RoomName,
    pub(super) id: Uuid,
    pub(super) emoji: String,
    #[serde(default = "yes")]
    pub(super) add: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
pub(super) struct UnreadRequest {
    #[serde(default)]
    pub(super) room: Option<RoomName>,
}

#[derive(Deserialize)]
pub(super) struct SendRequest {
    #[serde(default)]
    pub(super) room: Option<RoomName>,
    pub(super) content: String,
    /// A thread's root: the message is a reply in that thread.
    #[serde(default)]
    pub(super) thread: Option<Uuid>,
}

/// The event's payload as `T`, or `INVALID_PAYLOAD`.
pub(super) fn decode<T: serde::de::DeserializeOwned>(
    args: Result<serde_json::Value, ParserError>,
) -> Result<T, ChatError> {
    let args = args.map_err(|e| ChatError::invalid(e.to_string()))?;
    serde_json::from_value(args).map_err(|e| ChatError::invalid(e.to_string()))
}

/// Parses `args` as JSON and decodes it as the payload of `event`, exactly as the
/// handlers do: `Ok` when the handler would get a request, else `INVALID_PAYLOAD`.
pub fn check_event_payload(event: &str, args: &[u8]) -> Result<(), ChatError> {
    let args = Ok(serde_json::from_slice::<serde_json::Value>(args)
        .map_err(|e| ChatError::invalid(e.to_string()))?);
    match event {
        "room:join" => decode::<JoinRequest>(args).map(drop),
        "room:leave" | "presence:list" => decode::<RoomRequest>(args).map(drop),
        "message:send" => decode::<SendRequest>(args).map(drop),
        "user:typing" => decode::<TypingRequest>(args).map(drop),
        "message:history" => decode::<HistoryRequest>(args).map(drop),
        "message:edit" => decode::<EditRequest>(args).map(drop),
        "message:delete" => decode::<DeleteRequest>(args).map(drop),
        "presence:update" => decode::<StatusRequest>(args).map(drop),
        "message:read" => decode::<ReadRequest>(args).map(drop),
        "message:react" => decode::<ReactRequest>(args).map(drop),
        "room:unread" => decode::<UnreadRequest>(args).map(drop),
        "thread:open" | "thread:close" => decode::<ThreadRequest>(args).map(drop),
        "message:search" => decode::<SearchRequest>(args).map(drop),
        _ => Err(ChatError::invalid(format!(
            "unknown event {:?}",
            excerpt(event, 64)
        ))),
    }
}
