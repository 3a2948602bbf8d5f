//! `/metrics` after a scripted session: every counter moved by the right amount.

mod common;

use common::{http_get, wait_for_health, ServerProcess, SioClient, WsClient};
use serde_json::json;

/// The value of the sample `name` whose labels include all of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

async fn scrape(pod: &ServerProcess) -> String {
    let (status, body) = http_get(pod.addr, "/metrics").await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_follow_a_scripted_session() {
    let pod = ServerProcess::spawn(&[("RATE_MESSAGES_PER_MIN", "4")]).await;
    let before = scrape(&pod).await;
    assert_eq!(sample(&before, "chatwire_connects_total", &[]), 0.0);
    assert_eq!(sample(&before, "chatwire_redis_up", &[]), -1.0);

    let mut a = SioClient::connect(&pod.http_url(), "websocket").await;
    a.join("m").await;
    let (mut b, _) = WsClient::connect(&pod.ws_url("/ws/m")).await;
    for i in 0..3 {
        assert_eq!(a.send(Some("m"), &format!("a{i}")).await["status"], "ok");
        assert_eq!(
            b.recv_type("chat").await["data"]["content"],
            format!("a{i}")
        );
    }
    for i in 0..2 {
        b.chat(&format!("b{i}")).await;
        assert_eq!(
            a.next_event("message:new").await["data"]["content"],
            format!("b{i}")
        );
    }
    // Two errors: a bad payload on each transport.
    assert_eq!(
        a.emit_ack("room:join", json!([42])).await["code"],
        "INVALID_PAYLOAD"
    );
    b.send(tokio_tungstenite::tungstenite::Message::text("{nope"))
        .await;
    assert_eq!(
        b.recv_type("error").await["data"]["code"],
        "INVALID_PAYLOAD"
    );
    // The 4th message of a is allowed, the 5th is over RATE_MESSAGES_PER_MIN.
    assert_eq!(a.send(Some("m"), "a3").await["status"], "ok");
    assert_eq!(b.recv_type("chat").await["data"]["content"], "a3");
    assert_eq!(a.send(Some("m"), "a4").await["code"], "RATE_LIMITED");

    let mid = scrape(&pod).await;
    let m = |name, labels: &[(&str, &str)]| sample(&mid, name, labels);
    assert_eq!(
        m("chatwire_connects_total", &[("transport", "socketio")]),
        1.0
    );
    assert_eq!(m("chatwire_connects_total", &[("transport", "ws")]), 1.0);
    assert_eq!(m("chatwire_connections", &[("transport", "socketio")]), 1.0);
    assert_eq!(m("chatwire_connections", &[("transport", "ws")]), 1.0);
    assert_eq!(m("chatwire_rooms", &[]), 1.0);
    assert_eq!(
        m(
            "chatwire_messages_in_total",
            &[("transport", "socketio"), ("type", "message:send")]
        ),
        5.0
    );
    assert_eq!(
        m(
            "chatwire_messages_in_total",
            &[("transport", "ws"), ("type", "chat")]
        ),
        2.0
    );
    assert_eq!(
        m(
            "chatwire_messages_in_total",
            &[("transport", "ws"), ("type", "invalid")]
        ),
        1.0
    );
    assert_eq!(
        m("chatwire_messages_out_total", &[("type", "message")]),
        6.0,
        "4 to b, 2 to a"
    );
    assert_eq!(
        m("chatwire_errors_total", &[("code", "INVALID_PAYLOAD")]),
        2.0
    );
    assert_eq!(m("chatwire_errors_total", &[("code", "RATE_LIMITED")]), 1.0);
    assert_eq!(
        m("chatwire_rate_limited_total", &[("limit", "message")]),
        1.0
    );
    assert!(
        m(
            "chatwire_delivery_latency_seconds_count",
            &[("transport", "ws")]
        ) >= 4.0,
        "{mid}"
    );
    assert_eq!(
        m("chatwire_dropped_total", &[("reason", "slow_consumer")]),
        0.0
    );

    drop(b);
    a.close().await;
    wait_for_health(pod.addr, |h| {
        h["connections"]["ws"] == 0 && h["connections"]["socketio"] == 0
    })
    .await;
    let after = scrape(&pod).await;
    assert_eq!(
        sample(&after, "chatwire_disconnects_total", &[("transport", "ws")]),
        1.0
    );
    assert_eq!(
        sample(
            &after,
            "chatwire_disconnects_total",
            &[("transport", "socketio")]
        ),
        1.0
    );
    assert_eq!(sample(&after, "chatwire_connections", &[]), 0.0);
    assert_eq!(sample(&after, "chatwire_rooms", &[]), 0.0);
    // No label names a room or a user.
    assert!(
        !after.contains("room=\"") && !after.contains("user=\""),
        "{after}"
    );
}
