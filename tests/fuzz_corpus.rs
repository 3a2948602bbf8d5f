//! The fuzz targets of `chatwire::fuzzing` in the normal suite, so CI needs no
//! cargo-fuzz: every file of the committed corpus (`fuzz/corpus/<target>/`) replayed
//! through every target, and proptests per target over random bytes and near-valid
//! inputs (JSON frames and payloads with mutated fields, patterns full of `*`, claims).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chatwire::chat::{RoomName, RoomPattern};
use chatwire::fuzzing;
use proptest::prelude::*;
use serde_json::{json, Value};

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 4] = [
    ("ws_frame", fuzzing::ws_frame),
    ("sio_event", fuzzing::sio_event),
    ("rooms", fuzzing::rooms),
    ("token", fuzzing::token),
];

fn corpus_files(target: &str) -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let entries = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {} is missing: {e}", dir.display()));
    let mut files: Vec<PathBuf> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {} is empty", dir.display());
    files
}

#[test]
fn corpus_replays_through_every_target() {
    let mut replayed = 0;
    for (corpus, _) in TARGETS {
        for file in corpus_files(corpus) {
            let data = std::fs::read(&file).unwrap();
            for (name, target) in TARGETS {
                if let Err(panic) = catch_unwind(AssertUnwindSafe(|| target(&data))) {
                    let why = panic
                        .downcast_ref::<String>()
                        .cloned()
                        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                        .unwrap_or_default();
                    panic!("{name} panicked on {}: {why}", file.display());
                }
                replayed += 1;
            }
        }
    }
    eprintln!("replayed {replayed} corpus inputs");
}

#[test]
fn glob_matching_stays_fast_on_pathological_patterns() {
    // The worst case for backtracking matchers: many stars, a text that almost matches.
    let pattern_text = format!("{}b", "*a".repeat(63));
    let pattern = RoomPattern::parse(&pattern_text).unwrap();
    let room = RoomName::parse(&"a".repeat(128)).unwrap();
    let started = Instant::now();
    for _ in 0..1_000 {
        assert!(!pattern.matches(&room));
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "1000 pathological matches took {took:?}"
    );
    assert!(!fuzzing::reference_glob(
        pattern_text.as_bytes(),
        room.as_str().as_bytes()
    ));
    // Inputs past the name length are refused before any matching, however long.
    let huge = "*".repeat(1 << 20);
    let started = Instant::now();
    assert!(RoomPattern::parse(&huge).is_err());
    assert!(RoomName::parse(&huge).is_err());
    fuzzing::rooms(huge.as_bytes());
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "1 MiB of stars took {took:?}"
    );
}

/// Values a field may hold: right and wrong types, valid and invalid rooms and ids.
fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (0u64..=200).prop_map(Value::from),
        "[A-Za-z0-9_.:-]{1,12}".prop_map(Value::from),
        "[A-Za-z0-9_.:* -]{0,140}".prop_map(Value::from),
        "\\PC{0,24}".prop_map(Value::from),
        Just(json!("0192e4f0-1c2d-7000-8000-00000000abcd")),
        Just(json!("online")),
        Just(json!("away")),
        Just(json!("offline")),
        Just(json!("x".repeat(129))),
        Just(json!([])),
        Just(json!({})),
        Just(json!(["lobby", 1])),
    ]
}

/// A JSON object with some of `keys`, each holding a [`field_value`].
fn object_of(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    proptest::collection::vec((proptest::sample::select(keys), field_value()), 0..6)
        .prop_map(|fields| Value::Object(fields.into_iter().map(|(k, v)| (k.into(), v)).collect()))
}

const DATA_KEYS: &[&str] = &[
    "content",
    "typing",
    "status",
    "request",
    "request_id",
    "room",
    "since",
    "before",
    "limit",
    "id",
];

/// Serializes `value`, then maybe overwrites one byte: near-valid JSON.
fn mutated(value: &Value, flip: Option<(usize, u8)>) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(value).unwrap();
    if let Some((at, byte)) = flip {
        let len = bytes.len();
        bytes[at % len] = byte;
    }
    bytes
}

proptest! {
    #[test]
    fn every_target_takes_random_bytes(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        for (_, target) in TARGETS {
            target(&data);
        }
    }

    #[test]
    fn ws_frame_takes_near_valid_frames(
        kind in prop_oneof![
            proptest::sample::select(vec!["chat", "typing", "presence", "system", "ping",
                "pong", "notification", "error"]).prop_map(Value::from),
            field_value(),
        ],
        room in field_value(),
        mut data in object_of(DATA_KEYS),
        request in proptest::sample::select(vec!["room:join", "room:leave",
            "message:history", "message:edit", "message:delete", "presence:list", "nope"]),
        flip in proptest::option::of((any::<usize>(), any::<u8>())),
    ) {
        if let Value::Object(fields) = &mut data {
            fields.entry("request").or_insert_with(|| request.into());
        }
        let frame = json!({ "type": kind, "room": room, "data": data });
        fuzzing::ws_frame(&mutated(&frame, flip));
    }

    #[test]
    fn sio_event_takes_near_valid_payloads(
        event in prop_oneof![
            proptest::sample::select(vec!["room:join", "room:leave", "message:send",
                "user:typing", "message:history", "message:edit", "message:delete",
                "presence:update", "presence:list"]).prop_map(String::from),
            "\\PC{0,16}",
        ],
        args in prop_oneof![
            object_of(DATA_KEYS),
            proptest::collection::vec(field_value(), 0..4).prop_map(Value::from),
            field_value(),
        ],
        flip in proptest::option::of((any::<usize>(), any::<u8>())),
    ) {
        let mut input = event.replace('\n', "").into_bytes();
        input.push(b'\n');
        input.extend(mutated(&args, flip));
        fuzzing::sio_event(&input);
    }

    #[test]
    fn rooms_take_patterns_full_of_stars(
        pattern in prop_oneof!["[ab*]{0,140}", "\\*{0,140}", "(\\*a){0,70}b?", "[A-Za-z0-9_.:*-]{1,128}"],
        room in prop_oneof!["[ab]{0,140}", "a{100,128}", "[A-Za-z0-9_.:-]{1,128}", "\\PC{0,20}"],
    ) {
        fuzzing::rooms(format!("{pattern}\n{room}").as_bytes());
    }

    #[test]
    fn token_takes_near_valid_claims_and_headers(
        sub in prop_oneof![field_value(), Just(json!("alice")), Just(json!("u".repeat(121)))],
        exp in prop_oneof![field_value(), Just(json!(u64::MAX)), Just(json!(4_000_000_000u64))],
        name in field_value(),
        rooms in prop_oneof![
            field_value(),
            proptest::collection::vec(
                prop_oneof!["[A-Za-z0-9_.:*-]{1,20}".prop_map(Value::from), field_value()],
                0..300,
            ).prop_map(Value::from),
        ],
        scheme in proptest::sample::select(vec!["Bearer ", "bearer,", "bearer, ", "Basic ", ""]),
        tail in "[ -~]{0,80}",
    ) {
        let claims = json!({ "sub": sub, "exp": exp, "name": name, "rooms": rooms });
        fuzzing::token(&serde_json::to_vec(&claims).unwrap());
        fuzzing::token(format!("{scheme}{tail}").as_bytes());
    }
}
