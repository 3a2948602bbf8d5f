//! Connection cleanup and graceful shutdown.

mod common;

use std::time::Duration;

use common::{
    health, http_get, test_config, wait_for_health, ServerProcess, SioClient, TestServer, WsClient,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_disconnect_removes_the_connection_from_its_rooms() {
    // A short heartbeat so a vanished long-polling client is noticed quickly.
    let mut config = test_config();
    config.ping_interval = Duration::from_millis(300);
    config.pong_timeout = Duration::from_secs(1);
    let server = TestServer::start_with(config).await;
    let url = server.http_url();
    let mut a = SioClient::connect(&url, "websocket").await;
    let mut b = SioClient::connect(&url, "polling").await;
    let mut c = SioClient::connect(&url, "websocket").await;
    let mut d = SioClient::connect(&url, "polling").await;
    a.join("one").await;
    a.join("two").await;
    b.join("two").await;
    c.join("one").await;
    d.join("four").await;
    let (raw1, _) = WsClient::connect(&server.ws_url("/ws/three")).await;
    let (raw2, _) = WsClient::connect(&server.ws_url("/ws")).await;

    let h = health(server.addr).await;
    assert_eq!(h["connections"]["socketio"], 4, "{h}");
    assert_eq!(h["connections"]["ws"], 2, "{h}");
    assert_eq!(h["rooms"], 4, "{h}");

    a.close().await; // a clean socket.io disconnect over WebSocket
    b.close().await; // and over long-polling
    drop(c); // node killed: the WebSocket just ends
    drop(d); // node killed: a long-polling client simply stops polling
    drop(raw1); // TCP closed without a close frame
    let mut raw2 = raw2;
    raw2.stream.close(None).await.expect("close handshake");

    let h = wait_for_health(server.addr, |h| {
        h["connections"]["socketio"] == 0 && h["connections"]["ws"] == 0
    })
    .await;
    assert_eq!(h["rooms"], 0, "{h}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_clients_and_exits_zero() {
    let mut pod = ServerProcess::spawn(&[("SHUTDOWN_TIMEOUT", "5s")]).await;
    let (status, body) = http_get(pod.addr, "/ready").await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = http_get(pod.addr, "/health").await;
    assert_eq!(status, 200);
    let h: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(h["status"], "ok");
    assert_eq!(h["redis"], "disabled");

    let url = format!("http://{}", pod.addr);
    let mut sio = SioClient::connect(&url, "websocket").await;
    sio.join("r").await;
    let mut poller = SioClient::connect(&url, "polling").await;
    let (mut raw, _) = WsClient::connect(&format!("ws://{}/ws/r", pod.addr)).await;

    pod.signal("TERM").await;
    assert_eq!(raw.expect_close().await, 1001);
    // "transport close"/"transport error": socket.io-client reconnects by itself (to
    // another pod behind a load balancer); "io server disconnect" would stop it.
    for client in [&mut sio, &mut poller] {
        let reason = client.next_of("disconnect").await["reason"].clone();
        assert!(
            reason == "transport close" || reason == "transport error",
            "{reason}"
        );
    }
    assert_eq!(pod.wait(Duration::from_secs(6)).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_the_spec_fields() {
    let pod = ServerProcess::spawn(&[("LOG_FORMAT", "json")]).await;
    let (_raw, welcome) = WsClient::connect(&format!("ws://{}/ws/lobby", pod.addr)).await;
    let line = pod.log_line("ws connected").await;
    let v: serde_json::Value = serde_json::from_str(&line).expect("one JSON object a line");
    assert_eq!(v["event"], "ws connected", "{v}");
    assert_eq!(v["level"], "info");
    assert_eq!(v["channelId"], "lobby");
    assert_eq!(v["userId"], welcome["data"]["client_id"]);
    assert!(v["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(v["metadata"]["conn"].is_string(), "{v}");
}
