//! The `/admin` namespace as `@socket.io/admin-ui` uses it, driven by a real
//! socket.io-client, against two pods and a real redis-server: login, config, every
//! socket of both pods and both transports with its rooms, stats from every pod, live
//! events, and the UI's commands (disconnect, join, emit) applied on the right pod.

mod common;

use std::collections::HashSet;

use common::tokens::{self, claims, SECRET};
use common::{start_pods, RedisServer, SioClient, WsClient, WAIT};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

const PASSWORD: &str = "correct-horse-battery";

fn as_user(user: &str) -> Value {
    json!({ "auth": { "token": tokens::hs256(SECRET, &claims(user, json!({}))) } })
}

/// The next line matching `pred` within WAIT in all (other lines keep coming: stats
/// every 2 s from each pod).
async fn event_where(client: &mut SioClient, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
    tokio::time::timeout(WAIT, client.recv_where(pred))
        .await
        .unwrap_or_else(|_| panic!("no {what} in time"))
}

fn login() -> Value {
    json!({ "auth": { "username": "ops", "password": PASSWORD } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_namespace_shows_and_commands_both_pods() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let env = [
        ("JWT_SECRET", SECRET),
        ("ADMIN_USERNAME", "ops"),
        ("ADMIN_PASSWORD", PASSWORD),
    ];
    let pods = start_pods(2, &redis.url(), &env).await;
    let admin_url = |i: usize| format!("{}/admin", pods[i].http_url());

    let refused = SioClient::refused(
        &admin_url(0),
        "websocket",
        json!({ "auth": { "username": "ops", "password": "wrong-password!" } }),
    )
    .await;
    assert!(refused.starts_with("AUTH_FAILED"), "{refused}");

    let mut alice =
        SioClient::connect_with(&pods[0].http_url(), "websocket", as_user("alice")).await;
    alice.join("lobby").await;
    let token = tokens::hs256(SECRET, &claims("bob", json!({})));
    let (mut bob, welcome) =
        WsClient::connect(&pods[1].ws_url(&format!("/ws/lobby?token={token}"))).await;
    let bob_id = welcome["data"]["client_id"]
        .as_str()
        .expect("client id")
        .to_owned();

    let mut admin = SioClient::connect_with(&admin_url(0), "websocket", login()).await;
    let session = admin.next_event("session").await;
    assert!(session.as_str().is_some_and(|s| s.len() == 64), "{session}");
    let config = admin.next_event("config").await;
    assert!(config["supportedFeatures"]
        .as_array()
        .unwrap()
        .contains(&json!("MDISCONNECT")));
    let sockets = admin.next_event("all_sockets").await;
    let find = |id: &str| {
        sockets
            .as_array()
            .expect("sockets")
            .iter()
            .find(|s| s["id"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("{id} listed: {sockets}"))
    };
    let a = find(&alice.id);
    assert_eq!(a["rooms"], json!(["lobby", "user:alice"]));
    assert_eq!(
        (a["nsp"].clone(), a["data"]["user"].clone()),
        (json!("/"), json!("alice"))
    );
    let b = find(&bob_id);
    assert_eq!(b["rooms"], json!(["lobby", "user:bob"]));
    assert_eq!(b["transport"], "raw-websocket");
    assert_ne!(a["data"]["pod"], b["data"]["pod"], "one socket on each pod");
    for s in [&a, &b] {
        let h = &s["handshake"];
        assert_eq!(h["address"], "127.0.0.1", "{s}");
        assert!(h["issued"].as_u64().is_some_and(|t| t > 0), "{s}");
        assert!(h["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{s}");
        assert_eq!(
            h["query"],
            json!({}),
            "never the query (it may hold a token): {s}"
        );
    }
    assert_eq!(a["handshake"]["url"], "/socket.io/");
    assert_eq!(b["handshake"]["url"], "/ws");

    // Stats from both pods reach a UI connected to one.
    let mut servers = HashSet::new();
    for _ in 0..6 {
        if servers.len() == 2 {
            break;
        }
        let stats = admin.next_event("server_stats").await;
        assert!(stats["clientsCount"].as_u64().is_some(), "{stats}");
        servers.insert(stats["serverId"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(servers.len(), 2, "stats from both pods: {servers:?}");

    // Live events from the other pod.
    let mut carol =
        SioClient::connect_with(&pods[1].http_url(), "websocket", as_user("carol")).await;
    let connected = event_where(&mut admin, "socket_connected", |v| {
        v["event"] == "socket_connected" && v["args"][0]["id"] == carol.id.as_str()
    })
    .await;
    assert_eq!(connected["args"][0]["data"]["user"], "carol");
    carol.join("vip").await;
    let joined = event_where(&mut admin, "room_joined vip", |v| {
        v["event"] == "room_joined" && v["args"][1] == "vip"
    })
    .await;
    assert_eq!(joined["args"], json!(["/", "vip", carol.id]));

    // The UI's commands: join bob (pod 2) to news, emit to news, disconnect alice.
    admin.emit("join", json!(["/", "news", bob_id])).await;
    let joined = event_where(&mut admin, "room_joined news", |v| {
        v["event"] == "room_joined" && v["args"][1] == "news"
    })
    .await;
    assert_eq!(joined["args"][2], bob_id.as_str());
    admin
        .emit("emit", json!(["/", "news", "hello", { "x": 1 }]))
        .await;
    let frame = bob.recv_any_where(|v| v["data"]["event"] == "hello").await;
    assert_eq!(frame["data"]["args"], json!([{ "x": 1 }]));
    admin
        .emit("_disconnect", json!(["/", false, alice.id]))
        .await;
    assert_eq!(
        alice.next_of("disconnect").await["reason"],
        "io server disconnect"
    );
    let gone = event_where(&mut admin, "socket_disconnected", |v| {
        v["event"] == "socket_disconnected" && v["args"][1] == alice.id.as_str()
    })
    .await;
    assert_eq!(gone["args"][0], "/");

    // The session id logs in on the other pod too.
    let mut again = SioClient::connect_with(
        &admin_url(1),
        "websocket",
        json!({ "auth": { "sessionId": session } }),
    )
    .await;
    again.next_event("config").await;
    again.close().await;
    admin.close().await;
    carol.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_real_admin_ui_shows_both_pods_and_disconnects_a_socket() {
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "Chromium is not installed at /usr/bin/chromium: apt-get install chromium (.ci/run does it)"
    );
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let env = [
        ("JWT_SECRET", SECRET),
        ("ADMIN_USERNAME", "ops"),
        ("ADMIN_PASSWORD", PASSWORD),
    ];
    let pods = start_pods(2, &redis.url(), &env).await;
    let mut alice =
        SioClient::connect_with(&pods[0].http_url(), "websocket", as_user("alice")).await;
    alice.join("lobby").await;
    let mut bob = SioClient::connect_with(&pods[1].http_url(), "websocket", as_user("bob")).await;
    bob.join("lobby").await;
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let shot = std::env::temp_dir().join(format!("chatwire-admin-ui-{}.png", std::process::id()));
    let mut ui = tokio::process::Command::new("node")
        .arg(dir.join("tests/js/e2e_admin_ui.mjs"))
        .arg(pods[0].http_url())
        .arg("ops")
        .arg(PASSWORD)
        .arg(&shot)
        .arg(&alice.id)
        .arg(&bob.id)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs playwright-core (npm ci --prefix tests/js)");
    let mut lines = tokio::io::BufReader::new(ui.stdout.take().expect("stdout")).lines();
    let clicked = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("disconnect_clicked") {
                return true;
            }
        }
        false
    })
    .await
    .expect("the admin UI run finished in time");
    assert!(clicked, "the admin UI run failed (its stderr is above)");
    // The UI's click reached the socket's pod.
    assert_eq!(
        alice.next_of("disconnect").await["reason"],
        "io server disconnect"
    );
    let mut stdin = ui.stdin.take().expect("stdin");
    stdin
        .write_all(b"done\n")
        .await
        .expect("tell the UI run to end");
    drop(stdin);
    let status = tokio::time::timeout(std::time::Duration::from_secs(20), ui.wait())
        .await
        .expect("the admin UI run ended in time")
        .expect("wait");
    assert!(status.success(), "{status}");
    if std::env::var_os("CHATWIRE_UPDATE_SCREENSHOTS").is_some() {
        std::fs::copy(&shot, dir.join("docs/admin-ui.png")).expect("screenshot copied");
    }
    let _ = std::fs::remove_file(&shot);
    bob.close().await;
}
