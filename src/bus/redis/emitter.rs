//! What the socket.io Redis emitter (`@socket.io/redis-emitter`, and ports of it)
//! publishes, read as chat events and commands.
//!
//! - Broadcasts: msgpack `[uid, packet, {rooms, except, flags}]` on `socket.io#/#` (any
//!   rooms, or everyone) and `socket.io#/#{room}#` (exactly one room); a pod listens to
//!   all of them (`PSUBSCRIBE socket.io#/#*`, as Node's adapter does). `packet` is a
//!   socket.io EVENT packet `{type: 2, nsp: "/", data: [event, ...args]}`.
//! - Requests: JSON `{type, opts: {rooms, except}, rooms?, close?}` on
//!   `socket.io-request#/#`: 2 = socketsJoin, 3 = socketsLeave, 4 = disconnectSockets.
//!
//! Every pod reads these from Redis itself, so each acts on its own connections only:
//! nothing is relayed, every connection gets an event once. Only namespace "/" exists
//! here; other namespaces and room names that cannot be chatwire rooms are ignored.

use rmpv::Value as Pack;
use serde::Deserialize;
use serde_json::Value;

use crate::chat::{ChatEvent, RoomName, RoomsCommand, Selection};

/// The emitter's default key (its `key` option).
pub const KEY: &str = "socket.io";
/// Broadcasts to any rooms, or to everyone.
pub const BROADCAST_CHANNEL: &str = "socket.io#/#";
/// Requests (join, leave, disconnect).
pub const REQUEST_CHANNEL: &str = "socket.io-request#/#";

/// Every broadcast channel: `socket.io#/#` and each room's `socket.io#/#{room}#`.
pub const BROADCAST_PATTERN: &str = "socket.io#/#*";

/// Whether `channel` carries emitter broadcasts.
pub fn is_broadcast(channel: &str) -> bool {
    channel.starts_with(BROADCAST_CHANNEL)
}

/// socket.io packet types of an event.
const EVENT: u64 = 2;
const BINARY_EVENT: u64 = 5;

fn field<'a>(map: &'a Pack, key: &str) -> Option<&'a Pack> {
    map.as_map()?
        .iter()
        .find(|(k, _)| k.as_str() == Some(key))
        .map(|(_, v)| v)
}

/// The rooms of a list that can be chatwire rooms.
fn rooms_of(list: Option<&Pack>) -> (Vec<RoomName>, usize) {
    let Some(items) = list.and_then(Pack::as_array) else {
        return (Vec::new(), 0);
    };
    let rooms = items
        .iter()
        .filter_map(|r| r.as_str())
        .filter_map(|r| RoomName::parse(r).ok())
        .collect();
    (rooms, items.len())
}

/// A msgpack value as JSON (binary as an array of byte values, non-string map keys as
/// their JSON text).
fn json_of(value: &Pack) -> Value {
    match value {
        Pack::Nil => Value::Null,
        Pack::Boolean(b) => Value::Bool(*b),
        Pack::Integer(i) => i
            .as_i64()
            .map(Value::from)
            .or_else(|| i.as_u64().map(Value::from))
            .unwrap_or(Value::Null),
        Pack::F32(f) => {
            serde_json::Number::from_f64(f64::from(*f)).map_or(Value::Null, Value::Number)
        }
        Pack::F64(f) => serde_json::Number::from_f64(*f).map_or(Value::Null, Value::Number),
        Pack::String(s) => Value::String(s.as_str().unwrap_or_default().to_owned()),
        Pack::Binary(b) => Value::Array(b.iter().map(|x| Value::from(*x)).collect()),
        Pack::Array(items) => Value::Array(items.iter().map(json_of).collect()),
        Pack::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(k, v)| {
                    let key = match k.as_str() {
                        Some(k) => k.to_owned(),
                        None => json_of(k).to_string(),
                    };
                    (key, json_of(v))
                })
                .collect(),
        ),
        Pack::Ext(_, bytes) => Value::Array(bytes.iter().map(|x| Value::from(*x)).collect()),
    }
}

/// The event a broadcast carries, or why it is ignored.
pub fn decode_broadcast(payload: &[u8]) -> Result<ChatEvent, &'static str> {
    let value = rmpv::decode::read_value(&mut &payload[..]).map_err(|_| "not msgpack")?;
    let [_uid, packet, opts] = value.as_array().map(Vec::as_slice).unwrap_or_default() else {
        return Err("not [uid, packet, opts]");
    };
    let kind = field(packet, "type").and_then(Pack::as_u64);
    if !matches!(kind, Some(EVENT) | Some(BINARY_EVENT)) {
        return Err("not an event packet");
    }
    if field(packet, "nsp").and_then(Pack::as_str).unwrap_or("/") != "/" {
        return Err("another namespace");
    }
    let data = field(packet, "data")
        .and_then(Pack::as_array)
        .ok_or("no data")?;
    let (event, args) = data.split_first().ok_or("no event name")?;
    let event = event.as_str().ok_or("the event name is not a string")?;
    if event.is_empty() {
        return Err("an empty event name");
    }
    let (rooms, named) = rooms_of(field(opts, "rooms"));
    if named > 0 && rooms.is_empty() {
        return Err("no room here can be in it");
    }
    let (except, _) = rooms_of(field(opts, "except"));
    let volatile = field(opts, "flags")
        .and_then(|f| field(f, "volatile"))
        .and_then(Pack::as_bool)
        .unwrap_or(false);
    Ok(ChatEvent::Emitted {
        selection: Selection { rooms, except },
        event: event.to_owned(),
        args: args.iter().map(json_of).collect(),
        volatile,
    })
}

#[derive(Deserialize)]
struct Request {
    #[serde(rename = "type")]
    kind: u8,
    #[serde(default)]
    opts: Opts,
    #[serde(default)]
    rooms: Vec<String>,
}

#[derive(Deserialize, Default)]
struct Opts {
    #[serde(default)]
    rooms: Vec<String>,
    #[serde(default)]
    except: Vec<String>,
}

fn parse_rooms(names: &[String]) -> Vec<RoomName> {
    names
        .iter()
        .filter_map(|r| RoomName::parse(r).ok())
        .collect()
}

/// Whether a request channel message is the emitter's (JSON) rather than the socket.io
/// adapter's (msgpack) on the same channel.
pub fn is_emitter_request(payload: &[u8]) -> bool {
    payload.first() == Some(&b'{')
}

/// The command a request carries, or why it is ignored.
pub fn decode_request(payload: &[u8]) -> Result<(Selection, RoomsCommand), &'static str> {
    let request: Request = serde_json::from_slice(payload).map_err(|_| "not a request")?;
    let rooms = parse_rooms(&request.opts.rooms);
    if !request.opts.rooms.is_empty() && rooms.is_empty() {
        return Err("no room here can be in it");
    }
    let selection = Selection {
        rooms,
        except: parse_rooms(&request.opts.except),
    };
    let command = match request.kind {
        2 => RoomsCommand::Join(parse_rooms(&request.rooms)),
        3 => RoomsCommand::Leave(parse_rooms(&request.rooms)),
        4 => RoomsCommand::Disconnect,
        _ => return Err("a request chatwire does not serve"),
    };
    Ok((selection, command))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(s: &str) -> RoomName {
        RoomName::parse(s).unwrap()
    }

    fn pack(value: &Pack) -> Vec<u8> {
        let mut out = Vec::new();
        rmpv::encode::write_value(&mut out, value).unwrap();
        out
    }

    fn broadcast(rooms: &[&str], except: &[&str], data: Vec<Pack>) -> Vec<u8> {
        let list = |r: &[&str]| Pack::Array(r.iter().map(|s| Pack::from(*s)).collect());
        pack(&Pack::Array(vec![
            Pack::from("emitter"),
            Pack::Map(vec![
                (Pack::from("type"), Pack::from(2)),
                (Pack::from("data"), Pack::Array(data)),
                (Pack::from("nsp"), Pack::from("/")),
            ]),
            Pack::Map(vec![
                (Pack::from("rooms"), list(rooms)),
                (Pack::from("flags"), Pack::Map(vec![])),
                (Pack::from("except"), list(except)),
            ]),
        ]))
    }

    #[test]
    fn an_emitted_event_keeps_its_name_arguments_and_rooms() {
        let payload = broadcast(
            &["lobby", "bad room!"],
            &["muted"],
            vec![
                Pack::from("news"),
                Pack::Map(vec![(Pack::from("n"), Pack::from(1))]),
                Pack::Binary(vec![1, 2]),
            ],
        );
        let event = decode_broadcast(&payload).unwrap();
        assert_eq!(
            event,
            ChatEvent::Emitted {
                selection: Selection {
                    rooms: vec![room("lobby")],
                    except: vec![room("muted")]
                },
                event: "news".into(),
                args: vec![serde_json::json!({"n": 1}), serde_json::json!([1, 2])],
                volatile: false,
            }
        );
    }

    #[test]
    fn what_cannot_be_an_event_here_is_refused_without_panicking() {
        assert!(decode_broadcast(b"").is_err());
        assert!(decode_broadcast(b"{\"json\":1}").is_err());
        assert!(decode_broadcast(&broadcast(&["bad room!"], &[], vec![Pack::from("x")])).is_err());
        assert!(decode_broadcast(&broadcast(&[], &[], vec![])).is_err());
        assert!(decode_broadcast(&broadcast(&[], &[], vec![Pack::from(3)])).is_err());
        assert!(decode_broadcast(&pack(&Pack::Array(vec![Pack::Nil; 3]))).is_err());
        for cut in 0..40 {
            let full = broadcast(&["a"], &[], vec![Pack::from("x"), Pack::from("y")]);
            let _ = decode_broadcast(&full[..cut.min(full.len())]);
        }
    }

    #[test]
    fn requests_become_commands() {
        let join = br#"{"type":2,"opts":{"rooms":["lobby"],"except":[]},"rooms":["vip"]}"#;
        assert!(is_emitter_request(join));
        assert_eq!(
            decode_request(join).unwrap(),
            (
                Selection {
                    rooms: vec![room("lobby")],
                    except: vec![]
                },
                RoomsCommand::Join(vec![room("vip")])
            )
        );
        let all = br#"{"type":4,"opts":{"rooms":[],"except":["staff"]},"close":false}"#;
        assert_eq!(decode_request(all).unwrap().1, RoomsCommand::Disconnect);
        assert!(decode_request(br#"{"type":6,"data":[]}"#).is_err());
        assert!(decode_request(br#"{"type":3,"opts":{"rooms":["no way!"]}}"#).is_err());
        assert!(!is_emitter_request(&[0x93, 1, 2, 3]));
    }
}
