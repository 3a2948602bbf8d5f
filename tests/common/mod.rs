//! Test fixtures: an in-process server on 127.0.0.1:0, the built binary as a child
//! process, a real socket.io-client (node) driven over stdin/stdout, a raw WebSocket
//! client (tokio-tungstenite) and a minimal HTTP GET.
#![allow(dead_code)]

pub mod db;
pub mod proxy;

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use chatwire::config::Config;
use chatwire::gate::GateClock;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;

/// How long any single expected event may take before a test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// A config for tests: loopback, free port, no rate limits or connection caps (every
/// test client comes from 127.0.0.1), defaults otherwise.
pub fn test_config() -> Config {
    let mut config = Config::defaults();
    config.host = [127, 0, 0, 1].into();
    config.port = 0;
    config.rate_connections_per_min = 0;
    config.rate_messages_per_min = 0;
    config.rate_reads_per_min = 0;
    config.rate_reads_per_ip_per_min = 0;
    config.max_connections_per_ip = 0;
    config
}

/// The environment that [`test_config`] stands for, for server processes.
pub const TEST_ENV: &[(&str, &str)] = &[
    ("RATE_CONNECTIONS_PER_MIN", "0"),
    ("RATE_MESSAGES_PER_MIN", "0"),
    ("RATE_READS_PER_MIN", "0"),
    ("RATE_READS_PER_IP_PER_MIN", "0"),
    ("MAX_CONNECTIONS_PER_IP", "0"),
];

/// A chatwire server running inside the test process.
pub struct TestServer {
    pub addr: SocketAddr,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
    /// The folder of its SQLite message log, when the test named no DATABASE_URL.
    _data: Option<db::TempDir>,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(test_config()).await
    }

    pub async fn start_with(config: Config) -> Self {
        Self::start_with_clock(config, GateClock::default()).await
    }

    /// Starts with the rate limiters on `clock`, which the test can advance.
    pub async fn start_with_clock(mut config: Config, clock: GateClock) -> Self {
        // The default message log (an SQLite file in DATA_DIR) in a folder of its own.
        let data = config.database_url.is_empty().then(db::TempDir::new);
        if let Some(data) = &data {
            config.data_dir = data.path().to_owned();
        }
        config.validate().expect("test config is valid");
        let listener = TcpListener::bind((config.host, 0)).await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(chatwire::server::run_with_clock(
            listener,
            config,
            shutdown.clone(),
            clock,
        ));
        Self {
            addr,
            shutdown,
            task: Some(task),
            _data: data,
        }
    }

    /// Starts `n` pods of one in-process cluster (in-memory bus and stores): several
    /// pods without redis-server.
    pub async fn start_pods(n: usize, config: Config) -> Vec<Self> {
        config.validate().expect("test config is valid");
        let cluster = chatwire::server::InProcessCluster::default();
        let mut pods = Vec::new();
        for _ in 0..n {
            let listener = TcpListener::bind((config.host, 0)).await.expect("bind");
            let addr = listener.local_addr().expect("local addr");
            let shutdown = CancellationToken::new();
            let task = tokio::spawn(chatwire::server::run_in_process(
                listener,
                config.clone(),
                shutdown.clone(),
                cluster.clone(),
            ));
            pods.push(Self {
                addr,
                shutdown,
                task: Some(task),
                _data: None,
            });
        }
        pods
    }

    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Cancels the server and waits for its drain to finish.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            timeout(WAIT, task)
                .await
                .expect("server drained in time")
                .expect("server task")
                .expect("server result");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// One HTTP/1.1 request over a fresh connection; returns the status and the whole raw
/// response (head and body).
pub async fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let length = if body.is_empty() {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}{length}Connection: close\r\n\r\n{body}"
    );
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    timeout(WAIT, stream.read_to_end(&mut raw))
        .await
        .expect("http response in time")
        .expect("read");
    let text = String::from_utf8_lossy(&raw).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    (status, text)
}

/// The body of a raw HTTP response.
pub fn body_of(raw: &str) -> String {
    raw.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// `GET path` over a fresh connection; returns status and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (status, raw) = http_request(addr, "GET", path, &[], "").await;
    (status, body_of(&raw))
}

/// The `/health` JSON.
pub async fn health(addr: SocketAddr) -> Value {
    let (status, body) = http_get(addr, "/health").await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("health is JSON")
}

/// Polls `/health` until `pred` holds (bounded by [`WAIT`]).
pub async fn wait_for_health(addr: SocketAddr, pred: impl Fn(&Value) -> bool) -> Value {
    let pred = &pred;
    until("/health to match", WAIT, || async move {
        let h = health(addr).await;
        pred(&h).then_some(h)
    })
    .await
}

fn js_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    assert!(
        dir.join("node_modules/socket.io-client").exists(),
        "socket.io-client is not installed: run `npm ci --prefix tests/js` (scripts/test does it)"
    );
    dir
}

/// A node program that takes JSON lines on stdin and writes JSON lines on stdout.
pub struct JsonLines;

impl JsonLines {
    /// Spawns `cmd` with piped stdin and stdout (killed on drop): the child, its stdin,
    /// and its stdout's lines as JSON (a line that is not JSON comes as
    /// `{"type":"stdout","line":...}`).
    pub fn spawn(cmd: &mut Command) -> (Child, ChildStdin, mpsc::UnboundedReceiver<Value>) {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node is installed and on PATH");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut reader = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = reader.next_line().await {
                let value: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|_| json!({ "type": "stdout", "line": line }));
                if tx.send(value).is_err() {
                    break;
                }
            }
        });
        (child, stdin, lines)
    }
}

/// A real `socket.io-client` in a node child process.
pub struct SioClient {
    pub id: String,
    pub transport: String,
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<Value>,
    pending: VecDeque<Value>,
    next_ack: u64,
}

impl SioClient {
    /// Connects over `transports` (e.g. "websocket", "polling", "polling,websocket").
    pub async fn connect(base: &str, transports: &str) -> Self {
        Self::connect_opts(base, transports, None).await
    }

    /// Connects with extra io() options (e.g. `{"auth":{"token":...}}`), asserting success.
    pub async fn connect_with(base: &str, transports: &str, options: Value) -> Self {
        Self::connect_opts(base, transports, Some(options)).await
    }

    async fn connect_opts(base: &str, transports: &str, options: Option<Value>) -> Self {
        let mut client = Self::spawn(base, transports, options).await;
        let first = client
            .recv_where(|v| v["type"] == "connect" || v["type"] == "connect_error")
            .await;
        assert_eq!(
            first["type"], "connect",
            "socket.io connect failed: {first}"
        );
        client.id = first["id"].as_str().expect("sid").to_string();
        client.transport = first["transport"].as_str().unwrap_or_default().to_string();
        client
    }

    /// Tries to connect with `options` and returns the `connect_error` message.
    pub async fn refused(base: &str, transports: &str, options: Value) -> String {
        let mut client = Self::spawn(base, transports, Some(options)).await;
        let first = client
            .recv_where(|v| v["type"] == "connect" || v["type"] == "connect_error")
            .await;
        assert_eq!(
            first["type"], "connect_error",
            "expected a refusal: {first}"
        );
        first["message"].as_str().unwrap_or_default().to_string()
    }

    /// Spawns a client without waiting for its connection.
    pub async fn spawn(base: &str, transports: &str, options: Option<Value>) -> Self {
        let dir = js_dir();
        let mut cmd = Command::new("node");
        cmd.arg(dir.join("sio_client.mjs"))
            .arg(base)
            .arg(transports)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if let Some(options) = options {
            cmd.arg(options.to_string());
        }
        let (child, stdin, lines) = JsonLines::spawn(&mut cmd);
        Self {
            id: String::new(),
            transport: String::new(),
            child,
            stdin,
            lines,
            pending: VecDeque::new(),
            next_ack: 0,
        }
    }

    async fn write(&mut self, cmd: Value) {
        let line = format!("{cmd}\n");
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("write to node");
        self.stdin.flush().await.expect("flush to node");
    }

    /// Emits an event without asking for an ack.
    pub async fn emit(&mut self, event: &str, args: Value) {
        self.write(json!({ "op": "emit", "event": event, "args": args }))
            .await;
    }

    /// Emits an event whose one argument is given as JSON text (no ack).
    pub async fn emit_json(&mut self, event: &str, json_text: &str) {
        self.write(json!({ "op": "emit_json", "event": event, "json": json_text }))
            .await;
    }

    /// Emits an event with an ack and returns the ack's first argument.
    pub async fn emit_ack(&mut self, event: &str, args: Value) -> Value {
        self.next_ack += 1;
        let id = self.next_ack;
        self.write(json!({ "op": "emit", "event": event, "args": args, "ack": id }))
            .await;
        let reply = self
            .recv_where(|v| (v["type"] == "ack" || v["type"] == "ack_timeout") && v["ack"] == id)
            .await;
        assert_eq!(reply["type"], "ack", "ack never came for {event}");
        reply["args"][0].clone()
    }

    /// Joins `room` and asserts the ok ack (a user a token names also gets their read
    /// position and unread count there, checked for their shape).
    pub async fn join(&mut self, room: &str) {
        let mut ack = self.emit_ack("room:join", json!([{ "room": room }])).await;
        if let Some(body) = ack.as_object_mut() {
            if body.contains_key("unread") {
                for key in ["read_offset", "unread", "last_offset"] {
                    let value = body.remove(key);
                    assert!(
                        value.as_ref().is_some_and(Value::is_u64),
                        "{key}: {value:?}"
                    );
                }
            }
        }
        assert_eq!(ack, json!({ "status": "ok", "room": room }));
    }

    /// Sends a chat message with an ack and returns the ack.
    pub async fn send(&mut self, room: Option<&str>, content: &str) -> Value {
        let mut payload = json!({ "content": content });
        if let Some(room) = room {
            payload["room"] = json!(room);
        }
        self.emit_ack("message:send", json!([payload])).await
    }

    /// The next `event`'s first argument (earlier other lines are kept for later).
    pub async fn next_event(&mut self, event: &str) -> Value {
        let line = self
            .recv_where(|v| v["type"] == "event" && v["event"] == event)
            .await;
        line["args"][0].clone()
    }

    /// The next line whose `type` is `kind`.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        self.recv_where(|v| v["type"] == kind).await
    }

    /// The next line matching `pred`; others stay queued in order.
    pub async fn recv_where(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        if let Some(pos) = self.pending.iter().position(&pred) {
            return self.pending.remove(pos).expect("position is valid");
        }
        loop {
            let line = timeout(WAIT, self.lines.recv())
                .await
                .unwrap_or_else(|_| {
                    panic!("no matching line in {WAIT:?}; pending: {:?}", self.pending)
                })
                .expect("node client exited");
            if pred(&line) {
                return line;
            }
            self.pending.push_back(line);
        }
    }

    /// Disconnects and waits for the node process to exit.
    pub async fn close(mut self) {
        self.write(json!({ "op": "close" })).await;
        let _ = timeout(WAIT, self.child.wait()).await;
    }
}

pub type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A raw WebSocket client.
pub struct WsClient {
    pub stream: WsStream,
}

/// Builds a WebSocket handshake request for `url` with extra headers.
pub fn ws_request(
    url: &str,
    headers: &[(&str, &str)],
) -> tokio_tungstenite::tungstenite::handshake::client::Request {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut req = url.into_client_request().expect("ws url");
    for (name, value) in headers {
        req.headers_mut().insert(
            axum::http::HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            value.parse().expect("header value"),
        );
    }
    req
}

/// Attempts a WebSocket upgrade that the server must refuse; returns status and JSON body.
pub async fn ws_refused(url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    use tokio_tungstenite::tungstenite::Error;
    let result = timeout(
        WAIT,
        tokio_tungstenite::connect_async(ws_request(url, headers)),
    )
    .await
    .expect("answer in time");
    match result {
        Err(Error::Http(resp)) => {
            let status = resp.status().as_u16();
            let body = resp.body().as_deref().unwrap_or_default();
            let json = serde_json::from_slice(body).unwrap_or(Value::Null);
            (status, json)
        }
        Err(other) => panic!("unexpected failure: {other}"),
        Ok(_) => panic!("upgrade to {url} was accepted"),
    }
}

impl WsClient {
    /// Connects and returns the client with its welcome frame.
    pub async fn connect(url: &str) -> (Self, Value) {
        Self::connect_with(url, &[]).await
    }

    /// Connects with extra handshake headers.
    pub async fn connect_with(url: &str, headers: &[(&str, &str)]) -> (Self, Value) {
        let (stream, resp) = timeout(
            WAIT,
            tokio_tungstenite::connect_async(ws_request(url, headers)),
        )
        .await
        .expect("ws connect in time")
        .expect("ws connect");
        assert_eq!(resp.status(), 101);
        let mut client = Self { stream };
        let welcome = client.recv().await;
        assert_eq!(welcome["type"], "system", "{welcome}");
        assert_eq!(welcome["data"]["event"], "welcome", "{welcome}");
        (client, welcome)
    }

    pub async fn send_json(&mut self, value: Value) {
        self.send(WsMessage::text(value.to_string())).await;
    }

    pub async fn send(&mut self, msg: WsMessage) {
        self.stream.send(msg).await.expect("ws send");
    }

    /// Sends a chat message.
    pub async fn chat(&mut self, content: &str) {
        self.send_json(json!({ "type": "chat", "data": { "content": content } }))
            .await;
    }

    /// Sends 60 KB chat messages (at most 2 000) until the server at `addr` reports
    /// dropped messages in /health; returns the count (0 if it never did).
    pub async fn flood_until_dropped(&mut self, addr: SocketAddr) -> u64 {
        let big = "z".repeat(60_000);
        for i in 0..2_000 {
            self.chat(&format!("{i}:{big}")).await;
            if i % 25 == 24 {
                let dropped = health(addr).await["dropped"].as_u64().unwrap_or(0);
                if dropped > 0 {
                    return dropped;
                }
            }
        }
        0
    }

    /// The next JSON text frame, skipping control frames and presence announcements
    /// (which arrive asynchronously after joins; tests of presence use [`Self::recv_any`]).
    pub async fn recv(&mut self) -> Value {
        loop {
            let frame = self.recv_any().await;
            if frame["type"] != "presence" {
                return frame;
            }
        }
    }

    /// The next JSON text frame (control frames skipped).
    pub async fn recv_any(&mut self) -> Value {
        loop {
            let msg = timeout(WAIT, self.stream.next())
                .await
                .expect("ws frame in time")
                .expect("ws open")
                .expect("ws frame");
            match msg {
                WsMessage::Text(text) => return serde_json::from_str(&text).expect("JSON frame"),
                WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// The next frame matching `pred`, presence frames included (others skipped).
    pub async fn recv_any_where(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        loop {
            let v = self.recv_any().await;
            if pred(&v) {
                return v;
            }
        }
    }

    /// The next frame of `type` == `kind` (others skipped).
    pub async fn recv_type(&mut self, kind: &str) -> Value {
        loop {
            let v = self.recv().await;
            if v["type"] == kind {
                return v;
            }
        }
    }

    /// Reads until the connection ends; returns the close code when a close frame could
    /// be read (a client with unsent pongs may hit a reset before it).
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            let msg = timeout(WAIT, self.stream.next())
                .await
                .expect("end in time");
            match msg {
                Some(Ok(WsMessage::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                None | Some(Err(_)) => return None,
            }
        }
    }

    /// Reads until the server's close frame and returns its code.
    pub async fn expect_close(&mut self) -> u16 {
        loop {
            let msg = timeout(WAIT, self.stream.next())
                .await
                .expect("close in time");
            match msg {
                Some(Ok(WsMessage::Close(frame))) => {
                    return frame
                        .map(|f| u16::from(f.code))
                        .unwrap_or(u16::from(CloseCode::Status))
                }
                Some(Ok(_)) => continue,
                other => panic!("connection ended without a close frame: {other:?}"),
            }
        }
    }
}

/// The built `chatwire` binary running as a child process on a free loopback port.
pub struct ServerProcess {
    pub addr: SocketAddr,
    child: Child,
    /// Every line the process wrote to stdout so far.
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// The message log made for it, kept as long as it runs.
    _database: Option<TestDatabase>,
}

/// A message log a fixture made for a server that named none.
pub enum TestDatabase {
    /// The folder of its SQLite file.
    Sqlite(db::TempDir),
    /// Its PostgreSQL schema (shared by a cluster's pods).
    Postgres(std::sync::Arc<db::PgSchema>),
}

/// The message log for a server started with `env` and no DATABASE_URL: an SQLite file
/// of its own on one node; with REDIS_URL, the schema of that test Redis server's
/// cluster (or one of its own for a Redis URL no test server made).
pub fn database_for(env: &[(&str, &str)]) -> Option<(String, TestDatabase)> {
    if env
        .iter()
        .any(|(k, _)| *k == "DATABASE_URL" || *k == "DATA_DIR")
    {
        return None;
    }
    let redis = env
        .iter()
        .find(|(k, v)| *k == "REDIS_URL" && !v.is_empty())
        .map(|(_, v)| *v);
    match redis {
        None => {
            let dir = db::TempDir::new();
            Some((dir.sqlite_url("chatwire.db"), TestDatabase::Sqlite(dir)))
        }
        Some(redis) => {
            let schema = db::cluster_schema(redis)
                .or_else(|| db::PgSchema::create().map(std::sync::Arc::new))
                .expect("PostgreSQL is needed for a server with REDIS_URL");
            Some((schema.url(), TestDatabase::Postgres(schema)))
        }
    }
}

impl ServerProcess {
    /// Starts the binary with `env` on top of a loopback, port-0 environment and waits
    /// for its "listening" log line. Without DATABASE_URL it gets one ([`database_for`]).
    pub async fn spawn(env: &[(&str, &str)]) -> Self {
        let database = database_for(env);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_chatwire"));
        cmd.env_clear()
            .env("HOST", "127.0.0.1")
            .env("PORT", "0")
            .env("LOG_FORMAT", "text")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .envs(TEST_ENV.iter().copied())
            .envs(env.iter().copied())
            .envs(
                database
                    .as_ref()
                    .map(|(url, _)| ("DATABASE_URL", url.as_str())),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn chatwire");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = log.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                // `addr=1.2.3.4:5` in text logs, `"addr":"1.2.3.4:5"` in JSON logs.
                let found = line
                    .split("addr=")
                    .nth(1)
                    .or_else(|| line.split("\"addr\":\"").nth(1))
                    .and_then(|rest| rest.split([' ', '"']).next())
                    .map(str::to_owned);
                if let Some(addr) = found {
                    let _ = tx.send(addr);
                }
                if let Ok(mut log) = sink.lock() {
                    log.push(line);
                }
            }
        });
        let addr = timeout(WAIT, rx.recv())
            .await
            .expect("chatwire logged its address in time")
            .expect("chatwire exited before listening")
            .parse()
            .expect("socket address");
        Self {
            addr,
            child,
            log,
            _database: database.map(|(_, db)| db),
        }
    }

    /// Waits until a log line contains `needle` and returns it.
    pub async fn log_line(&self, needle: &str) -> String {
        until(&format!("a log line with {needle:?}"), WAIT, || async {
            self.log
                .lock()
                .ok()
                .and_then(|log| log.iter().find(|l| l.contains(needle)).cloned())
        })
        .await
    }

    /// How many log lines so far contain `needle`.
    pub fn count_lines(&self, needle: &str) -> usize {
        self.log
            .lock()
            .map_or(0, |log| log.iter().filter(|l| l.contains(needle)).count())
    }

    pub fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// Sends `signal` (e.g. "TERM", "KILL") to the process.
    pub async fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .await
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit and returns its exit code.
    pub async fn wait(&mut self, within: Duration) -> Option<i32> {
        timeout(within, self.child.wait())
            .await
            .expect("process exited in time")
            .expect("wait")
            .code()
    }
}

/// A program of the repo's Python virtualenv (`.venv/bin/<name>`, which scripts/test
/// makes) when it is there, else `<name>` from PATH.
pub fn venv_program(name: &str) -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".venv/bin")
        .join(name);
    if venv.exists() {
        venv
    } else {
        PathBuf::from(name)
    }
}

/// A `redis-server` of the test's own on a free loopback port; it can be killed and
/// restarted on the same port. Never touches the machine's shared Redis.
pub struct RedisServer {
    pub port: u16,
    child: Option<Child>,
}

impl RedisServer {
    /// Starts one, or returns `None` (after saying so loudly) when `redis-server` is not
    /// installed. Under `CI=true` a missing `redis-server` fails the test.
    pub async fn start() -> Option<Self> {
        let found = std::process::Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "redis-server is not installed: CI needs it for the scale-out tests (apt-get install redis-server)"
            );
            eprintln!("SKIPPED: redis-server is not installed; scale-out tests need it");
            return None;
        }
        // A free port may be taken by someone else before redis-server binds it: then
        // redis-server exits at once, and another port is tried.
        // Its cluster's message log: a PostgreSQL schema (pods with REDIS_URL need one).
        let schema = db::PgSchema::create()?;
        for _ in 0..5 {
            let mut server = Self {
                port: free_port().await,
                child: None,
            };
            if server.launch().await {
                db::register_cluster(&server.port.to_string(), schema);
                return Some(server);
            }
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    /// The `DATABASE_URL` the pods of this server's cluster share.
    pub fn database_url(&self) -> String {
        db::cluster_schema(&self.url())
            .expect("the cluster's schema")
            .url()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Starts the server (again) on its port and waits until it answers PING.
    pub async fn restart(&mut self) {
        assert!(
            self.launch().await,
            "redis-server did not start again on its port"
        );
    }

    /// Starts redis-server on `self.port`; `false` when it exited before answering PING.
    async fn launch(&mut self) -> bool {
        assert!(self.child.is_none(), "redis-server already running");
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--protected-mode", "no"])
            .args(["--loglevel", "warning", "--enable-debug-command", "local"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn redis-server");
        let mut child = child;
        let url = self.url();
        let answered = poll_until(WAIT, || {
            let exited = matches!(child.try_wait(), Ok(Some(_)));
            let url = url.clone();
            async move {
                if exited {
                    return Some(false);
                }
                let client = redis::Client::open(url).ok()?;
                let mut conn = client.get_multiplexed_async_connection().await.ok()?;
                let pong = redis::cmd("PING").query_async::<String>(&mut conn).await;
                pong.is_ok().then_some(true)
            }
        })
        .await;
        self.child = Some(child);
        match answered {
            Some(true) => true,
            Some(false) => {
                self.child = None;
                false
            }
            None => panic!("redis-server did not answer PING within {WAIT:?}"),
        }
    }

    /// SIGKILLs the server and waits for it to be gone.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.expect("kill redis-server");
        }
    }

    /// The cluster's message log schema.
    pub fn schema(&self) -> std::sync::Arc<db::PgSchema> {
        db::cluster_schema(&self.url()).expect("the cluster's schema")
    }

    /// A plain connection for inspecting the server.
    pub async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        redis::Client::open(self.url())?
            .get_multiplexed_async_connection()
            .await
    }

    /// Number of subscribers (pods) of `channel`.
    pub async fn numsub(&self, channel: &str) -> u64 {
        let mut conn = self.connection().await.expect("redis connection");
        let (_, n): (String, u64) = redis::cmd("PUBSUB")
            .arg("NUMSUB")
            .arg(channel)
            .query_async(&mut conn)
            .await
            .expect("PUBSUB NUMSUB");
        n
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        db::forget_cluster(&self.port.to_string());
    }
}

/// A free TCP port on 127.0.0.1.
pub async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Starts `n` chatwire processes against `redis_url` and waits until each reports Redis up.
pub async fn start_pods(n: usize, redis_url: &str, env: &[(&str, &str)]) -> Vec<ServerProcess> {
    let mut pods = Vec::new();
    for _ in 0..n {
        let mut all = vec![("REDIS_URL", redis_url)];
        all.extend_from_slice(env);
        pods.push(ServerProcess::spawn(&all).await);
    }
    for pod in &pods {
        wait_for_health(pod.addr, |h| h["redis"] == "up").await;
    }
    pods
}

impl ServerProcess {
    pub fn http_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }
}

impl RedisServer {
    /// Sends `signal` (e.g. "STOP", "CONT") to the redis-server process.
    pub async fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .expect("redis-server running");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .await
            .expect("kill");
        assert!(status.success());
    }
}

/// Checks one receiver's stream of chat messages in `room`: every other sender's
/// `per_sender` messages (content `sender#seq`) once each, in order, none of its own.
pub fn check_stream(
    who: &str,
    own: &str,
    received: &[Value],
    senders: &[&str],
    per_sender: usize,
    room: &str,
) {
    let mut ids = HashSet::new();
    let mut next: HashMap<String, usize> = HashMap::new();
    for msg in received {
        let id = msg["id"].as_str().unwrap_or_default().to_string();
        assert!(ids.insert(id), "{who}: duplicate {msg}");
        assert_eq!(msg["room"], room, "{who}: {msg}");
        let content = msg["data"]["content"].as_str().unwrap_or_default();
        let (sender, seq) = content.split_once('#').expect("sender#seq");
        assert_ne!(sender, own, "{who} received its own message");
        let expected = next.entry(sender.to_string()).or_default();
        assert_eq!(
            seq.parse::<usize>().ok(),
            Some(*expected),
            "{who}: {sender} out of order"
        );
        *expected += 1;
    }
    for s in senders.iter().filter(|s| **s != own) {
        assert_eq!(
            next.get(*s).copied(),
            Some(per_sender),
            "{who}: messages from {s}"
        );
    }
}

/// Token minting for the auth tests.
pub mod tokens {
    use base64::Engine;
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    use serde_json::{json, Value};

    pub const SECRET: &str = "test-secret-that-is-long-enough-for-hs256";

    pub fn fixture(name: &str) -> String {
        format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    fn now() -> u64 {
        chatwire::gate::unix_now()
    }

    /// Claims for `sub` valid for an hour, plus `extra`.
    pub fn claims(sub: &str, extra: Value) -> Value {
        let mut c = json!({ "sub": sub, "name": format!("{sub} name"), "exp": now() + 3600 });
        if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                c.insert(k.clone(), v.clone());
            }
        }
        c
    }

    pub fn now_plus(secs: i64) -> u64 {
        (now() as i64 + secs) as u64
    }

    pub fn hs256(secret: &str, claims: &Value) -> String {
        encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("encode")
    }

    pub fn rs256(claims: &Value) -> String {
        let pem = std::fs::read(fixture("rsa_private.pem")).expect("key");
        let key = EncodingKey::from_rsa_pem(&pem).expect("rsa key");
        encode(&Header::new(Algorithm::RS256), claims, &key).expect("encode")
    }

    pub fn es256(claims: &Value) -> String {
        let pem = std::fs::read(fixture("ec_private.pem")).expect("key");
        let key = EncodingKey::from_ec_pem(&pem).expect("ec key");
        encode(&Header::new(Algorithm::ES256), claims, &key).expect("encode")
    }

    /// The classic confusion attack: HS256 keyed with the server's RSA public key.
    pub fn hs256_with_public_key(claims: &Value) -> String {
        let pem = std::fs::read(fixture("rsa_public.pem")).expect("key");
        encode(
            &Header::new(Algorithm::HS256),
            claims,
            &EncodingKey::from_secret(&pem),
        )
        .expect("encode")
    }

    /// An unsigned token (`alg: none`).
    pub fn alg_none(claims: &Value) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = b64.encode(claims.to_string());
        format!("{header}.{payload}.")
    }
}

/// `GET path` with extra headers; returns status and the whole raw response.
pub async fn http_get_with(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    http_request(addr, "GET", path, headers, "").await
}

/// The one bounded poll of the tests, for state that changes without an event to
/// await: runs `check` every 20 ms until it gives a value, for at most `within`.
pub async fn poll_until<T, F, Fut>(within: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// [`poll_until`], failing the test with `what` when `within` passes first.
pub async fn until<T, F, Fut>(what: &str, within: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    poll_until(within, check)
        .await
        .unwrap_or_else(|| panic!("not within {within:?}: {what}"))
}

/// [`until`] for a condition.
pub async fn eventually<F, Fut>(what: &str, within: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    until(what, within, || {
        let holds = check();
        async move { holds.await.then_some(()) }
    })
    .await;
}

impl SioClient {
    /// Emits `event` asking for an ack without waiting for it; returns the ack number that
    /// the later `{"type":"ack","ack":N,...}` (or `ack_timeout`) line carries.
    pub async fn emit_ack_later(&mut self, event: &str, args: Value) -> u64 {
        self.next_ack += 1;
        let id = self.next_ack;
        self.write(json!({ "op": "emit", "event": event, "args": args, "ack": id }))
            .await;
        id
    }

    /// The next line in arrival order (queued ones first); `None` once the node process
    /// exited. No deadline of its own: the caller bounds it. Cancel-safe.
    pub async fn next_line(&mut self) -> Option<Value> {
        if let Some(line) = self.pending.pop_front() {
            return Some(line);
        }
        self.lines.recv().await
    }
}

/// Sends a raw `system` request (`data` with `request_id` added) and returns the `data`
/// of its reply (or error frame), skipping the frames before it.
pub async fn request(client: &mut WsClient, request_id: &str, mut data: Value) -> Value {
    data["request_id"] = json!(request_id);
    client
        .send_json(json!({ "type": "system", "data": data }))
        .await;
    let reply = client
        .recv_any_where(|f| f["data"]["request_id"] == request_id)
        .await;
    reply["data"].clone()
}
