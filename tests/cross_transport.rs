//! One chat across both protocols: socket.io clients (WebSocket and polling) and raw
//! WebSocket clients in one room each receive every other member's messages once, in
//! each sender's order.

mod common;

use common::{check_stream, SioClient, TestServer, WsClient};
use serde_json::json;

const PER_SENDER: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_protocols_share_one_room_exactly_once_in_order() {
    let server = TestServer::start().await;
    let url = server.http_url();
    let mut sio_ws = SioClient::connect(&url, "websocket").await;
    let mut sio_poll = SioClient::connect(&url, "polling").await;
    sio_ws.join("r").await;
    sio_poll.join("r").await;
    let (mut raw_a, _) = WsClient::connect(&server.ws_url("/ws/r")).await;
    let (mut raw_b, _) = WsClient::connect(&server.ws_url("/api/chat-api/ws?room=r")).await;
    // A bystander in another room on each protocol sees none of it.
    let (mut raw_other, _) = WsClient::connect(&server.ws_url("/ws/other")).await;

    let senders = ["sio_ws", "sio_poll", "raw_a", "raw_b"];
    for i in 0..PER_SENDER {
        // One socket.io sender waits for acks, the other does not: order holds for both.
        let payload = json!([{ "room": "r", "content": format!("sio_ws#{i}") }]);
        sio_ws.emit("message:send", payload).await;
        assert_eq!(
            sio_poll.send(Some("r"), &format!("sio_poll#{i}")).await["status"],
            "ok"
        );
        raw_a.chat(&format!("raw_a#{i}")).await;
        raw_b.chat(&format!("raw_b#{i}")).await;
    }
    let expected = PER_SENDER * 3;

    let mut got = Vec::new();
    for _ in 0..expected {
        got.push(sio_ws.next_event("message:new").await);
    }
    check_stream("sio_ws", "sio_ws", &got, &senders, PER_SENDER, "r");
    let mut got = Vec::new();
    for _ in 0..expected {
        got.push(sio_poll.next_event("message:new").await);
    }
    check_stream("sio_poll", "sio_poll", &got, &senders, PER_SENDER, "r");
    for (name, client) in [("raw_a", &mut raw_a), ("raw_b", &mut raw_b)] {
        let mut got = Vec::new();
        for _ in 0..expected {
            got.push(client.recv_type("chat").await);
        }
        check_stream(name, name, &got, &senders, PER_SENDER, "r");
    }

    // Nothing extra arrived: a final marker from each protocol is the next thing seen.
    // (Order holds per sender: the raw marker is stored before the socket.io one is sent.)
    raw_a
        .send_json(json!({ "type": "chat", "data": { "content": "end-raw", "request_id": "end" } }))
        .await;
    let stored = raw_a.recv_any_where(|v| v["data"]["reply"] == "chat").await;
    assert_eq!(stored["data"]["status"], "ok", "{stored}");
    sio_ws.send(Some("r"), "end-sio").await;
    assert_eq!(
        sio_poll.next_event("message:new").await["data"]["content"],
        "end-raw"
    );
    assert_eq!(
        sio_poll.next_event("message:new").await["data"]["content"],
        "end-sio"
    );
    assert_eq!(raw_b.recv_type("chat").await["data"]["content"], "end-raw");
    assert_eq!(raw_b.recv_type("chat").await["data"]["content"], "end-sio");
    raw_other.send_json(json!({ "type": "ping" })).await;
    assert_eq!(
        raw_other.recv().await["type"],
        "pong",
        "the bystander saw room r traffic"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_messages_reach_every_client_of_both_protocols() {
    let server = TestServer::start().await;
    let url = server.http_url();
    let mut sio = SioClient::connect(&url, "websocket").await;
    sio.join("somewhere").await;
    let (mut raw_global, _) = WsClient::connect(&server.ws_url("/ws")).await;
    let (mut raw_room, _) = WsClient::connect(&server.ws_url("/ws/elsewhere")).await;

    raw_global.chat("from raw").await;
    let got = sio.next_event("message:new").await;
    assert_eq!(got["data"]["content"], "from raw");
    assert!(got.get("room").is_none());
    assert_eq!(
        raw_room.recv_type("chat").await["data"]["content"],
        "from raw"
    );

    sio.send(None, "from sio").await;
    assert_eq!(
        raw_global.recv_type("chat").await["data"]["content"],
        "from sio"
    );
    assert_eq!(
        raw_room.recv_type("chat").await["data"]["content"],
        "from sio"
    );
    server.stop().await;
}
