//! The hooks to the application's backend, against a small real HTTP backend the test
//! starts (axum on 127.0.0.1:0): the connect hook refuses or names the user, the
//! message hook allows, refuses or replaces, RPC round trips on both transports,
//! webhooks retried after the backend was down, and a backend that never answers costs
//! the hooks their timeout, never other clients' sends. Every request's signature is
//! checked by the backend.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Json, Router};
use common::{http_get, test_config, until, SioClient, TestServer, WsClient, WAIT};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

const SECRET: &str = "hook-secret-0123456789";

/// What the backend saw and how it behaves.
#[derive(Default)]
struct Seen {
    /// (hook, body) of every request with a valid signature.
    calls: Vec<(String, Value)>,
    /// Requests whose signature did not verify.
    bad_signatures: usize,
    /// Webhook events taken (answered 200), in order.
    events: Vec<Value>,
    /// Webhook requests answered 503 while down.
    refused: usize,
    /// Whether webhooks answer 503.
    down: bool,
}

type Backend = Arc<Mutex<Seen>>;

fn verified(headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(sig) = headers
        .get("x-chatwire-signature")
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((t, v1)) = sig
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes()) == v1
}

async fn hook(
    State(seen): State<Backend>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let name = headers
        .get("x-chatwire-hook")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut seen = seen.lock().unwrap();
    if !verified(&headers, &body) {
        seen.bad_signatures += 1;
        return StatusCode::UNAUTHORIZED.into_response();
    }
    seen.calls.push((name.clone(), json.clone()));
    let answer = match name.as_str() {
        "connect" => match json["token"].as_str() {
            Some("banned") => {
                json!({ "allow": false, "code": "FORBIDDEN", "reason": "you are banned" })
            }
            Some("alice-session") => {
                json!({ "allow": true, "user": { "id": "alice", "name": "Alice" }, "rooms": ["lobby", "team-*"] })
            }
            _ => match json["auth"]["session"]
                .as_str()
                .or_else(|| json["auth"]["query"]["session"].as_str())
            {
                Some(s) => json!({ "allow": true, "user": { "id": s } }),
                None => json!({ "allow": true }),
            },
        },
        "message" => {
            let content = json["content"].as_str().unwrap_or_default();
            if content.contains("spam") {
                json!({ "allow": false, "code": "FORBIDDEN", "reason": "no spam here" })
            } else if content.contains("darn") {
                json!({ "allow": true, "content": content.replace("darn", "d**n") })
            } else {
                json!({ "allow": true })
            }
        }
        "rpc" => match json["method"].as_str() {
            Some("echo") => {
                json!({ "result": { "params": json["params"], "user": json["user"]["id"] } })
            }
            _ => json!({ "error": { "code": "FORBIDDEN", "message": "no such method" } }),
        },
        "webhook" => {
            if seen.down {
                seen.refused += 1;
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            let events = json["events"].as_array().cloned().unwrap_or_default();
            seen.events.extend(events);
            json!({})
        }
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    Json(answer).into_response()
}

/// Never answers.
async fn hang() -> StatusCode {
    std::future::pending::<()>().await;
    StatusCode::OK
}

/// Starts the backend; its base URL and what it saw.
async fn backend() -> (String, Backend) {
    let seen = Backend::default();
    let app = Router::new()
        .route("/hook", post(hook))
        .route("/hang", post(hang))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

fn hooked(base: &str, hooks: &[&str]) -> chatwire::config::Config {
    let mut config = test_config();
    config.hook_secret = SECRET.into();
    let url = format!("{base}/hook");
    for hook in hooks {
        match *hook {
            "connect" => config.connect_hook_url = url.clone().into(),
            "message" => config.message_hook_url = url.clone().into(),
            "rpc" => config.rpc_hook_url = url.clone().into(),
            "webhook" => config.webhook_url = url.clone().into(),
            other => panic!("{other}"),
        }
    }
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_connect_hook_refuses_or_names_the_user() {
    let (base, seen) = backend().await;
    let server = TestServer::start_with(hooked(&base, &["connect"])).await;

    let refused = SioClient::refused(
        &server.http_url(),
        "websocket",
        json!({ "auth": { "token": "banned" } }),
    )
    .await;
    assert!(
        refused.starts_with("FORBIDDEN") && refused.contains("you are banned"),
        "{refused}"
    );
    let (status, body) = common::ws_refused(&server.ws_url("/ws/lobby?token=banned"), &[]).await;
    assert_eq!(
        (status, &body["code"]),
        (403, &json!("FORBIDDEN")),
        "{body}"
    );

    // The backend names the user and the rooms it may join.
    let mut alice = SioClient::connect_with(
        &server.http_url(),
        "websocket",
        json!({ "auth": { "token": "alice-session" }, "extraHeaders": { "cookie": "sid=abc" } }),
    )
    .await;
    alice.join("lobby").await;
    alice.join("team-red").await;
    let no = alice
        .emit_ack("room:join", json!([{ "room": "secret" }]))
        .await;
    assert_eq!(no["code"], "FORBIDDEN", "{no}");
    let (mut bob, welcome) = WsClient::connect(&server.ws_url("/ws/lobby?session=bob")).await;
    assert_eq!(welcome["data"]["user"], "bob", "{welcome}");
    let ack = alice.send(Some("lobby"), "hi bob").await;
    assert_eq!(ack["status"], "ok", "{ack}");
    let got = bob.recv_type("chat").await;
    assert_eq!(
        (got["from"].clone(), got["data"]["content"].clone()),
        (json!("alice"), json!("hi bob"))
    );
    // No session, no user: anonymous, as without the hook.
    let (_anon, welcome) = WsClient::connect(&server.ws_url("/ws/lobby")).await;
    assert_eq!(
        welcome["data"]["user"], welcome["data"]["client_id"],
        "{welcome}"
    );

    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.bad_signatures, 0);
        let first = &seen.calls[0].1;
        assert_eq!(first["transport"], "socketio");
        assert_eq!(first["auth"], json!({ "token": "banned" }));
        assert!(
            first["ip"]
                .as_str()
                .is_some_and(|ip| ip.starts_with("127.")),
            "{first}"
        );
        let alice = seen
            .calls
            .iter()
            .find(|(_, c)| c["auth"]["token"] == "alice-session")
            .expect("alice's call");
        assert_eq!(alice.1["headers"]["cookie"], "sid=abc", "{}", alice.1);
    }
    alice.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_auth_enabled_the_connect_hook_must_name_a_user() {
    let (base, _seen) = backend().await;
    let mut config = hooked(&base, &["connect"]);
    config.auth_enabled = true;
    config.jwt_secret = "jwt-secret-0123456789abcdef".into();
    let server = TestServer::start_with(config).await;
    let refused = SioClient::refused(&server.http_url(), "websocket", json!({})).await;
    assert!(refused.starts_with("AUTH_FAILED"), "{refused}");
    let mut carol = SioClient::connect_with(
        &server.http_url(),
        "websocket",
        json!({ "auth": { "session": "carol" } }),
    )
    .await;
    carol.join("anywhere").await;
    carol.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_message_hook_allows_refuses_and_replaces_on_both_transports() {
    let (base, seen) = backend().await;
    let server = TestServer::start_with(hooked(&base, &["message"])).await;
    let mut sender = SioClient::connect(&server.http_url(), "websocket").await;
    sender.join("lobby").await;
    let mut watcher = SioClient::connect(&server.http_url(), "websocket").await;
    watcher.join("lobby").await;
    let (mut raw, _) = WsClient::connect(&server.ws_url("/ws/lobby")).await;

    let refused = sender.send(Some("lobby"), "buy spam now").await;
    assert_eq!(refused["code"], "FORBIDDEN", "{refused}");
    assert!(refused["message"]
        .as_str()
        .unwrap()
        .contains("no spam here"));
    let replaced = sender.send(Some("lobby"), "darn it").await;
    assert_eq!(replaced["status"], "ok", "{replaced}");
    // In order, each once, the refused one never.
    for i in 0..5 {
        sender
            .emit(
                "message:send",
                json!([{ "room": "lobby", "content": format!("m{i}") }]),
            )
            .await;
    }
    let mut got = Vec::new();
    while got.len() < 6 {
        got.push(watcher.next_event("message:new").await["data"]["content"].clone());
    }
    assert_eq!(
        got,
        vec![
            json!("d**n it"),
            json!("m0"),
            json!("m1"),
            json!("m2"),
            json!("m3"),
            json!("m4")
        ]
    );
    assert_eq!(raw.recv_type("chat").await["data"]["content"], "d**n it");

    // The raw protocol: refused with the request id, replaced for everyone.
    raw.send_json(
        json!({ "type": "chat", "data": { "content": "more spam", "request_id": "r1" } }),
    )
    .await;
    let error = raw.recv_type("error").await;
    assert_eq!(
        (
            error["data"]["code"].clone(),
            error["data"]["request_id"].clone()
        ),
        (json!("FORBIDDEN"), json!("r1"))
    );
    raw.send_json(json!({ "type": "chat", "data": { "content": "darn raw", "request_id": "r2" } }))
        .await;
    let ack = raw.recv_any_where(|v| v["data"]["reply"] == "chat").await;
    assert_eq!(ack["data"]["request_id"], "r2", "{ack}");
    assert_eq!(
        watcher.next_event("message:new").await["data"]["content"],
        "d**n raw"
    );
    let page = sender
        .emit_ack("message:history", json!([{ "room": "lobby" }]))
        .await;
    let stored: Vec<Value> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["data"]["content"].clone())
        .collect();
    assert!(
        !stored
            .iter()
            .any(|c| c.as_str().is_some_and(|c| c.contains("spam"))),
        "{page}"
    );

    {
        let seen = seen.lock().unwrap();
        assert_eq!(seen.bad_signatures, 0);
        let first = &seen.calls[0].1;
        assert_eq!(first["room"], "lobby");
        assert_eq!(first["content"], "buy spam now");
        assert_eq!(first["user"]["id"], json!(sender.id), "{first}");
    }
    sender.close().await;
    watcher.close().await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_round_trips_on_both_transports() {
    let (base, _seen) = backend().await;
    let server = TestServer::start_with(hooked(&base, &["rpc"])).await;
    let mut sio = SioClient::connect(&server.http_url(), "websocket").await;
    let answer = sio.emit_ack("rpc:echo", json!([{ "x": 1 }])).await;
    assert_eq!(
        answer,
        json!({ "status": "ok", "result": { "params": { "x": 1 }, "user": sio.id } })
    );
    let refused = sio.emit_ack("rpc:nothing", json!([{}])).await;
    assert_eq!(
        (refused["status"].clone(), refused["code"].clone()),
        (json!("error"), json!("FORBIDDEN"))
    );
    assert!(refused["message"]
        .as_str()
        .unwrap()
        .contains("no such method"));

    let (mut raw, welcome) = WsClient::connect(&server.ws_url("/ws")).await;
    raw.send_json(
        json!({ "type": "rpc", "data": { "method": "echo", "params": [2], "request_id": "q1" } }),
    )
    .await;
    let reply = raw.recv_type("system").await;
    assert_eq!(reply["data"]["reply"], "rpc");
    assert_eq!(reply["data"]["request_id"], "q1");
    assert_eq!(
        reply["data"]["result"],
        json!({ "params": [2], "user": welcome["data"]["user"] })
    );
    raw.send_json(json!({ "type": "system", "data": { "request": "rpc", "method": "nothing", "request_id": "q2" } })).await;
    let error = raw.recv_type("error").await;
    assert_eq!(
        (
            error["data"]["code"].clone(),
            error["data"]["request_id"].clone()
        ),
        (json!("FORBIDDEN"), json!("q2"))
    );
    sio.close().await;
    server.stop().await;

    // Without the hook, rpc events are unknown, as before.
    let plain = TestServer::start().await;
    let mut sio = SioClient::connect(&plain.http_url(), "websocket").await;
    let unknown = sio.emit_ack("rpc:echo", json!([{}])).await;
    assert_eq!(unknown["code"], "INVALID_PAYLOAD", "{unknown}");
    sio.close().await;
    plain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_are_delivered_once_the_backend_is_back() {
    let (base, seen) = backend().await;
    seen.lock().unwrap().down = true;
    let server = TestServer::start_with(hooked(&base, &["webhook"])).await;
    let mut sio = SioClient::connect(&server.http_url(), "websocket").await;
    sio.join("lobby").await;
    let ack = sio.send(Some("lobby"), "hello hooks").await;
    let id = ack["id"].clone();
    let edited = sio
        .emit_ack(
            "message:edit",
            json!([{ "room": "lobby", "id": id, "content": "edited" }]),
        )
        .await;
    assert_eq!(edited["status"], "ok", "{edited}");
    let deleted = sio
        .emit_ack("message:delete", json!([{ "room": "lobby", "id": id }]))
        .await;
    assert_eq!(deleted["status"], "ok", "{deleted}");
    until("the backend refused a batch", WAIT, || async {
        (seen.lock().unwrap().refused >= 2).then_some(())
    })
    .await;
    assert!(seen.lock().unwrap().events.is_empty());
    seen.lock().unwrap().down = false;
    let events = until("every event delivered", Duration::from_secs(15), || async {
        let seen = seen.lock().unwrap();
        let kinds: Vec<&str> = seen
            .events
            .iter()
            .filter_map(|e| e["type"].as_str())
            .collect();
        let all = [
            "room.joined",
            "message.stored",
            "message.edited",
            "message.deleted",
        ];
        all.iter()
            .all(|k| kinds.contains(k))
            .then(|| seen.events.clone())
    })
    .await;
    let stored = events
        .iter()
        .find(|e| e["type"] == "message.stored")
        .unwrap();
    assert_eq!(stored["data"]["message"]["id"], id);
    assert_eq!(stored["data"]["message"]["data"]["content"], "hello hooks");
    let joined = events.iter().find(|e| e["type"] == "room.joined").unwrap();
    assert_eq!(
        joined["data"],
        json!({ "room": "lobby", "user": { "id": sio.id, "name": sio.id } })
    );
    let mut ids: Vec<&str> = events.iter().filter_map(|e| e["id"].as_str()).collect();
    let n = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "each event once, each with its own id");
    let (_, metrics) = http_get(server.addr, "/metrics").await;
    for outcome in ["failed", "sent"] {
        assert!(
            metrics.lines().any(|l| l.starts_with(&format!(
                "chatwire_webhook_events_total{{outcome=\"{outcome}\"}}"
            ))),
            "{outcome} counted"
        );
    }
    // Leaving (after the grace) is told too.
    sio.close().await;
    until("room.left delivered", Duration::from_secs(15), || async {
        seen.lock()
            .unwrap()
            .events
            .iter()
            .any(|e| e["type"] == "room.left")
            .then_some(())
    })
    .await;
    assert_eq!(seen.lock().unwrap().bad_signatures, 0);
    server.stop().await;
}

/// The median and the p99 of `n` acked sends, one after another.
async fn send_times(client: &mut SioClient, n: usize) -> (Duration, Duration) {
    let mut took = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        let ack = client.send(Some("lobby"), &format!("p{i}")).await;
        assert_eq!(ack["status"], "ok", "{ack}");
        took.push(started.elapsed());
    }
    took.sort();
    (took[n / 2], took[(n * 99 / 100).min(n - 1)])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_never_answers_costs_the_hooks_their_timeout_not_the_server() {
    let (base, _seen) = backend().await;
    let mut config = test_config();
    config.hook_secret = SECRET.into();
    config.rpc_hook_url = format!("{base}/hang").into();
    config.webhook_url = format!("{base}/hang").into();
    config.hook_timeout = Duration::from_secs(3);
    config.hook_concurrency = 8;
    let server = TestServer::start_with(config).await;
    let mut chatter = SioClient::connect(&server.http_url(), "websocket").await;
    chatter.join("lobby").await;
    let (median_before, p99_before) = send_times(&mut chatter, 40).await;

    // Twenty calls hang on the backend (more than the hooks' eight slots), and every
    // stored message queues a webhook that hangs too.
    let mut callers = Vec::new();
    for _ in 0..2 {
        let mut caller = SioClient::connect(&server.http_url(), "websocket").await;
        let started = Instant::now();
        for i in 0..10 {
            caller.emit_ack_later("rpc:slow", json!([{ "i": i }])).await;
        }
        callers.push((caller, started));
    }
    let (median_during, p99_during) = send_times(&mut chatter, 40).await;
    // Typical sends are as fast as before (within the noise of a shared machine), and
    // none waited on the hung backend (that would take HOOK_TIMEOUT, 3 s).
    assert!(
        median_during < Duration::from_millis(100).max(median_before * 5),
        "sends slowed from a median of {median_before:?} to {median_during:?} while the backend hung"
    );
    assert!(
        p99_during < Duration::from_millis(1500),
        "a send waited on the hung backend: p99 {p99_during:?} (before: {p99_before:?})"
    );
    for (mut caller, started) in callers {
        for _ in 0..10 {
            let line = caller.next_of("ack").await;
            assert_eq!(line["args"][0]["code"], "UNAVAILABLE", "{line}");
        }
        assert!(
            started.elapsed() >= Duration::from_secs(3),
            "answered only after the timeout"
        );
        caller.close().await;
    }
    chatter.close().await;
    server.stop().await;
}
