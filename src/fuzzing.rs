//! Fuzz targets: one `fn(&[u8])` per parser that reads client input (raw WebSocket
//! frames, socket.io event payloads, room names and patterns, tokens and the headers
//! that carry them). None may panic on any input; each also checks what its parser
//! promises and panics only if that is broken. The `fuzz/` crate (cargo-fuzz) and
//! `tests/fuzz_corpus.rs` only call these. [`token`] signs fuzzed claims with
//! jsonwebtoken so that they reach claim validation: the one use outside `gate`, and
//! only for test input.

use axum::http::{header, HeaderMap, HeaderValue};
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::Value;

use crate::chat::{ErrorCode, RoomName, RoomPattern, MAX_HISTORY_PAGE, MAX_ROOM_NAME_LEN};
use crate::gate::{bearer_token, protocol_token, unix_now, AuthSettings, Authenticator};
use crate::transport::socketio::check_event_payload;
use crate::transport::ws::protocol::{decode, ClientFrame, Request};

/// The HS256 secret of the [`token`] target.
pub const TOKEN_SECRET: &str = "chatwire-fuzz-secret";

/// Events [`sio_event`] knows; any other name must be refused.
const SIO_EVENTS: [&str; 9] = [
    "room:join",
    "room:leave",
    "message:send",
    "user:typing",
    "message:history",
    "message:edit",
    "message:delete",
    "presence:update",
    "presence:list",
];

/// Longest error text a parser may return for `input_len` bytes of input: errors may
/// quote the input, escaped (at most 4 bytes out per byte in), and no more.
fn error_bound(input_len: usize) -> usize {
    4 * input_len + 512
}

/// The first line and the rest, for targets that take two inputs.
fn split_line(data: &[u8]) -> (&[u8], &[u8]) {
    match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[]),
    }
}

/// A text frame of the raw WebSocket protocol (`transport::ws::protocol::decode`).
pub fn ws_frame(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match decode(text) {
        Ok(ClientFrame::Chat { content, .. }) => assert!(!content.is_empty(), "empty chat"),
        Ok(ClientFrame::Request {
            request_id,
            request,
        }) => {
            if let Some(id) = request_id {
                assert!(id.len() <= 64, "request_id of {} bytes", id.len());
            }
            match request {
                Request::History { limit, .. } => {
                    assert!((1..=MAX_HISTORY_PAGE).contains(&limit), "limit {limit}");
                }
                Request::Edit { content, .. } => assert!(!content.is_empty(), "empty edit"),
                _ => {}
            }
        }
        Ok(_) => {}
        Err(e) => {
            assert_eq!(e.code(), ErrorCode::InvalidPayload, "{e}");
            let len = e.to_string().len();
            assert!(len <= error_bound(data.len()), "error of {len} bytes");
        }
    }
}

/// A socket.io event: the event name, a newline, then the JSON arguments
/// (`transport::socketio::check_event_payload`).
pub fn sio_event(data: &[u8]) {
    let (event, args) = split_line(data);
    let Ok(event) = std::str::from_utf8(event) else {
        return;
    };
    let result = check_event_payload(event, args);
    if let Err(e) = &result {
        assert_eq!(e.code(), ErrorCode::InvalidPayload, "{e}");
        let len = e.to_string().len();
        assert!(len <= error_bound(data.len()), "error of {len} bytes");
        return;
    }
    assert!(
        SIO_EVENTS.contains(&event),
        "unknown event {event:?} accepted"
    );
    // Rooms are validated at this edge: an accepted payload names a valid room (serde
    // also takes a struct as an array of its fields; `room` is always the first).
    let room = match serde_json::from_slice::<Value>(args) {
        Ok(Value::Object(mut fields)) => fields.remove("room"),
        Ok(Value::Array(mut fields)) if !fields.is_empty() => Some(fields.swap_remove(0)),
        Ok(Value::Array(_)) => None,
        other => panic!("accepted arguments {other:?}"),
    };
    match (event, room.as_ref()) {
        ("message:send", None | Some(Value::Null)) => {}
        ("presence:update", _) => {}
        (_, Some(Value::String(room))) => {
            assert!(
                RoomName::parse(room).is_ok(),
                "invalid room {room:?} accepted"
            );
        }
        (_, other) => panic!("room {other:?} accepted for {event}"),
    }
}

/// Room names and patterns: the first line as a pattern, the rest as a room name, and
/// the whole input as each (`chat::RoomName::parse`, `chat::RoomPattern::parse` and
/// `matches`, checked against a plain dynamic-programming glob).
pub fn rooms(data: &[u8]) {
    let whole = String::from_utf8_lossy(data);
    let (pattern, room) = split_line(data);
    let (pattern, room) = (
        String::from_utf8_lossy(pattern),
        String::from_utf8_lossy(room),
    );
    let name = check_room_name(&room);
    check_room_name(&whole);
    check_pattern(&whole, None);
    check_pattern(&pattern, name.as_ref());
}

fn is_room_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-')
}

fn check_room_name(raw: &str) -> Option<RoomName> {
    let valid = !raw.is_empty() && raw.len() <= MAX_ROOM_NAME_LEN && raw.chars().all(is_room_char);
    let parsed = RoomName::parse(raw);
    assert_eq!(parsed.is_ok(), valid, "RoomName::parse({raw:?})");
    // The serde path (socket.io payloads, stored messages) agrees with parse.
    let via_serde = serde_json::from_value::<RoomName>(Value::String(raw.to_owned()));
    assert_eq!(via_serde.is_ok(), valid, "RoomName from JSON {raw:?}");
    let name = parsed.ok()?;
    assert_eq!(name.as_str(), raw);
    Some(name)
}

fn check_pattern(raw: &str, room: Option<&RoomName>) {
    let valid = !raw.is_empty()
        && raw.len() <= MAX_ROOM_NAME_LEN
        && raw.chars().all(|c| c == '*' || is_room_char(c));
    let Ok(pattern) = RoomPattern::parse(raw) else {
        assert!(!valid, "RoomPattern::parse refused {raw:?}");
        return;
    };
    assert!(valid, "RoomPattern::parse accepted {raw:?}");
    if let Some(room) = room {
        let expected = reference_glob(raw.as_bytes(), room.as_str().as_bytes());
        assert_eq!(pattern.matches(room), expected, "{raw:?} against {room:?}");
    }
    // Every `*` standing for "x", or for nothing, gives a room the pattern matches.
    for fill in ["x", ""] {
        if let Ok(room) = RoomName::parse(&raw.replace('*', fill)) {
            assert!(pattern.matches(&room), "{raw:?} against {room:?}");
        }
    }
}

/// Glob matching by dynamic programming, O(pattern × text): the oracle for
/// `RoomPattern::matches`.
pub fn reference_glob(pattern: &[u8], text: &[u8]) -> bool {
    // matched[j]: the pattern read so far matches text[..j].
    let mut matched = vec![false; text.len() + 1];
    matched[0] = true;
    for &p in pattern {
        if p == b'*' {
            for j in 1..=text.len() {
                matched[j] = matched[j] || matched[j - 1];
            }
        } else {
            for j in (1..=text.len()).rev() {
                matched[j] = matched[j - 1] && text[j - 1] == p;
            }
            matched[0] = false;
        }
    }
    matched[text.len()]
}

/// Tokens and the headers carrying them: the input as a token, as HS256-signed claims
/// when it is JSON, and as an `Authorization` and a `Sec-WebSocket-Protocol` value
/// (`gate::Authenticator::verify`, `gate::bearer_token`, `gate::protocol_token`).
pub fn token(data: &[u8]) {
    let auth = authenticator();
    if let Ok(text) = std::str::from_utf8(data) {
        check_verify(&auth, text);
    }
    if let Ok(claims) = serde_json::from_slice::<Value>(data) {
        let key = EncodingKey::from_secret(TOKEN_SECRET.as_bytes());
        if let Ok(signed) = encode(&Header::default(), &claims, &key) {
            check_verify(&auth, &signed);
        }
    }
    let Ok(value) = HeaderValue::from_bytes(data) else {
        return;
    };
    let mut headers = HeaderMap::new();
    headers.insert(header::AUTHORIZATION, value.clone());
    headers.insert(header::SEC_WEBSOCKET_PROTOCOL, value);
    let raw = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if let Some(token) = bearer_token(&headers) {
        assert!(
            raw.contains(token) && token == token.trim(),
            "bearer {token:?}"
        );
        check_verify(&auth, token);
    }
    if let Some(token) = protocol_token(&headers) {
        assert!(
            raw.contains(token) && !token.contains(','),
            "protocol {token:?}"
        );
        check_verify(&auth, token);
    }
}

fn authenticator() -> Authenticator {
    let settings = AuthSettings {
        secret: TOKEN_SECRET,
        public_key_pem: None,
        algorithms: "HS256",
        issuer: "",
        audience: "",
        leeway_secs: 0,
    };
    match Authenticator::new(&settings) {
        Ok(auth) => auth,
        Err((var, why)) => panic!("fuzz authenticator: {var}: {why}"),
    }
}

fn check_verify(auth: &Authenticator, token: &str) {
    let before = unix_now();
    match auth.verify(token) {
        Ok(claims) => {
            assert!(
                (1..=120).contains(&claims.user.len()),
                "sub {:?}",
                claims.user
            );
            assert!(claims.rooms.len() <= 256, "{} rooms", claims.rooms.len());
            if let Some(name) = &claims.name {
                assert!(name.chars().count() <= 128, "name {name:?}");
            }
            assert!(
                claims.expires_at >= before,
                "expired at {}",
                claims.expires_at
            );
        }
        Err(e) => {
            assert_eq!(e.code(), ErrorCode::AuthFailed, "{e}");
            let len = e.to_string().len();
            assert!(len <= error_bound(token.len()), "error of {len} bytes");
        }
    }
}
