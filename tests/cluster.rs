//! Several chatwire processes over one real redis-server act as one chat, and survive
//! Redis restarts and pod crashes.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{
    check_stream, http_get, start_pods, wait_for_health, RedisServer, SioClient, WsClient,
};
use serde_json::{json, Value};

const PER_SENDER: usize = 75;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_pods_are_one_chat() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let pods = start_pods(3, &redis.url(), &[]).await;

    let mut a = SioClient::connect(&pods[0].http_url(), "websocket").await;
    let mut b = SioClient::connect(&pods[1].http_url(), "polling").await;
    a.join("R").await;
    b.join("R").await;
    let (mut c, _) = WsClient::connect(&pods[2].ws_url("/ws/R")).await;
    let (mut d, _) = WsClient::connect(&pods[2].ws_url("/api/chat-api/ws?room=R")).await;
    // Bystanders in room "other" on pods 1 and 3.
    let mut e = SioClient::connect(&pods[0].http_url(), "websocket").await;
    e.join("other").await;
    let (mut f, _) = WsClient::connect(&pods[2].ws_url("/ws/other")).await;

    // A few hundred messages, interleaved, from both protocols on all three pods. The
    // socket.io senders do not wait for acks: order must hold anyway.
    let senders = ["a", "b", "c", "d"];
    for i in 0..PER_SENDER {
        a.emit(
            "message:send",
            json!([{ "room": "R", "content": format!("a#{i}") }]),
        )
        .await;
        b.emit(
            "message:send",
            json!([{ "room": "R", "content": format!("b#{i}") }]),
        )
        .await;
        c.chat(&format!("c#{i}")).await;
        d.chat(&format!("d#{i}")).await;
    }
    let expected = PER_SENDER * 3;
    for (name, client) in [("a", &mut a), ("b", &mut b)] {
        let mut got = Vec::new();
        for _ in 0..expected {
            got.push(client.next_event("message:new").await);
        }
        check_stream(name, name, &got, &senders, PER_SENDER, "R");
    }
    for (name, client) in [("c", &mut c), ("d", &mut d)] {
        let mut got = Vec::new();
        for _ in 0..expected {
            got.push(client.recv_type("chat").await);
        }
        check_stream(name, name, &got, &senders, PER_SENDER, "R");
    }

    // Isolation: the bystanders' first message is the one sent to their own room.
    f.chat("other-marker").await;
    assert_eq!(
        e.next_event("message:new").await["data"]["content"],
        "other-marker"
    );

    // Global messages reach every client on every pod, of both protocols.
    let ack = b.send(None, "hello everyone").await;
    assert_eq!(ack["status"], "ok", "{ack}");
    assert!(ack.get("degraded").is_none(), "{ack}");
    for client in [&mut a, &mut e] {
        let got = client.next_event("message:new").await;
        assert_eq!(got["data"]["content"], "hello everyone");
        assert!(got.get("room").is_none());
    }
    for client in [&mut c, &mut d, &mut f] {
        assert_eq!(
            client.recv_type("chat").await["data"]["content"],
            "hello everyone"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_subscribe_only_to_rooms_with_local_members() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let pods = start_pods(3, &redis.url(), &[]).await;
    let mut on1 = SioClient::connect(&pods[0].http_url(), "websocket").await;
    on1.join("X").await;
    let (on2, _) = WsClient::connect(&pods[1].ws_url("/ws/X")).await;
    // Pod 3 has a client, but not in X.
    let (_on3, _) = WsClient::connect(&pods[2].ws_url("/ws/Y")).await;

    assert_eq!(
        redis.numsub("realtime:room:X").await,
        2,
        "only pods 1 and 2 hear X"
    );
    assert_eq!(redis.numsub("realtime:room:Y").await, 1);
    assert_eq!(redis.numsub("realtime:global").await, 3);

    // The last member on pod 2 leaves: pod 2 unsubscribes.
    drop(on2);
    wait_for_health(pods[1].addr, |h| h["rooms"] == 0).await;
    common::eventually("pod 2 unsubscribed from X", common::WAIT, || async {
        redis.numsub("realtime:room:X").await == 1
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restart_keeps_local_chat_and_resumes_cross_pod() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let pods = start_pods(2, &redis.url(), &[]).await;
    let mut sio1 = SioClient::connect(&pods[0].http_url(), "websocket").await;
    sio1.join("R").await;
    let (mut raw1, _) = WsClient::connect(&pods[0].ws_url("/ws/R")).await;
    let (mut raw2, _) = WsClient::connect(&pods[1].ws_url("/ws/R")).await;

    sio1.send(Some("R"), "before").await;
    assert_eq!(raw2.recv_type("chat").await["data"]["content"], "before");
    assert_eq!(raw1.recv_type("chat").await["data"]["content"], "before");

    redis.kill().await;
    wait_for_health(pods[0].addr, |h| h["redis"] == "down").await;
    let (status, _) = http_get(pods[0].addr, "/ready").await;
    assert_eq!(status, 503, "/ready while redis is down");

    // Same-pod delivery goes on; the ack says the message reached only this pod.
    let ack = sio1.send(Some("R"), "during").await;
    assert_eq!(ack["status"], "ok", "{ack}");
    assert_eq!(ack["degraded"], true, "{ack}");
    assert_eq!(raw1.recv_type("chat").await["data"]["content"], "during");
    let h = common::health(pods[0].addr).await;
    assert!(h["undelivered"].as_u64().unwrap_or(0) >= 1, "counted: {h}");
    raw1.chat("during-raw").await;
    assert_eq!(
        sio1.next_event("message:new").await["data"]["content"],
        "during-raw"
    );

    redis.restart().await;
    let back = Instant::now();
    for pod in &pods {
        wait_for_health(pod.addr, |h| h["redis"] == "up").await;
    }
    let recovered = back.elapsed();
    assert!(recovered < Duration::from_secs(5), "took {recovered:?}");
    let (status, _) = http_get(pods[0].addr, "/ready").await;
    assert_eq!(status, 200);

    // Cross-pod delivery resumes with no pod restarted, both ways, and what the other
    // pod missed meanwhile comes first, from the message log, in offset order.
    let ack = sio1.send(Some("R"), "after").await;
    assert!(ack.get("degraded").is_none(), "{ack}");
    let mut got = Vec::new();
    for _ in 0..3 {
        let frame = raw2.recv_type("chat").await;
        got.push((frame["data"]["content"].clone(), frame["offset"].clone()));
    }
    assert_eq!(
        got,
        [
            (json!("during"), json!(2)),
            (json!("during-raw"), json!(3)),
            (json!("after"), json!(4))
        ],
        "raw2 gets the outage's messages, then the live one, once each"
    );
    raw2.chat("after-raw").await;
    assert_eq!(
        sio1.next_event("message:new").await["data"]["content"],
        "after-raw"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_pods_clients_move_to_another_pod() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let mut pods = start_pods(2, &redis.url(), &[]).await;
    let failover = format!("{},{}", pods[0].http_url(), pods[1].http_url());
    let mut mover = SioClient::connect(&failover, "websocket").await;
    mover.join("R").await;
    let mut stayer = SioClient::connect(&pods[1].http_url(), "websocket").await;
    stayer.join("R").await;
    let (mut raw2, _) = WsClient::connect(&pods[1].ws_url("/ws/R")).await;

    pods[0].signal("KILL").await;
    pods[0].wait(common::WAIT).await;

    // The surviving pod keeps delivering.
    stayer.send(Some("R"), "still here").await;
    assert_eq!(
        raw2.recv_type("chat").await["data"]["content"],
        "still here"
    );

    // The moved client reconnects to pod 2, rejoins R, and gets new messages.
    let rejoined = mover.next_of("rejoined").await;
    assert_eq!(rejoined["rooms"], json!(["R"]), "{rejoined}");
    raw2.chat("welcome back").await;
    let mut got = mover.next_event("message:new").await;
    if got["data"]["content"] == "still here" {
        // The client moves at once: it may have rejoined before "still here" was stored,
        // and then gets it too (once, before the newer one).
        got = mover.next_event("message:new").await;
    }
    assert_eq!(got["data"]["content"], "welcome back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_starts_while_redis_is_down_and_joins_when_it_comes() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let url = redis.url();
    redis.kill().await;
    let mut lonely = common::ServerProcess::spawn(&[("REDIS_URL", &url)]).await;
    let h = common::health(lonely.addr).await;
    assert_eq!(h["redis"], "down", "{h}");
    let (status, _) = http_get(lonely.addr, "/ready").await;
    assert_eq!(status, 503);

    // It serves its own clients meanwhile.
    let (mut x, _) = WsClient::connect(&lonely.ws_url("/ws/R")).await;
    let (mut y, _) = WsClient::connect(&lonely.ws_url("/ws/R")).await;
    x.chat("local only").await;
    assert_eq!(y.recv_type("chat").await["data"]["content"], "local only");

    redis.restart().await;
    wait_for_health(lonely.addr, |h| h["redis"] == "up").await;
    let others = start_pods(1, &url, &[]).await;
    let (mut z, _) = WsClient::connect(&others[0].ws_url("/ws/R")).await;
    x.chat("now shared").await;
    assert_eq!(z.recv_type("chat").await["data"]["content"], "now shared");
    lonely.signal("TERM").await;
    assert_eq!(lonely.wait(common::WAIT).await, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_redis_never_holds_a_client_longer_than_the_timeout() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let pods = start_pods(2, &redis.url(), &[("REDIS_TIMEOUT", "500ms")]).await;
    let mut sio = SioClient::connect(&pods[0].http_url(), "websocket").await;
    sio.join("R").await;
    let (mut local, _) = WsClient::connect(&pods[0].ws_url("/ws/R")).await;
    let (mut remote, _) = WsClient::connect(&pods[1].ws_url("/ws/R")).await;

    redis.signal("STOP").await; // Redis accepts bytes but answers nothing.
    let started = Instant::now();
    let ack = sio.send(Some("R"), "stalled").await;
    let waited = started.elapsed();
    assert_eq!(ack["status"], "ok", "{ack}");
    assert_eq!(ack["degraded"], true, "{ack}");
    // Bounded by REDIS_TIMEOUT (500 ms); the slack is for a loaded CI machine.
    assert!(waited < Duration::from_millis(2500), "ack took {waited:?}");
    assert_eq!(local.recv_type("chat").await["data"]["content"], "stalled");
    wait_for_health(pods[0].addr, |h| h["redis"] == "down").await;

    redis.signal("CONT").await;
    for pod in &pods {
        wait_for_health(pod.addr, |h| h["redis"] == "up").await;
    }
    sio.send(Some("R"), "unstalled").await;
    // The stalled message may or may not have reached pod 2 once Redis woke up; the
    // next one must.
    loop {
        let got = remote.recv_type("chat").await;
        if got["data"]["content"] == "unstalled" {
            break;
        }
        assert_eq!(got["data"]["content"], "stalled");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_cluster_operations_span_pods() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let pods = start_pods(2, &redis.url(), &[]).await;
    let mut one = SioClient::connect(&pods[0].http_url(), "websocket").await;
    let mut two = SioClient::connect(&pods[1].http_url(), "polling").await;
    one.join("alpha").await;
    two.join("beta").await;

    // Asked on either pod, the listing holds both pods' sockets and rooms. The adapter
    // counts the pods it waits for by their subscriptions, which a freshly started pod
    // may not have made yet under load: ask again (bounded) until both answer.
    for pod in &pods {
        // Until then the listing may also answer 503 (a pod's answer timed out).
        let v = common::until("both pods in the listing", common::WAIT, || async {
            let (status, body) = http_get(pod.addr, "/api/cluster/sockets").await;
            if status == 503 {
                eprintln!("listing not complete yet: {body}");
                return None;
            }
            assert_eq!(status, 200, "{body}");
            let v: Value = serde_json::from_str(&body).expect("json");
            (v["count"] == 2).then_some(v)
        })
        .await;
        assert_eq!(v["count"], 2, "{v}");
        let ids: HashSet<&str> = v["sockets"]
            .as_array()
            .expect("sockets")
            .iter()
            .filter_map(|s| s["id"].as_str())
            .collect();
        assert_eq!(
            ids,
            HashSet::from([one.id.as_str(), two.id.as_str()]),
            "{v}"
        );
        let rooms = v["rooms"].as_array().expect("rooms");
        assert!(
            rooms.contains(&json!("alpha")) && rooms.contains(&json!("beta")),
            "{v}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_url_with_user_password_and_db() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let mut conn = redis.connection().await.expect("redis");
    redis::cmd("ACL")
        .arg(&["SETUSER", "chat", "on", ">s3cret", "~*", "&*", "+@all"][..])
        .query_async::<()>(&mut conn)
        .await
        .expect("ACL SETUSER");
    let good = format!("redis://chat:s3cret@127.0.0.1:{}/3", redis.port);
    let pods = start_pods(2, &good, &[]).await;
    let (mut a, _) = WsClient::connect(&pods[0].ws_url("/ws/R")).await;
    let (mut b, _) = WsClient::connect(&pods[1].ws_url("/ws/R")).await;
    a.chat("authenticated").await;
    assert_eq!(
        b.recv_type("chat").await["data"]["content"],
        "authenticated"
    );

    // A wrong password: the pod runs, says Redis is down, and is not ready.
    let bad = format!("redis://chat:wrong@127.0.0.1:{}/3", redis.port);
    let pod = common::ServerProcess::spawn(&[("REDIS_URL", &bad)]).await;
    assert_eq!(common::health(pod.addr).await["redis"], "down");
    assert_eq!(http_get(pod.addr, "/ready").await.0, 503);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_redis_url_stops_startup_naming_the_variable() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_chatwire"))
        .env_clear()
        .env("REDIS_URL", "http://nope")
        .env("PORT", "0")
        .output()
        .await
        .expect("run chatwire");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("REDIS_URL"), "{stderr}");
}
