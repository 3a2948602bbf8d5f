//! Reply bodies both realtime transports send alike (the socket.io ack and the raw
//! `system` reply carry the same JSON).

use serde_json::{json, Value};

use crate::chat::{Message, RoomName, Status, UserRef};
use crate::store::HistoryPage;

/// Page size of history requests that name none.
pub const DEFAULT_HISTORY_PAGE: usize = 50;

/// `message:history`: `{"status":"ok","messages":[...],"has_more":bool}`.
pub fn page_body(page: &HistoryPage) -> Value {
    json!({ "status": "ok", "messages": page.messages, "has_more": page.has_more })
}

/// `presence:list`: `{"status":"ok","users":[{id,name,status}]}`.
pub fn users_body(users: &[(UserRef, Status)]) -> Value {
    let users: Vec<Value> = users
        .iter()
        .map(|(u, s)| json!({ "id": u.id, "name": u.name, "status": s }))
        .collect();
    json!({ "status": "ok", "users": users })
}

/// `room:join {since}`: what was missed, in order, and whether all of it was retained.
pub fn recovery_body(room: &RoomName, missed: &[Message], recovered: bool) -> Value {
    json!({ "status": "ok", "room": room, "recovered": recovered, "messages": missed })
}
