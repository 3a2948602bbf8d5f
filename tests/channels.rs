//! Channels (rooms as records) over HTTP with their authorization, kept in SQLite and
//! PostgreSQL; private channels admitting only their members on both transports and
//! across pods, `channel:updated` / `channel:deleted` reaching members on every pod; and
//! `presence:global`.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::tokens::{self, claims, SECRET};
use common::{
    body_of, http_request, request, test_config, ws_refused, RedisServer, SioClient, TestServer,
    WsClient, WAIT,
};
use serde_json::{json, Value};
use tokio::time::timeout;

const API_KEY: &str = "channels-test-server-key-0123456789";

fn token(user: &str) -> String {
    tokens::hs256(SECRET, &claims(user, json!({})))
}

/// One JSON request with `bearer` (none: anonymous); the status and the JSON body.
async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let auth = bearer.map(|b| format!("Bearer {b}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(auth) = &auth {
        headers.push(("authorization", auth.as_str()));
    }
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let (status, raw) = http_request(addr, method, path, &headers, &body).await;
    let json = serde_json::from_str(&body_of(&raw)).unwrap_or(Value::Null);
    (status, json)
}

fn config_with_auth() -> chatwire::config::Config {
    let mut config = test_config();
    config.jwt_secret = SECRET.into();
    config.server_api_keys = API_KEY.into();
    config
}

/// The CRUD of channels and who may do what, against one server (its database).
async fn crud_against(addr: SocketAddr, server: &TestServer) {
    let (alice, bob, carol) = (token("alice"), token("bob"), token("carol"));
    let new = json!({ "room": "team", "title": " Team ", "topic": "planning",
                      "private": true, "members": ["bob"] });

    // Anonymous callers create nothing; users create; a second create conflicts.
    let (status, body) = call(addr, "POST", "/api/rooms", None, new.clone()).await;
    assert_eq!(
        (status, &body["code"]),
        (401, &json!("AUTH_FAILED")),
        "{body}"
    );
    let (status, body) = call(addr, "POST", "/api/rooms", Some(&alice), new.clone()).await;
    assert_eq!(status, 201, "{body}");
    let channel = &body["channel"];
    assert_eq!(channel["room"], "team");
    assert_eq!(channel["title"], "Team");
    assert_eq!(channel["topic"], "planning");
    assert_eq!(channel["private"], true);
    assert_eq!(channel["created_by"], "alice");
    assert_eq!(channel["members"], json!(["alice", "bob"]), "{body}");
    let (status, body) = call(addr, "POST", "/api/rooms", Some(&bob), new.clone()).await;
    assert_eq!((status, &body["code"]), (409, &json!("CONFLICT")), "{body}");

    // Bad requests get typed errors.
    for bad in [
        json!({ "room": "user:bob" }),
        json!({ "room": "thread:x" }),
        json!({ "room": "presence:global" }),
        json!({ "room": "bad name" }),
        json!({ "room": "t2", "title": "x".repeat(101) }),
        json!({ "room": "t2", "topic": "a\u{0}b" }),
        json!({ "room": "t2", "owner": "me" }),
        json!({ "room": "t2", "created_by": "mallory" }),
        json!({ "room": "t2", "private": true, "members": [""] }),
    ] {
        let (status, body) = call(addr, "POST", "/api/rooms", Some(&alice), bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["code"], "INVALID_PAYLOAD", "{bad}: {body}");
    }

    // Rooms in use are no user's to take (messages, or members); nor is the server's id.
    let (mut talker, _) = WsClient::connect(&server.ws_url("/ws/busy")).await;
    let said = request(
        &mut talker,
        "h",
        json!({ "request": "message:history", "room": "busy" }),
    )
    .await;
    assert_eq!(said["status"], "ok", "a member in busy: {said}");
    refused_for_alice(addr, "busy", "a member").await;
    talker
        .send_json(json!({ "type": "chat", "data": { "content": "mine", "request_id": "m" } }))
        .await;
    talker
        .recv_any_where(|f| f["data"]["reply"] == "chat")
        .await;
    drop(talker);
    refused_for_alice(addr, "busy", "messages").await;
    let server_id = token("server");
    let (status, body) = call(
        addr,
        "POST",
        "/api/rooms",
        Some(&server_id),
        json!({ "room": "t3" }),
    )
    .await;
    assert_eq!(
        (status, &body["code"]),
        (403, &json!("FORBIDDEN")),
        "{body}"
    );

    // A private channel exists only for its members.
    let (status, body) = call(addr, "GET", "/api/rooms/team", Some(&carol), Value::Null).await;
    assert_eq!(
        (status, &body["code"]),
        (404, &json!("NOT_FOUND")),
        "{body}"
    );
    let (status, body) = call(addr, "GET", "/api/rooms/team", Some(&bob), Value::Null).await;
    assert_eq!((status, &body["channel"]["title"]), (200, &json!("Team")));
    let (status, body) = call(
        addr,
        "POST",
        "/api/rooms",
        Some(&carol),
        json!({ "room": "open", "title": "Open" }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["channel"]["members"], json!([]), "{body}");
    let listed = |body: &Value| -> Vec<String> {
        body["channels"]
            .as_array()
            .expect("channels")
            .iter()
            .map(|c| c["room"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let (_, body) = call(addr, "GET", "/api/rooms", Some(&carol), Value::Null).await;
    assert_eq!(listed(&body), ["open"], "{body}");
    let (_, body) = call(addr, "GET", "/api/rooms", Some(&bob), Value::Null).await;
    assert_eq!(listed(&body), ["open", "team"], "{body}");
    let (_, body) = call(addr, "GET", "/api/rooms?limit=1", Some(&bob), Value::Null).await;
    assert_eq!(
        (listed(&body), &body["has_more"]),
        (vec!["open".into()], &json!(true))
    );
    let (_, body) = call(
        addr,
        "GET",
        "/api/rooms?after=open",
        Some(&bob),
        Value::Null,
    )
    .await;
    assert_eq!(
        (listed(&body), &body["has_more"]),
        (vec!["team".into()], &json!(false))
    );
    let (status, body) = call(addr, "GET", "/api/rooms?limit=0", Some(&bob), Value::Null).await;
    assert_eq!(status, 400, "{body}");

    // Only the creator or the server API changes it; a member may not, nor hide it.
    let topic = json!({ "topic": "shipping" });
    let (status, body) = call(addr, "PATCH", "/api/rooms/team", Some(&bob), topic.clone()).await;
    assert_eq!(
        (status, &body["code"]),
        (403, &json!("FORBIDDEN")),
        "{body}"
    );
    let (status, _) = call(
        addr,
        "PATCH",
        "/api/rooms/team",
        Some(&carol),
        topic.clone(),
    )
    .await;
    assert_eq!(
        status, 404,
        "a non-member does not learn the channel exists"
    );
    let (status, body) = call(addr, "PATCH", "/api/rooms/team", Some(&alice), topic).await;
    assert_eq!(
        (status, &body["channel"]["topic"]),
        (200, &json!("shipping"))
    );
    let change = json!({ "add_members": ["carol"], "remove_members": ["bob"] });
    let (status, body) = call(addr, "PATCH", "/api/rooms/team", Some(API_KEY), change).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["channel"]["members"], json!(["alice", "carol"]));
    let (status, body) = call(
        addr,
        "PATCH",
        "/api/rooms/team",
        Some(&alice),
        json!({ "remove_members": ["alice"] }),
    )
    .await;
    assert_eq!(status, 400, "the creator stays a member: {body}");
    let (status, _) = call(addr, "PATCH", "/api/rooms/none", Some(&alice), json!({})).await;
    assert_eq!(status, 404);

    // A message in the channel, then its deletion takes the messages along.
    let (mut member, _) =
        WsClient::connect(&server.ws_url(&format!("/ws/team?token={carol}"))).await;
    member
        .send_json(json!({ "type": "chat", "data": { "content": "kept until the channel goes", "request_id": "c1" } }))
        .await;
    let stored = member
        .recv_any_where(|f| f["data"]["reply"] == "chat")
        .await;
    assert_eq!(stored["data"]["status"], "ok", "{stored}");
    let page = request(
        &mut member,
        "h",
        json!({ "request": "message:history", "room": "team" }),
    )
    .await;
    assert_eq!(page["messages"].as_array().map(Vec::len), Some(1), "{page}");
    let (status, _) = call(addr, "DELETE", "/api/rooms/team", Some(&carol), Value::Null).await;
    assert_eq!(status, 403, "a member is not the creator");
    let (status, body) = call(addr, "DELETE", "/api/rooms/team", Some(&alice), Value::Null).await;
    assert_eq!(
        (status, body),
        (200, json!({ "status": "ok", "room": "team" }))
    );
    let deleted = member
        .recv_any_where(|f| f["data"]["event"] == "channel:deleted")
        .await;
    assert_eq!(deleted["room"], "team", "{deleted}");
    let (status, _) = call(addr, "GET", "/api/rooms/team", Some(&alice), Value::Null).await;
    assert_eq!(status, 404);
    let (status, body) = call(
        addr,
        "GET",
        "/api/rooms/team/messages",
        Some(&alice),
        Value::Null,
    )
    .await;
    assert_eq!((status, &body["messages"]), (200, &json!([])), "{body}");
    // The backend creates channels for a user, who then owns them.
    let (status, body) = call(
        addr,
        "POST",
        "/api/rooms",
        Some(API_KEY),
        json!({ "room": "team", "created_by": "bob", "private": true }),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["channel"]["members"], json!(["bob"]));
    let (status, _) = call(addr, "DELETE", "/api/rooms/team", Some(&bob), Value::Null).await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_crud_is_authorized_and_kept_in_sqlite_and_postgres() {
    let server = TestServer::start_with(config_with_auth()).await;
    crud_against(server.addr, &server).await;
    server.stop().await;

    let Some(schema) = common::db::PgSchema::create() else {
        return;
    };
    let mut config = config_with_auth();
    config.database_url = schema.url().into();
    let server = TestServer::start_with(config.clone()).await;
    crud_against(server.addr, &server).await;
    let kept = schema.query("SELECT room || ':' || created_by FROM channels");
    assert_eq!(kept, ["open:carol"]);

    // A private channel outlives a restart: the next server still admits only members.
    let private = json!({ "room": "kept", "private": true, "members": ["bob"] });
    let (status, body) = call(
        server.addr,
        "POST",
        "/api/rooms",
        Some(&token("alice")),
        private,
    )
    .await;
    assert_eq!(status, 201, "{body}");
    server.stop().await;
    let server = TestServer::start_with(config).await;
    let carol_url = server.ws_url(&format!("/ws/kept?token={}", token("carol")));
    let (status, body) = ws_refused(&carol_url, &[]).await;
    assert_eq!(
        (status, &body["code"]),
        (403, &json!("FORBIDDEN")),
        "{body}"
    );
    let bob_url = server.ws_url(&format!("/ws/kept?token={}", token("bob")));
    let (mut bob, _) = WsClient::connect(&bob_url).await;
    let listed = request(
        &mut bob,
        "p",
        json!({ "request": "presence:list", "room": "kept" }),
    )
    .await;
    assert_eq!(
        listed["status"], "ok",
        "a member joins after the restart: {listed}"
    );
    server.stop().await;
}

/// Waits for `client`'s next `channel:updated` and returns its channel.
async fn sio_channel_update(client: &mut SioClient) -> Value {
    let got = client.next_event("channel:updated").await;
    got["channel"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_channels_admit_only_members_on_both_transports_across_pods() {
    let pods = TestServer::start_pods(2, config_with_auth()).await;
    let (alice_t, bob_t, carol_t, dave_t) =
        (token("alice"), token("bob"), token("carol"), token("dave"));
    let sio = |t: &str| json!({ "auth": { "token": t } });

    // Alice (socket.io, pod 0), Bob (raw, pod 1) and Carol (socket.io, pod 1) are in
    // room `ops` before it is a channel.
    let mut alice = SioClient::connect_with(&pods[0].http_url(), "websocket", sio(&alice_t)).await;
    alice.join("ops").await;
    let (mut bob, _) = WsClient::connect(&pods[1].ws_url(&format!("/ws/ops?token={bob_t}"))).await;
    let mut carol = SioClient::connect_with(&pods[1].http_url(), "websocket", sio(&carol_t)).await;
    carol.join("ops").await;

    // A room in use is no user's to take: Alice may not make it a channel. The server
    // API makes it a private channel of Alice's for Bob and her: everyone in it hears so,
    // on both pods and both transports, and Carol is out.
    let new = json!({ "room": "ops", "title": "Ops", "private": true, "members": ["bob"] });
    let (status, body) = call(pods[0].addr, "POST", "/api/rooms", Some(&alice_t), new).await;
    assert_eq!(
        (status, &body["code"]),
        (403, &json!("FORBIDDEN")),
        "{body}"
    );
    let new = json!({ "room": "ops", "title": "Ops", "private": true, "members": ["bob"],
                      "created_by": "alice" });
    let (status, body) = call(pods[0].addr, "POST", "/api/rooms", Some(API_KEY), new).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(sio_channel_update(&mut alice).await["title"], "Ops");
    assert_eq!(
        sio_channel_update(&mut carol).await["members"],
        json!(["alice", "bob"])
    );
    let update = bob
        .recv_any_where(|f| f["data"]["event"] == "channel:updated")
        .await;
    assert_eq!(update["room"], "ops", "{update}");
    assert_eq!(update["data"]["channel"]["private"], true, "{update}");

    let refused = carol
        .emit_ack(
            "message:send",
            json!([{ "room": "ops", "content": "still here?" }]),
        )
        .await;
    assert_eq!(
        refused["code"], "CHANNEL_ERROR",
        "Carol was removed: {refused}"
    );
    let refused = carol
        .emit_ack("room:join", json!([{ "room": "ops" }]))
        .await;
    assert_eq!(refused["code"], "FORBIDDEN", "{refused}");
    let refused = carol
        .emit_ack("message:history", json!([{ "room": "ops" }]))
        .await;
    assert_eq!(refused["code"], "FORBIDDEN", "{refused}");
    let refused = carol
        .emit_ack("room:join", json!([{ "room": "ops", "since": 0 }]))
        .await;
    assert_eq!(
        refused["code"], "FORBIDDEN",
        "recovery is a join too: {refused}"
    );
    // Dave on raw: refused at the upgrade, and by a join request.
    let (status, body) = ws_refused(&pods[1].ws_url(&format!("/ws/ops?token={dave_t}")), &[]).await;
    assert_eq!(
        (status, &body["code"]),
        (403, &json!("FORBIDDEN")),
        "{body}"
    );
    let (mut dave, _) = WsClient::connect(&pods[1].ws_url(&format!("/ws?token={dave_t}"))).await;
    dave.send_json(json!({ "type": "system", "data": { "request": "room:join", "room": "ops", "request_id": "j" } }))
        .await;
    let error = dave.recv_type("error").await;
    assert_eq!(error["data"]["code"], "FORBIDDEN", "{error}");
    let search = request(
        &mut dave,
        "s",
        json!({ "request": "message:search", "room": "ops", "q": "x" }),
    )
    .await;
    assert!(search.get("messages").is_none(), "{search}");

    // Members chat as before, across pods.
    let ack = alice.send(Some("ops"), "members only").await;
    assert_eq!(ack["status"], "ok", "{ack}");
    assert_eq!(
        bob.recv_type("chat").await["data"]["content"],
        "members only"
    );

    // Bob's own message, to try to edit once he is out.
    bob.send_json(
        json!({ "type": "chat", "data": { "content": "bob was here", "request_id": "b2" } }),
    )
    .await;
    let stored = bob.recv_any_where(|f| f["data"]["reply"] == "chat").await;
    let bobs_id = stored["data"]["id"].clone();
    assert!(bobs_id.is_string(), "{stored}");

    // Removing Bob (through pod 1 this time) takes him out of the room on his pod.
    let (status, _) = call(
        pods[1].addr,
        "PATCH",
        "/api/rooms/ops",
        Some(&alice_t),
        json!({ "remove_members": ["bob"], "add_members": ["carol"] }),
    )
    .await;
    assert_eq!(status, 200);
    let update = bob
        .recv_any_where(|f| f["data"]["event"] == "channel:updated")
        .await;
    assert_eq!(
        update["data"]["channel"]["members"],
        json!(["alice", "carol"])
    );
    bob.send_json(json!({ "type": "chat", "data": { "content": "am I out?" } }))
        .await;
    let error = bob.recv_type("error").await;
    assert_eq!(error["data"]["code"], "CHANNEL_ERROR", "{error}");
    // Nor does he change what he wrote there.
    let edit = request(
        &mut bob,
        "e",
        json!({ "request": "message:edit", "room": "ops", "id": bobs_id, "content": "changed" }),
    )
    .await;
    assert_eq!(edit["code"], "FORBIDDEN", "{edit}");
    // Carol, added, joins again and hears Alice.
    let joined = carol
        .emit_ack("room:join", json!([{ "room": "ops" }]))
        .await;
    assert_eq!(joined["status"], "ok", "{joined}");
    alice.send(Some("ops"), "welcome back").await;
    assert_eq!(
        carol.next_event("message:new").await["data"]["content"],
        "welcome back"
    );

    // Deleting it: the members on every pod hear it and are out of the room.
    let (status, _) = call(
        pods[0].addr,
        "DELETE",
        "/api/rooms/ops",
        Some(&alice_t),
        Value::Null,
    )
    .await;
    assert_eq!(status, 200);
    let deleted = carol.next_event("channel:deleted").await;
    assert_eq!(deleted, json!({ "room": "ops" }));
    let refused = carol
        .emit_ack(
            "message:send",
            json!([{ "room": "ops", "content": "gone?" }]),
        )
        .await;
    assert_eq!(refused["code"], "CHANNEL_ERROR", "{refused}");
    // Now an ordinary room again: anyone joins it, and its old messages are gone.
    let page = dave_history(&mut dave).await;
    assert_eq!(page["messages"], json!([]), "{page}");

    alice.close().await;
    carol.close().await;
    for pod in pods {
        pod.stop().await;
    }
}

async fn dave_history(dave: &mut WsClient) -> Value {
    let joined = request(dave, "j2", json!({ "request": "room:join", "room": "ops" })).await;
    assert_eq!(joined["status"], "ok", "{joined}");
    request(
        dave,
        "h",
        json!({ "request": "message:history", "room": "ops" }),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_global_tells_every_users_online_and_offline_across_pods() {
    let mut config = config_with_auth();
    config.presence_grace = Duration::from_millis(200);
    let pods = TestServer::start_pods(2, config).await;
    let sio = |t: &str| json!({ "auth": { "token": t } });

    // A socket.io watcher on pod 0 and a raw one on pod 1.
    let mut watcher =
        SioClient::connect_with(&pods[0].http_url(), "websocket", sio(&token("w1"))).await;
    watcher.join("presence:global").await;
    let (mut raw_watcher, _) =
        WsClient::connect(&pods[1].ws_url(&format!("/ws/presence:global?token={}", token("w2"))))
            .await;

    // Zed connects on pod 1 (raw, in no room at all): the watchers hear him online.
    let (mut zed, _) =
        WsClient::connect(&pods[1].ws_url(&format!("/ws?token={}", token("zed")))).await;
    let online = timeout(
        WAIT,
        watcher
            .recv_where(|v| v["event"] == "presence:update" && v["args"][0]["user"]["id"] == "zed"),
    )
    .await
    .expect("zed online in time");
    assert_eq!(online["args"][0]["room"], "presence:global", "{online}");
    assert_eq!(online["args"][0]["status"], "online", "{online}");
    let heard = raw_watcher
        .recv_any_where(|f| f["type"] == "presence" && f["data"]["user"]["id"] == "zed")
        .await;
    assert_eq!(heard["data"]["status"], "online", "{heard}");

    // Anonymous clients may not list everyone online; nobody types or sends there.
    let (status, body) = ws_refused(&pods[1].ws_url("/ws/presence:global"), &[]).await;
    assert_eq!(
        (status, &body["code"]),
        (403, &json!("FORBIDDEN")),
        "{body}"
    );
    let refused = watcher
        .emit_ack(
            "user:typing",
            json!([{ "room": "presence:global", "typing": true }]),
        )
        .await;
    assert_eq!(refused["code"], "CHANNEL_ERROR", "{refused}");
    let refused = watcher
        .emit_ack(
            "message:send",
            json!([{ "room": "presence:global", "content": "hi" }]),
        )
        .await;
    assert_eq!(refused["code"], "CHANNEL_ERROR", "{refused}");
    // Its member list names everyone online.
    let list = watcher
        .emit_ack("presence:list", json!([{ "room": "presence:global" }]))
        .await;
    let ids: Vec<&str> = list["users"]
        .as_array()
        .map(|u| u.iter().filter_map(|u| u["id"].as_str()).collect())
        .unwrap_or_default();
    assert!(ids.contains(&"zed") && ids.contains(&"w1"), "{list}");

    // Zed leaves: offline after the grace, on both watchers.
    zed.send(tokio_tungstenite::tungstenite::Message::Close(None))
        .await;
    let offline = timeout(
        WAIT,
        watcher.recv_where(|v| {
            v["event"] == "presence:update"
                && v["args"][0]["user"]["id"] == "zed"
                && v["args"][0]["status"] == "offline"
        }),
    )
    .await
    .expect("zed offline in time");
    assert_eq!(offline["args"][0]["room"], "presence:global");
    let heard = raw_watcher
        .recv_any_where(|f| {
            f["type"] == "presence"
                && f["data"]["user"]["id"] == "zed"
                && f["data"]["status"] == "offline"
        })
        .await;
    assert_eq!(heard["room"], "presence:global", "{heard}");
    watcher.close().await;
    for pod in pods {
        pod.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_changes_and_global_presence_cross_real_redis_pods() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let env = [
        ("JWT_SECRET", SECRET),
        ("PRESENCE_GRACE", "200ms"),
        ("SERVER_API_KEYS", API_KEY),
    ];
    let pods = common::start_pods(2, &redis.url(), &env).await;
    let (a, b) = (&pods[0], &pods[1]);

    // A watcher of presence:global on pod b hears a user who connects on pod a.
    let (mut watcher, _) =
        WsClient::connect(&b.ws_url(&format!("/ws/presence:global?token={}", token("w")))).await;
    let (zed, _) = WsClient::connect(&a.ws_url(&format!("/ws?token={}", token("zed")))).await;
    let online = watcher
        .recv_any_where(|f| f["type"] == "presence" && f["data"]["user"]["id"] == "zed")
        .await;
    assert_eq!(
        (&online["room"], &online["data"]["status"]),
        (&json!("presence:global"), &json!("online"))
    );
    drop(zed);
    let offline = watcher
        .recv_any_where(|f| {
            f["type"] == "presence"
                && f["data"]["user"]["id"] == "zed"
                && f["data"]["status"] == "offline"
        })
        .await;
    assert_eq!(offline["room"], "presence:global", "{offline}");

    // Carol, on pod b, is in room vault when Alice (pod a) makes it private: she hears
    // it over Redis and is out of the room on her pod.
    let _alice = in_vault(a, "alice").await;
    let mut carol = in_vault(b, "carol").await;
    make_vault_private(a.addr).await;
    let update = carol
        .recv_any_where(|f| f["data"]["event"] == "channel:updated")
        .await;
    assert_eq!(
        update["data"]["channel"]["members"],
        json!(["alice"]),
        "{update}"
    );
    carol
        .send_json(json!({ "type": "chat", "data": { "content": "let me in" } }))
        .await;
    let error = carol.recv_type("error").await;
    assert_eq!(error["data"]["code"], "CHANNEL_ERROR", "{error}");
    let (status, body) = ws_refused(
        &b.ws_url(&format!("/ws/vault?token={}", token("carol"))),
        &[],
    )
    .await;
    assert_eq!(
        (status, &body["code"]),
        (403, &json!("FORBIDDEN")),
        "{body}"
    );
    drop(pods);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_missed_a_channel_change_applies_it_within_a_heartbeat() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    // A heartbeat every half second (a third of PRESENCE_TTL).
    let env = [
        ("JWT_SECRET", SECRET),
        ("SERVER_API_KEYS", API_KEY),
        ("PRESENCE_TTL", "1500ms"),
        ("REDIS_TIMEOUT", "300ms"),
    ];
    let pods = common::start_pods(2, &redis.url(), &env).await;
    let (a, b) = (&pods[0], &pods[1]);
    let mut carol = in_vault(b, "carol").await;

    // Redis is down while Alice makes the room private on pod a: the database has the
    // change, the bus cannot carry it (pod a gives the event up).
    redis.kill().await;
    make_vault_private(a.addr).await;
    common::wait_for_health(a.addr, |h| h["undelivered"].as_u64() > Some(0)).await;
    redis.restart().await;

    // Pod b finds out on its own and takes Carol out.
    let update = carol
        .recv_any_where(|f| f["data"]["event"] == "channel:updated")
        .await;
    assert_eq!(update["data"]["channel"]["private"], true, "{update}");
    carol
        .send_json(json!({ "type": "chat", "data": { "content": "still in?" } }))
        .await;
    let error = carol.recv_type("error").await;
    assert_eq!(error["data"]["code"], "CHANNEL_ERROR", "{error}");
    drop(pods);
}

/// `user` on a raw connection to `pod` in room `vault`, once a request there answered.
async fn in_vault(pod: &common::ServerProcess, user: &str) -> WsClient {
    let url = pod.ws_url(&format!("/ws/vault?token={}", token(user)));
    let (mut client, _) = WsClient::connect(&url).await;
    let listed = request(
        &mut client,
        "p",
        json!({ "request": "presence:list", "room": "vault" }),
    )
    .await;
    assert_eq!(listed["status"], "ok", "{listed}");
    client
}

/// The server API makes room `vault` (in use) a private channel of Alice's.
async fn make_vault_private(addr: SocketAddr) {
    let body = json!({ "room": "vault", "private": true, "created_by": "alice" });
    let (status, body) = call(addr, "POST", "/api/rooms", Some(API_KEY), body).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["channel"]["members"], json!(["alice"]), "{body}");
}

/// Alice may not make `room` a channel (`why` it is in use).
async fn refused_for_alice(addr: SocketAddr, room: &str, why: &str) {
    let alice = token("alice");
    let (status, body) = call(
        addr,
        "POST",
        "/api/rooms",
        Some(&alice),
        json!({ "room": room }),
    )
    .await;
    assert_eq!(
        (status, &body["code"]),
        (403, &json!("FORBIDDEN")),
        "{why}: {body}"
    );
}
