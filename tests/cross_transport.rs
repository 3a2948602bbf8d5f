//! One chat across both protocols: socket.io clients (WebSocket and polling) and raw
//! WebSocket clients in one room each receive every other member's messages once, in
//! each sender's order.

mod common;

use std::collections::{HashMap, HashSet};

use common::{SioClient, TestServer, WsClient};
use serde_json::{json, Value};

const PER_SENDER: usize = 50;

fn check_stream(who: &str, own: &str, received: &[Value], senders: &[String]) {
    let mut ids = HashSet::new();
    let mut next: HashMap<&str, usize> = HashMap::new();
    for msg in received {
        assert!(
            ids.insert(msg["id"].as_str().unwrap_or_default().to_string()),
            "{who}: duplicate {msg}"
        );
        assert_eq!(msg["room"], "r", "{who}: {msg}");
        let content = msg["data"]["content"].as_str().unwrap_or_default();
        let (sender, seq) = content.split_once('#').expect("sender#seq");
        assert_ne!(sender, own, "{who} received its own message");
        let expected = next
            .entry(senders.iter().find(|s| *s == sender).expect("known sender"))
            .or_default();
        assert_eq!(
            seq.parse::<usize>().ok(),
            Some(*expected),
            "{who}: {sender} out of order"
        );
        *expected += 1;
    }
    for s in senders.iter().filter(|s| *s != own) {
        assert_eq!(
            next.get(s.as_str()).copied(),
            Some(PER_SENDER),
            "{who}: from {s}"
        );
    }
}

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

    let senders: Vec<String> = ["sio_ws", "sio_poll", "raw_a", "raw_b"]
        .map(String::from)
        .into();
    for i in 0..PER_SENDER {
        assert_eq!(
            sio_ws.send(Some("r"), &format!("sio_ws#{i}")).await["status"],
            "ok"
        );
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
    check_stream("sio_ws", "sio_ws", &got, &senders);
    let mut got = Vec::new();
    for _ in 0..expected {
        got.push(sio_poll.next_event("message:new").await);
    }
    check_stream("sio_poll", "sio_poll", &got, &senders);
    for (name, client) in [("raw_a", &mut raw_a), ("raw_b", &mut raw_b)] {
        let mut got = Vec::new();
        for _ in 0..expected {
            got.push(client.recv_type("chat").await);
        }
        check_stream(name, name, &got, &senders);
    }

    // Nothing extra arrived: a final marker from each protocol is the next thing seen.
    raw_a.chat("end-raw").await;
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
