//! The server API (`/api/server/...`): off without keys, refused without the right key
//! (a user's token is no key), and each route doing what it says for socket.io and raw
//! clients, on one node and across two pods over a real redis-server.

mod common;

use std::net::SocketAddr;

use common::tokens::{self, claims, SECRET};
use common::{
    body_of, http_request, start_pods, test_config, RedisServer, SioClient, TestServer, WsClient,
};
use serde_json::{json, Value};

const KEY: &str = "backend-key-0123456789abcdef";
const OTHER_KEY: &str = "second-key-0123456789abcdef";

fn token(user: &str) -> String {
    tokens::hs256(SECRET, &claims(user, json!({})))
}

fn as_user(user: &str) -> Value {
    json!({ "auth": { "token": token(user) } })
}

fn api_config() -> chatwire::config::Config {
    let mut config = test_config();
    config.jwt_secret = SECRET.into();
    config.server_api_keys = format!("{KEY},{OTHER_KEY}").into();
    config
}

/// A server API request with `key` (none: no Authorization header); status and JSON.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    call_with(addr, method, path, key, body, &[]).await.0
}

/// [`call`] with extra headers; also the raw response head.
async fn call_with(
    addr: SocketAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
    extra: &[(&str, &str)],
) -> ((u16, Value), String) {
    let auth = key.map(|k| format!("Bearer {k}"));
    let mut headers: Vec<(&str, &str)> = extra.to_vec();
    if let Some(auth) = &auth {
        headers.push(("Authorization", auth));
    }
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    if !body.is_empty() {
        headers.push(("Content-Type", "application/json"));
    }
    let (status, raw) = http_request(addr, method, path, &headers, &body).await;
    let json = serde_json::from_str(&body_of(&raw)).unwrap_or(Value::Null);
    ((status, json), raw)
}

/// Every route with a body it accepts.
fn routes() -> Vec<(&'static str, String, Option<Value>)> {
    let id = "0190b6a8-0000-7000-8000-000000000000";
    vec![
        (
            "POST",
            "/api/server/publish".into(),
            Some(json!({ "room": "r", "content": "x" })),
        ),
        (
            "POST",
            "/api/server/broadcast".into(),
            Some(json!({ "rooms": ["r"], "content": "x" })),
        ),
        (
            "POST",
            "/api/server/users/u1/disconnect".into(),
            Some(json!({})),
        ),
        ("GET", "/api/server/users/u1/connections".into(), None),
        ("GET", "/api/server/rooms".into(), None),
        (
            "POST",
            "/api/server/rooms/r/kick".into(),
            Some(json!({ "user": "u1" })),
        ),
        ("GET", "/api/server/rooms/r/presence".into(), None),
        ("GET", "/api/server/rooms/r/messages".into(), None),
        (
            "PATCH",
            format!("/api/server/rooms/r/messages/{id}"),
            Some(json!({ "content": "y" })),
        ),
        ("DELETE", format!("/api/server/rooms/r/messages/{id}"), None),
        ("GET", "/api/server/sockets".into(), None),
    ]
}

#[tokio::test]
async fn the_api_is_off_without_keys_and_refuses_wrong_keys_and_user_tokens() {
    let off = TestServer::start().await;
    for (method, path, body) in routes() {
        let (status, json) = call(off.addr, method, &path, Some(KEY), body).await;
        assert_eq!(status, 404, "{method} {path}: {json}");
        assert_eq!(json["code"], "NOT_FOUND", "{method} {path}");
    }
    off.stop().await;

    let server = TestServer::start_with(api_config()).await;
    let user_token = token("alice");
    for (method, path, body) in routes() {
        for key in [
            None,
            Some("wrong-key-0123456789abcdef"),
            Some(user_token.as_str()),
        ] {
            let ((status, json), raw) =
                call_with(server.addr, method, &path, key, body.clone(), &[]).await;
            assert_eq!(status, 401, "{method} {path} with {key:?}: {json}");
            assert_eq!(json["code"], "AUTH_FAILED", "{method} {path}");
            assert!(
                raw.to_ascii_lowercase()
                    .contains("www-authenticate: bearer"),
                "{raw}"
            );
        }
        for key in [KEY, OTHER_KEY] {
            let (status, json) = call(server.addr, method, &path, Some(key), body.clone()).await;
            assert!(
                status != 401 && status != 404 && status < 500,
                "{method} {path} with the right key: {status} {json}"
            );
        }
    }
    // Bad bodies get typed errors, not panics or plain-text rejections.
    for body in [
        json!("x"),
        json!({ "room": "r" }),
        json!({ "room": "r", "content": 3 }),
    ] {
        let (status, json) = call(
            server.addr,
            "POST",
            "/api/server/publish",
            Some(KEY),
            Some(body),
        )
        .await;
        assert_eq!(
            (status, &json["code"]),
            (400, &json!("INVALID_PAYLOAD")),
            "{json}"
        );
    }
    let (status, json) = call(
        server.addr,
        "POST",
        "/api/server/publish",
        Some(KEY),
        Some(json!({ "room": "r", "content": "x", "surprise": 1 })),
    )
    .await;
    assert_eq!(status, 400, "unknown fields are refused: {json}");
    server.stop().await;
}

#[tokio::test]
async fn publish_broadcast_moderation_and_reads_on_one_node() {
    let server = TestServer::start_with(api_config()).await;
    let addr = server.addr;
    let mut sio = SioClient::connect_with(&server.http_url(), "websocket", as_user("alice")).await;
    sio.join("lobby").await;
    let (mut ws, _) =
        WsClient::connect(&server.ws_url(&format!("/ws/lobby?token={}", token("bob")))).await;

    // As the server: a notification with data, stored with the next offset.
    let (status, ack) = call(
        addr,
        "POST",
        "/api/server/publish",
        Some(KEY),
        Some(
            json!({ "room": "lobby", "content": "maintenance at 5", "data": { "level": "info" } }),
        ),
    )
    .await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(
        (ack["status"].clone(), ack["room"].clone()),
        (json!("ok"), json!("lobby"))
    );
    assert_eq!(ack["offset"], 1);
    let got = sio.next_event("message:new").await;
    assert_eq!(got["id"], ack["id"]);
    assert_eq!(got["type"], "notification");
    assert_eq!(got["from"], "server");
    assert_eq!(
        got["data"],
        json!({ "content": "maintenance at 5", "level": "info" })
    );
    let frame = ws.recv().await;
    assert_eq!(frame["id"], ack["id"]);
    assert_eq!(frame["type"], "notification");

    // On behalf of a user: a chat message from that user.
    let (status, ack) = call(
        addr,
        "POST",
        "/api/server/publish",
        Some(KEY),
        Some(json!({ "room": "lobby", "from": "carol", "name": "Carol", "content": "hi all" })),
    )
    .await;
    assert_eq!(status, 200, "{ack}");
    let got = sio.next_event("message:new").await;
    assert_eq!(
        (got["type"].clone(), got["from"].clone()),
        (json!("chat"), json!("carol"))
    );
    assert_eq!(ws.recv().await["from"], "carol");

    // To everyone: clients in no room get it too.
    let mut lonely = SioClient::connect(&server.http_url(), "websocket").await;
    let (status, ack) = call(
        addr,
        "POST",
        "/api/server/publish",
        Some(KEY),
        Some(json!({ "type": "system", "content": "restart soon" })),
    )
    .await;
    assert_eq!(status, 200, "{ack}");
    let got = lonely.next_event("message:new").await;
    assert_eq!(
        (got["type"].clone(), got["id"].clone()),
        (json!("system"), ack["id"].clone())
    );
    assert_eq!(sio.next_event("message:new").await["id"], ack["id"]);

    // Idempotency: a repeat publishes nothing and answers the same; a key reused for
    // another request is refused.
    let body = json!({ "room": "lobby", "content": "once" });
    let key = [("Idempotency-Key", "order-42")];
    let ((status, first), _) = call_with(
        addr,
        "POST",
        "/api/server/publish",
        Some(KEY),
        Some(body.clone()),
        &key,
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let ((status, again), raw) = call_with(
        addr,
        "POST",
        "/api/server/publish",
        Some(OTHER_KEY),
        Some(body),
        &key,
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        (again["id"].clone(), again["offset"].clone()),
        (first["id"].clone(), first["offset"].clone())
    );
    assert!(
        raw.to_ascii_lowercase()
            .contains("idempotent-replayed: true"),
        "{raw}"
    );
    let ((status, reused), _) = call_with(
        addr,
        "POST",
        "/api/server/publish",
        Some(KEY),
        Some(json!({ "room": "lobby", "content": "something else" })),
        &key,
    )
    .await;
    assert_eq!(
        (status, reused["code"].clone()),
        (400, json!("INVALID_PAYLOAD")),
        "{reused}"
    );
    assert_eq!(sio.next_event("message:new").await["id"], first["id"]);

    // Broadcast: one stored message per room, results in order.
    let mut other = SioClient::connect(&server.http_url(), "websocket").await;
    other.join("news").await;
    let (status, result) = call(
        addr,
        "POST",
        "/api/server/broadcast",
        Some(KEY),
        Some(json!({ "rooms": ["lobby", "news", "empty"], "content": "to all rooms" })),
    )
    .await;
    assert_eq!(status, 200, "{result}");
    let rooms: Vec<Value> = result["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["room"].clone())
        .collect();
    assert_eq!(rooms, vec![json!("lobby"), json!("news"), json!("empty")]);
    assert!(result["results"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["status"] == "ok"));
    let got = sio.next_event("message:new").await;
    assert_eq!(
        (got["room"].clone(), got["data"]["content"].clone()),
        (json!("lobby"), json!("to all rooms"))
    );
    assert_eq!(other.next_event("message:new").await["room"], "news");
    let (status, bad) = call(
        addr,
        "POST",
        "/api/server/broadcast",
        Some(KEY),
        Some(json!({ "rooms": ["fine", "not a room!"], "content": "x" })),
    )
    .await;
    assert_eq!(status, 400, "a bad room refuses the whole broadcast: {bad}");

    // Moderation: any message, by anyone.
    let ack = sio.send(Some("lobby"), "rude words").await;
    let id = ack["id"].as_str().expect("id").to_owned();
    assert_eq!(ws.recv_type("chat").await["data"]["content"], "rude words");
    let path = format!("/api/server/rooms/lobby/messages/{id}");
    let (status, edited) = call(
        addr,
        "PATCH",
        &path,
        Some(KEY),
        Some(json!({ "content": "[edited by a moderator]" })),
    )
    .await;
    assert_eq!(status, 200, "{edited}");
    assert_eq!(
        edited["message"]["data"]["content"],
        "[edited by a moderator]"
    );
    let updated = sio.next_event("message:updated").await;
    assert_eq!(updated["id"], id.as_str());
    let frame = ws.recv_type("notification").await;
    assert_eq!(frame["data"]["event"], "message:updated");
    let (status, json) = call(addr, "DELETE", &path, Some(KEY), None).await;
    assert_eq!(status, 200, "{json}");
    assert_eq!(sio.next_event("message:deleted").await["id"], id.as_str());
    let (status, json) = call(addr, "DELETE", &path, Some(KEY), None).await;
    assert_eq!(status, 400, "a deleted message is gone: {json}");

    // Reads.
    let (status, page) = call(
        addr,
        "GET",
        "/api/server/rooms/lobby/messages?limit=100",
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let contents: Vec<Value> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["data"]["content"].clone())
        .collect();
    assert_eq!(
        contents,
        vec![
            json!("maintenance at 5"),
            json!("hi all"),
            json!("once"),
            json!("to all rooms"),
            Value::Null
        ],
        "{page}"
    );
    let (status, presence) = call(
        addr,
        "GET",
        "/api/server/rooms/lobby/presence",
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(status, 200, "{presence}");
    let mut ids: Vec<&str> = presence["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|u| u["id"].as_str())
        .collect();
    ids.sort();
    assert_eq!(ids, vec!["alice", "bob"]);
    let (status, rooms) = call(addr, "GET", "/api/server/rooms", Some(KEY), None).await;
    assert_eq!(status, 200);
    assert!(
        rooms["rooms"]
            .as_array()
            .unwrap()
            .contains(&json!({ "room": "lobby", "members": 2 })),
        "{rooms}"
    );
    let (status, conns) = call(
        addr,
        "GET",
        "/api/server/users/alice/connections",
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(status, 200, "{conns}");
    assert_eq!(conns["complete"], true);
    let mut listed = conns["connections"].clone();
    let connected_at = listed[0]["connected_at"].take();
    assert!(
        connected_at.as_str().is_some_and(|t| t.ends_with('Z')),
        "{conns}"
    );
    assert_eq!(
        listed,
        json!([{ "pod": "local", "conn": sio.id, "transport": "socketio",
            "rooms": ["lobby", "user:alice"], "address": "127.0.0.1", "connected_at": null }]),
    );
    let (status, sockets) = call(addr, "GET", "/api/server/sockets", Some(KEY), None).await;
    assert_eq!(status, 200);
    assert_eq!(sockets["count"], 3, "{sockets}");

    sio.close().await;
    lonely.close().await;
    other.close().await;
    server.stop().await;
}

#[tokio::test]
async fn publish_kick_disconnect_and_idempotency_across_two_pods() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let env = [("JWT_SECRET", SECRET), ("SERVER_API_KEYS", KEY)];
    let pods = start_pods(2, &redis.url(), &env).await;
    let (a, b) = (pods[0].addr, pods[1].addr);

    // alice on both pods and both transports; bob watching on pod b.
    let mut alice_a =
        SioClient::connect_with(&pods[0].http_url(), "websocket", as_user("alice")).await;
    alice_a.join("lobby").await;
    let (mut alice_b, _) =
        WsClient::connect(&pods[1].ws_url(&format!("/ws/lobby?token={}", token("alice")))).await;
    let mut bob_b = SioClient::connect_with(&pods[1].http_url(), "websocket", as_user("bob")).await;
    bob_b.join("lobby").await;

    // Published on pod a, received on both pods, once.
    let (status, ack) = call(
        a,
        "POST",
        "/api/server/publish",
        Some(KEY),
        Some(json!({ "room": "lobby", "content": "from the backend" })),
    )
    .await;
    assert_eq!(status, 200, "{ack}");
    assert_eq!(ack.get("degraded"), None, "{ack}");
    assert_eq!(bob_b.next_event("message:new").await["id"], ack["id"]);
    assert_eq!(alice_a.next_event("message:new").await["id"], ack["id"]);
    assert_eq!(alice_b.recv_type("notification").await["id"], ack["id"]);

    // The same key on the other pod publishes nothing new.
    let body = json!({ "room": "lobby", "content": "exactly once" });
    let key = [("Idempotency-Key", "invoice-7")];
    let ((status, first), _) = call_with(
        a,
        "POST",
        "/api/server/publish",
        Some(KEY),
        Some(body.clone()),
        &key,
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let ((status, again), _) = call_with(
        b,
        "POST",
        "/api/server/publish",
        Some(KEY),
        Some(body),
        &key,
    )
    .await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(bob_b.next_event("message:new").await["id"], first["id"]);

    // The connections of alice: one per pod.
    let (status, conns) = call(
        b,
        "GET",
        "/api/server/users/alice/connections",
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(status, 200, "{conns}");
    assert_eq!(conns["complete"], true, "{conns}");
    let mut seen: Vec<(String, String)> = conns["connections"]
        .as_array()
        .expect("connections")
        .iter()
        .map(|c| {
            (
                c["transport"].as_str().unwrap().to_owned(),
                c["pod"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(seen.len(), 2, "{conns}");
    assert_eq!((seen[0].0.as_str(), seen[1].0.as_str()), ("socketio", "ws"));
    assert_ne!(seen[0].1, seen[1].1, "one connection on each pod: {conns}");
    for c in conns["connections"].as_array().expect("connections") {
        assert_eq!(c["address"], "127.0.0.1", "the client's address: {c}");
        let at = c["connected_at"].as_str().expect("connected_at");
        assert!(
            at.starts_with("20") && at.ends_with('Z'),
            "when it connected: {c}"
        );
    }

    // Kicked from lobby through pod b: everyone hears it, then alice is out on both pods.
    let (status, json) = call(
        b,
        "POST",
        "/api/server/rooms/lobby/kick",
        Some(KEY),
        Some(json!({ "user": "alice", "reason": "spam" })),
    )
    .await;
    assert_eq!(status, 200, "{json}");
    let removed = json!({ "room": "lobby", "user": "alice", "reason": "spam" });
    assert_eq!(alice_a.next_event("room:removed").await, removed);
    assert_eq!(bob_b.next_event("room:removed").await, removed);
    let frame = alice_b
        .recv_any_where(|v| v["data"]["event"] == "room:removed")
        .await;
    assert_eq!(frame["data"]["reason"], "spam", "{frame}");
    let refused = alice_a.send(Some("lobby"), "still here?").await;
    assert_eq!(refused["code"], "CHANNEL_ERROR", "{refused}");
    // Later messages reach bob, not alice (her next frame is the disconnect below).
    let (_, later) = call(
        a,
        "POST",
        "/api/server/publish",
        Some(KEY),
        Some(json!({ "room": "lobby", "content": "after the kick" })),
    )
    .await;
    // Its next message: the one published once is not repeated.
    assert_eq!(bob_b.next_event("message:new").await["id"], later["id"]);

    // Disconnected through pod a: both of alice's connections end, told why.
    let (status, json) = call(
        a,
        "POST",
        "/api/server/users/alice/disconnect",
        Some(KEY),
        Some(json!({ "reason": "banned" })),
    )
    .await;
    assert_eq!(status, 200, "{json}");
    let next = alice_a
        .recv_where(|v| {
            v["type"] == "event"
                && (v["event"] == "session:ended"
                    || v["event"] == "message:new" && v["args"][0]["id"] == later["id"])
        })
        .await;
    assert_eq!(
        next["event"], "session:ended",
        "kicked, she got no more: {next}"
    );
    assert_eq!(next["args"][0], json!({ "reason": "banned" }));
    assert_eq!(
        alice_a.next_of("disconnect").await["reason"],
        "io server disconnect"
    );
    let frame = alice_b
        .recv_any_where(|v| v["data"]["event"] == "session:ended" || v["id"] == later["id"])
        .await;
    assert_eq!(
        frame["data"],
        json!({ "event": "session:ended", "reason": "banned" })
    );
    assert_eq!(alice_b.expect_close().await, 4000);
    let (_, conns) = call(
        a,
        "GET",
        "/api/server/users/alice/connections",
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(conns["connections"], json!([]), "{conns}");
    // bob stays.
    let (_, conns) = call(
        a,
        "GET",
        "/api/server/users/bob/connections",
        Some(KEY),
        None,
    )
    .await;
    assert_eq!(
        conns["connections"].as_array().map(Vec::len),
        Some(1),
        "{conns}"
    );

    bob_b.close().await;
}

#[tokio::test]
async fn every_server_route_is_in_the_openapi_document_with_its_key() {
    let server = TestServer::start().await;
    let (status, body) = common::http_get(server.addr, "/openapi.json").await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_str(&body).expect("json");
    let templated = |path: &str| {
        path.replace("/u1/", "/{user}/")
            .replace("/rooms/r/", "/rooms/{room}/")
            .replace("0190b6a8-0000-7000-8000-000000000000", "{id}")
    };
    for (method, path, _) in routes() {
        let op = &doc["paths"][templated(&path)][method.to_ascii_lowercase()];
        assert_eq!(
            op["security"],
            json!([{ "ServerApiKey": [] }]),
            "{method} {path} is documented with the API key"
        );
        for code in ["200", "401", "404"] {
            assert!(
                op["responses"].get(code).is_some(),
                "{method} {path} documents {code}"
            );
        }
    }
    server.stop().await;
}
