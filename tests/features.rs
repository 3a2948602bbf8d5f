//! Presence, typing, history, edits and recovery: single node and across two pods over
//! a real redis-server, on both transports.

mod common;

use std::time::{Duration, Instant};

use common::tokens::{self, claims, SECRET};
use common::{
    http_get_with, start_pods, test_config, RedisServer, ServerProcess, SioClient, TestServer,
    WsClient, TEST_ENV,
};
use serde_json::{json, Value};

const GRACE: Duration = Duration::from_millis(400);

fn token(user: &str) -> String {
    tokens::hs256(SECRET, &claims(user, json!({})))
}

fn as_user(user: &str) -> Value {
    json!({ "auth": { "token": token(user) } })
}

fn single_node_config() -> chatwire::config::Config {
    let mut config = test_config();
    config.jwt_secret = SECRET.into();
    config.presence_grace = GRACE;
    config.typing_timeout = Duration::from_millis(600);
    config
}

const POD_ENV: &[(&str, &str)] = &[
    ("JWT_SECRET", SECRET),
    ("PRESENCE_GRACE", "400ms"),
    ("PRESENCE_TTL", "1500ms"),
    ("TYPING_TIMEOUT", "600ms"),
];

/// Reads `client`'s events until a chat message with `marker` content, returning the
/// presence updates about `user` seen on the way.
async fn presence_until(client: &mut SioClient, user: &str, marker: &str) -> Vec<String> {
    let mut seen = Vec::new();
    loop {
        let line = client
            .recv_where(|v| {
                v["type"] == "event"
                    && (v["event"] == "presence:update" || v["event"] == "message:new")
            })
            .await;
        let payload = &line["args"][0];
        if line["event"] == "message:new" {
            if payload["data"]["content"] == marker {
                return seen;
            }
        } else if payload["user"]["id"] == user {
            seen.push(payload["status"].as_str().unwrap_or_default().to_owned());
        }
    }
}

async fn next_presence_of(client: &mut SioClient, user: &str) -> String {
    loop {
        let p = client.next_event("presence:update").await;
        if p["user"]["id"] == user {
            return p["status"].as_str().unwrap_or_default().to_owned();
        }
    }
}

/// Two tabs of alice (socket.io on `a`, raw on `b`) as seen by bob on `observer`.
async fn presence_across_tabs(a: &str, b_ws: &str, observer: &str) {
    let mut bob = SioClient::connect_with(observer, "websocket", as_user("bob")).await;
    bob.join("R").await;
    let mut carol = SioClient::connect_with(observer, "websocket", as_user("carol")).await;
    carol.join("R").await;

    let mut tab1 = SioClient::connect_with(a, "websocket", as_user("alice")).await;
    tab1.join("R").await;
    assert_eq!(next_presence_of(&mut bob, "alice").await, "online");
    let (tab2, _) = WsClient::connect(&format!("{b_ws}/ws/R?token={}", token("alice"))).await;

    let list = bob
        .emit_ack("presence:list", json!([{ "room": "R" }]))
        .await;
    let alices = list["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter(|u| u["id"] == "alice")
        .count();
    assert_eq!(alices, 1, "alice counts once: {list}");
    assert_eq!(list["users"].as_array().map(Vec::len), Some(3), "{list}");

    // One tab leaves: nothing is announced, even after the grace period.
    tab1.close().await;
    tokio::time::sleep(GRACE * 3).await; // proving silence takes time: no event to await
    carol.send(Some("R"), "marker-1").await;
    assert_eq!(
        presence_until(&mut bob, "alice", "marker-1").await,
        Vec::<String>::new()
    );
    let list = bob
        .emit_ack("presence:list", json!([{ "room": "R" }]))
        .await;
    assert!(
        list["users"]
            .as_array()
            .expect("users")
            .iter()
            .any(|u| u["id"] == "alice"),
        "{list}"
    );

    // The last tab leaves: offline, once, after the grace.
    drop(tab2);
    let left = Instant::now();
    assert_eq!(next_presence_of(&mut bob, "alice").await, "offline");
    assert!(
        left.elapsed() >= GRACE,
        "offline came before the grace: {:?}",
        left.elapsed()
    );
    carol.send(Some("R"), "marker-2").await;
    assert_eq!(
        presence_until(&mut bob, "alice", "marker-2").await,
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_across_tabs_on_one_node() {
    let server = TestServer::start_with(single_node_config()).await;
    let (http, ws) = (server.http_url(), format!("ws://{}", server.addr));
    presence_across_tabs(&http, &ws, &http).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_across_tabs_on_two_pods() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let pods = start_pods(2, &redis.url(), POD_ENV).await;
    let ws_b = format!("ws://{}", pods[1].addr);
    presence_across_tabs(&pods[0].http_url(), &ws_b, &pods[1].http_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_across_tabs_on_two_in_process_pods() {
    let pods = TestServer::start_pods(2, single_node_config()).await;
    let ws_b = format!("ws://{}", pods[1].addr);
    presence_across_tabs(&pods[0].http_url(), &ws_b, &pods[1].http_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_pods_users_go_offline_within_the_ttl() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let mut pods = start_pods(2, &redis.url(), POD_ENV).await;
    let mut bob = SioClient::connect_with(&pods[1].http_url(), "websocket", as_user("bob")).await;
    bob.join("R").await;
    let mut alice =
        SioClient::connect_with(&pods[0].http_url(), "websocket", as_user("alice")).await;
    alice.join("R").await;
    assert_eq!(next_presence_of(&mut bob, "alice").await, "online");

    pods[0].signal("KILL").await;
    pods[0].wait(common::WAIT).await;
    let killed = Instant::now();
    assert_eq!(next_presence_of(&mut bob, "alice").await, "offline");
    // PRESENCE_TTL is 1.5 s; a heartbeat of the survivor notices within a third of it.
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "took {:?}",
        killed.elapsed()
    );
    let list = bob
        .emit_ack("presence:list", json!([{ "room": "R" }]))
        .await;
    assert!(
        !list["users"]
            .as_array()
            .expect("users")
            .iter()
            .any(|u| u["id"] == "alice"),
        "{list}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_updates_reach_the_room() {
    let server = TestServer::start_with(single_node_config()).await;
    let mut bob = SioClient::connect_with(&server.http_url(), "websocket", as_user("bob")).await;
    bob.join("R").await;
    let (mut alice, _) =
        WsClient::connect(&server.ws_url(&format!("/ws/R?token={}", token("alice")))).await;
    assert_eq!(next_presence_of(&mut bob, "alice").await, "online");
    alice
        .send_json(json!({ "type": "presence", "data": { "status": "away" } }))
        .await;
    assert_eq!(next_presence_of(&mut bob, "alice").await, "away");
    let ack = bob
        .emit_ack("presence:update", json!([{ "status": "busy" }]))
        .await;
    assert_eq!(ack["status"], "ok", "{ack}");
    let seen = alice
        .recv_any_where(|f| {
            f["type"] == "presence"
                && f["data"]["user"]["id"] == "bob"
                && f["data"]["status"] == "busy"
        })
        .await;
    assert_eq!(seen["room"], "R");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_is_relayed_and_expires() {
    let server = TestServer::start_with(single_node_config()).await;
    let mut bob = SioClient::connect_with(&server.http_url(), "websocket", as_user("bob")).await;
    bob.join("R").await;
    let (mut alice, _) =
        WsClient::connect(&server.ws_url(&format!("/ws/R?token={}", token("alice")))).await;

    alice
        .send_json(json!({ "type": "typing", "data": { "typing": true } }))
        .await;
    let t = bob.next_event("user:typing").await;
    assert_eq!(
        (t["user"]["id"].clone(), t["typing"].clone()),
        (json!("alice"), json!(true)),
        "{t}"
    );
    // No refresh: the server ends it after TYPING_TIMEOUT (600 ms).
    let started = Instant::now();
    let t = bob.next_event("user:typing").await;
    assert_eq!(
        (t["user"]["id"].clone(), t["typing"].clone()),
        (json!("alice"), json!(false)),
        "{t}"
    );
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );

    // And the other way round, socket.io to raw.
    let ack = bob
        .emit_ack("user:typing", json!([{ "room": "R", "typing": true }]))
        .await;
    assert_eq!(ack["status"], "ok");
    let from_bob = |f: &Value| f["type"] == "typing" && f["from"] == "bob";
    let f = alice.recv_any_where(from_bob).await;
    assert_eq!(f["data"]["typing"], true, "{f}");
    let f = alice.recv_any_where(from_bob).await;
    assert_eq!(f["data"]["typing"], false, "expired: {f}");
    server.stop().await;
}

async fn history_edit_delete(a: &str, b: &str, b_addr: std::net::SocketAddr) {
    let mut alice = SioClient::connect_with(a, "websocket", as_user("alice")).await;
    alice.join("H").await;
    let mut bob = SioClient::connect_with(b, "polling", as_user("bob")).await;
    bob.join("H").await;
    let mut ids = Vec::new();
    for i in 0..25 {
        let ack = alice.send(Some("H"), &format!("m{i}")).await;
        assert_eq!(ack["status"], "ok", "{ack}");
        assert!(ack.get("degraded").is_none(), "{ack}");
        ids.push(ack["id"].as_str().expect("id").to_owned());
    }
    let contents = |page: &Value| -> Vec<String> {
        page["messages"]
            .as_array()
            .expect("messages")
            .iter()
            .map(|m| m["data"]["content"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let expect =
        |r: std::ops::Range<usize>| -> Vec<String> { r.map(|i| format!("m{i}")).collect() };

    let page = bob
        .emit_ack("message:history", json!([{ "room": "H", "limit": 10 }]))
        .await;
    assert_eq!(
        (contents(&page), page["has_more"].clone()),
        (expect(15..25), json!(true))
    );
    let page = bob
        .emit_ack(
            "message:history",
            json!([{ "room": "H", "limit": 10, "before": ids[15] }]),
        )
        .await;
    assert_eq!(
        (contents(&page), page["has_more"].clone()),
        (expect(5..15), json!(true))
    );
    let page = bob
        .emit_ack(
            "message:history",
            json!([{ "room": "H", "limit": 10, "before": ids[5] }]),
        )
        .await;
    assert_eq!(
        (contents(&page), page["has_more"].clone()),
        (expect(0..5), json!(false))
    );
    let page = bob
        .emit_ack("message:history", json!([{ "room": "H", "limit": 500 }]))
        .await;
    assert_eq!(page["code"], "INVALID_PAYLOAD");

    // The same over HTTP (with the caller's token) and over the raw protocol.
    let bearer = format!("Bearer {}", token("bob"));
    let (status, raw) = http_get_with(
        b_addr,
        &format!("/api/rooms/H/messages?limit=10&before={}", ids[15]),
        &[("Authorization", &bearer)],
    )
    .await;
    assert_eq!(status, 200, "{raw}");
    let body: Value =
        serde_json::from_str(raw.split("\r\n\r\n").nth(1).unwrap_or_default()).expect("json");
    assert_eq!(
        (contents(&body), body["has_more"].clone()),
        (expect(5..15), json!(true))
    );
    let (mut raw_bob, _) =
        WsClient::connect(&format!("ws://{b_addr}/ws/H?token={}", token("bob"))).await;
    raw_bob.send_json(json!({ "type": "system", "data": { "request": "message:history", "request_id": "h1", "room": "H", "limit": 3 } })).await;
    let reply = raw_bob.recv_type("system").await;
    assert_eq!(
        (
            reply["data"]["reply"].clone(),
            reply["data"]["request_id"].clone()
        ),
        (json!("message:history"), json!("h1"))
    );
    assert_eq!(contents(&reply["data"]), expect(22..25));

    // Edit and delete: the author only; the room hears of both; history shows both.
    let ack = bob
        .emit_ack(
            "message:edit",
            json!([{ "room": "H", "id": ids[24], "content": "hacked" }]),
        )
        .await;
    assert_eq!(ack["code"], "FORBIDDEN", "{ack}");
    let ack = alice
        .emit_ack(
            "message:edit",
            json!([{ "room": "H", "id": ids[24], "content": "m24 (edited)" }]),
        )
        .await;
    assert_eq!(ack["status"], "ok", "{ack}");
    let updated = bob.next_event("message:updated").await;
    assert_eq!(
        (updated["id"].as_str(), updated["data"]["content"].as_str()),
        (Some(ids[24].as_str()), Some("m24 (edited)"))
    );
    let note = raw_bob.recv_type("notification").await;
    assert_eq!(note["data"]["event"], "message:updated");
    raw_bob.send_json(json!({ "type": "system", "data": { "request": "message:delete", "room": "H", "id": ids[23] } })).await;
    assert_eq!(
        raw_bob.recv_type("error").await["data"]["code"],
        "FORBIDDEN"
    );
    let ack = alice
        .emit_ack("message:delete", json!([{ "room": "H", "id": ids[23] }]))
        .await;
    assert_eq!(ack["status"], "ok", "{ack}");
    let deleted = bob.next_event("message:deleted").await;
    assert_eq!(deleted, json!({ "room": "H", "id": ids[23] }));
    // A deleted message stays in history as a tombstone: offsets keep no gap.
    let page = bob
        .emit_ack("message:history", json!([{ "room": "H", "limit": 3 }]))
        .await;
    assert_eq!(contents(&page), vec!["m22", "", "m24 (edited)"]);
    let tombstone = &page["messages"][1];
    assert_eq!(
        (
            tombstone["id"].as_str(),
            tombstone["data"]["deleted"].clone()
        ),
        (Some(ids[23].as_str()), json!(true)),
        "{page}"
    );
    let offsets: Vec<u64> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["offset"].as_u64())
        .collect();
    assert_eq!(offsets, [23, 24, 25]);
    // Pages also go back by offset.
    let page = bob
        .emit_ack(
            "message:history",
            json!([{ "room": "H", "limit": 2, "before": 23 }]),
        )
        .await;
    assert_eq!(contents(&page), vec!["m20", "m21"]);
    // A deleted message can be neither edited nor deleted again.
    let ack = alice
        .emit_ack("message:delete", json!([{ "room": "H", "id": ids[23] }]))
        .await;
    assert_eq!(ack["code"], "INVALID_PAYLOAD", "{ack}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_edits_and_deletes_on_one_node() {
    let server = TestServer::start_with(single_node_config()).await;
    history_edit_delete(&server.http_url(), &server.http_url(), server.addr).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_edits_and_deletes_across_in_process_pods() {
    let pods = TestServer::start_pods(2, single_node_config()).await;
    history_edit_delete(&pods[0].http_url(), &pods[1].http_url(), pods[1].addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_pages_edits_and_deletes_across_pods() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let pods = start_pods(2, &redis.url(), POD_ENV).await;
    history_edit_delete(&pods[0].http_url(), &pods[1].http_url(), pods[1].addr).await;
    // The history lives in PostgreSQL (the tombstone included), none of it in Redis.
    let rows = redis
        .schema()
        .query("SELECT COUNT(*) FROM messages WHERE room = 'H'");
    assert_eq!(rows, ["25"], "every message of H is a row of the log");
    let mut conn = redis.connection().await.expect("redis");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("messages:*")
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    assert!(keys.is_empty(), "no history in Redis: {keys:?}");
}

/// Sends `n` messages from `sender` to `room`, returning their ids.
async fn send_many(sender: &mut SioClient, room: &str, prefix: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        let ack = sender.send(Some(room), &format!("{prefix}{i}")).await;
        ids.push(ack["id"].as_str().expect("id").to_owned());
    }
    ids
}

fn assert_recovered(ack: &Value, ids: &[String]) {
    assert_eq!(ack["recovered"], true, "{ack}");
    let got: Vec<&str> = ack["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    let want: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert_eq!(got, want, "exactly the missed messages, in order");
}

/// bob saw `last`, left; 50 messages came; bob rejoins on `url` with `since`.
async fn rejoin_recovers(url: &str, alice: &mut SioClient, last: &str, prefix: &str) -> String {
    let missed = send_many(alice, "R", prefix, 50).await;
    let mut bob = SioClient::connect_with(url, "websocket", as_user("bob")).await;
    let ack = bob
        .emit_ack("room:join", json!([{ "room": "R", "since": last }]))
        .await;
    assert_recovered(&ack, &missed);
    let live = alice.send(Some("R"), &format!("{prefix}live")).await;
    let got = bob.next_event("message:new").await;
    assert_eq!(
        got["id"], live["id"],
        "the live stream follows, without duplicates"
    );
    bob.close().await;
    live["id"].as_str().expect("id").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_on_one_node_for_both_transports() {
    let mut config = single_node_config();
    config.history_limit = 120;
    let server = TestServer::start_with(config).await;
    let mut alice =
        SioClient::connect_with(&server.http_url(), "websocket", as_user("alice")).await;
    alice.join("R").await;
    let first = alice.send(Some("R"), "seen").await["id"]
        .as_str()
        .expect("id")
        .to_owned();

    let last = rejoin_recovers(&server.http_url(), &mut alice, &first, "a").await;

    // Raw WebSocket: `?since=` on the connect URL.
    let missed = send_many(&mut alice, "R", "r", 50).await;
    let (mut raw, _) = WsClient::connect(&server.ws_url(&format!("/ws/R?since={last}"))).await;
    let frame = raw.recv_type("system").await;
    assert_eq!(frame["data"]["reply"], "room:join", "{frame}");
    assert_recovered(&frame["data"], &missed);
    alice.send(Some("R"), "raw live").await;
    assert_eq!(raw.recv_type("chat").await["data"]["content"], "raw live");

    // Past retention (HISTORY_LIMIT 120): not recovered, the client refetches.
    send_many(&mut alice, "R", "x", 121).await;
    let mut late = SioClient::connect_with(&server.http_url(), "websocket", as_user("bob")).await;
    let ack = late
        .emit_ack("room:join", json!([{ "room": "R", "since": first }]))
        .await;
    let summary = (
        ack["recovered"].clone(),
        ack["messages"].as_array().map(Vec::len),
    );
    assert_eq!(summary, (json!(false), Some(0)));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_across_a_pod_restart_and_onto_the_other_pod() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let mut pods = start_pods(2, &redis.url(), POD_ENV).await;
    let mut alice =
        SioClient::connect_with(&pods[1].http_url(), "websocket", as_user("alice")).await;
    alice.join("R").await;
    let mut bob = SioClient::connect_with(&pods[0].http_url(), "websocket", as_user("bob")).await;
    bob.join("R").await;
    alice.send(Some("R"), "seen by bob").await;
    let seen = bob.next_event("message:new").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    bob.close().await;

    // bob's pod restarts while bob is away; bob comes back to the new process.
    pods[0].signal("TERM").await;
    assert_eq!(pods[0].wait(common::WAIT).await, Some(0));
    let mut env = vec![("REDIS_URL", redis.url())];
    env.extend(POD_ENV.iter().map(|(k, v)| (*k, v.to_string())));
    env.extend(TEST_ENV.iter().map(|(k, v)| (*k, v.to_string())));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    pods[0] = ServerProcess::spawn(&env).await;
    common::wait_for_health(pods[0].addr, |h| h["redis"] == "up").await;
    let last = rejoin_recovers(&pods[0].http_url(), &mut alice, &seen, "after-restart-").await;

    // And onto the other pod.
    rejoin_recovers(&pods[1].http_url(), &mut alice, &last, "other-pod-").await;
}

/// Members of alpha on both pods and of beta on the second: the first pod lists both.
async fn active_rooms_listed(first: std::net::SocketAddr, second: std::net::SocketAddr) {
    let (_a, _) = WsClient::connect(&format!("ws://{first}/ws/alpha")).await;
    let (_b, _) = WsClient::connect(&format!("ws://{second}/ws/alpha")).await;
    let (_c, _) = WsClient::connect(&format!("ws://{second}/ws/beta")).await;
    let want = json!([{ "room": "alpha", "members": 2 }, { "room": "beta", "members": 1 }]);
    common::eventually("both pods' rooms listed", common::WAIT, || async {
        let (status, raw) = common::http_get(first, "/api/rooms").await;
        assert_eq!(status, 200);
        let body: Value = serde_json::from_str(&raw).expect("json");
        body["rooms"] == want
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_rooms_are_listed_across_pods() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let pods = start_pods(2, &redis.url(), POD_ENV).await;
    active_rooms_listed(pods[0].addr, pods[1].addr).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn active_rooms_are_listed_across_in_process_pods() {
    let mut config = single_node_config();
    config.presence_ttl = Duration::from_millis(1500);
    let pods = TestServer::start_pods(2, config).await;
    active_rooms_listed(pods[0].addr, pods[1].addr).await;
}

/// alice types on the first pod; bob on the second sees it start and, with no refresh,
/// end (TYPING_TIMEOUT, on alice's pod).
async fn typing_crosses(first: &str, second: &str) {
    let mut bob = SioClient::connect_with(second, "websocket", as_user("bob")).await;
    bob.join("T").await;
    let mut alice = SioClient::connect_with(first, "websocket", as_user("alice")).await;
    alice.join("T").await;
    let ack = alice
        .emit_ack("user:typing", json!([{ "room": "T", "typing": true }]))
        .await;
    assert_eq!(ack["status"], "ok");
    for typing in [true, false] {
        let t = bob.next_event("user:typing").await;
        assert_eq!(
            (t["user"]["id"].clone(), t["typing"].clone()),
            (json!("alice"), json!(typing))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_crosses_pods_and_expires_there_too() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let pods = start_pods(2, &redis.url(), POD_ENV).await;
    typing_crosses(&pods[0].http_url(), &pods[1].http_url()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_crosses_in_process_pods_and_expires_there_too() {
    let pods = TestServer::start_pods(2, single_node_config()).await;
    typing_crosses(&pods[0].http_url(), &pods[1].http_url()).await;
}
