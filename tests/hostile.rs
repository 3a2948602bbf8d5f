//! Table-driven hostile input over both transports: every malformed input is answered
//! with its typed error (or the documented close), and the server keeps serving.

mod common;

use common::tokens::SECRET;
use common::{http_get, test_config, ws_refused, SioClient, TestServer, WsClient};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::Message as WsMessage;

fn deep(depth: usize) -> String {
    format!("{}{}", "[".repeat(depth), "]".repeat(depth))
}

/// What the server must answer.
enum Expect {
    /// A raw `error` frame with this code; the connection stays open.
    WsError(&'static str),
    /// The raw connection is closed with this code.
    WsClose(u16),
}

async fn raw_cases(server: &TestServer) -> usize {
    let long_room = "r".repeat(129);
    let cases: Vec<(&str, WsMessage, Expect)> = vec![
        (
            "bad json",
            WsMessage::text("{not json"),
            Expect::WsError("INVALID_PAYLOAD"),
        ),
        (
            "array",
            WsMessage::text("[]"),
            Expect::WsError("INVALID_PAYLOAD"),
        ),
        (
            "number",
            WsMessage::text("42"),
            Expect::WsError("INVALID_PAYLOAD"),
        ),
        (
            "null",
            WsMessage::text("null"),
            Expect::WsError("INVALID_PAYLOAD"),
        ),
        (
            "empty frame",
            WsMessage::text(""),
            Expect::WsError("INVALID_PAYLOAD"),
        ),
        (
            "type not a string",
            WsMessage::text(r#"{"type":5}"#),
            Expect::WsError("INVALID_PAYLOAD"),
        ),
        (
            "chat without data",
            WsMessage::text(r#"{"type":"chat"}"#),
            Expect::WsError("INVALID_PAYLOAD"),
        ),
        (
            "content a number",
            WsMessage::text(r#"{"type":"chat","data":{"content":7}}"#),
            Expect::WsError("INVALID_PAYLOAD"),
        ),
        (
            "content empty",
            WsMessage::text(r#"{"type":"chat","data":{"content":""}}"#),
            Expect::WsError("INVALID_PAYLOAD"),
        ),
        (
            "data a string",
            WsMessage::text(r#"{"type":"chat","data":"hi"}"#),
            Expect::WsError("INVALID_PAYLOAD"),
        ),
        (
            "room with a space",
            WsMessage::text(r#"{"type":"chat","room":"a b","data":{"content":"x"}}"#),
            Expect::WsError("INVALID_PAYLOAD"),
        ),
        (
            "look-alike room",
            WsMessage::text(r#"{"type":"chat","room":"lоbby","data":{"content":"x"}}"#),
            Expect::WsError("INVALID_PAYLOAD"),
        ),
        (
            "oversized room",
            WsMessage::text(
                json!({"type":"chat","room":long_room,"data":{"content":"x"}}).to_string(),
            ),
            Expect::WsError("INVALID_PAYLOAD"),
        ),
        (
            "empty room",
            WsMessage::text(r#"{"type":"chat","room":"","data":{"content":"x"}}"#),
            Expect::WsError("INVALID_PAYLOAD"),
        ),
        (
            "NUL in room",
            WsMessage::text(r#"{"type":"chat","room":"ro\u0000om","data":{"content":"x"}}"#),
            Expect::WsError("INVALID_PAYLOAD"),
        ),
        (
            "NUL in content",
            WsMessage::text(r#"{"type":"chat","data":{"content":"a\u0000b"}}"#),
            Expect::WsError("INVALID_PAYLOAD"),
        ),
        (
            "lone surrogate",
            WsMessage::text(r#"{"type":"chat","data":{"content":"\ud800"}}"#),
            Expect::WsError("INVALID_PAYLOAD"),
        ),
        (
            "huge number",
            WsMessage::text(r#"{"type":"chat","data":{"content":1e999999}}"#),
            Expect::WsError("INVALID_PAYLOAD"),
        ),
        (
            "duplicate keys",
            WsMessage::text(r#"{"type":"chat","type":"ping"}"#),
            Expect::WsError("INVALID_PAYLOAD"),
        ),
        (
            "server-only type",
            WsMessage::text(r#"{"type":"system","data":{}}"#),
            Expect::WsError("INVALID_PAYLOAD"),
        ),
        (
            "unknown type",
            WsMessage::text(r#"{"type":"shout"}"#),
            Expect::WsError("INVALID_PAYLOAD"),
        ),
        (
            "10 000-deep nesting",
            WsMessage::text(deep(10_000)),
            Expect::WsError("INVALID_PAYLOAD"),
        ),
        (
            "binary frame",
            WsMessage::binary(vec![0u8, 159, 146, 150]),
            Expect::WsError("INVALID_PAYLOAD"),
        ),
        (
            "room not joined",
            WsMessage::text(r#"{"type":"chat","room":"elsewhere","data":{"content":"x"}}"#),
            Expect::WsError("CHANNEL_ERROR"),
        ),
        (
            "invalid UTF-8",
            WsMessage::Frame(Frame::message(
                vec![0x7b, 0xff, 0xfe, 0x7d],
                OpCode::Data(Data::Text),
                true,
            )),
            Expect::WsClose(1007),
        ),
        (
            "10 MB frame",
            WsMessage::text("x".repeat(10 * 1024 * 1024)),
            Expect::WsClose(1009),
        ),
    ];
    let count = cases.len();
    for (name, frame, expect) in cases {
        let (mut c, _) = WsClient::connect(&server.ws_url("/ws/lobby")).await;
        // The server may close before a 10 MB frame is fully written: the write's own
        // error is not the answer, the close is.
        let sent = c.stream.send(frame).await;
        assert!(
            sent.is_ok() || matches!(expect, Expect::WsClose(_)),
            "{name}: {sent:?}"
        );
        match expect {
            Expect::WsError(code) => {
                let err = c.recv().await;
                assert_eq!(err["type"], "error", "{name}: {err}");
                assert_eq!(err["data"]["code"], code, "{name}: {err}");
                c.send_json(json!({ "type": "ping" })).await;
                assert_eq!(
                    c.recv().await["type"],
                    "pong",
                    "{name}: connection still open"
                );
            }
            // A close frame, unless the peer's unread 10 MB turned it into a reset.
            Expect::WsClose(code) => {
                if let Some(got) = c.close_code().await {
                    assert_eq!(got, code, "{name}");
                }
            }
        }
    }
    count
}

async fn socketio_cases(server: &TestServer) -> usize {
    let long_room = "r".repeat(129);
    let cases: Vec<(&str, &str, Value, &str)> = vec![
        (
            "join with a number",
            "room:join",
            json!([42]),
            "INVALID_PAYLOAD",
        ),
        (
            "join without room",
            "room:join",
            json!([{}]),
            "INVALID_PAYLOAD",
        ),
        (
            "join look-alike",
            "room:join",
            json!([{ "room": "lоbby" }]),
            "INVALID_PAYLOAD",
        ),
        (
            "join NUL",
            "room:join",
            json!([{ "room": "ro\u{0}om" }]),
            "INVALID_PAYLOAD",
        ),
        (
            "join empty",
            "room:join",
            json!([{ "room": "" }]),
            "INVALID_PAYLOAD",
        ),
        (
            "join oversized",
            "room:join",
            json!([{ "room": long_room }]),
            "INVALID_PAYLOAD",
        ),
        (
            "join a list",
            "room:join",
            json!([{ "room": ["a", "b"] }]),
            "INVALID_PAYLOAD",
        ),
        ("leave null", "room:leave", json!([null]), "INVALID_PAYLOAD"),
        (
            "send object content",
            "message:send",
            json!([{ "content": { "x": 1 } }]),
            "INVALID_PAYLOAD",
        ),
        (
            "send NUL content",
            "message:send",
            json!([{ "content": "a\u{0}b" }]),
            "INVALID_PAYLOAD",
        ),
        (
            "send 100-deep content",
            "message:send",
            json!([{ "content": serde_json::from_str::<Value>(&deep(100)).unwrap_or_default() }]),
            "INVALID_PAYLOAD",
        ),
        (
            "send no arguments",
            "message:send",
            json!([]),
            "INVALID_PAYLOAD",
        ),
        (
            "send too large",
            "message:send",
            json!([{ "content": "x".repeat(66_000) }]),
            "MESSAGE_TOO_LARGE",
        ),
        (
            "send to a room not joined",
            "message:send",
            json!([{ "room": "nope", "content": "x" }]),
            "CHANNEL_ERROR",
        ),
        (
            "unknown event",
            "admin:shutdown",
            json!([{}]),
            "INVALID_PAYLOAD",
        ),
    ];
    let count = cases.len();
    let mut c = SioClient::connect(&server.http_url(), "websocket").await;
    for (name, event, args, code) in cases {
        let ack = c.emit_ack(event, args).await;
        assert_eq!(ack["code"], code, "{name}: {ack}");
    }
    assert_eq!(
        c.next_event("error").await["code"],
        "INVALID_PAYLOAD",
        "unknown event"
    );
    c.join("lobby").await;

    // Packets no official client would send, written at the wire level: the parser
    // refuses them and socketioxide ends that one session, nothing else.
    let ten_mb = format!(
        "42[\"message:send\",{{\"content\":\"{}\"}}]",
        "x".repeat(10 << 20)
    );
    let raw_packets = [
        (
            "10 000-deep nesting",
            format!("42[\"message:send\",{}]", deep(10_000)),
        ),
        ("10 MB payload", ten_mb),
        ("event not an array", "42{}".to_owned()),
        ("unknown packet type", "4abc".to_owned()),
        ("ack id not a number", "42abc[\"message:send\"]".to_owned()),
        (
            "invalid UTF-8 in JSON escape",
            "42[\"message:send\",\"\\udc00\"]".to_owned(),
        ),
    ];
    for (name, packet) in &raw_packets {
        let mut victim = RawSio::connect(server).await;
        let answer = victim.send_and_read(packet).await;
        let typed = answer
            .as_deref()
            .is_some_and(|a| a.contains("INVALID_PAYLOAD"));
        assert!(answer.is_none() || typed, "{name}: {answer:?}");
    }
    count + raw_packets.len()
}

/// A socket.io client written at the packet level over a raw WebSocket.
struct RawSio {
    ws: common::WsStream,
}

impl RawSio {
    async fn connect(server: &TestServer) -> Self {
        let url = server.ws_url("/socket.io/?EIO=4&transport=websocket");
        let (mut ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("engine.io upgrade");
        let open = next_text(&mut ws).await.expect("open packet");
        assert!(open.starts_with('0'), "{open}");
        ws.send(WsMessage::text("40")).await.expect("send connect");
        // engineioxide pings right after the open packet; skip pings.
        let mut connected = next_text(&mut ws).await.expect("connect ack");
        while connected == "2" {
            connected = next_text(&mut ws).await.expect("connect ack");
        }
        assert!(connected.starts_with("40"), "{connected}");
        Self { ws }
    }

    /// Sends one packet; returns the next text packet other than a ping, or `None` once
    /// the server closed the session.
    async fn send_and_read(&mut self, packet: &str) -> Option<String> {
        if self.ws.send(WsMessage::text(packet)).await.is_err() {
            return None;
        }
        loop {
            match next_text(&mut self.ws).await {
                Some(p) if p == "2" => continue,
                // Engine.IO close packet: the session is over.
                Some(p) if p == "1" => return None,
                other => return other,
            }
        }
    }
}

async fn next_text(ws: &mut common::WsStream) -> Option<String> {
    loop {
        let frame = tokio::time::timeout(common::WAIT, ws.next())
            .await
            .expect("an answer in time");
        match frame {
            Some(Ok(WsMessage::Text(t))) => return Some(t.to_string()),
            Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => return None,
            Some(Ok(_)) => continue,
        }
    }
}

async fn http_cases(server: &TestServer) -> usize {
    let huge_token = "x".repeat(20_000);
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "bad percent-encoding",
            "/ws?room=%ZZ%".into(),
            400,
            "INVALID_PAYLOAD",
        ),
        (
            "room repeated",
            "/ws?room=a&room=b".into(),
            400,
            "INVALID_PAYLOAD",
        ),
        (
            "room in path too long",
            format!("/ws/{}", "r".repeat(10_000)),
            400,
            "INVALID_PAYLOAD",
        ),
        (
            "NUL room in path",
            "/ws/a%00b".into(),
            400,
            "INVALID_PAYLOAD",
        ),
        (
            "huge token",
            format!("/ws?token={huge_token}"),
            401,
            "AUTH_FAILED",
        ),
        (
            "garbage token",
            "/ws?token=%F0%9F%92%A9".into(),
            401,
            "AUTH_FAILED",
        ),
    ];
    let count = cases.len();
    for (name, path, status, code) in cases {
        let (got, body) = ws_refused(&server.ws_url(&path), &[]).await;
        assert_eq!(got, status, "{name}: {body}");
        assert_eq!(body["code"], code, "{name}: {body}");
    }
    for (name, header) in [
        ("basic auth", "Basic YTpi"),
        ("bearer without token", "Bearer"),
    ] {
        let (got, body) = ws_refused(&server.ws_url("/ws"), &[("authorization", header)]).await;
        assert_eq!(
            (got, body["code"].clone()),
            (401, json!("AUTH_FAILED")),
            "{name}"
        );
    }
    count + 2
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_typed_errors_and_the_server_keeps_serving() {
    let server = TestServer::start_with(test_config()).await;
    let mut total = raw_cases(&server).await;
    total += socketio_cases(&server).await;
    let mut strict = test_config();
    strict.jwt_secret = SECRET.into();
    strict.auth_enabled = true;
    let strict_server = TestServer::start_with(strict).await;
    total += http_cases(&strict_server).await;
    assert!(total >= 30, "only {total} hostile inputs");

    // Everyone else is still served.
    let mut a = SioClient::connect(&server.http_url(), "polling").await;
    a.join("after").await;
    let (mut b, _) = WsClient::connect(&server.ws_url("/ws/after")).await;
    b.chat("still serving").await;
    assert_eq!(
        a.next_event("message:new").await["data"]["content"],
        "still serving"
    );
    assert_eq!(http_get(server.addr, "/health").await.0, 200);
    server.stop().await;
    strict_server.stop().await;
}
