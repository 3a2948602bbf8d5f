//! Several pods in one process, joined by the in-memory bus and sharing in-memory
//! stores (no redis-server): one chat across pods and both transports, exactly once and
//! in order; presence decided once across pods; recovery on another pod. The same
//! guarantees over a real redis-server are in cluster.rs, features.rs and state.rs.

mod common;

use std::time::Duration;

use common::tokens::{self, claims, SECRET};
use common::{check_stream, eventually, test_config, SioClient, TestServer, WsClient};
use serde_json::{json, Value};

fn as_user(user: &str) -> Value {
    json!({ "auth": { "token": tokens::hs256(SECRET, &claims(user, json!({}))) } })
}

fn config() -> chatwire::config::Config {
    let mut config = test_config();
    config.jwt_secret = SECRET.into();
    config.presence_grace = Duration::from_millis(200);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_chat_across_pods_and_transports_exactly_once_in_order() {
    let pods = TestServer::start_pods(3, config()).await;
    let mut a = SioClient::connect(&pods[0].http_url(), "websocket").await;
    a.join("R").await;
    let mut b = SioClient::connect(&pods[1].http_url(), "polling").await;
    b.join("R").await;
    let (mut c, _) = WsClient::connect(&pods[2].ws_url("/ws/R")).await;
    const N: usize = 30;
    for n in 0..N {
        assert_eq!(a.send(Some("R"), &format!("a#{n}")).await["status"], "ok");
        c.chat(&format!("c#{n}")).await;
    }
    let mut at_b = Vec::new();
    while at_b.len() < 2 * N {
        at_b.push(b.next_event("message:new").await);
    }
    check_stream("b", "b", &at_b, &["a", "c"], N, "R");
    let mut at_c = Vec::new();
    while at_c.len() < N {
        let frame = c.recv_type("chat").await;
        at_c.push(frame);
    }
    check_stream("c", "c", &at_c, &["a"], N, "R");
}

async fn presence_updates(client: &mut SioClient, user: &str, status: &str) -> Value {
    client
        .recv_where(|v| {
            v["type"] == "event"
                && v["event"] == "presence:update"
                && v["args"][0]["room"] == "R"
                && v["args"][0]["user"]["id"] == user
                && v["args"][0]["status"] == status
        })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_on_two_pods_is_online_once_and_offline_after_the_last() {
    let pods = TestServer::start_pods(3, config()).await;
    let mut watcher = SioClient::connect_with(&pods[2].http_url(), "websocket", as_user("w")).await;
    watcher.join("R").await;
    let mut one = SioClient::connect_with(&pods[0].http_url(), "websocket", as_user("ann")).await;
    one.join("R").await;
    presence_updates(&mut watcher, "ann", "online").await;
    let mut two = SioClient::connect_with(&pods[1].http_url(), "websocket", as_user("ann")).await;
    two.join("R").await;
    // Leaving one pod while still on the other: no "offline".
    one.close().await;
    let marker = two.send(Some("R"), "still here").await;
    let next = watcher
        .recv_where(|v| {
            v["type"] == "event"
                && (v["event"] == "message:new"
                    || (v["event"] == "presence:update" && v["args"][0]["user"]["id"] == "ann"))
        })
        .await;
    assert_eq!(next["args"][0]["id"], marker["id"], "{next}");
    let list = watcher
        .emit_ack("presence:list", json!([{ "room": "R" }]))
        .await;
    assert!(
        list["users"]
            .as_array()
            .is_some_and(|u| u.iter().any(|u| u["id"] == "ann")),
        "{list}"
    );
    two.close().await;
    presence_updates(&mut watcher, "ann", "offline").await;
    let watcher = tokio::sync::Mutex::new(watcher);
    eventually("ann is gone from the list", common::WAIT, || async {
        let list = watcher
            .lock()
            .await
            .emit_ack("presence:list", json!([{ "room": "R" }]))
            .await;
        list["users"]
            .as_array()
            .is_some_and(|u| u.iter().all(|u| u["id"] != "ann"))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_on_another_pod_hands_over_every_missed_message() {
    let pods = TestServer::start_pods(2, config()).await;
    let mut alice =
        SioClient::connect_with(&pods[0].http_url(), "websocket", as_user("alice")).await;
    alice.join("R").await;
    let seen = alice.send(Some("R"), "seen").await["id"].clone();
    let mut missed = Vec::new();
    for n in 0..20 {
        missed.push(alice.send(Some("R"), &format!("m{n}")).await["id"].clone());
    }
    let mut bob = SioClient::connect_with(&pods[1].http_url(), "websocket", as_user("bob")).await;
    let ack = bob
        .emit_ack("room:join", json!([{ "room": "R", "since": seen }]))
        .await;
    assert_eq!(ack["recovered"], true, "{ack}");
    let got: Vec<Value> = ack["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["id"].clone())
        .collect();
    assert_eq!(got, missed);
    let live = alice.send(Some("R"), "live").await;
    assert_eq!(bob.next_event("message:new").await["id"], live["id"]);
}

/// alice posts 200 messages on `sender`; while she is at it, bob joins on `receiver`
/// with the id of the message before them. What the recovery hands over, then the live
/// stream, must be her 200 messages exactly once each, in order.
async fn recovery_while_messages_flow(sender: &str, receiver: &str) {
    const N: usize = 200;
    let mut alice = SioClient::connect_with(sender, "websocket", as_user("alice")).await;
    alice.join("R").await;
    let seen = alice.send(Some("R"), "seen").await["id"].clone();
    let (sent, mut progress) = tokio::sync::watch::channel(0usize);
    let posting = tokio::spawn(async move {
        for n in 0..N {
            let ack = alice.send(Some("R"), &format!("m{n}")).await;
            assert_eq!(ack["status"], "ok", "{ack}");
            sent.send_replace(n + 1);
        }
        alice
    });
    progress
        .wait_for(|n| *n >= N / 10)
        .await
        .expect("alice is posting");
    let mut bob = SioClient::connect_with(receiver, "websocket", as_user("bob")).await;
    let ack = bob
        .emit_ack("room:join", json!([{ "room": "R", "since": seen }]))
        .await;
    assert_eq!(ack["recovered"], true, "{ack}");
    let mut got: Vec<String> = ack["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["data"]["content"].as_str().unwrap_or_default().to_owned())
        .collect();
    while got.last().map(String::as_str) != Some(&format!("m{}", N - 1)) {
        let live = bob.next_event("message:new").await;
        got.push(
            live["data"]["content"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    let want: Vec<String> = (0..N).map(|n| format!("m{n}")).collect();
    assert_eq!(got, want, "recovery then live: each message once, in order");
    drop(posting.await.expect("alice's task"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_while_messages_flow_on_one_node() {
    let server = TestServer::start_with(config()).await;
    recovery_while_messages_flow(&server.http_url(), &server.http_url()).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_while_messages_flow_across_in_process_pods() {
    let pods = TestServer::start_pods(2, config()).await;
    recovery_while_messages_flow(&pods[0].http_url(), &pods[1].http_url()).await;
}
