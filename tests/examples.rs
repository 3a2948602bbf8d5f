//! Smoke tests of client-examples/ against a running server: each example connects,
//! sends a line typed on its stdin, and prints a message sent by someone else.

mod common;

use std::path::PathBuf;
use std::process::Stdio;

use common::{venv_program, SioClient, TestServer, WsClient, WAIT};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio::time::timeout;

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("client-examples")
}

async fn smoke(name: &str, mut cmd: Command, server: &TestServer) {
    let (mut observer, _) = WsClient::connect(&server.ws_url("/ws/smoke")).await;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("{name}: cannot start: {e}"));
    let mut stdin = child.stdin.take().expect("stdin");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, mut lines) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut reader = BufReader::new(stdout).lines();
        while let Ok(Some(line)) = reader.next_line().await {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut wait_for = async |needle: &str| loop {
        let line = timeout(WAIT, lines.recv())
            .await
            .unwrap_or_else(|_| panic!("{name}: no line with {needle:?}"))
            .unwrap_or_else(|| panic!("{name} exited before printing {needle:?}"));
        if line.contains(needle) {
            return line;
        }
    };

    wait_for("connected as").await;
    let typed = format!("hello from the {name} example");
    stdin
        .write_all(format!("{typed}\n").as_bytes())
        .await
        .expect("type a line");
    assert_eq!(
        observer.recv_type("chat").await["data"]["content"],
        typed,
        "{name}"
    );
    let reply = format!("hello back, {name}");
    observer.chat(&reply).await;
    wait_for(&reply).await;
    drop(stdin);
    let status = timeout(WAIT, child.wait())
        .await
        .unwrap_or_else(|_| panic!("{name} did not exit after Ctrl-D"))
        .expect("wait");
    assert!(status.success(), "{name} exited with {status}");
}

fn python_has(module: &str) -> bool {
    std::process::Command::new(venv_program("python3"))
        .args(["-c", &format!("import {module}")])
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_socketio_example() {
    let dir = examples().join("node");
    assert!(
        dir.join("node_modules/@chatwire/client/dist/index.js")
            .exists(),
        "the node example runs on the client package: run `npm ci --prefix clients/js && \
         npm run build --prefix clients/js && npm ci --prefix client-examples/node` \
         (scripts/test does it)"
    );
    let server = TestServer::start().await;
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("chat.mjs"))
        .arg(server.http_url())
        .arg("smoke");
    smoke("node", cmd, &server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_socketio_example() {
    assert!(
        python_has("socketio") && python_has("aiohttp"),
        "run scripts/test: it installs client-examples/python/requirements.txt into .venv/"
    );
    let server = TestServer::start().await;
    let mut cmd = Command::new(venv_program("python3"));
    cmd.arg(examples().join("python/chat.py"))
        .arg(server.http_url())
        .arg("smoke");
    smoke("python-socketio", cmd, &server).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_raw_websocket_example() {
    assert!(
        python_has("websockets"),
        "run scripts/test: it installs client-examples/raw-websocket/requirements.txt into .venv/"
    );
    let server = TestServer::start().await;
    let mut cmd = Command::new(venv_program("python3"));
    cmd.arg(examples().join("raw-websocket/chat.py"))
        .arg(server.ws_url("/ws/smoke"));
    smoke("raw-websocket", cmd, &server).await;
    server.stop().await;
}

/// client-examples/streamly/, written only from seed 003's description, chats with a
/// socket.io client and a `realtime.Message` raw client in one room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamly_example_chats_with_socketio_and_raw_clients() {
    assert!(
        python_has("websockets"),
        "run scripts/test: it installs client-examples/streamly/requirements.txt into .venv/"
    );
    let server = TestServer::start().await;
    let options = serde_json::json!({ "auth": { "name": "Sio" } });
    let mut sio = SioClient::connect_with(&server.http_url(), "websocket", options).await;
    sio.join("streamly").await;
    let (mut raw, _) = WsClient::connect(&server.ws_url("/ws?room=streamly&name=Raw")).await;
    let mut child = Command::new(venv_program("python3"))
        .arg(examples().join("streamly/chat.py"))
        .arg(server.ws_url("/ws?room=streamly"))
        .arg("sam")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("start the Streamly example");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut wait_for = async |needle: &str| loop {
        let line = timeout(WAIT, lines.next_line())
            .await
            .unwrap_or_else(|_| panic!("streamly: no line with {needle:?}"))
            .expect("read")
            .unwrap_or_else(|| panic!("streamly exited before printing {needle:?}"));
        if line.contains(needle) {
            return line;
        }
    };
    wait_for("connected as sam").await;
    stdin
        .write_all(b"hello from Streamly\n")
        .await
        .expect("type");
    // Its own line comes back, as Streamly's service echoes it; the others get it.
    wait_for("[streamly] sam: hello from Streamly").await;
    let got = raw.recv_type("chat").await;
    assert_eq!(got["data"]["content"], "hello from Streamly");
    assert_eq!(got["user"]["name"], "sam");
    let heard = sio.next_event("message:new").await;
    assert_eq!(heard["data"]["content"], "hello from Streamly");
    assert_eq!(heard["user"]["name"], "sam");

    sio.send(Some("streamly"), "hi sam, from socket.io").await;
    wait_for("[streamly] Sio: hi sam, from socket.io").await;
    raw.chat("hi sam, from realtime").await;
    wait_for("[streamly] Raw: hi sam, from realtime").await;

    drop(stdin);
    let status = timeout(WAIT, child.wait())
        .await
        .expect("exits after Ctrl-D")
        .expect("wait");
    assert!(status.success(), "streamly example exited with {status}");
    sio.close().await;
    server.stop().await;
}
