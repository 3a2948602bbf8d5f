//! The message log against real databases: the same rules in memory, in an SQLite file
//! and in PostgreSQL (offsets 1, 2, 3, ... per room without gaps, handed on in order,
//! pages, tombstones, the prune, reopening); the default single node keeps its history
//! across a kill -9; every process killed right after N acks loses none of them; two
//! pods' senders share one order; a database outage refuses sends with UNAVAILABLE and
//! delivers nothing that was not stored.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatwire::chat::{
    Claim, Committed, Message, MessageLog, MessageRef, Retention, RoomName, StoreError, Stored,
    Unstored,
};
use chatwire::config::Config;
use common::db::{PgSchema, TempDir};
use common::proxy::Proxy;
use common::{RedisServer, ServerProcess, SioClient, WsClient};
use serde_json::{json, Value};

/// What a log handed on, in order.
#[derive(Default)]
struct Recorder(Mutex<Vec<(String, u64)>>);

impl Committed for Recorder {
    fn committed(&self, stored: &[Stored]) {
        let mut seen = self.0.lock().expect("recorder");
        for s in stored {
            let room = s.message.room.as_ref().map_or("", |r| r.as_str());
            seen.push((room.to_owned(), s.message.offset.expect("offset")));
        }
    }
}

async fn open(url: &str) -> Arc<dyn MessageLog> {
    let mut config = Config::defaults();
    config.database_url = url.into();
    chatwire::server::open_log(&config).await.expect("open log")
}

fn room(name: &str) -> RoomName {
    RoomName::parse(name).expect("room")
}

fn unstored(room_name: &str, from: &str, text: &str) -> Unstored {
    Unstored {
        message: Message::chat(Some(room(room_name)), from.into(), text.into()),
        sender_name: None,
        origin: None,
    }
}

/// The log's rules, on one backend at `url`; `reopen` for the ones that persist.
async fn log_rules(url: &str, reopen: bool) {
    let log = open(url).await;
    let recorder = Arc::new(Recorder::default());
    let sink: Arc<dyn Committed> = recorder.clone();
    log.attach(Arc::downgrade(&sink));

    // 3 rooms, 40 appends each, all queued at once: they commit in batches.
    let mut pending = Vec::new();
    for i in 0..40 {
        for r in ["a", "b", "c"] {
            pending.push((r, i, log.append(unstored(r, "alice", &format!("{r}{i}")))));
        }
    }
    for (r, i, appended) in pending {
        let message = appended.await.expect("stored");
        assert_eq!(
            message.offset,
            Some(i + 1),
            "{r}{i}: offsets in queue order"
        );
        assert_eq!(message.data["content"], format!("{r}{i}"));
    }
    // Handed on in offset order within each room, each once.
    let mut per_room: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for (r, o) in recorder.0.lock().expect("recorder").iter() {
        per_room.entry(r.clone()).or_default().push(*o);
    }
    for offsets in per_room.values() {
        assert_eq!(*offsets, (1..=40).collect::<Vec<u64>>());
    }

    let after = log.after(&room("a"), 35, 100).await.expect("after");
    let contents: Vec<&str> = after
        .iter()
        .filter_map(|m| m.data["content"].as_str())
        .collect();
    assert_eq!(contents, ["a35", "a36", "a37", "a38", "a39"]);
    let bounds = log.bounds(&room("b")).await.expect("bounds");
    assert_eq!((bounds.first, bounds.last), (Some(1), 40));
    assert_eq!(
        log.bounds(&room("none")).await.expect("bounds").last,
        0,
        "an unknown room has no offsets"
    );

    let page = log.page(&room("a"), None, 3).await.expect("page");
    let offsets: Vec<Option<u64>> = page.messages.iter().map(|m| m.offset).collect();
    assert_eq!(
        (offsets, page.has_more),
        (vec![Some(38), Some(39), Some(40)], true)
    );
    let page = log
        .page(&room("a"), Some(MessageRef::Offset(3)), 10)
        .await
        .expect("page");
    assert_eq!((page.messages.len(), page.has_more), (2, false));
    let by_id = page.messages[1].id;
    assert_eq!(
        log.offset_of(&room("a"), MessageRef::Id(by_id))
            .await
            .expect("offset"),
        Some(2)
    );

    // Edits and deletes change the row; a delete leaves a tombstone; only the author,
    // or a moderator (no author given).
    let target = after[0].id;
    assert_eq!(
        log.edit(&room("a"), target, Some("mallory"), "x".into())
            .await,
        Err(StoreError::NotAuthor)
    );
    let edited = log
        .edit(&room("a"), target, Some("alice"), "a35!".into())
        .await
        .expect("edit");
    assert_eq!(edited.data["content"], "a35!");
    let moderated = log
        .edit(&room("a"), target, None, "[moderated]".into())
        .await
        .expect("moderator edit");
    assert_eq!(
        (moderated.data["content"].clone(), moderated.from.clone()),
        (serde_json::json!("[moderated]"), "alice".to_owned())
    );
    assert_eq!(
        log.delete(&room("a"), target, Some("mallory")).await,
        Err(StoreError::NotAuthor)
    );
    let gone = log
        .delete(&room("a"), target, Some("alice"))
        .await
        .expect("delete");
    assert_eq!(gone.data["deleted"], true);
    assert_eq!(gone.offset, Some(36));
    assert_eq!(
        log.delete(&room("a"), target, None).await,
        Err(StoreError::NotFound)
    );
    let after = log.after(&room("a"), 35, 1).await.expect("after");
    assert_eq!(
        after[0].data["deleted"], true,
        "history shows the tombstone"
    );

    // The prune keeps the newest HISTORY_LIMIT per room; offsets go on from the last.
    let retention = Retention {
        limit: Some(10),
        ttl: Duration::from_secs(3600),
    };
    let removed = log
        .prune(retention, chatwire::chat::now_ms())
        .await
        .expect("prune");
    assert_eq!(removed, 90);
    let bounds = log.bounds(&room("c")).await.expect("bounds");
    assert_eq!((bounds.first, bounds.last), (Some(31), 40));
    let next = log
        .append(unstored("c", "bob", "c40"))
        .await
        .expect("append");
    assert_eq!(next.offset, Some(41));
    log.drain().await;

    if reopen {
        let log = open(url).await;
        let kept = log.after(&room("c"), 0, 100).await.expect("after");
        let offsets: Vec<u64> = kept.iter().filter_map(|m| m.offset).collect();
        assert_eq!(
            offsets,
            (31..=41).collect::<Vec<u64>>(),
            "kept across a reopen"
        );
        let next = log
            .append(unstored("c", "bob", "c41"))
            .await
            .expect("append");
        assert_eq!(next.offset, Some(42), "offsets continue after a reopen");
        log.drain().await;
    }
}

/// The request keys' rules, on one backend at `url`: a key is held once with its
/// placeholder, answers its result once settled, is replaced by one of two contenders,
/// frees on release and after expiry; and the log finds a message by id alone.
async fn request_key_rules(url: &str) {
    let mut config = Config::defaults();
    config.database_url = url.into();
    let (log, keys, _, _, _) = chatwire::server::open_database(&config)
        .await
        .expect("open database");
    let now = chatwire::chat::now_ms();
    let later = now + 600_000;
    let held = |result: &str| Claim::Done {
        fingerprint: "f1".into(),
        result: result.into(),
    };
    assert_eq!(
        keys.claim("k1", "f1", "p1", now, later).await,
        Ok(Claim::Fresh)
    );
    assert_eq!(
        keys.claim("k1", "f1", "p2", now, later).await,
        Ok(held("p1"))
    );
    keys.settle("k1", r#"{"id":1}"#).await.expect("settle");
    assert_eq!(
        keys.claim("k1", "f2", "p3", now + 1, later).await,
        Ok(held(r#"{"id":1}"#))
    );
    // Of two replacing the same result, one wins.
    assert_eq!(
        keys.replace("k1", r#"{"id":1}"#, "p4", later).await,
        Ok(true)
    );
    assert_eq!(
        keys.replace("k1", r#"{"id":1}"#, "p5", later).await,
        Ok(false)
    );
    assert_eq!(
        keys.claim("k1", "f1", "p6", now, later).await,
        Ok(held("p4"))
    );
    // Expired: free again.
    assert_eq!(
        keys.claim("k1", "f3", "p7", later, later + 10).await,
        Ok(Claim::Fresh)
    );
    // Released: free again.
    assert_eq!(
        keys.claim("k2", "f1", "p1", now, later).await,
        Ok(Claim::Fresh)
    );
    keys.release("k2").await.expect("release");
    assert_eq!(
        keys.claim("k2", "f1", "p1", now, later).await,
        Ok(Claim::Fresh)
    );

    let stored = log
        .append(unstored("found", "ann", "by id"))
        .await
        .expect("append");
    let found = log.find(stored.id).await.expect("find");
    assert_eq!(
        found.map(|m| m.data["content"].clone()),
        Some(json!("by id"))
    );
    assert_eq!(log.find(uuid::Uuid::now_v7()).await, Ok(None));
    log.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_rules_hold_in_memory() {
    log_rules("memory", false).await;
    request_key_rules("memory").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_rules_hold_in_sqlite() {
    let dir = TempDir::new();
    log_rules(&dir.sqlite_url("log.db"), true).await;
    request_key_rules(&dir.sqlite_url("keys.db")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_rules_hold_in_postgres() {
    let Some(schema) = PgSchema::create() else {
        return;
    };
    log_rules(&schema.url(), true).await;
    request_key_rules(&schema.url()).await;
    // The sender's display name is kept beside the message.
    let log = open(&schema.url()).await;
    let mut named = unstored("names", "u1", "hi");
    named.sender_name = Some("Ann Example".into());
    log.append(named).await.expect("append");
    log.drain().await;
    assert_eq!(
        schema.query("SELECT sender_name FROM messages WHERE room = 'names'"),
        ["Ann Example"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_brings_a_new_database_up_to_date_once() {
    let dir = TempDir::new();
    let url = dir.sqlite_url("m.db");
    let run = |url: String| async move {
        tokio::process::Command::new(env!("CARGO_BIN_EXE_chatwire"))
            .env_clear()
            .env("DATABASE_URL", url)
            .arg("migrate")
            .output()
            .await
            .expect("run chatwire migrate")
    };
    let first = run(url.clone()).await;
    assert!(first.status.success(), "{first:?}");
    // Every migration in migrations/ runs once.
    let migrations = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .expect("migrations/")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension() == Some("sql".as_ref()))
        })
        .count();
    assert!(migrations >= 2);
    let out = String::from_utf8_lossy(&first.stdout);
    assert!(
        out.contains(&format!("{migrations} migrations applied")),
        "{out}"
    );
    let again = run(url).await;
    assert!(String::from_utf8_lossy(&again.stdout).contains("0 migrations applied"));
    let bad = run("postgres://nobody@127.0.0.1:1/none".into()).await;
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("DATABASE_URL"));
}

/// The offsets of a JSON array of messages.
fn offsets_in(messages: &Value) -> Vec<u64> {
    messages
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["offset"].as_u64())
        .collect()
}

/// A message's offset and id.
fn placed(m: &Value) -> (u64, String) {
    (
        m["offset"].as_u64().unwrap_or(0),
        m["id"].as_str().unwrap_or("").to_owned(),
    )
}

/// Sends `content` on a raw connection with a request id; the ack frame's data.
async fn raw_send(ws: &mut WsClient, content: &str, request_id: &str) -> Value {
    ws.send_json(
        json!({ "type": "chat", "data": { "content": content, "request_id": request_id } }),
    )
    .await;
    let frame = ws
        .recv_any_where(|f| {
            f["data"]["request_id"] == request_id && (f["type"] == "system" || f["type"] == "error")
        })
        .await;
    frame["data"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_single_node_keeps_history_across_a_kill() {
    let data = TempDir::new();
    let dir = data.path().to_string_lossy().into_owned();
    let env = [("DATA_DIR", dir.as_str())];
    let mut server = ServerProcess::spawn(&env).await;
    let (mut ws, _) = WsClient::connect(&server.ws_url("/ws/lobby")).await;
    let mut acked = Vec::new();
    for i in 0..5 {
        let ack = raw_send(&mut ws, &format!("m{i}"), &format!("r{i}")).await;
        assert_eq!(ack["status"], "ok", "{ack}");
        assert_eq!(ack["offset"], i + 1, "{ack}");
        acked.push(ack["id"].as_str().expect("id").to_owned());
    }
    server.signal("KILL").await;
    server.wait(common::WAIT).await;
    assert!(data.path().join("chatwire.db").exists(), "the default file");

    let server = ServerProcess::spawn(&env).await;
    let (status, body) = common::http_get(server.addr, "/api/rooms/lobby/messages").await;
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).expect("json");
    let ids: Vec<&str> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(
        ids, acked,
        "every acked message, in order, after the restart"
    );
    // Recovering from offset 2: exactly 3, 4, 5, then live ones.
    let (mut back, _) = WsClient::connect(&server.ws_url("/ws/lobby?since=2")).await;
    let reply = back.recv_type("system").await;
    let got = offsets_in(&reply["data"]["messages"]);
    assert_eq!(
        (reply["data"]["recovered"].clone(), got),
        (json!(true), vec![3, 4, 5])
    );
    let (mut sender, _) = WsClient::connect(&server.ws_url("/ws/lobby")).await;
    let ack = raw_send(&mut sender, "live", "l").await;
    assert_eq!(ack["offset"], 6, "{ack}");
    let live = back.recv_type("chat").await;
    assert_eq!(
        (live["offset"].clone(), live["data"]["content"].clone()),
        (json!(6), json!("live"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killing_every_process_after_acks_loses_none() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let database = redis.database_url();
    let env = [
        ("REDIS_URL", redis.url()),
        ("DATABASE_URL", database.clone()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut pods = vec![
        ServerProcess::spawn(&env).await,
        ServerProcess::spawn(&env).await,
    ];
    for pod in &pods {
        common::wait_for_health(pod.addr, |h| h["redis"] == "up").await;
    }
    let mut sio = SioClient::connect(&pods[0].http_url(), "websocket").await;
    sio.join("K").await;
    let (mut raw, _) = WsClient::connect(&pods[1].ws_url("/ws/K")).await;
    let mut acked: Vec<(u64, String)> = Vec::new();
    for i in 0..30 {
        let ack = sio.send(Some("K"), &format!("s{i}")).await;
        assert_eq!(ack["status"], "ok", "{ack}");
        acked.push((
            ack["offset"].as_u64().expect("offset"),
            ack["id"].as_str().expect("id").into(),
        ));
        let ack = raw_send(&mut raw, &format!("r{i}"), &format!("q{i}")).await;
        assert_eq!(ack["status"], "ok", "{ack}");
        acked.push((
            ack["offset"].as_u64().expect("offset"),
            ack["id"].as_str().expect("id").into(),
        ));
    }
    // kill -9 everything right after the last ack.
    for pod in &pods {
        pod.signal("KILL").await;
    }
    redis.kill().await;
    for pod in &mut pods {
        pod.wait(common::WAIT).await;
    }
    redis.restart().await;
    let pods = [
        ServerProcess::spawn(&env).await,
        ServerProcess::spawn(&env).await,
    ];
    for pod in &pods {
        common::wait_for_health(pod.addr, |h| h["redis"] == "up").await;
    }
    acked.sort();
    let offsets: Vec<u64> = acked.iter().map(|(o, _)| *o).collect();
    assert_eq!(
        offsets,
        (1..=60).collect::<Vec<u64>>(),
        "acks carry offsets 1..60"
    );
    let (status, body) = common::http_get(pods[1].addr, "/api/rooms/K/messages?limit=100").await;
    assert_eq!(status, 200, "{body}");
    let page: Value = serde_json::from_str(&body).expect("json");
    let stored: Vec<(u64, String)> = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(placed)
        .collect();
    assert_eq!(
        stored, acked,
        "every acked message, in offset order, none lost"
    );

    // A client recovering from offset 41 on either pod gets exactly 42..60, then live.
    let mut back = SioClient::connect(&pods[0].http_url(), "websocket").await;
    let ack = back
        .emit_ack("room:join", json!([{ "room": "K", "since": 41 }]))
        .await;
    let got = offsets_in(&ack["messages"]);
    assert_eq!(
        (ack["recovered"].clone(), got),
        (json!(true), (42..=60).collect::<Vec<u64>>())
    );
    let (mut sender, _) = WsClient::connect(&pods[1].ws_url("/ws/K")).await;
    let ack = raw_send(&mut sender, "after", "a").await;
    assert_eq!(ack["offset"], 61, "{ack}");
    let live = back.next_event("message:new").await;
    assert_eq!(live["offset"], 61, "{live}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn senders_on_two_pods_share_one_order() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let pods = common::start_pods(2, &redis.url(), &[]).await;
    let mut sio: Vec<SioClient> = Vec::new();
    let mut raw: Vec<WsClient> = Vec::new();
    for pod in &pods {
        let mut client = SioClient::connect(&pod.http_url(), "websocket").await;
        client.join("O").await;
        sio.push(client);
        raw.push(WsClient::connect(&pod.ws_url("/ws/O")).await.0);
    }
    common::eventually("both pods subscribed", common::WAIT, || async {
        redis.numsub("realtime:room:O").await >= 2
    })
    .await;
    // A sender on each pod, at once.
    const EACH: usize = 40;
    let mut senders = Vec::new();
    for pod in &pods {
        let url = pod.ws_url("/ws/O");
        senders.push(tokio::spawn(async move {
            let (mut ws, _) = WsClient::connect(&url).await;
            for i in 0..EACH {
                ws.chat(&format!("{i}")).await;
            }
            ws
        }));
    }
    let mut keep = Vec::new();
    for sender in senders {
        keep.push(sender.await.expect("sender"));
    }
    // Every receiver, on both pods and both transports, sees offsets 1..80 in order,
    // each the same message.
    let mut orders: Vec<Vec<(u64, String)>> = Vec::new();
    for client in &mut sio {
        let mut got = Vec::new();
        while got.len() < 2 * EACH {
            got.push(placed(&client.next_event("message:new").await));
        }
        orders.push(got);
    }
    for client in &mut raw {
        let mut got = Vec::new();
        while got.len() < 2 * EACH {
            got.push(placed(&client.recv_type("chat").await));
        }
        orders.push(got);
    }
    let offsets: Vec<u64> = orders[0].iter().map(|(o, _)| *o).collect();
    assert_eq!(
        offsets,
        (1..=2 * EACH as u64).collect::<Vec<u64>>(),
        "one order, no gap"
    );
    for (i, order) in orders.iter().enumerate() {
        assert_eq!(order, &orders[0], "receiver {i} sees the same order");
    }
    drop(keep);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_refuses_sends_and_delivers_nothing_unstored() {
    let Some(schema) = PgSchema::create() else {
        return;
    };
    let base = common::db::pg_base_url();
    let pg_port: u16 = base
        .rsplit_once(':')
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or(5432);
    let proxy = Proxy::start(pg_port).await;
    let url = schema.url().replace(
        &format!("127.0.0.1:{pg_port}"),
        &format!("127.0.0.1:{}", proxy.port),
    );
    let env = [("DATABASE_URL", url.as_str()), ("DATABASE_TIMEOUT", "1s")];
    let server = ServerProcess::spawn(&env).await;
    let mut receiver = SioClient::connect(&server.http_url(), "websocket").await;
    receiver.join("D").await;
    let (mut sender, _) = WsClient::connect(&server.ws_url("/ws/D")).await;
    let ack = raw_send(&mut sender, "before", "b").await;
    assert_eq!(ack["status"], "ok", "{ack}");

    // The database stops answering (every byte held, connections open).
    proxy.set_open(false);
    let mut refused = 0;
    for i in 0..3 {
        let ack = raw_send(&mut sender, &format!("during{i}"), &format!("d{i}")).await;
        if ack["code"] == "UNAVAILABLE" {
            assert!(ack["retry_after_ms"].as_u64().is_some(), "{ack}");
            refused += 1;
        } else {
            panic!("a send while the database is away: {ack}");
        }
    }
    assert_eq!(refused, 3);
    let (status, _) = common::http_get(server.addr, "/health").await;
    assert_eq!(status, 200, "the server stays up");

    // Back: sending works again within seconds.
    proxy.set_open(true);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let mut attempt = 0;
    let ack = loop {
        attempt += 1;
        let ack = raw_send(&mut sender, "after", &format!("a{attempt}")).await;
        if ack["status"] == "ok" {
            break ack;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "sends work again within 15 s: {ack}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(ack["offset"].as_u64().is_some(), "{ack}");

    // What the receiver got is exactly what is stored: nothing unstored was delivered.
    let mut received: HashMap<String, String> = HashMap::new();
    let stored = schema.query("SELECT id FROM messages WHERE room = 'D' ORDER BY room_offset");
    while received.len() < stored.len() {
        let m = receiver.next_event("message:new").await;
        received.insert(
            m["id"].as_str().unwrap_or("").to_owned(),
            m["data"]["content"].as_str().unwrap_or("").to_owned(),
        );
    }
    for id in &stored {
        assert!(received.contains_key(id), "stored {id} was delivered");
    }
    assert!(received.values().any(|c| c == "after"));
    assert!(received.values().any(|c| c == "before"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_reaches_back_1000_messages_and_no_further() {
    let mut config = common::test_config();
    config.database_url = "memory".into();
    let server = common::TestServer::start_with(config).await;
    let (mut sender, _) = WsClient::connect(&server.ws_url("/ws/M")).await;
    for i in 0..1000 {
        sender.chat(&format!("m{i}")).await;
    }
    // Frames are stored in the order sent: the last one's ack means all are.
    let ack = raw_send(&mut sender, "m1000", "last").await;
    assert_eq!(ack["offset"], 1001, "{ack}");

    let recover = |since: &str| {
        let url = server.ws_url(&format!("/ws/M?since={since}"));
        async move {
            let (mut ws, _) = WsClient::connect(&url).await;
            let reply = ws.recv_type("system").await;
            (ws, reply["data"].clone())
        }
    };
    // 1000 behind: every one of them.
    let (_, body) = recover("1").await;
    assert_eq!(body["recovered"], true);
    assert_eq!(
        offsets_in(&body["messages"]),
        (2..=1001).collect::<Vec<u64>>()
    );
    // 1001 behind: more than MAX_RECOVERED, the client pages history instead.
    let (_, body) = recover("0").await;
    assert_eq!(
        (
            body["recovered"].clone(),
            offsets_in(&body["messages"]).len()
        ),
        (json!(false), 0)
    );
    // Ahead of the log (offsets from another database): not recovered, then live.
    let (mut ahead, body) = recover("5000").await;
    assert_eq!(
        (
            body["recovered"].clone(),
            offsets_in(&body["messages"]).len()
        ),
        (json!(false), 0)
    );
    let ack = raw_send(&mut sender, "live", "l").await;
    assert_eq!(ack["offset"], 1002, "{ack}");
    assert_eq!(ahead.recv_type("chat").await["offset"], 1002);
    server.stop().await;
}
