//! The official socket.io-client (node) against chatwire, over WebSocket and over
//! HTTP long-polling.

mod common;

use common::{SioClient, TestServer};
use serde_json::json;

async fn chat_in_a_room(transport: &str) {
    let server = TestServer::start().await;
    let url = server.http_url();
    let mut alice = SioClient::connect(&url, transport).await;
    let mut bob = SioClient::connect(&url, transport).await;
    let mut carol = SioClient::connect(&url, transport).await;
    assert!(
        transport.starts_with(&alice.transport),
        "{}",
        alice.transport
    );

    alice.join("lobby").await;
    bob.join("lobby").await;
    carol.join("elsewhere").await;

    let ack = alice
        .emit_ack(
            "message:send",
            json!([{ "room": "lobby", "content": "hi", "from": "mallory" }]),
        )
        .await;
    assert_eq!(ack["status"], "ok", "{ack}");
    let got = bob.next_event("message:new").await;
    assert_eq!(got["id"], ack["id"]);
    assert_eq!(got["timestamp"], ack["timestamp"]);
    assert_eq!(got["type"], "chat");
    assert_eq!(got["room"], "lobby");
    assert_eq!(
        got["from"],
        alice.id.as_str(),
        "from is the sender's identity, not its claim"
    );
    assert_eq!(got["data"], json!({ "content": "hi" }));

    // Room isolation: carol (not in lobby) gets nothing from lobby. The marker sent to
    // her room afterwards must be the first message she sees.
    bob.join("elsewhere").await;
    bob.send(Some("elsewhere"), "marker").await;
    let first = carol.next_event("message:new").await;
    assert_eq!(
        first["data"]["content"], "marker",
        "carol saw a lobby message"
    );

    // Global broadcast reaches everyone but the sender, whatever their rooms.
    let ack = carol.send(None, "to all").await;
    assert_eq!(ack["status"], "ok");
    for client in [&mut alice, &mut bob] {
        let got = client.next_event("message:new").await;
        assert_eq!(got["data"]["content"], "to all");
        assert!(
            got.get("room").is_none(),
            "global messages carry no room: {got}"
        );
    }

    // Leaving stops delivery: bob leaves lobby, alice sends, then a marker in elsewhere.
    let ack = bob
        .emit_ack("room:leave", json!([{ "room": "lobby" }]))
        .await;
    assert_eq!(ack, json!({ "status": "ok", "room": "lobby" }));
    alice.send(Some("lobby"), "after leave").await;
    carol.send(Some("elsewhere"), "marker 2").await;
    assert_eq!(
        bob.next_event("message:new").await["data"]["content"],
        "marker 2"
    );

    for c in [alice, bob, carol] {
        c.close().await;
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_over_websocket() {
    chat_in_a_room("websocket").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_over_long_polling() {
    chat_in_a_room("polling").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_upgrades_to_websocket_and_keeps_chatting() {
    let server = TestServer::start().await;
    let url = server.http_url();
    // The session opens over polling (the first transport listed); the upgrade may
    // finish before or after the socket.io CONNECT, so only the upgrade event is checked.
    let mut a = SioClient::connect(&url, "polling,websocket").await;
    let upgraded = a.next_of("upgrade").await;
    assert_eq!(upgraded["transport"], "websocket");
    let mut b = SioClient::connect(&url, "websocket").await;
    a.join("r").await;
    b.join("r").await;
    b.send(Some("r"), "after upgrade").await;
    assert_eq!(
        a.next_event("message:new").await["data"]["content"],
        "after upgrade"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_payloads_get_typed_errors_and_the_socket_survives() {
    let server = TestServer::start().await;
    let mut c = SioClient::connect(&server.http_url(), "websocket").await;

    let cases = [
        ("room:join", json!([42])),
        ("room:join", json!([{}])),
        ("room:join", json!([{ "room": "" }])),
        ("room:join", json!([{ "room": "has space" }])),
        ("room:join", json!([{ "room": "x".repeat(129) }])),
        ("room:join", json!([])),
        ("room:leave", json!(["lobby"])),
        ("message:send", json!([{ "content": 5 }])),
        ("message:send", json!([{ "room": "lobby" }])),
        ("message:send", json!([{ "content": "" }])),
        (
            "message:send",
            json!([{ "content": "x", "room": ["lobby"] }]),
        ),
    ];
    for (event, args) in cases {
        let ack = c.emit_ack(event, args.clone()).await;
        assert_eq!(ack["status"], "error", "{event} {args}: {ack}");
        assert_eq!(ack["code"], "INVALID_PAYLOAD", "{event} {args}: {ack}");
        assert!(ack["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    // Not a member -> CHANNEL_ERROR.
    let ack = c.send(Some("lobby"), "hello?").await;
    assert_eq!(ack["code"], "CHANNEL_ERROR", "{ack}");

    // Too large -> MESSAGE_TOO_LARGE (content within the frame slack).
    let ack = c.send(None, &"x".repeat(65_536)).await;
    assert_eq!(ack["code"], "MESSAGE_TOO_LARGE", "{ack}");

    // Without an ack, errors arrive as an `error` event.
    c.emit("room:join", json!([{ "room": "bad room" }])).await;
    let err = c.next_event("error").await;
    assert_eq!(err["code"], "INVALID_PAYLOAD", "{err}");

    // Unknown events answer an `error` event (and the ack, when one was asked for).
    c.emit("nonsense:event", json!([1])).await;
    let err = c.next_event("error").await;
    assert_eq!(err["code"], "INVALID_PAYLOAD");
    assert!(err["message"]
        .as_str()
        .unwrap_or_default()
        .contains("nonsense:event"));
    let ack = c.emit_ack("other:unknown", json!([])).await;
    assert_eq!(ack["code"], "INVALID_PAYLOAD");
    assert_eq!(c.next_event("error").await["code"], "INVALID_PAYLOAD");

    // Still connected and working.
    c.join("lobby").await;
    assert_eq!(c.send(Some("lobby"), "still here").await["status"], "ok");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_sent_the_instant_the_socket_connects_are_handled_in_order() {
    // socket.io-client buffers emits made before the connection and flushes them the
    // moment the CONNECT ack arrives: the server must neither drop nor reorder them.
    let server = TestServer::start().await;
    let url = server.http_url();
    let mut watcher = SioClient::connect(&url, "websocket").await;
    watcher.join("race").await;
    for round in 0..10 {
        let mut eager = SioClient::spawn(&url, "websocket", None).await;
        let join = eager
            .emit_ack("room:join", json!([{ "room": "race" }]))
            .await;
        assert_eq!(join["status"], "ok", "round {round}: {join}");
        let sent = eager.send(Some("race"), &format!("eager {round}")).await;
        assert_eq!(sent["status"], "ok", "round {round}: {sent}");
        let got = watcher.next_event("message:new").await;
        assert_eq!(got["data"]["content"], format!("eager {round}"));
        eager.close().await;
    }
    server.stop().await;
}

/// A socket.io client at the packet level that joins `room`, then never reads again.
async fn stuck_socketio_client(
    server: &TestServer,
    room: &str,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let url = format!("ws://{}/socket.io/?EIO=4&transport=websocket", server.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade");
    // Engine.IO pings ("2") may come before any answer: they are skipped.
    let next = async |ws: &mut tokio_tungstenite::WebSocketStream<_>| loop {
        match ws.next().await.expect("open").expect("frame") {
            Message::Text(t) if t.as_str() != "2" => return t.to_string(),
            _ => continue,
        }
    };
    assert!(next(&mut ws).await.starts_with('0'));
    ws.send(Message::text("40")).await.expect("send");
    assert!(next(&mut ws).await.starts_with("40"));
    let join = format!("420[\"room:join\",{{\"room\":\"{room}\"}}]");
    ws.send(Message::text(join)).await.expect("send");
    while !next(&mut ws).await.starts_with("430") {}
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_to_a_full_socketio_buffer_are_dropped_and_counted() {
    let mut config = common::test_config();
    config.send_buffer = 4;
    config.pong_timeout = std::time::Duration::from_secs(60);
    let server = TestServer::start_with(config).await;
    let stuck = stuck_socketio_client(&server, "full").await;
    let (mut sender, _) = common::WsClient::connect(&server.ws_url("/ws/full")).await;

    // Once the stuck socket's kernel buffers and its 4-packet buffer are full, further
    // messages to it are dropped and counted; the sender is never slowed.
    let dropped = sender.flood_until_dropped(server.addr).await;
    assert!(dropped > 0, "nothing was dropped");
    sender.send_json(json!({ "type": "ping" })).await;
    assert_eq!(sender.recv_type("pong").await["type"], "pong");
    drop(stuck);
    server.stop().await;
}
