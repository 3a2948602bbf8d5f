//! State that stays true across pods, against real redis-server processes: presence is
//! renewed while users stay, a new pod is not taken for a dead one, online/offline are
//! decided once across pods, presence written while Redis was away is applied when it
//! returns, recovery never claims a gap-free answer it cannot prove, a graceful shutdown
//! publishes everything it had queued, and socket.io's `room:join {since}` keeps its
//! place in the socket's event order and always answers.

mod common;

use std::time::Duration;

use chatwire::chat::{PresenceState, PresenceStore, RoomName, Status, UserRef};
use chatwire::redis::RedisLink;
use chatwire::store::redis::RedisPresence;
use common::tokens::{self, claims, SECRET};
use common::{eventually, http_get, start_pods, RedisServer, ServerProcess, SioClient, WsClient};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

fn as_user(user: &str) -> Value {
    json!({ "auth": { "token": tokens::hs256(SECRET, &claims(user, json!({}))) } })
}

async fn presence_ids(client: &mut SioClient, room: &str) -> Vec<String> {
    let ack = client
        .emit_ack("presence:list", json!([{ "room": room }]))
        .await;
    listed(&ack).unwrap_or_else(|| panic!("presence list: {ack}"))
}

/// The sorted user ids of a `presence:list` answer; `None` for an error answer.
fn listed(ack: &Value) -> Option<Vec<String>> {
    let mut ids: Vec<String> = ack["users"]
        .as_array()?
        .iter()
        .filter_map(|u| u["id"].as_str().map(str::to_owned))
        .collect();
    ids.sort();
    Some(ids)
}

/// The presence list of `room` once it answers `want` (Redis may still be coming back).
async fn presence_becomes(client: SioClient, room: &str, want: &[&str], what: &str) -> SioClient {
    let client = tokio::sync::Mutex::new(client);
    let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    eventually(what, Duration::from_secs(10), || async {
        let ack = client
            .lock()
            .await
            .emit_ack("presence:list", json!([{ "room": room }]))
            .await;
        listed(&ack).as_ref() == Some(&want)
    })
    .await;
    client.into_inner()
}

/// A link of the test's own to `redis`, up.
async fn link_to(redis: &RedisServer, stop: &CancellationToken) -> RedisLink {
    let link = RedisLink::open(&redis.url(), Duration::from_secs(1)).expect("link");
    tokio::spawn(link.clone().heartbeat(stop.clone()));
    let probe = link.clone();
    eventually("the link is up", Duration::from_secs(10), move || {
        let up = probe.is_up();
        async move { up }
    })
    .await;
    link
}

fn user(id: &str) -> UserRef {
    UserRef {
        id: id.to_owned(),
        name: format!("{id} name"),
        unverified: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_of_users_who_stay_outlives_its_ttl() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let env = [("JWT_SECRET", SECRET), ("PRESENCE_TTL", "300ms")];
    let pods = start_pods(2, &redis.url(), &env).await;
    let mut ann = SioClient::connect_with(&pods[0].http_url(), "websocket", as_user("ann")).await;
    ann.join("R").await;
    let mut bob = SioClient::connect_with(&pods[1].http_url(), "websocket", as_user("bob")).await;
    bob.join("R").await;
    assert_eq!(presence_ids(&mut bob, "R").await, ["ann", "bob"]);
    // Entries are written to live 4 x PRESENCE_TTL (1.2 s): the property is that the
    // heartbeat keeps them past that while their users stay, so this waits past it (no
    // event marks "not expired").
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(presence_ids(&mut bob, "R").await, ["ann", "bob"]);
    assert_eq!(presence_ids(&mut ann, "R").await, ["ann", "bob"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_just_started_is_not_taken_for_a_dead_one() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let stop = CancellationToken::new();
    let link = link_to(&redis, &stop).await;
    let room = RoomName::parse("R").expect("room");
    let old = RedisPresence::new(link.clone(), "old-pod".into(), Duration::from_secs(30));
    let new = RedisPresence::new(link, "new-pod".into(), Duration::from_secs(30));
    // The new pod records a user before its first heartbeat ...
    assert!(new
        .online(&room, &user("ann"), Status::Online)
        .await
        .expect("online"));
    // ... and the old pod's heartbeat, serving the same room, must not reap them.
    let state = PresenceState {
        rooms: vec![(room.clone(), 1)],
        ..Default::default()
    };
    let changes = old.sync(&state).await.expect("sync");
    assert!(changes.offline.is_empty(), "{changes:?}");
    let listed = old.list(&room).await.expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_and_offline_are_decided_once_across_pods() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let stop = CancellationToken::new();
    let (link_a, link_b) = (link_to(&redis, &stop).await, link_to(&redis, &stop).await);
    let room = RoomName::parse("R").expect("room");
    let a = RedisPresence::new(link_a, "pod-a".into(), Duration::from_secs(30));
    let b = RedisPresence::new(link_b, "pod-b".into(), Duration::from_secs(30));
    for n in 0..40 {
        let who = user(&format!("u{n}"));
        let (first_a, first_b) = tokio::join!(
            a.online(&room, &who, Status::Online),
            b.online(&room, &who, Status::Online)
        );
        let firsts = [first_a.expect("a"), first_b.expect("b")];
        assert_eq!(
            firsts.iter().filter(|f| **f).count(),
            1,
            "{who:?} joining on two pods at once: {firsts:?}"
        );
        let (last_a, last_b) = tokio::join!(a.offline(&room, &who.id), b.offline(&room, &who.id));
        let lasts = [last_a.expect("a"), last_b.expect("b")];
        assert_eq!(
            lasts.iter().filter(|l| **l).count(),
            1,
            "{who:?} leaving two pods at once: {lasts:?}"
        );
    }
    assert!(a.list(&room).await.expect("list").is_empty());
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_written_while_redis_was_away_is_applied_when_it_returns() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let env = [
        ("JWT_SECRET", SECRET),
        ("PRESENCE_TTL", "5s"),
        ("PRESENCE_GRACE", "200ms"),
        ("REDIS_TIMEOUT", "300ms"),
    ];
    let pods = start_pods(2, &redis.url(), &env).await;
    let mut bob = SioClient::connect_with(&pods[1].http_url(), "websocket", as_user("bob")).await;
    bob.join("R").await;

    // Redis is gone (and comes back empty) while ann joins on the other pod.
    redis.kill().await;
    common::wait_for_health(pods[0].addr, |h| h["redis"] == "down").await;
    let mut ann = SioClient::connect_with(&pods[0].http_url(), "websocket", as_user("ann")).await;
    ann.emit_ack("room:join", json!([{ "room": "R" }])).await;
    redis.restart().await;
    for pod in &pods {
        common::wait_for_health(pod.addr, |h| h["redis"] == "up").await;
    }
    // bob's own record was lost with Redis too: both come back.
    let bob_addr = pods[1].http_url();
    let probe = SioClient::connect_with(&bob_addr, "websocket", as_user("carl")).await;
    let probe = presence_becomes(
        probe,
        "R",
        &["ann", "bob"],
        "presence written while redis was away",
    )
    .await;

    // Redis stops answering while ann leaves: her departure is applied once it answers.
    redis.signal("STOP").await;
    common::wait_for_health(pods[0].addr, |h| h["redis"] == "down").await;
    let missed = "presence store missed a change";
    let before = pods[0].count_lines(missed);
    ann.close().await;
    eventually(
        "the pod notes the departure it could not write",
        Duration::from_secs(10),
        || {
            let now = pods[0].count_lines(missed);
            async move { now > before }
        },
    )
    .await;
    redis.signal("CONT").await;
    // (The "offline" event itself may be lost to a pod whose subscription is being
    // renewed right then: pub/sub is at most once. The record is what must be right.)
    presence_becomes(
        probe,
        "R",
        &["bob"],
        "the departure written once redis answers",
    )
    .await;
}

/// `chatwire_dropped_total{reason="inbound_queue_full"}` of a pod.
async fn inbound_drops(pod: &ServerProcess) -> u64 {
    let (_, body) = http_get(pod.addr, "/metrics").await;
    body.lines()
        .find(|l| l.starts_with("chatwire_dropped_total") && l.contains("inbound_queue_full"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_after_dropped_deliveries_misses_nothing() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let env = [("JWT_SECRET", SECRET), ("HISTORY_LIMIT", "1000")];
    let url = redis.url();
    let sender_pod = start_pods(1, &url, &env).await.remove(0);
    // The receiving pod takes at most 4 other pods' messages waiting at a time.
    let mut small = vec![("REDIS_URL", url.as_str()), ("BUS_INBOUND_QUEUE", "4")];
    small.extend_from_slice(&env);
    let pod = ServerProcess::spawn(&small).await;
    common::wait_for_health(pod.addr, |h| h["redis"] == "up").await;
    let (sender_pod, pod) = (&sender_pod, &pod);
    let mut bob =
        SioClient::connect_with(&sender_pod.http_url(), "websocket", as_user("bob")).await;
    bob.join("R").await;
    let mut ann = SioClient::connect_with(&pod.http_url(), "websocket", as_user("ann")).await;
    ann.join("R").await;
    // carl keeps the pod subscribed to R while ann is away.
    let mut carl = SioClient::connect_with(&pod.http_url(), "websocket", as_user("carl")).await;
    carl.join("R").await;
    let seen = bob.send(Some("R"), "seen").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(ann.next_event("message:new").await["id"], seen.as_str());
    ann.close().await;

    // The pod stalls while 200 messages go out: on resuming, most overflow its queue.
    pod.signal("STOP").await;
    let mut missed = Vec::new();
    for n in 0..200 {
        let ack = bob.send(Some("R"), &format!("m{n}")).await;
        missed.push(ack["id"].as_str().expect("id").to_owned());
    }
    pod.signal("CONT").await;
    eventually(
        "the pod dropped inbound messages",
        Duration::from_secs(10),
        || async { inbound_drops(pod).await > 0 },
    )
    .await;

    let (mut back, _) = WsClient::connect(&pod.ws_url(&format!("/ws/R?since={seen}"))).await;
    let frame = back.recv_type("system").await;
    let body = &frame["data"];
    assert_eq!(body["reply"], "room:join", "{frame}");
    let got: Vec<&str> = body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(body["recovered"], true, "{body}");
    // What the recovery hands over, then the live stream (the pod fills its own gap
    // from the log): every missed message once, in order, then the next one.
    let mut all: Vec<String> = got.iter().map(|id| (*id).to_owned()).collect();
    while all.len() < missed.len() {
        let frame = back.recv_type("chat").await;
        all.push(frame["id"].as_str().expect("id").to_owned());
    }
    assert_eq!(all, missed, "every missed message, once, in order");
    let next = bob.send(Some("R"), "next").await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(
        back.recv_type("chat").await["id"],
        next.as_str(),
        "no repeat"
    );
    drop(carl);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_publishes_every_message_it_accepted() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let env = [
        ("JWT_SECRET", SECRET),
        ("SHUTDOWN_TIMEOUT", "10s"),
        ("REDIS_TIMEOUT", "5s"),
    ];
    let mut pods = start_pods(2, &redis.url(), &env).await;
    let mut bob = SioClient::connect_with(&pods[1].http_url(), "websocket", as_user("bob")).await;
    bob.join("R").await;
    let (mut sender, _) = WsClient::connect(&pods[0].ws_url("/ws/R")).await;
    // Both pods are subscribed before anything is sent.
    eventually(
        "both pods subscribed to R",
        Duration::from_secs(10),
        || async { redis.numsub("realtime:room:R").await == 2 },
    )
    .await;
    // Redis stops answering: the sending pod's publishes queue up behind a pipeline
    // that waits (REDIS_TIMEOUT is long), and the pod is told to stop meanwhile.
    redis.signal("STOP").await;
    const N: usize = 600;
    for n in 0..N {
        sender.chat(&format!("s{n}")).await;
    }
    // The pong comes after the server handled every frame before the ping.
    sender.send_json(json!({ "type": "ping" })).await;
    sender.recv_type("pong").await;
    pods[0].signal("TERM").await;
    pods[0].log_line("draining").await;
    redis.signal("CONT").await;
    assert_eq!(pods[0].wait(Duration::from_secs(15)).await, Some(0));
    for n in 0..N {
        let got = bob.next_event("message:new").await;
        assert_eq!(got["data"]["content"], format!("s{n}"), "{got}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_join_with_since_keeps_its_place_and_always_answers() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let env = [("JWT_SECRET", SECRET), ("ROOM_ACL", "claims")];
    let pods = start_pods(1, &redis.url(), &env).await;
    let grant = |user: &str| {
        let grants = json!({ "rooms": ["R"], "global": true });
        json!({ "auth": { "token": tokens::hs256(SECRET, &claims(user, grants)) } })
    };
    let mut alice = SioClient::connect_with(&pods[0].http_url(), "websocket", grant("alice")).await;
    alice.join("R").await;
    let mut bob = SioClient::connect_with(&pods[0].http_url(), "websocket", grant("bob")).await;
    let unknown = "01890000-0000-7000-8000-000000000000";
    // join (with a recovery that reads Redis), then leave at once: in that order.
    let join = bob
        .emit_ack_later("room:join", json!([{ "room": "R", "since": unknown }]))
        .await;
    let leave = bob
        .emit_ack_later("room:leave", json!([{ "room": "R" }]))
        .await;
    for ack in [join, leave] {
        let reply = bob
            .recv_where(|v| v["type"] == "ack" && v["ack"] == ack)
            .await;
        assert_eq!(reply["args"][0]["status"], "ok", "{reply}");
    }
    // bob is in no room now: alice's message must not reach him.
    alice.send(Some("R"), "after bob left").await;
    let marker = alice.send(None, "global marker").await;
    let next = bob
        .recv_where(|v| v["type"] == "event" && v["event"] == "message:new")
        .await;
    assert_eq!(next["args"][0]["id"], marker["id"], "bob got {next}");

    // A refused join with `since` is answered with its error, as an ack.
    let refused = bob
        .emit_ack("room:join", json!([{ "room": "S", "since": unknown }]))
        .await;
    assert_eq!(refused["status"], "error", "{refused}");
    assert_eq!(refused["code"], "FORBIDDEN", "{refused}");
}
