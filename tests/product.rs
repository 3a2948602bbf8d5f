//! The chat product beyond plain messages, on both transports: display names that
//! anonymous clients choose (marked unverified; a token's name wins), read receipts and
//! unread counts across pods, and the Streamly dialect (seed 003) on `/ws?room=`, with
//! Streamly's Redis keys kept true across pods.

mod common;

use std::time::Duration;

use common::tokens::{self, claims, SECRET};
use common::{
    body_of, eventually, http_get_with, request, test_config, ws_refused, RedisServer,
    ServerProcess, SioClient, TestServer, WsClient, WAIT,
};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message as WsMessage;

fn named(name: &str) -> Value {
    json!({ "auth": { "name": name } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chosen_display_names_reach_both_transports_marked_unverified() {
    let server = TestServer::start().await;
    let mut ada = SioClient::connect_with(&server.http_url(), "websocket", named("  Ada ")).await;
    ada.join("names").await;
    let (mut grace, welcome) = WsClient::connect(&server.ws_url("/ws/names?name=Grace")).await;
    assert_eq!(welcome["data"]["name"], "Grace", "{welcome}");
    assert_eq!(welcome["data"]["unverified"], true, "{welcome}");

    // Presence names the newcomer as she chose, marked unverified.
    let online = timeout(
        WAIT,
        ada.recv_where(|v| {
            v["event"] == "presence:update" && v["args"][0]["user"]["name"] == "Grace"
        }),
    )
    .await
    .expect("presence in time");
    let user = &online["args"][0]["user"];
    assert_eq!(user["unverified"], true, "{online}");
    assert_eq!(user["id"], welcome["data"]["user"], "{online}");

    // A message carries its sender's name beside `from`.
    let ack = ada.send(Some("names"), "hello from Ada").await;
    assert_eq!(ack["status"], "ok", "{ack}");
    let got = grace.recv_type("chat").await;
    assert_eq!(got["data"]["content"], "hello from Ada");
    assert_eq!(
        got["user"],
        json!({ "id": ada.id, "name": "Ada", "unverified": true }),
        "{got}"
    );
    assert_eq!(got["from"], ada.id.as_str());
    grace
        .send_json(json!({ "type": "chat", "data": { "content": "hi Ada" } }))
        .await;
    let heard = ada.next_event("message:new").await;
    assert_eq!(heard["user"]["name"], "Grace", "{heard}");
    assert_eq!(heard["user"]["unverified"], true, "{heard}");

    // The stored copies keep the names: history shows who wrote what.
    let page = ada
        .emit_ack("message:history", json!([{ "room": "names" }]))
        .await;
    let names: Vec<&Value> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| &m["user"]["name"])
        .collect();
    assert_eq!(names, [&json!("Ada"), &json!("Grace")], "{page}");
    assert!(page["messages"][1]["user"]["unverified"] == true, "{page}");

    // Without a name nothing changes: no `user` on the message.
    let (mut plain, _) = WsClient::connect(&server.ws_url("/ws/names")).await;
    plain.chat("no name here").await;
    let anonymous = grace.recv_type("chat").await;
    assert_eq!(anonymous["data"]["content"], "no name here");
    assert!(anonymous.get("user").is_none(), "{anonymous}");
    ada.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tokens_name_wins_over_the_chosen_one() {
    let mut config = test_config();
    config.jwt_secret = SECRET.into();
    let server = TestServer::start_with(config).await;
    let token = tokens::hs256(SECRET, &claims("alice", json!({})));
    let options = json!({ "auth": { "token": token, "name": "Mallory" } });
    let mut alice = SioClient::connect_with(&server.http_url(), "websocket", options).await;
    alice.join("vouched").await;
    let url = server.ws_url(&format!("/ws/vouched?name=Mallory&token={token}"));
    let (mut raw, welcome) = WsClient::connect(&url).await;
    assert_eq!(welcome["data"]["name"], "alice name", "{welcome}");
    assert!(welcome["data"].get("unverified").is_none(), "{welcome}");

    alice.send(Some("vouched"), "signed").await;
    let got = raw.recv_type("chat").await;
    assert_eq!(
        got["user"],
        json!({ "id": "alice", "name": "alice name" }),
        "{got}"
    );
    alice.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_display_names_are_refused_with_a_typed_error() {
    let server = TestServer::start().await;
    let long = "n".repeat(65);
    for bad in [long.as_str(), "%20%20", "a%0Ab"] {
        let (status, body) = ws_refused(&server.ws_url(&format!("/ws?name={bad}")), &[]).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["code"], "INVALID_PAYLOAD", "{bad}: {body}");
    }
    for bad in [json!(42), json!(""), json!("x".repeat(65))] {
        let refusal = SioClient::refused(
            &server.http_url(),
            "websocket",
            json!({ "auth": { "name": bad } }),
        )
        .await;
        assert!(refusal.starts_with("INVALID_PAYLOAD"), "{bad}: {refusal}");
    }
    // The server is fine afterwards.
    let mut ok = SioClient::connect_with(&server.http_url(), "websocket", named("Fine")).await;
    ok.join("after").await;
    ok.close().await;
    server.stop().await;
}

/// A Streamly client: a raw WebSocket that speaks only seed 003's frames.
struct Streamly {
    stream: common::WsStream,
}

impl Streamly {
    async fn connect(url: &str) -> Self {
        let (stream, resp) = timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("connect in time")
            .expect("connect");
        assert_eq!(resp.status(), 101);
        Self { stream }
    }

    async fn say(&mut self, room: &str, message: &str, username: &str) {
        let frame = json!({
            "type": "message",
            "data": { "room": room, "message": message, "username": username }
        });
        futures_util::SinkExt::send(&mut self.stream, WsMessage::text(frame.to_string()))
            .await
            .expect("send");
    }

    /// The next JSON frame.
    async fn next(&mut self) -> Value {
        loop {
            let frame = timeout(WAIT, self.stream.next())
                .await
                .expect("frame in time")
                .expect("open")
                .expect("frame");
            if let WsMessage::Text(text) = frame {
                return serde_json::from_str(&text).expect("JSON");
            }
        }
    }

    /// The next Streamly message frame, asserting its exact shape.
    async fn message(&mut self) -> Value {
        loop {
            let frame = self.next().await;
            if frame["type"] != "message" {
                continue;
            }
            let mut keys: Vec<&String> = frame["data"].as_object().expect("data").keys().collect();
            keys.sort();
            assert_eq!(
                keys,
                ["id", "message", "room", "timestamp", "username"],
                "{frame}"
            );
            return frame["data"].clone();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamly_client_chats_with_socketio_and_realtime_clients() {
    let server = TestServer::start().await;
    let mut sio = SioClient::connect_with(&server.http_url(), "websocket", named("Sio")).await;
    sio.join("stream").await;
    let (mut raw, _) = WsClient::connect(&server.ws_url("/ws?room=stream&name=Raw")).await;
    let mut sam = Streamly::connect(&server.ws_url("/ws?room=stream")).await;

    // Sam's first frame is a Streamly one: everyone gets it, Sam gets the echo.
    sam.say("stream", "hello from Streamly", "sam").await;
    let echo = sam.message().await;
    assert_eq!(echo["message"], "hello from Streamly");
    assert_eq!(echo["username"], "sam");
    assert_eq!(echo["room"], "stream");
    let got = raw.recv_type("chat").await;
    assert_eq!(got["data"]["content"], "hello from Streamly");
    assert_eq!(got["user"]["name"], "sam");
    assert_eq!(got["user"]["unverified"], true);
    assert_eq!(got["id"], echo["id"]);
    assert_eq!(got["timestamp"], echo["timestamp"]);
    let heard = sio.next_event("message:new").await;
    assert_eq!(heard["data"]["content"], "hello from Streamly");

    // From then on Sam receives the others' messages in Streamly's shape, and nothing
    // that is not a message (presence, typing) reaches it.
    raw.send_json(json!({ "type": "typing", "data": { "typing": true } }))
        .await;
    sio.send(Some("stream"), "hello from socket.io").await;
    let from_sio = sam.message().await;
    assert_eq!(from_sio["message"], "hello from socket.io");
    assert_eq!(from_sio["username"], "Sio");
    raw.chat("hello from realtime").await;
    let from_raw = sam.message().await;
    assert_eq!(from_raw["message"], "hello from realtime");
    assert_eq!(from_raw["username"], "Raw");

    // A bad Streamly frame gets a typed error, and the connection lives on.
    let bad = json!({ "type": "message", "data": { "room": "stream", "message": 7 } });
    futures_util::SinkExt::send(&mut sam.stream, WsMessage::text(bad.to_string()))
        .await
        .expect("send");
    let error = loop {
        let frame = sam.next().await;
        if frame["type"] == "error" {
            break frame;
        }
    };
    assert_eq!(error["data"]["code"], "INVALID_PAYLOAD", "{error}");
    sam.say("stream", "still here", "sam").await;
    assert_eq!(sam.message().await["message"], "still here");
    sio.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_streamly_speaks_the_dialect_from_the_start() {
    let server = TestServer::start().await;
    let mut watcher = Streamly::connect(&server.ws_url("/ws?room=fmt&format=streamly")).await;
    let (mut raw, _) = WsClient::connect(&server.ws_url("/ws?room=fmt&name=Raw")).await;
    raw.chat("first").await;
    // No welcome, no presence: the first frame is the message.
    let first = watcher.next().await;
    assert_eq!(first["type"], "message", "{first}");
    assert_eq!(first["data"]["message"], "first");
    assert_eq!(first["data"]["username"], "Raw");
    let (status, body) = ws_refused(&server.ws_url("/ws?room=fmt&format=xml"), &[]).await;
    assert_eq!(status, 400, "{body}");
    server.stop().await;
}

async fn members(redis: &RedisServer, key: &str) -> Vec<String> {
    let mut conn = redis.connection().await.expect("redis");
    let mut found: Vec<String> = redis::cmd("SMEMBERS")
        .arg(key)
        .query_async(&mut conn)
        .await
        .expect("SMEMBERS");
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamly_redis_keys_stay_true_across_pods_and_pod_deaths() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let url = redis.url();
    let env = [("REDIS_URL", url.as_str()), ("PRESENCE_TTL", "1500ms")];
    let a = ServerProcess::spawn(&env).await;
    let mut b = ServerProcess::spawn(&env).await;
    for pod in [&a, &b] {
        common::wait_for_health(pod.addr, |h| h["redis"] == "up").await;
    }
    let (on_a, welcome_a) = WsClient::connect(&a.ws_url("/ws?room=ops")).await;
    let (on_b, welcome_b) = WsClient::connect(&b.ws_url("/ws?room=ops")).await;
    let (lone, _) = WsClient::connect(&a.ws_url("/ws?room=lonely")).await;
    let id = |w: &Value| w["data"]["client_id"].as_str().expect("id").to_owned();
    let mut both = vec![id(&welcome_a), id(&welcome_b)];
    both.sort();
    eventually("both pods' connections listed", WAIT, || async {
        members(&redis, "connections:ops").await == both
    })
    .await;
    assert_eq!(
        members(&redis, "rooms:active").await,
        ["lonely", "ops"],
        "rooms:active"
    );

    // A connection that leaves is gone from its room's set; an empty room from the list.
    drop(lone);
    eventually("the lonely room is no longer active", WAIT, || async {
        members(&redis, "rooms:active").await == ["ops"]
    })
    .await;
    assert!(members(&redis, "connections:lonely").await.is_empty());

    // A Redis that restarts empty gets every pod's records again once they reconnect.
    redis.kill().await;
    redis.restart().await;
    eventually(
        "the records are written again after a Redis restart",
        Duration::from_secs(15),
        || async { members(&redis, "connections:ops").await == both },
    )
    .await;
    assert_eq!(members(&redis, "rooms:active").await, ["ops"]);

    // A pod that dies without a word: its connections go once its liveness expires.
    b.signal("KILL").await;
    let _ = b.wait(WAIT).await;
    eventually(
        "the dead pod's connection is removed",
        Duration::from_secs(15),
        || async { members(&redis, "connections:ops").await == [id(&welcome_a)] },
    )
    .await;
    assert_eq!(members(&redis, "rooms:active").await, ["ops"]);
    drop((on_a, on_b));
    eventually("the last connection's room is gone", WAIT, || async {
        members(&redis, "rooms:active").await.is_empty()
    })
    .await;
    drop(a);
}

async fn unread_over_http(addr: std::net::SocketAddr, path: &str, token: &str) -> (u16, Value) {
    let bearer = format!("Bearer {token}");
    let (status, raw) = http_get_with(addr, path, &[("authorization", &bearer)]).await;
    (
        status,
        serde_json::from_str(&body_of(&raw)).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_receipts_and_unread_counts_cross_pods_and_transports() {
    let mut config = test_config();
    config.jwt_secret = SECRET.into();
    let pods = TestServer::start_pods(2, config).await;
    let token = |user: &str| tokens::hs256(SECRET, &claims(user, json!({})));
    let (alice_token, bob_token) = (token("alice"), token("bob"));

    // Alice reads on socket.io on pod 0 and has a second device (raw) on pod 1; Bob
    // writes from pod 1.
    let options = json!({ "auth": { "token": alice_token } });
    let mut alice = SioClient::connect_with(&pods[0].http_url(), "websocket", options).await;
    let joined = alice
        .emit_ack("room:join", json!([{ "room": "reads" }]))
        .await;
    assert_eq!(
        joined,
        json!({ "status": "ok", "room": "reads", "read_offset": 0, "unread": 0, "last_offset": 0 })
    );
    let url = |pod: &TestServer, token: &str| pod.ws_url(&format!("/ws/reads?token={token}"));
    let (mut bob, _) = WsClient::connect(&url(&pods[1], &bob_token)).await;
    let (mut tablet, _) =
        WsClient::connect(&pods[1].ws_url(&format!("/ws?token={alice_token}"))).await;
    for i in 1..=3 {
        bob.send_json(json!({ "type": "chat", "data": { "content": format!("m{i}"), "request_id": format!("s{i}") } }))
            .await;
        let ack = bob.recv_any_where(|f| f["data"]["reply"] == "chat").await;
        assert_eq!(ack["data"]["offset"], i, "{ack}");
        assert_eq!(alice.next_event("message:new").await["offset"], i);
    }

    // Unread: 3 for Alice on her other device's join (raw, other pod) and over HTTP;
    // Bob's own messages are never unread for him.
    let reply = request(
        &mut tablet,
        "j",
        json!({ "request": "room:join", "room": "reads" }),
    )
    .await;
    assert_eq!(
        (reply["unread"].clone(), reply["read_offset"].clone()),
        (json!(3), json!(0)),
        "{reply}"
    );
    assert_eq!(reply["last_offset"], 3, "{reply}");
    let (status, body) =
        unread_over_http(pods[1].addr, "/api/rooms/reads/unread", &alice_token).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({ "status": "ok", "room": "reads", "read_offset": 0, "unread": 3, "last_offset": 3 })
    );
    let mine = request(
        &mut bob,
        "u",
        json!({ "request": "room:unread", "room": "reads" }),
    )
    .await;
    assert_eq!(mine["unread"], 0, "{mine}");

    // Alice reads up to 2 on socket.io: Bob (raw, other pod) and her tablet see it.
    let ack = alice
        .emit_ack("message:read", json!([{ "room": "reads", "offset": 2 }]))
        .await;
    assert_eq!(
        ack,
        json!({ "status": "ok", "room": "reads", "read_offset": 2 })
    );
    for client in [&mut bob, &mut tablet] {
        let receipt = client
            .recv_any_where(|f| f["data"]["event"] == "receipt:update")
            .await;
        assert_eq!(receipt["room"], "reads", "{receipt}");
        let receipts = &receipt["data"]["receipts"];
        assert_eq!(receipts.as_array().map(Vec::len), Some(1), "{receipt}");
        assert_eq!(receipts[0]["user"]["id"], "alice", "{receipt}");
        assert_eq!(receipts[0]["offset"], 2, "{receipt}");
    }

    // A position never moves back; reading past the end reads to the end.
    let back = request(
        &mut tablet,
        "r1",
        json!({ "request": "message:read", "room": "reads", "offset": 1 }),
    )
    .await;
    assert_eq!(back["read_offset"], 2, "{back}");
    let past = request(
        &mut tablet,
        "r2",
        json!({ "request": "message:read", "room": "reads", "offset": 99 }),
    )
    .await;
    assert_eq!(past["read_offset"], 3, "{past}");
    let receipt = timeout(
        WAIT,
        alice.recv_where(|v| {
            v["event"] == "receipt:update" && v["args"][0]["receipts"][0]["offset"] == 3
        }),
    )
    .await
    .expect("the newest position reaches socket.io within the second");
    assert_eq!(
        receipt["args"][0]["receipts"][0]["user"]["id"], "alice",
        "{receipt}"
    );

    // The per-user summary, on both transports and over HTTP.
    let summary = alice.emit_ack("room:unread", json!([{}])).await;
    let expected = json!({ "status": "ok", "rooms": [
        { "room": "reads", "read_offset": 3, "unread": 0, "last_offset": 3 }
    ] });
    assert_eq!(summary, expected);
    let (status, body) = unread_over_http(pods[0].addr, "/api/unread", &alice_token).await;
    assert_eq!((status, body), (200, expected));

    // Misuse gets typed errors; anonymous HTTP callers have no positions.
    let bad = alice
        .emit_ack("message:read", json!([{ "room": "reads", "offset": -1 }]))
        .await;
    assert_eq!(bad["code"], "INVALID_PAYLOAD", "{bad}");
    let outside = alice
        .emit_ack(
            "message:read",
            json!([{ "room": "elsewhere", "offset": 1 }]),
        )
        .await;
    assert_eq!(outside["code"], "CHANNEL_ERROR", "{outside}");
    let (status, raw) = http_get_with(pods[0].addr, "/api/unread", &[]).await;
    assert_eq!(status, 401, "{raw}");
    alice.close().await;
    for pod in pods {
        pod.stop().await;
    }
}

/// Reactions between a socket.io client on `a` and a raw client on `b` (two pods, or
/// the same server twice), as counts, events and history show them.
async fn reactions_between(a: &str, b: &str, room: &str) {
    let mut ada = SioClient::connect_with(&format!("http://{a}"), "websocket", named("Ada")).await;
    ada.join(room).await;
    let (mut grace, _) = WsClient::connect(&format!("ws://{b}/ws/{room}?name=Grace")).await;
    let sent = ada.send(Some(room), "react to me").await;
    let id = sent["id"].as_str().expect("id").to_owned();
    assert_eq!(grace.recv_type("chat").await["id"], id.as_str());

    let react = |emoji: &str, add: bool| json!({ "request": "message:react", "room": room, "id": id, "emoji": emoji, "add": add });
    let reply = request(&mut grace, "r1", react("👍", true)).await;
    assert_eq!(reply["reactions"], json!({ "👍": 1 }), "{reply}");
    let heard = ada.next_event("message:reactions").await;
    assert_eq!(heard["id"], id.as_str(), "{heard}");
    assert_eq!(heard["reactions"], json!({ "👍": 1 }), "{heard}");
    assert_eq!(heard["user"]["name"], "Grace", "{heard}");
    assert_eq!(
        (heard["emoji"].clone(), heard["add"].clone()),
        (json!("👍"), json!(true))
    );

    // One per user, emoji and message: Ada's counts, a repeat changes nothing (and says
    // nothing: the next event Grace hears is the party popper).
    let ack = ada
        .emit_ack(
            "message:react",
            json!([{ "room": room, "id": id, "emoji": "👍" }]),
        )
        .await;
    assert_eq!(ack["reactions"], json!({ "👍": 2 }), "{ack}");
    let again = ada
        .emit_ack(
            "message:react",
            json!([{ "room": room, "id": id, "emoji": "👍" }]),
        )
        .await;
    assert_eq!(again["reactions"], json!({ "👍": 2 }), "{again}");
    ada.emit_ack(
        "message:react",
        json!([{ "room": room, "id": id, "emoji": "🎉" }]),
    )
    .await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let frame = grace
            .recv_any_where(|f| f["data"]["event"] == "message:reactions")
            .await;
        seen.push(frame["data"]["reactions"].clone());
    }
    assert_eq!(seen, [json!({ "👍": 2 }), json!({ "👍": 2, "🎉": 1 })]);

    // Taking one back; history carries the counts.
    let reply = request(&mut grace, "r2", react("👍", false)).await;
    assert_eq!(reply["reactions"], json!({ "👍": 1, "🎉": 1 }), "{reply}");
    let page = ada
        .emit_ack("message:history", json!([{ "room": room }]))
        .await;
    assert_eq!(
        page["messages"][0]["reactions"],
        json!({ "👍": 1, "🎉": 1 }),
        "{page}"
    );
    let page = request(
        &mut grace,
        "h",
        json!({ "request": "message:history", "room": room }),
    )
    .await;
    assert_eq!(
        page["messages"][0]["reactions"],
        json!({ "👍": 1, "🎉": 1 }),
        "{page}"
    );

    // Misuse: typed errors, and the connection goes on.
    for (bad, code) in [
        (
            json!({ "room": room, "id": id, "emoji": "" }),
            "INVALID_PAYLOAD",
        ),
        (
            json!({ "room": room, "id": id, "emoji": "two words" }),
            "INVALID_PAYLOAD",
        ),
        (
            json!({ "room": room, "id": uuid::Uuid::now_v7(), "emoji": "👍" }),
            "INVALID_PAYLOAD",
        ),
        (
            json!({ "room": format!("{room}-other"), "id": id, "emoji": "👍" }),
            "CHANNEL_ERROR",
        ),
        (
            json!({ "room": room, "id": "nope", "emoji": "👍" }),
            "INVALID_PAYLOAD",
        ),
    ] {
        let ack = ada.emit_ack("message:react", json!([bad])).await;
        assert_eq!(ack["code"], code, "{bad}: {ack}");
    }
    for i in 0..48 {
        ada.emit_ack(
            "message:react",
            json!([{ "room": room, "id": id, "emoji": format!(":e{i}:") }]),
        )
        .await;
    }
    let full = ada
        .emit_ack(
            "message:react",
            json!([{ "room": room, "id": id, "emoji": ":one-too-many:" }]),
        )
        .await;
    assert_eq!(full["code"], "INVALID_PAYLOAD", "{full}");
    ada.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_cross_pods_and_transports_and_show_in_history() {
    let pods = TestServer::start_pods(2, test_config()).await;
    reactions_between(
        &pods[0].addr.to_string(),
        &pods[1].addr.to_string(),
        "react",
    )
    .await;
    for pod in pods {
        pod.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reactions_and_read_positions_are_kept_in_sqlite_and_postgres() {
    // SQLite: the default log of a server that names no DATABASE_URL.
    let server = TestServer::start().await;
    let addr = server.addr.to_string();
    reactions_between(&addr, &addr, "sqlite").await;
    server.stop().await;

    let Some(schema) = common::db::PgSchema::create() else {
        return;
    };
    let mut config = test_config();
    config.database_url = schema.url().into();
    config.jwt_secret = SECRET.into();
    let server = TestServer::start_with(config).await;
    let addr = server.addr.to_string();
    reactions_between(&addr, &addr, "postgres").await;
    // Read positions in PostgreSQL too: forward only, clamped, unread counted.
    let token = tokens::hs256(SECRET, &claims("carol", json!({})));
    let (mut carol, _) =
        WsClient::connect(&server.ws_url(&format!("/ws/postgres?token={token}"))).await;
    let unread = request(
        &mut carol,
        "u",
        json!({ "request": "room:unread", "room": "postgres" }),
    )
    .await;
    assert_eq!(
        (unread["read_offset"].clone(), unread["unread"].clone()),
        (json!(0), json!(1)),
        "{unread}"
    );
    let read = request(
        &mut carol,
        "r",
        json!({ "request": "message:read", "room": "postgres", "offset": 7 }),
    )
    .await;
    assert_eq!(read["read_offset"], 1, "{read}");
    let back = request(
        &mut carol,
        "b",
        json!({ "request": "message:read", "room": "postgres", "offset": 0 }),
    )
    .await;
    assert_eq!(back["read_offset"], 1, "{back}");
    let unread = request(&mut carol, "v", json!({ "request": "room:unread" })).await;
    assert_eq!(
        unread["rooms"],
        json!([{ "room": "postgres", "read_offset": 1, "unread": 0, "last_offset": 1 }]),
        "{unread}"
    );
    server.stop().await;
    drop(schema);
}

/// Threads between Ada (socket.io on `a`), Grace and Bob (raw, on `b` and `a`), in
/// `room`: replies reach those who opened the thread, the room hears the count, history
/// shows it.
async fn threads_between(a: &str, b: &str, room: &str) {
    let mut ada = SioClient::connect_with(&format!("http://{a}"), "websocket", named("Ada")).await;
    ada.join(room).await;
    let (mut grace, _) = WsClient::connect(&format!("ws://{b}/ws/{room}?name=Grace")).await;
    let (mut bob, _) = WsClient::connect(&format!("ws://{a}/ws/{room}?name=Bob")).await;
    let root = ada.send(Some(room), "what do you think?").await;
    let id = root["id"].as_str().expect("id").to_owned();
    let thread = format!("thread:{id}");
    for client in [&mut grace, &mut bob] {
        assert_eq!(client.recv_type("chat").await["id"], id.as_str());
    }

    let opened = request(
        &mut grace,
        "o",
        json!({ "request": "thread:open", "room": room, "id": id }),
    )
    .await;
    assert_eq!(opened["thread"], thread.as_str(), "{opened}");
    assert_eq!(opened["reply_count"], 0, "{opened}");

    // Ada replies (and so opens the thread): Grace gets the reply, Bob only the count.
    let ack = ada
        .emit_ack(
            "message:send",
            json!([{ "room": room, "content": "I agree", "thread": id }]),
        )
        .await;
    assert_eq!(
        (ack["status"].clone(), ack["offset"].clone()),
        (json!("ok"), json!(1)),
        "{ack}"
    );
    let got = grace.recv_type("chat").await;
    assert_eq!(got["room"], thread.as_str(), "{got}");
    assert_eq!(got["thread"], json!({ "id": id, "room": room }), "{got}");
    assert_eq!(got["data"]["content"], "I agree");
    let updated = bob
        .recv_any_where(|f| f["data"]["event"] == "thread:updated")
        .await;
    assert_eq!(updated["room"], room, "{updated}");
    assert_eq!(
        (
            updated["data"]["id"].clone(),
            updated["data"]["reply_count"].clone()
        ),
        (json!(id), json!(1))
    );
    let heard = ada.next_event("thread:updated").await;
    assert_eq!(heard["reply_count"], 1, "{heard}");

    // Grace replies on the raw protocol; Ada, who replied, gets it.
    grace
        .send_json(json!({ "type": "chat", "room": room, "data": { "content": "me too", "thread": id, "request_id": "t2" } }))
        .await;
    let ack = grace.recv_any_where(|f| f["data"]["reply"] == "chat").await;
    assert_eq!(ack["data"]["offset"], 2, "{ack}");
    let reply = ada.next_event("message:new").await;
    assert_eq!(
        (reply["room"].clone(), reply["data"]["content"].clone()),
        (json!(thread), json!("me too"))
    );

    // A reply is a message like any other for those who opened its thread: its author
    // edits it, others react to it and read up to it; Bob (thread not open) may not.
    let reply_id = reply["id"].as_str().expect("reply id").to_owned();
    let react =
        json!({ "request": "message:react", "room": thread, "id": reply_id, "emoji": "👀" });
    let reacted = request(&mut grace, "rr", react.clone()).await;
    assert_eq!(reacted["reactions"], json!({ "👀": 1 }), "{reacted}");
    let refused = request(&mut bob, "rb", react).await;
    assert_eq!(refused["code"], "FORBIDDEN", "{refused}");
    let read = ada
        .emit_ack("message:read", json!([{ "room": thread, "offset": 2 }]))
        .await;
    assert_eq!(read["read_offset"], 2, "{read}");
    let edited = request(
        &mut grace,
        "e",
        json!({ "request": "message:edit", "room": thread, "id": reply_id, "content": "me too!" }),
    )
    .await;
    assert_eq!(edited["status"], "ok", "{edited}");
    let updated = ada.next_event("message:updated").await;
    assert_eq!(updated["data"]["content"], "me too!", "{updated}");

    // Bob got no reply: his next chat frame is the next message of the room itself.
    ada.send(Some(room), "back in the room").await;
    assert_eq!(
        bob.recv_type("chat").await["data"]["content"],
        "back in the room"
    );

    // History: the root shows its count and last reply; the thread pages its replies.
    let page = ada
        .emit_ack("message:history", json!([{ "room": room }]))
        .await;
    let first = &page["messages"][0];
    assert_eq!(
        (first["id"].clone(), first["reply_count"].clone()),
        (json!(id), json!(2)),
        "{page}"
    );
    assert_eq!(first["last_reply_at"], reply["timestamp"], "{page}");
    let replies = request(
        &mut bob,
        "h",
        json!({ "request": "message:history", "room": room, "thread": id }),
    )
    .await;
    let texts: Vec<&Value> = replies["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| &m["data"]["content"])
        .collect();
    assert_eq!(texts, [&json!("I agree"), &json!("me too!")], "{replies}");

    // Misuse: typed errors.
    let joined = ada.emit_ack("room:join", json!([{ "room": thread }])).await;
    assert_eq!(joined["code"], "FORBIDDEN", "{joined}");
    let direct = ada
        .emit_ack("message:send", json!([{ "room": thread, "content": "x" }]))
        .await;
    assert_eq!(direct["code"], "INVALID_PAYLOAD", "{direct}");
    let unknown = uuid::Uuid::now_v7();
    let ghost = ada
        .emit_ack(
            "message:send",
            json!([{ "room": room, "content": "x", "thread": unknown }]),
        )
        .await;
    assert_eq!(ghost["code"], "INVALID_PAYLOAD", "{ghost}");
    let stranger = request(
        &mut bob,
        "x",
        json!({ "request": "thread:open", "room": format!("{room}-else"), "id": id }),
    )
    .await;
    assert_eq!(stranger["code"], "CHANNEL_ERROR", "{stranger}");

    // Closed: Grace no longer gets replies.
    let closed = request(
        &mut grace,
        "c",
        json!({ "request": "thread:close", "room": room, "id": id }),
    )
    .await;
    assert_eq!(closed["status"], "ok", "{closed}");
    ada.emit_ack(
        "message:send",
        json!([{ "room": room, "content": "third", "thread": id }]),
    )
    .await;
    ada.send(Some(room), "marker").await;
    assert_eq!(grace.recv_type("chat").await["data"]["content"], "marker");

    // Leaving the root's room closes its threads: Bob opens the thread, leaves the room,
    // misses a reply, comes back to the room (not the thread) and gets only the room.
    let opened = request(
        &mut bob,
        "o2",
        json!({ "request": "thread:open", "room": room, "id": id }),
    )
    .await;
    assert_eq!(opened["status"], "ok", "{opened}");
    let left = request(
        &mut bob,
        "l",
        json!({ "request": "room:leave", "room": room }),
    )
    .await;
    assert_eq!(left["status"], "ok", "{left}");
    ada.emit_ack(
        "message:send",
        json!([{ "room": room, "content": "after Bob left", "thread": id }]),
    )
    .await;
    // The reply was handed to the thread's members before its ack: anything Bob got is
    // queued before the answer to a ping sent now.
    bob.send_json(json!({ "type": "ping" })).await;
    loop {
        let frame = bob.recv_any().await;
        assert_ne!(
            frame["type"], "chat",
            "a reply reached Bob after he left: {frame}"
        );
        if frame["type"] == "pong" {
            break;
        }
    }
    let back = request(
        &mut bob,
        "j",
        json!({ "request": "room:join", "room": room }),
    )
    .await;
    assert_eq!(back["status"], "ok", "{back}");
    ada.send(Some(room), "welcome back").await;
    assert_eq!(
        bob.recv_type("chat").await["data"]["content"],
        "welcome back"
    );
    ada.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_cross_pods_and_transports() {
    let pods = TestServer::start_pods(2, test_config()).await;
    threads_between(
        &pods[0].addr.to_string(),
        &pods[1].addr.to_string(),
        "threads",
    )
    .await;
    for pod in pods {
        pod.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_are_kept_in_sqlite_and_postgres() {
    let server = TestServer::start().await;
    let addr = server.addr.to_string();
    threads_between(&addr, &addr, "sqlite-threads").await;
    server.stop().await;
    let Some(schema) = common::db::PgSchema::create() else {
        return;
    };
    let mut config = test_config();
    config.database_url = schema.url().into();
    let server = TestServer::start_with(config).await;
    let addr = server.addr.to_string();
    threads_between(&addr, &addr, "pg-threads").await;
    server.stop().await;
    drop(schema);
}

/// Search in `room` on a server at `addr`: words, case, newest first, paging, edits and
/// deletes, the connection's rooms, and misuse.
async fn search_on(addr: &str, room: &str) {
    let mut ada =
        SioClient::connect_with(&format!("http://{addr}"), "websocket", named("Ada")).await;
    ada.join(room).await;
    let other = format!("{room}-other");
    ada.join(&other).await;
    let mut ids = Vec::new();
    for text in [
        "The quick brown fox",
        "a lazy dog",
        "QUICK thinking, brown paper",
        "nothing to see",
        "quick and brown again",
    ] {
        let ack = ada.send(Some(room), text).await;
        ids.push(ack["id"].as_str().expect("id").to_owned());
    }
    ada.send(Some(&other), "brown quick elsewhere").await;
    let texts = |page: &Value| -> Vec<String> {
        page["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["data"]["content"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let search = |q: Value| json!([q]);

    // Every word must match, any case, newest first, in the named room only.
    let page = ada
        .emit_ack(
            "message:search",
            search(json!({ "room": room, "q": "Quick brown" })),
        )
        .await;
    assert_eq!(
        texts(&page),
        [
            "quick and brown again",
            "QUICK thinking, brown paper",
            "The quick brown fox"
        ],
        "{page}"
    );
    assert_eq!(page["has_more"], false, "{page}");

    // Pages of one, each older than the last.
    let first = ada
        .emit_ack(
            "message:search",
            search(json!({ "room": room, "q": "quick", "limit": 1 })),
        )
        .await;
    assert_eq!(texts(&first), ["quick and brown again"], "{first}");
    assert_eq!(first["has_more"], true, "{first}");
    let cursor = first["messages"][0]["id"].clone();
    let second = ada
        .emit_ack(
            "message:search",
            search(json!({ "room": room, "q": "quick", "limit": 1, "before": cursor })),
        )
        .await;
    assert_eq!(texts(&second), ["QUICK thinking, brown paper"], "{second}");

    // An edit is found by its new words, not its old ones; a deleted message is gone.
    ada.emit_ack(
        "message:edit",
        json!([{ "room": room, "id": ids[1], "content": "a sleepy cat" }]),
    )
    .await;
    ada.emit_ack("message:delete", json!([{ "room": room, "id": ids[0] }]))
        .await;
    let lazy = ada
        .emit_ack(
            "message:search",
            search(json!({ "room": room, "q": "lazy" })),
        )
        .await;
    assert_eq!(texts(&lazy), [] as [&str; 0], "{lazy}");
    let cat = ada
        .emit_ack(
            "message:search",
            search(json!({ "room": room, "q": "sleepy" })),
        )
        .await;
    assert_eq!(texts(&cat), ["a sleepy cat"], "{cat}");
    let fox = ada
        .emit_ack(
            "message:search",
            search(json!({ "room": room, "q": "fox" })),
        )
        .await;
    assert_eq!(texts(&fox), [] as [&str; 0], "{fox}");

    // Without a room: the rooms the connection is in, on the raw protocol too.
    let everywhere = ada
        .emit_ack("message:search", search(json!({ "q": "brown quick" })))
        .await;
    assert_eq!(
        texts(&everywhere),
        [
            "brown quick elsewhere",
            "quick and brown again",
            "QUICK thinking, brown paper"
        ],
        "{everywhere}"
    );
    let (mut raw, _) = WsClient::connect(&format!("ws://{addr}/ws/{room}")).await;
    let found = request(
        &mut raw,
        "s",
        json!({ "request": "message:search", "q": "paper" }),
    )
    .await;
    assert_eq!(texts(&found), ["QUICK thinking, brown paper"], "{found}");

    // Over HTTP; words that look like query syntax are words.
    let path = format!("/api/rooms/{room}/search?q=again");
    let (status, raw_body) = http_get_with(addr.parse().expect("addr"), &path, &[]).await;
    let body: Value = serde_json::from_str(&body_of(&raw_body)).expect("json");
    assert_eq!(
        (status, texts(&body)),
        (200, vec!["quick and brown again".to_owned()]),
        "{body}"
    );
    for odd in ["\"quick", "quick OR", "NOT", "a*", "(brown)", "x:y"] {
        let ack = ada
            .emit_ack("message:search", search(json!({ "room": room, "q": odd })))
            .await;
        assert_eq!(ack["status"], "ok", "{odd}: {ack}");
    }

    // Misuse: typed errors.
    for (bad, code) in [
        (json!({ "room": room, "q": "" }), "INVALID_PAYLOAD"),
        (
            json!({ "room": room, "q": "x".repeat(201) }),
            "INVALID_PAYLOAD",
        ),
        (
            json!({ "room": room, "q": "quick", "limit": 51 }),
            "INVALID_PAYLOAD",
        ),
        (
            json!({ "room": room, "q": "quick", "before": uuid::Uuid::now_v7() }),
            "INVALID_PAYLOAD",
        ),
        (json!({ "room": "user:someone", "q": "quick" }), "FORBIDDEN"),
    ] {
        let ack = ada.emit_ack("message:search", search(bad.clone())).await;
        assert_eq!(ack["code"], code, "{bad}: {ack}");
    }
    ada.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_finds_words_newest_first_in_memory_sqlite_and_postgres() {
    let mut memory = test_config();
    memory.database_url = "memory".to_owned().into();
    let server = TestServer::start_with(memory).await;
    search_on(&server.addr.to_string(), "search-memory").await;
    server.stop().await;

    let server = TestServer::start().await;
    search_on(&server.addr.to_string(), "search-sqlite").await;
    server.stop().await;

    let Some(schema) = common::db::PgSchema::create() else {
        return;
    };
    let mut config = test_config();
    config.database_url = schema.url().into();
    let server = TestServer::start_with(config).await;
    search_on(&server.addr.to_string(), "search-pg").await;
    server.stop().await;
    drop(schema);
}
