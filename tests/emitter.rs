//! The real `@socket.io/redis-emitter` (npm, run by node) against two pods and a real
//! redis-server: its events reach socket.io and raw clients in the room on both pods,
//! once; `socketsJoin`, `socketsLeave` and `disconnectSockets` act on both transports.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::tokens::{self, claims, SECRET};
use common::{
    body_of, http_request, start_pods, until, RedisServer, ServerProcess, SioClient, WsClient, WAIT,
};
use serde_json::{json, Value};

const KEY: &str = "backend-key-0123456789abcdef";

fn as_user(user: &str) -> Value {
    json!({ "auth": { "token": tokens::hs256(SECRET, &claims(user, json!({}))) } })
}

fn ws_path(room: &str, user: &str) -> String {
    let token = tokens::hs256(SECRET, &claims(user, json!({})));
    format!("/ws/{room}?token={token}")
}

/// Runs the emitter with `ops` (tests/js/emitter.mjs) until every publish reached Redis.
async fn emit(redis: &RedisServer, ops: Value) {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js/emitter.mjs");
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new("node")
            .arg(script)
            .arg(redis.url())
            .arg(ops.to_string())
            .output(),
    )
    .await
    .expect("the emitter finished in time")
    .expect("node runs the emitter (npm ci --prefix tests/js)");
    assert!(out.status.success(), "emitter failed: {out:?}");
}

/// The rooms of `user`'s connections on every pod, through the server API.
async fn rooms_of(pod: &ServerProcess, user: &str) -> Vec<Vec<String>> {
    let auth = format!("Bearer {KEY}");
    let path = format!("/api/server/users/{user}/connections");
    let (status, raw) = http_request(pod.addr, "GET", &path, &[("Authorization", &auth)], "").await;
    assert_eq!(status, 200, "{raw}");
    let body: Value = serde_json::from_str(&body_of(&raw)).expect("json");
    body["connections"]
        .as_array()
        .expect("connections")
        .iter()
        .map(|c| {
            c["rooms"]
                .as_array()
                .expect("rooms")
                .iter()
                .filter_map(|r| r.as_str().map(str::to_owned))
                .collect()
        })
        .collect()
}

/// The next of `events` a socket.io client gets: (event, args).
async fn next_of(client: &mut SioClient, events: &[&str]) -> (String, Value) {
    let line = client
        .recv_where(|v| v["type"] == "event" && events.iter().any(|e| v["event"] == *e))
        .await;
    (
        line["event"].as_str().unwrap_or_default().to_owned(),
        line["args"].clone(),
    )
}

/// The next raw frame carrying one of `events`: (event, frame).
async fn next_frame(client: &mut WsClient, events: &[&str]) -> (String, Value) {
    let frame = client
        .recv_any_where(|v| events.iter().any(|e| v["data"]["event"] == *e))
        .await;
    (
        frame["data"]["event"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        frame,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_emitter_reaches_both_transports_on_both_pods_once() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let env = [("JWT_SECRET", SECRET), ("SERVER_API_KEYS", KEY)];
    let pods = start_pods(2, &redis.url(), &env).await;
    let mut alice =
        SioClient::connect_with(&pods[0].http_url(), "websocket", as_user("alice")).await;
    alice.join("lobby").await;
    let mut bob = SioClient::connect_with(&pods[1].http_url(), "websocket", as_user("bob")).await;
    bob.join("lobby").await;
    bob.join("vip").await;
    let (mut carol, _) = WsClient::connect(&pods[0].ws_url(&ws_path("lobby", "carol"))).await;
    let (mut dave, _) = WsClient::connect(&pods[1].ws_url(&ws_path("lobby", "dave"))).await;
    let mut erin = SioClient::connect_with(&pods[1].http_url(), "websocket", as_user("erin")).await;
    erin.join("elsewhere").await;

    // To one room, then to everyone: each lobby member gets the room's event once, in
    // order; erin only the second.
    emit(
        &redis,
        json!([
            { "op": "emit", "to": ["lobby"], "event": "news", "args": [{ "headline": "hi" }, 2] },
            { "op": "emit", "event": "bell", "args": [] },
        ]),
    )
    .await;
    for sio in [&mut alice, &mut bob] {
        assert_eq!(
            next_of(sio, &["news", "bell"]).await,
            ("news".into(), json!([{ "headline": "hi" }, 2]))
        );
        assert_eq!(
            next_of(sio, &["news", "bell"]).await,
            ("bell".into(), json!([]))
        );
    }
    for ws in [&mut carol, &mut dave] {
        let (event, frame) = next_frame(ws, &["news", "bell"]).await;
        assert_eq!(event, "news");
        assert_eq!(frame["type"], "notification");
        assert_eq!(frame["room"], "lobby");
        assert_eq!(frame["data"]["args"], json!([{ "headline": "hi" }, 2]));
        assert_eq!(next_frame(ws, &["news", "bell"]).await.0, "bell");
    }
    assert_eq!(next_of(&mut erin, &["news", "bell"]).await.0, "bell");

    // `except` leaves out members of the excepted room (bob is in vip).
    emit(
        &redis,
        json!([
            { "op": "emit", "to": ["lobby"], "except": ["vip"], "event": "promo", "args": ["p"] },
            { "op": "emit", "event": "bell2" },
        ]),
    )
    .await;
    assert_eq!(next_of(&mut alice, &["promo", "bell2"]).await.0, "promo");
    assert_eq!(next_of(&mut bob, &["promo", "bell2"]).await.0, "bell2");
    assert_eq!(next_frame(&mut dave, &["promo", "bell2"]).await.0, "promo");

    // socketsJoin, then an emit to the new room at once: every lobby member has it.
    emit(
        &redis,
        json!([
            { "op": "socketsJoin", "in": ["lobby"], "rooms": ["club"] },
            { "op": "emit", "to": ["club"], "event": "welcome", "args": ["to the club"] },
            { "op": "emit", "event": "bell3" },
        ]),
    )
    .await;
    for sio in [&mut alice, &mut bob] {
        assert_eq!(
            next_of(sio, &["welcome", "bell3"]).await,
            ("welcome".into(), json!(["to the club"]))
        );
    }
    for ws in [&mut carol, &mut dave] {
        assert_eq!(next_frame(ws, &["welcome", "bell3"]).await.0, "welcome");
    }
    assert_eq!(next_of(&mut erin, &["welcome", "bell3"]).await.0, "bell3");
    assert!(rooms_of(&pods[1], "dave").await[0].contains(&"club".to_owned()));

    // socketsLeave: lobby members leave lobby, on both pods and transports.
    emit(
        &redis,
        json!([{ "op": "socketsLeave", "in": ["lobby"], "rooms": ["lobby"] }]),
    )
    .await;
    for user in ["alice", "bob", "carol", "dave"] {
        until(&format!("{user} left lobby"), WAIT, || async {
            let rooms = rooms_of(&pods[0], user).await;
            (!rooms.is_empty() && rooms.iter().all(|r| !r.contains(&"lobby".to_owned())))
                .then_some(())
        })
        .await;
    }
    let refused = alice.send(Some("lobby"), "still in?").await;
    assert_eq!(refused["code"], "CHANNEL_ERROR", "{refused}");

    // disconnectSockets: club members are disconnected; erin stays.
    emit(
        &redis,
        json!([{ "op": "disconnectSockets", "in": ["club"], "close": true }]),
    )
    .await;
    for sio in [&mut alice, &mut bob] {
        assert_eq!(
            sio.next_of("disconnect").await["reason"],
            "io server disconnect"
        );
    }
    for ws in [&mut carol, &mut dave] {
        assert_eq!(ws.expect_close().await, 4000);
    }
    assert_eq!(rooms_of(&pods[0], "erin").await.len(), 1);
    for user in ["alice", "bob", "carol", "dave"] {
        until(&format!("{user} gone"), Duration::from_secs(5), || async {
            rooms_of(&pods[1], user).await.is_empty().then_some(())
        })
        .await;
    }
    erin.close().await;
}

#[tokio::test]
async fn the_emitter_is_ignored_when_turned_off() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let env = [("JWT_SECRET", SECRET), ("REDIS_EMITTER", "false")];
    let pods = start_pods(1, &redis.url(), &env).await;
    let mut alice =
        SioClient::connect_with(&pods[0].http_url(), "websocket", as_user("alice")).await;
    alice.join("lobby").await;
    emit(
        &redis,
        json!([{ "op": "emit", "to": ["lobby"], "event": "news" }, { "op": "socketsLeave", "rooms": ["lobby"] }]),
    )
    .await;
    // A chat message sent after the emits arrives first: nothing of them came.
    let mut bob = SioClient::connect_with(&pods[0].http_url(), "websocket", as_user("bob")).await;
    bob.join("lobby").await;
    let ack = bob.send(Some("lobby"), "after").await;
    assert_eq!(ack["status"], "ok", "{ack}");
    let line = alice
        .recv_where(|v| {
            v["type"] == "event" && (v["event"] == "news" || v["event"] == "message:new")
        })
        .await;
    assert_eq!(line["event"], "message:new", "{line}");
    assert_eq!(line["args"][0]["data"]["content"], "after");
    let mut conn = redis.connection().await.expect("redis");
    let patterns: u64 = redis::cmd("PUBSUB")
        .arg("NUMPAT")
        .query_async(&mut conn)
        .await
        .expect("NUMPAT");
    assert_eq!(patterns, 0, "no emitter pattern is subscribed");
    alice.close().await;
    bob.close().await;
}
