//! Raw WebSocket clients (tokio-tungstenite) against chatwire's `/ws` routes.

mod common;

use std::time::Duration;

use common::{http_get, test_config, wait_for_health, TestServer, WsClient};
use futures_util::StreamExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message as WsMessage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_url_forms_under_both_prefixes_join_their_room() {
    let server = TestServer::start().await;
    for prefix in ["", "/api/chat-api"] {
        for (path, room) in [
            (format!("{prefix}/ws"), None),
            (format!("{prefix}/ws/team-1"), Some("team-1")),
            (format!("{prefix}/ws?room=team-2"), Some("team-2")),
        ] {
            let (mut a, welcome) = WsClient::connect(&server.ws_url(&path)).await;
            let (mut b, _) = WsClient::connect(&server.ws_url(&path)).await;
            assert!(welcome["data"]["client_id"]
                .as_str()
                .is_some_and(|s| !s.is_empty()));
            assert_eq!(welcome["data"]["room"].as_str(), room, "{path}: {welcome}");

            a.chat(&format!("via {path}")).await;
            let got = b.recv_type("chat").await;
            assert_eq!(got["data"]["content"], format!("via {path}"));
            assert_eq!(got["room"].as_str(), room, "{path}: {got}");
            assert_eq!(got["from"], welcome["data"]["client_id"]);
            assert!(got["id"].as_str().is_some_and(|s| s.len() == 36));
            assert!(got["timestamp"].as_str().is_some_and(|s| s.ends_with('Z')));
        }
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_are_isolated_and_spoofed_from_is_ignored() {
    let server = TestServer::start().await;
    let (mut a, wa) = WsClient::connect(&server.ws_url("/ws/a")).await;
    let (mut a2, _) = WsClient::connect(&server.ws_url("/ws/a")).await;
    let (mut b, _) = WsClient::connect(&server.ws_url("/ws/b")).await;
    let (mut b2, _) = WsClient::connect(&server.ws_url("/ws/b")).await;

    a.send_json(json!({ "type": "chat", "from": "mallory", "data": { "content": "in a" } }))
        .await;
    let got = a2.recv_type("chat").await;
    assert_eq!(got["from"], wa["data"]["client_id"]);
    b2.chat("in b").await;
    assert_eq!(
        b.recv_type("chat").await["data"]["content"],
        "in b",
        "b saw a's message"
    );

    // Naming another room is a CHANNEL_ERROR; the connection stays usable.
    a.send_json(json!({ "type": "chat", "room": "b", "data": { "content": "x" } }))
        .await;
    let err = a.recv_type("error").await;
    assert_eq!(err["data"]["code"], "CHANNEL_ERROR", "{err}");
    a.send_json(json!({ "type": "chat", "room": "a", "data": { "content": "explicit" } }))
        .await;
    assert_eq!(a2.recv_type("chat").await["data"]["content"], "explicit");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ping_pong_and_bad_frames_keep_the_connection_open() {
    let server = TestServer::start().await;
    let (mut c, _) = WsClient::connect(&server.ws_url("/ws/lobby")).await;
    let (mut peer, _) = WsClient::connect(&server.ws_url("/ws/lobby")).await;

    c.send_json(json!({ "type": "ping" })).await;
    assert_eq!(c.recv().await["type"], "pong");

    for bad in [
        WsMessage::text("{not json"),
        WsMessage::text(r#"{"type":"shout"}"#),
        WsMessage::text(r#"{"type":"chat","data":{}}"#),
        WsMessage::text(r#"{"type":"chat"}"#),
        WsMessage::binary(vec![1u8, 2, 3]),
    ] {
        c.send(bad.clone()).await;
        let err = c.recv().await;
        assert_eq!(err["type"], "error", "{bad:?}: {err}");
        assert_eq!(err["data"]["code"], "INVALID_PAYLOAD", "{bad:?}: {err}");
        assert!(err["data"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    c.chat("still open").await;
    assert_eq!(
        peer.recv_type("chat").await["data"]["content"],
        "still open"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversize_frame_closes_with_1009() {
    let server = TestServer::start().await;
    let (mut c, _) = WsClient::connect(&server.ws_url("/ws")).await;
    c.send(WsMessage::text("x".repeat(65_537))).await;
    assert_eq!(c.expect_close().await, 1009);
    // The server keeps serving.
    let (mut d, _) = WsClient::connect(&server.ws_url("/ws")).await;
    d.send_json(json!({ "type": "ping" })).await;
    assert_eq!(d.recv().await["type"], "pong");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_room_in_url_is_refused_before_upgrade() {
    let server = TestServer::start().await;
    for path in [
        "/ws/bad%20room",
        "/ws?room=%E2%9C%93",
        &format!("/ws/{}", "r".repeat(129)),
    ] {
        let (status, body) = http_get(server.addr, path).await;
        assert_eq!(status, 400, "{path}");
        let body: serde_json::Value = serde_json::from_str(&body).expect("JSON error body");
        assert_eq!(body["code"], "INVALID_PAYLOAD", "{path}");
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_without_slowing_others() {
    let mut config = test_config();
    config.send_buffer = 8;
    config.ping_interval = Duration::from_millis(500);
    config.pong_timeout = Duration::from_secs(2);
    let server = TestServer::start_with(config).await;

    let (stuck, _) = WsClient::connect(&server.ws_url("/ws/flood")).await;
    let (mut reader, _) = WsClient::connect(&server.ws_url("/ws/flood")).await;
    let (mut sender, _) = WsClient::connect(&server.ws_url("/ws/flood")).await;

    // 300 x 60 kB: far more than the stuck client's socket buffers and outbox hold.
    // Each message must reach the reading client while the stuck one backs up.
    let big = "y".repeat(60_000);
    for i in 0..300 {
        sender.chat(&format!("{i}:{big}")).await;
        let got = reader.recv_type("chat").await;
        let content = got["data"]["content"].as_str().unwrap_or_default();
        assert!(
            content.starts_with(&format!("{i}:")),
            "message {i} out of order or lost"
        );
    }

    // The stuck client is closed by the server (slow consumer or missed pongs, whichever
    // comes first) and dropped from the room, while the others stay connected.
    wait_for_health(server.addr, |h| h["connections"]["ws"] == 2).await;
    drop(stuck);
    reader.send_json(json!({ "type": "ping" })).await;
    assert_eq!(reader.recv_type("pong").await["type"], "pong");
    sender.send_json(json!({ "type": "ping" })).await;
    assert_eq!(sender.recv_type("pong").await["type"], "pong");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_pings_and_closes_a_silent_connection() {
    let mut config = test_config();
    config.ping_interval = Duration::from_millis(200);
    config.pong_timeout = Duration::from_millis(600);
    let server = TestServer::start_with(config).await;
    let (mut lively, _) = WsClient::connect(&server.ws_url("/ws/quiet")).await;
    let (mut silent, _) = WsClient::connect(&server.ws_url("/ws/quiet")).await;

    // The server pings on its own; a client that answers (tungstenite pongs while it
    // reads) outlives PONG_TIMEOUT several times over.
    let mut pings = 0;
    while pings < 8 {
        let frame = tokio::time::timeout(common::WAIT, lively.stream.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("frame");
        if matches!(frame, WsMessage::Ping(_)) {
            pings += 1;
        }
    }
    lively.send_json(json!({ "type": "ping" })).await;
    assert_eq!(lively.recv_type("pong").await["type"], "pong");

    // The silent client read nothing, so it answered no ping: the server closed it.
    wait_for_health(server.addr, |h| h["connections"]["ws"] == 1).await;
    if let Some(code) = silent.close_code().await {
        assert_eq!(code, 1008);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_to_a_full_outbox_are_dropped_and_counted() {
    let mut config = test_config();
    config.send_buffer = 4;
    // Long enough that neither heartbeat nor slow-consumer closing interferes.
    config.pong_timeout = Duration::from_secs(60);
    let server = TestServer::start_with(config).await;
    let (stuck, _) = WsClient::connect(&server.ws_url("/ws/full")).await;
    let (mut sender, _) = WsClient::connect(&server.ws_url("/ws/full")).await;

    // Once the stuck client's socket buffers (a few MB on loopback) and its 4-message
    // outbox are full, further messages to it are dropped, counted, and nobody waits.
    let dropped = sender.flood_until_dropped(server.addr).await;
    assert!(dropped > 0, "nothing was dropped");
    sender.send_json(json!({ "type": "ping" })).await;
    assert_eq!(
        sender.recv_type("pong").await["type"],
        "pong",
        "the sender was never slowed"
    );
    drop(stuck);
    server.stop().await;
}
