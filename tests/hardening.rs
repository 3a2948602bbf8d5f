//! Holes found by independent checks against the running binary, each closed and kept
//! closed: secrets in `--help` and logs, socket.io attachments outside the size limit,
//! half-sent HTTP requests, unfinished requests per address, listings without a token,
//! and store reads without a rate limit.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use chatwire::gate::GateClock;
use common::tokens::{self, claims, SECRET};
use common::{http_get, http_request, test_config, SioClient, TestServer, WsClient, WAIT};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message as WsMessage;

const REDIS_PASSWORD: &str = "hunter2-redis-password";
const JWT_SECRET: &str = "s3cr3t-signing-key-0123456789abcdef";
const API_KEY: &str = "server-api-key-0123456789abcdef";
const HOOK_SECRET: &str = "hook-secret-0123456789abcdef";

fn secret_env() -> String {
    format!("redis://chat:{REDIS_PASSWORD}@127.0.0.1:1/0")
}

#[tokio::test]
async fn help_debug_and_logs_never_show_secrets() {
    let redis_url = secret_env();
    let help = tokio::process::Command::new(env!("CARGO_BIN_EXE_chatwire"))
        .env_clear()
        .env("REDIS_URL", &redis_url)
        .env("JWT_SECRET", JWT_SECRET)
        .env("SERVER_API_KEYS", API_KEY)
        .env("HOOK_SECRET", HOOK_SECRET)
        .arg("--help")
        .output()
        .await
        .expect("run chatwire --help");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&help.stdout),
        String::from_utf8_lossy(&help.stderr)
    );
    assert!(
        text.contains("REDIS_URL"),
        "help lists the variable: {text}"
    );
    assert!(
        !text.contains(REDIS_PASSWORD),
        "--help shows REDIS_URL: {text}"
    );
    assert!(
        !text.contains(JWT_SECRET),
        "--help shows JWT_SECRET: {text}"
    );
    assert!(
        !text.contains(API_KEY),
        "--help shows SERVER_API_KEYS: {text}"
    );
    assert!(
        !text.contains(HOOK_SECRET),
        "--help shows HOOK_SECRET: {text}"
    );

    // A startup error about a bad URL names the variable, not the password.
    let bad = tokio::process::Command::new(env!("CARGO_BIN_EXE_chatwire"))
        .env_clear()
        .env("REDIS_URL", format!("redis://chat:{REDIS_PASSWORD}@[::1/0"))
        .env("PORT", "0")
        .output()
        .await
        .expect("run chatwire");
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(stderr.contains("REDIS_URL"), "{stderr}");
    assert!(!stderr.contains(REDIS_PASSWORD), "{stderr}");

    // A running pod with Redis unreachable logs at debug level without the secrets.
    let pod = common::ServerProcess::spawn(&[
        ("REDIS_URL", &redis_url),
        ("JWT_SECRET", JWT_SECRET),
        ("SERVER_API_KEYS", API_KEY),
        ("HOOK_SECRET", HOOK_SECRET),
        ("WEBHOOK_URL", "http://127.0.0.1:1/hook"),
        ("RUST_LOG", "debug"),
    ])
    .await;
    common::wait_for_health(pod.addr, |h| h["redis"] == "down").await;
    let log = pod.log.lock().expect("log").join("\n");
    assert!(!log.contains(REDIS_PASSWORD), "{log}");
    assert!(!log.contains(JWT_SECRET), "{log}");
    assert!(!log.contains(API_KEY), "{log}");
    assert!(!log.contains(HOOK_SECRET), "{log}");
}

type Engine =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A socket.io session over a bare Engine.IO WebSocket, connected to namespace "/".
async fn engine_session(addr: SocketAddr) -> Engine {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = timeout(WAIT, tokio_tungstenite::connect_async(url))
        .await
        .expect("engine.io open in time")
        .expect("engine.io open");
    let open = next_text(&mut ws).await.expect("open packet");
    assert!(open.starts_with('0'), "{open}");
    ws.send(WsMessage::text("40")).await.expect("send connect");
    loop {
        let packet = next_text(&mut ws).await.expect("connect packet");
        if packet == "2" {
            ws.send(WsMessage::text("3")).await.expect("pong");
            continue;
        }
        assert!(packet.starts_with("40"), "{packet}");
        return ws;
    }
}

/// The next text frame, or `None` once the session is closed.
async fn next_text(ws: &mut Engine) -> Option<String> {
    loop {
        match timeout(WAIT, ws.next()).await.expect("a frame in time") {
            Some(Ok(WsMessage::Text(t))) => return Some(t.to_string()),
            Some(Ok(WsMessage::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

/// Whether the server ends the session within `within` (pings are answered meanwhile).
async fn closed_within(ws: &mut Engine, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match timeout(left, ws.next()).await {
            Err(_) => return false,
            Ok(Some(Ok(WsMessage::Text(t)))) if t.as_str() == "2" => {
                let _ = ws.send(WsMessage::text("3")).await;
            }
            Ok(Some(Ok(WsMessage::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return true,
            Ok(Some(Ok(_))) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_attachments_count_against_max_message_bytes() {
    let mut config = test_config();
    config.max_message_bytes = 65536;
    let server = TestServer::start_with(config).await;

    // One packet announcing 10 attachments, fed 30 KB at a time: past 64 KiB in all the
    // session ends (socketioxide's default would buffer 10 MB per session).
    let mut ws = engine_session(server.addr).await;
    let placeholders: Vec<Value> = (0..10)
        .map(|n| json!({ "_placeholder": true, "num": n }))
        .collect();
    let header = format!(
        "4510-{}",
        json!(["message:send", { "room": "r", "content": "x", "files": placeholders }])
    );
    ws.send(WsMessage::text(header)).await.expect("send header");
    let mut sent = 0;
    for _ in 0..4 {
        if ws.send(WsMessage::binary(vec![7u8; 30_000])).await.is_err() {
            break;
        }
        sent += 30_000;
    }
    assert!(
        closed_within(&mut ws, Duration::from_secs(3)).await,
        "session still open after {sent} bytes of attachments"
    );

    // More attachments than a packet may announce: refused at once.
    let mut ws = engine_session(server.addr).await;
    let many: Vec<Value> = (0..1000)
        .map(|n| json!({ "_placeholder": true, "num": n }))
        .collect();
    let header = format!("451000-{}", json!(["message:send", { "files": many }]));
    ws.send(WsMessage::text(header)).await.expect("send header");
    assert!(closed_within(&mut ws, Duration::from_secs(3)).await);

    // The server is fine: a normal client still chats.
    let mut sio = SioClient::connect(&server.http_url(), "websocket").await;
    assert_eq!(sio.send(None, "still here").await["status"], "ok");
    server.stop().await;
}

/// Reads until the server closes the connection; true when it did within `within`.
async fn server_closes(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match timeout(left, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_http_request_is_timed_out() {
    let mut config = test_config();
    config.header_read_timeout = Duration::from_millis(500);
    let server = TestServer::start_with(config).await;
    let mut half = TcpStream::connect(server.addr).await.expect("connect");
    half.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("write");
    let mut silent = TcpStream::connect(server.addr).await.expect("connect");
    assert!(
        server_closes(&mut half, Duration::from_secs(5)).await,
        "a half-sent request is never timed out"
    );
    assert!(
        server_closes(&mut silent, Duration::from_secs(5)).await,
        "a connection that sends nothing is never timed out"
    );
    // A kept-alive connection that goes quiet after a request is closed as well.
    let mut idle = TcpStream::connect(server.addr).await.expect("connect");
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    assert!(server_closes(&mut idle, Duration::from_secs(5)).await);
    assert_eq!(http_get(server.addr, "/health").await.0, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfinished_requests_per_ip_are_bounded() {
    let mut config = test_config();
    config.max_unfinished_requests_per_ip = 4;
    config.header_read_timeout = Duration::from_secs(30);
    let server = TestServer::start_with(config).await;
    let mut pending = Vec::new();
    for _ in 0..4 {
        let mut stream = TcpStream::connect(server.addr).await.expect("connect");
        stream
            .write_all(b"GET / HTTP/1.1\r\n")
            .await
            .expect("write");
        pending.push(stream);
    }
    // Let the server accept all four before the fifth arrives: a finished request on
    // a fifth connection would be refused only once they are counted.
    common::eventually(
        "the four unfinished requests are counted",
        Duration::from_secs(5),
        || async {
            let mut probe = TcpStream::connect(server.addr).await.expect("connect");
            server_closes(&mut probe, Duration::from_millis(300)).await
        },
    )
    .await;
    let mut fifth = TcpStream::connect(server.addr).await.expect("connect");
    fifth
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut answer = Vec::new();
    let read = timeout(WAIT, fifth.read_to_end(&mut answer)).await;
    assert!(
        matches!(read, Ok(Ok(0)) | Ok(Err(_))),
        "a fifth connection is served while four requests are unfinished: {:?}",
        String::from_utf8_lossy(&answer)
    );
    for stream in &pending {
        let mut probe = [0u8; 1];
        assert!(
            timeout(Duration::from_millis(50), stream.peek(&mut probe))
                .await
                .is_err(),
            "the unfinished requests themselves are kept until their timeout"
        );
    }
    // Finishing one frees its place.
    pending[0]
        .write_all(b"Host: x\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut done = String::new();
    timeout(WAIT, pending[0].read_to_string(&mut done))
        .await
        .expect("answer in time")
        .expect("read");
    assert!(done.starts_with("HTTP/1.1 "), "{done}");
    common::eventually(
        "a new request is served once a place is free",
        Duration::from_secs(5),
        || async {
            let mut stream = TcpStream::connect(server.addr).await.expect("connect");
            let _ = stream
                .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await;
            let mut raw = String::new();
            let _ = timeout(Duration::from_secs(1), stream.read_to_string(&mut raw)).await;
            raw.starts_with("HTTP/1.1 200")
        },
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_routes_need_a_token_when_auth_is_enabled() {
    let mut config = test_config();
    config.auth_enabled = true;
    config.jwt_secret = SECRET.into();
    let server = TestServer::start_with(config).await;
    let alice = tokens::hs256(SECRET, &claims("alice", json!({})));
    let bob = tokens::hs256(SECRET, &claims("bob", json!({})));
    let auth = |t: &str| json!({ "auth": { "token": t } });
    let mut a = SioClient::connect_with(&server.http_url(), "websocket", auth(&alice)).await;
    let _b = SioClient::connect_with(&server.http_url(), "websocket", auth(&bob)).await;
    a.join("lobby").await;

    for path in ["/api/rooms", "/api/cluster/sockets"] {
        let (status, body) = http_get(server.addr, path).await;
        assert_eq!(status, 401, "{path} answers anyone: {body}");
        assert!(!body.contains("bob"), "{path}: {body}");
        let bad = format!("{path}?token=not-a-token");
        assert_eq!(http_get(server.addr, &bad).await.0, 401, "{bad}");
    }
    let bearer = format!("Bearer {alice}");
    for path in ["/api/rooms", "/api/cluster/sockets"] {
        let (status, raw) =
            http_request(server.addr, "GET", path, &[("Authorization", &bearer)], "").await;
        let body = common::body_of(&raw);
        assert_eq!(status, 200, "{path}: {raw}");
        assert!(body.contains("lobby"), "{path}: {body}");
        assert!(
            body.contains("user:alice"),
            "{path}: own room listed: {body}"
        );
        assert!(
            !body.contains("user:bob"),
            "{path} names another user: {body}"
        );
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_reads_are_rate_limited_per_user_and_per_ip() {
    let mut config = test_config();
    config.auth_enabled = false;
    config.jwt_secret = SECRET.into();
    config.rate_reads_per_min = 5;
    config.rate_reads_per_ip_per_min = 12;
    let clock = GateClock::default();
    let server = TestServer::start_with_clock(config, clock.clone()).await;
    let ann = tokens::hs256(SECRET, &claims("ann", json!({})));
    let mut sio = SioClient::connect_with(
        &server.http_url(),
        "websocket",
        json!({ "auth": { "token": ann } }),
    )
    .await;

    // Per user: a join and four history pages, then RATE_LIMITED, whatever the event.
    sio.join("r").await;
    for i in 0..4 {
        let ack = sio
            .emit_ack("message:history", json!([{ "room": "r" }]))
            .await;
        assert_eq!(ack["status"], "ok", "read {i}: {ack}");
    }
    for event in ["message:history", "presence:list", "room:join"] {
        let ack = sio.emit_ack(event, json!([{ "room": "r" }])).await;
        assert_eq!(ack["code"], "RATE_LIMITED", "{event}: {ack}");
        assert!(ack["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0));
    }
    // Sends are not reads.
    assert_eq!(sio.send(Some("r"), "hi").await["status"], "ok");

    // Anonymous callers share their address's allowance (12, of which ann took 8):
    // reconnecting does not renew it.
    let (mut raw, _) = WsClient::connect(&server.ws_url("/ws")).await;
    let history = json!({ "type": "system", "data": {
        "request": "message:history", "request_id": "h", "room": "r" } });
    let mut answered = 0;
    loop {
        raw.send_json(history.clone()).await;
        let reply = raw.recv_any().await;
        if reply["type"] == "error" {
            assert_eq!(reply["data"]["code"], "RATE_LIMITED", "{reply}");
            break;
        }
        answered += 1;
        assert!(answered <= 12, "raw reads are never limited");
    }
    assert_eq!(answered, 4, "the address's allowance is shared");
    let (status, raw_answer) =
        http_request(server.addr, "GET", "/api/rooms/r/messages", &[], "").await;
    assert_eq!(status, 429, "{raw_answer}");
    assert!(
        raw_answer.to_ascii_lowercase().contains("retry-after"),
        "{raw_answer}"
    );

    // The allowance comes back with time.
    clock.advance(Duration::from_secs(60));
    assert_eq!(http_get(server.addr, "/api/rooms/r/messages").await.0, 200);
    let ack = sio
        .emit_ack("message:history", json!([{ "room": "r" }]))
        .await;
    assert_eq!(ack["status"], "ok", "{ack}");
    server.stop().await;
}
