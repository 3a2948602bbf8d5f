//! The typed JavaScript client package (`clients/js`, `@chatwire/client`) against real
//! servers. Its node tests (typed calls, acks with offsets, history, edits, presence,
//! typing, errors as `ChatwireError`, a list of URLs, auth, the backend's events, pods)
//! run against servers started here; and its recovery is orchestrated from here through
//! `clients/js/test/recovery-driver.mjs`, an application on the package: a client whose
//! pod is killed comes back on another pod of its URL list (or on the same server,
//! restarted) and its application gets exactly the messages it missed, in order, then
//! the live ones, each once, with `recovered: true` — or `recovered: false` when it
//! missed more than the log keeps (HISTORY_LIMIT).
//!
//! The package is built here when needed (`npm ci` and `npm run build` in clients/js,
//! one test process at a time); node and npm must be installed.

mod common;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use common::db::TempDir;
use common::tokens::SECRET;
use common::{
    free_port, start_pods, test_config, JsonLines, RedisServer, ServerProcess, SioClient,
    TestServer, WAIT,
};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// How long the whole node test run may take.
const NODE_TESTS_WITHIN: Duration = Duration::from_secs(120);
/// The server API key of the node tests' auth server.
const API_KEY: &str = "client-package-test-key";
/// How long `npm ci` plus `npm run build` may take.
const BUILD_WITHIN: Duration = Duration::from_secs(300);

fn package_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("clients/js")
}

/// Fails the test, saying what to install, when `program` does not run.
fn require(program: &str) {
    let ran = std::process::Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ran,
        "`{program}` is not installed or not on PATH: the client package's tests need \
         Node.js 20+ and npm (Debian: apt-get install nodejs npm)"
    );
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The newest modification time of `path` and, for a folder, of everything in it.
fn newest(path: &Path) -> Option<SystemTime> {
    let own = modified(path);
    let Ok(entries) = std::fs::read_dir(path) else {
        return own;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| newest(&e.path()))
        .chain(own)
        .max()
}

/// Whether `output` is missing or older than any of `inputs`.
fn stale(output: &Path, inputs: &[PathBuf]) -> bool {
    let Some(built) = modified(output) else {
        return true;
    };
    inputs.iter().filter_map(|i| newest(i)).any(|t| t > built)
}

/// Installs the package's dependencies from its lock file when they are missing or
/// older than it, and builds `dist/` when it is missing or older than its sources. Run
/// under the lock, so it checks again what another test process may have done.
const BUILD_SCRIPT: &str = r#"set -e
cd "$1"
if [ ! -e node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
if [ ! -e dist/index.js ] || [ -n "$(find src tsconfig.json package.json node_modules/.package-lock.json -newer dist/index.js)" ]; then
  npm run build
fi
"#;

/// Whether `dist/` (or the dependencies it is built from) needs making.
fn needs_build(dir: &Path) -> bool {
    let installed = dir.join("node_modules/.package-lock.json");
    stale(&installed, &[dir.join("package-lock.json")])
        || stale(
            &dir.join("dist/index.js"),
            &[
                dir.join("src"),
                dir.join("tsconfig.json"),
                dir.join("package.json"),
                installed,
            ],
        )
}

/// Installs and builds the package when needed (`npm ci`, `npm run build`), one test
/// process at a time: under `flock(1)` on a lock file in the target folder (without
/// flock, unlocked).
fn ensure_built(dir: &Path) {
    require("node");
    require("npm");
    if !needs_build(dir) {
        return;
    }
    let lock = Path::new(env!("CARGO_TARGET_TMPDIR")).join("clients-js-build.lock");
    let locked = std::process::Command::new("flock")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let mut cmd = if locked {
        let mut cmd = std::process::Command::new("flock");
        cmd.arg(&lock).arg("sh");
        cmd
    } else {
        std::process::Command::new("sh")
    };
    let output = cmd
        .arg("-c")
        .arg(BUILD_SCRIPT)
        .arg("build")
        .arg(dir)
        .output()
        .expect("run sh");
    assert!(
        output.status.success() && !needs_build(dir),
        "building clients/js failed (run `npm ci --prefix clients/js && npm run build \
         --prefix clients/js` to see why):\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The package folder, built.
async fn built_package() -> PathBuf {
    let dir = package_dir();
    let build = {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || ensure_built(&dir))
    };
    timeout(BUILD_WITHIN, build)
        .await
        .expect("the package built in time")
        .expect("the build thread");
    dir
}

/// The number in the TAP summary line `# {name} N`.
fn tap_count(tap: &str, name: &str) -> Option<u64> {
    let prefix = format!("# {name} ");
    tap.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|n| n.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_packages_node_tests_pass_against_real_servers() {
    let dir = built_package().await;
    let server = TestServer::start().await;
    let pods = TestServer::start_pods(2, test_config()).await;
    let mut limited = test_config();
    limited.rate_messages_per_min = 1;
    let limited = TestServer::start_with(limited).await;
    let mut auth = test_config();
    auth.auth_enabled = true;
    auth.jwt_secret = SECRET.into();
    auth.server_api_keys = API_KEY.into();
    let auth = TestServer::start_with(auth).await;

    let mut files: Vec<String> = std::fs::read_dir(dir.join("test"))
        .expect("clients/js/test")
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| name.ends_with(".test.mjs"))
        .map(|name| format!("test/{name}"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no clients/js/test/*.test.mjs");
    let pod_urls = format!("{},{}", pods[0].http_url(), pods[1].http_url());
    let run = Command::new("node")
        .arg("--test")
        .arg("--test-reporter=tap")
        .args(&files)
        .current_dir(&dir)
        .env("CHATWIRE_URL", server.http_url())
        .env("CHATWIRE_URLS", pod_urls)
        .env("CHATWIRE_LIMITED_URL", limited.http_url())
        .env("CHATWIRE_AUTH_URL", auth.http_url())
        .env("CHATWIRE_JWT_SECRET", SECRET)
        .env("CHATWIRE_API_KEY", API_KEY)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = timeout(NODE_TESTS_WITHIN, run)
        .await
        .expect("the node tests finished in time")
        .expect("node is installed and on PATH");
    let tap = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let counts = ["pass", "fail", "cancelled", "skipped", "todo"].map(|n| tap_count(&tap, n));
    assert!(
        output.status.success() && counts[0] > Some(0) && counts[1..].iter().all(|c| *c == Some(0)),
        "the node tests of clients/js failed ([pass, fail, cancelled, skipped, todo] = \
         {counts:?}):\n{tap}\n{stderr}"
    );
    eprintln!(
        "clients/js node tests: {} passed",
        counts[0].unwrap_or_default()
    );
}

/// A TCP door in front of a server: while shut it accepts each connection and closes
/// it at once (the server looks down, quickly); once opened it forwards.
struct Door {
    port: u16,
    open: Arc<AtomicBool>,
    accept: JoinHandle<()>,
}

impl Door {
    async fn shut(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind door");
        let port = listener.local_addr().expect("door addr").port();
        let open = Arc::new(AtomicBool::new(false));
        let is_open = open.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut down, _)) = listener.accept().await {
                if !is_open.load(Ordering::SeqCst) {
                    continue; // Dropped: closed at once.
                }
                tokio::spawn(async move {
                    if let Ok(mut up) = TcpStream::connect(upstream).await {
                        // Either side ending ends the pair; how is no news here.
                        let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                    }
                });
            }
        });
        Self { port, open, accept }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for Door {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// The application of `recovery-driver.mjs`: what it received, line by line, and the
/// calls it makes.
struct App {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<Value>,
    pending: VecDeque<Value>,
    /// Every line so far, for failure messages.
    seen: Vec<Value>,
    next_ref: u64,
}

impl App {
    async fn start(dir: &Path, options: Value) -> Self {
        let (child, stdin, lines) = JsonLines::spawn(
            Command::new("node")
                .arg(dir.join("test/recovery-driver.mjs"))
                .arg(options.to_string())
                .stderr(Stdio::inherit()),
        );
        Self {
            child,
            stdin,
            lines,
            pending: VecDeque::new(),
            seen: Vec::new(),
            next_ref: 0,
        }
    }

    /// The next line matching `pred` (others stay queued, in order), within [`WAIT`].
    async fn next_where(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(pos) = self.pending.iter().position(&pred) {
            return self.pending.remove(pos).expect("position is valid");
        }
        loop {
            let line = timeout(WAIT, self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}; lines: {:?}", self.seen))
                .unwrap_or_else(|| panic!("the driver exited; lines: {:?}", self.seen));
            self.seen.push(line.clone());
            if pred(&line) {
                return line;
            }
            self.pending.push_back(line);
        }
    }

    /// Waits for a line matching `pred` and returns a copy, leaving it in its place.
    async fn wait_for(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(found) = self.pending.iter().find(|v| pred(v)) {
            return found.clone();
        }
        loop {
            let line = timeout(WAIT, self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}; lines: {:?}", self.seen))
                .unwrap_or_else(|| panic!("the driver exited; lines: {:?}", self.seen));
            self.seen.push(line.clone());
            self.pending.push_back(line.clone());
            if pred(&line) {
                return line;
            }
        }
    }

    /// The next line of `type` `kind`.
    async fn next_of(&mut self, kind: &str) -> Value {
        self.next_where(kind, |v| v["type"] == kind).await
    }

    /// Runs a call and returns its value, asserting it succeeded.
    async fn call(&mut self, mut cmd: Value) -> Value {
        self.next_ref += 1;
        let id = self.next_ref;
        cmd["ref"] = json!(id);
        let line = format!("{cmd}\n");
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("write to the driver");
        self.stdin.flush().await.expect("flush to the driver");
        let reply = self
            .next_where("reply", |v| v["type"] == "reply" && v["ref"] == id)
            .await;
        assert_eq!(reply["ok"], true, "{cmd} failed: {reply}");
        reply["value"].clone()
    }

    /// Everything the application was handed, in order, until the message `last`
    /// (included): `(offset, content, recovered)` for each message, and
    /// `("rejoined", recovered, since)` for each rejoin.
    async fn received_until(&mut self, last: &str) -> Vec<Value> {
        let mut got = Vec::new();
        loop {
            let line = self
                .next_where(&format!("the message {last:?}"), |v| {
                    v["type"] == "message" || v["type"] == "rejoined"
                })
                .await;
            if line["type"] == "rejoined" {
                got.push(json!(["rejoined", line["recovered"], line["since"]]));
                continue;
            }
            got.push(json!([line["offset"], line["content"], line["recovered"]]));
            if line["content"] == last {
                return got;
            }
        }
    }

    async fn close(mut self) {
        let closed = self.stdin.write_all(b"{\"op\":\"close\"}\n").await;
        if closed.is_ok() {
            let _ = timeout(WAIT, self.child.wait()).await;
        }
    }
}

/// The driver's options: `urls` over WebSocket, retrying quickly.
fn app_options(urls: &[String]) -> Value {
    json!({
        "urls": urls,
        "transports": ["websocket"],
        "reconnectionDelayMs": 50,
        "reconnectionDelayMaxMs": 250,
        "connectTimeoutMs": 2000,
    })
}

/// Sends `content` from `client` to room R and returns the stored offset.
async fn send(client: &mut SioClient, content: &str) -> u64 {
    let ack = client.send(Some("R"), content).await;
    assert_eq!(ack["status"], "ok", "{ack}");
    ack["offset"].as_u64().expect("offset")
}

/// The scenario on two pods with HISTORY_LIMIT 5: the application, on pod 1, joins R,
/// gets two messages and sends one; pod 1 is killed; `missed` messages are sent on pod
/// 2 while the application cannot reach it; then it can, and two live messages follow.
/// Returns everything the application was handed from the start.
async fn move_after_a_crash(missed: u64) -> Option<Vec<Value>> {
    let dir = built_package().await;
    let redis = RedisServer::start().await?;
    let mut pods = start_pods(2, &redis.url(), &[("HISTORY_LIMIT", "5")]).await;
    let door = Door::shut(pods[1].addr).await;
    let mut app = App::start(&dir, app_options(&[pods[0].http_url(), door.url()])).await;
    assert_eq!(app.next_of("connect").await["url"], pods[0].http_url());
    let joined = app.call(json!({ "op": "join", "room": "R" })).await;
    assert_eq!(
        joined,
        json!({ "room": "R", "recovered": true, "missed": 0, "since": 0 })
    );
    let mut other = SioClient::connect(&pods[1].http_url(), "websocket").await;
    other.join("R").await;
    assert_eq!(send(&mut other, "before 1").await, 1);
    assert_eq!(send(&mut other, "before 2").await, 2);
    let mut got = app.received_until("before 2").await;
    let own = app
        .call(json!({ "op": "send", "room": "R", "content": "my own" }))
        .await;
    assert_eq!(own["offset"], 3, "{own}");

    pods[0].signal("KILL").await;
    pods[0].wait(WAIT).await;
    let lost = app.next_of("disconnect").await;
    assert_eq!(lost["willReconnect"], true, "{lost}");
    for i in 1..=missed {
        assert_eq!(send(&mut other, &format!("missed {i}")).await, 3 + i);
    }
    door.open();
    let rejoined = app.wait_for("rejoined", |v| v["type"] == "rejoined").await;
    assert_eq!(rejoined["url"], door.url(), "{rejoined}");
    send(&mut other, "after 1").await;
    send(&mut other, "after 2").await;
    got.extend(app.received_until("after 2").await);
    // The marker after them shows nothing else came between or after.
    send(&mut other, "marker").await;
    let next = app.next_of("message").await;
    assert_eq!(next["content"], "marker", "{next}");
    app.close().await;
    Some(got)
}

/// `(offset, content, recovered)`.
fn message(offset: u64, content: &str, recovered: bool) -> Value {
    json!([offset, content, recovered])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_moved_to_another_pod_gets_exactly_what_it_missed_then_the_live_stream() {
    // As many missed as HISTORY_LIMIT keeps: all of them can be proven.
    let Some(got) = move_after_a_crash(5).await else {
        return;
    };
    let mut expected = vec![message(1, "before 1", false), message(2, "before 2", false)];
    for i in 1..=5 {
        expected.push(message(3 + i, &format!("missed {i}"), true));
    }
    expected.push(json!(["rejoined", true, 3]));
    expected.push(message(9, "after 1", false));
    expected.push(message(10, "after 2", false));
    assert_eq!(
        got, expected,
        "the missed messages once, in order, marked recovered, then the live ones; \
         never its own"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_missed_more_than_the_log_keeps_is_told_recovered_false() {
    let Some(got) = move_after_a_crash(8).await else {
        return;
    };
    assert_eq!(
        got,
        [
            message(1, "before 1", false),
            message(2, "before 2", false),
            json!(["rejoined", false, 3]),
            message(12, "after 1", false),
            message(13, "after 2", false),
        ],
        "no recovered messages (the application pages history), then the live ones"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_rejoins_a_restarted_server_through_socketio_reconnection() {
    let dir = built_package().await;
    let data = TempDir::new();
    let data_dir = data.path().to_string_lossy().into_owned();
    let port = free_port().await.to_string();
    let env = [("DATA_DIR", data_dir.as_str()), ("PORT", port.as_str())];
    let mut server = ServerProcess::spawn(&env).await;
    // One URL: socket.io's own reconnection brings the client back.
    let mut app = App::start(&dir, app_options(&[server.http_url()])).await;
    app.next_of("connect").await;
    app.call(json!({ "op": "join", "room": "R" })).await;
    let mut other = SioClient::connect(&server.http_url(), "websocket").await;
    other.join("R").await;
    send(&mut other, "before 1").await;
    send(&mut other, "before 2").await;
    app.wait_for("message 2", |v| v["offset"] == 2).await;
    let own = app
        .call(json!({ "op": "send", "room": "R", "content": "my own" }))
        .await;
    assert_eq!(own["offset"], 3, "{own}");

    server.signal("KILL").await;
    server.wait(WAIT).await;
    let lost = app.next_of("disconnect").await;
    assert_eq!(lost["willReconnect"], true, "{lost}");
    let server = ServerProcess::spawn(&env).await;
    // Sent as soon as the server is back: before or after the client rejoins, it gets
    // them once, in order.
    let mut other = SioClient::connect(&server.http_url(), "websocket").await;
    other.join("R").await;
    for i in 1..=3 {
        assert_eq!(send(&mut other, &format!("back {i}")).await, 3 + i);
    }
    let rejoined = app.next_of("rejoined").await;
    assert_eq!(
        (&rejoined["recovered"], &rejoined["since"]),
        (&json!(true), &json!(3)),
        "{rejoined}"
    );
    send(&mut other, "after").await;
    let mut got = Vec::new();
    loop {
        let m = app.next_of("message").await;
        got.push((m["offset"].clone(), m["content"].clone()));
        if m["content"] == "after" {
            break;
        }
    }
    let expected: Vec<(Value, Value)> = [
        (1, "before 1"),
        (2, "before 2"),
        (4, "back 1"),
        (5, "back 2"),
        (6, "back 3"),
        (7, "after"),
    ]
    .iter()
    .map(|(o, c)| (json!(o), json!(c)))
    .collect();
    assert_eq!(got, expected, "every message once, in order");
    app.close().await;
}
