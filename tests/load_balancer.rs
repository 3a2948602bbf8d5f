//! socket.io behind a round-robin load balancer without sticky sessions (POD_URL): a
//! balancer made here sends each HTTP request (not each connection) to the next pod,
//! so a polling session's requests land on both pods; the pod that does not own the
//! session forwards them to the one that does. Real socket.io clients on
//! `@chatwire/client` (`clients/js/test/lb-driver.mjs`), long-polling only and
//! polling then upgrading to WebSocket, chat through it: no error answer, every message
//! to every client once and in order; then one pod is killed and its sessions come back
//! on the other, recovering what they missed.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use common::{free_port, until, JsonLines, RedisServer, ServerProcess, WAIT};
use hyper::body::Incoming;
use hyper::header::UPGRADE;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::timeout;

/// A round-robin HTTP load balancer: every request goes to the next backend in turn,
/// with no affinity of any kind; WebSocket upgrades are tunnelled to the backend that
/// accepted them. A backend that refuses the TCP connection is skipped for that
/// request (as a balancer's health check would take it out).
struct Balancer {
    addr: SocketAddr,
    stats: Arc<BalancerStats>,
    accept: JoinHandle<()>,
}

#[derive(Default)]
struct BalancerStats {
    /// Answers by status code.
    statuses: Mutex<BTreeMap<u16, u64>>,
    /// Requests each backend answered.
    answered_by: Mutex<BTreeMap<usize, u64>>,
    /// A request and the error answer it got, for failure messages.
    errors: Mutex<Vec<String>>,
}

impl Balancer {
    async fn start(backends: Vec<SocketAddr>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let stats = Arc::new(BalancerStats::default());
        let client: Client<HttpConnector, Body> =
            Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        let next = Arc::new(AtomicUsize::new(0));
        let backends = Arc::new(backends);
        let state = (stats.clone(), client, next, backends);
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = state.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let (stats, client, next, backends) = state.clone();
                        async move {
                            Ok::<_, std::convert::Infallible>(
                                balance(req, &stats, &client, &next, &backends).await,
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Self {
            addr,
            stats,
            accept,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn statuses(&self) -> BTreeMap<u16, u64> {
        self.stats.statuses.lock().expect("stats").clone()
    }

    fn answered_by(&self) -> BTreeMap<usize, u64> {
        self.stats.answered_by.lock().expect("stats").clone()
    }

    fn errors(&self) -> Vec<String> {
        self.stats.errors.lock().expect("stats").clone()
    }
}

impl Drop for Balancer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn balance(
    mut req: Request<Incoming>,
    stats: &BalancerStats,
    client: &Client<HttpConnector, Body>,
    next: &AtomicUsize,
    backends: &[SocketAddr],
) -> Response<Body> {
    let upgrade = req.headers().contains_key(UPGRADE);
    let downstream = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (parts, body) = req.into_parts();
    // Test bodies are small: read whole, so a refused backend's request can go on.
    let body = match http_body_util::BodyExt::collect(body).await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return answer(stats, None, "-", simple(StatusCode::BAD_REQUEST)),
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let first = next.fetch_add(1, Ordering::Relaxed);
    for turn in 0..backends.len() {
        let at = (first + turn) % backends.len();
        let mut sent = Request::from_parts(parts.clone(), Body::from(body.clone()));
        *sent.uri_mut() = format!("http://{}{path}", backends[at])
            .parse::<Uri>()
            .expect("backend uri");
        match client.request(sent).await {
            Ok(mut response) => {
                if let (Some(downstream), StatusCode::SWITCHING_PROTOCOLS) =
                    (downstream, response.status())
                {
                    let upstream = hyper::upgrade::on(&mut response);
                    tokio::spawn(async move {
                        if let (Ok(down), Ok(up)) = tokio::join!(downstream, upstream) {
                            let (mut down, mut up) = (TokioIo::new(down), TokioIo::new(up));
                            let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                        }
                    });
                    return answer(stats, Some(at), &path, response.map(Body::new));
                }
                return answer(stats, Some(at), &path, response.map(Body::new));
            }
            Err(e) if e.is_connect() => continue, // Down: the next one.
            Err(_) => return answer(stats, Some(at), &path, simple(StatusCode::BAD_GATEWAY)),
        }
    }
    answer(stats, None, &path, simple(StatusCode::BAD_GATEWAY))
}

fn simple(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}

fn answer(
    stats: &BalancerStats,
    backend: Option<usize>,
    path: &str,
    response: Response<Body>,
) -> Response<Body> {
    let status = response.status().as_u16();
    *stats
        .statuses
        .lock()
        .expect("stats")
        .entry(status)
        .or_default() += 1;
    if let Some(at) = backend {
        *stats
            .answered_by
            .lock()
            .expect("stats")
            .entry(at)
            .or_default() += 1;
    }
    if status >= 400 {
        stats
            .errors
            .lock()
            .expect("stats")
            .push(format!("{status} from backend {backend:?}: {path}"));
    }
    response
}

/// `lb-driver.mjs`: the chatting clients, line by line.
struct Driver {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<Value>,
    seen: Vec<Value>,
}

impl Driver {
    async fn start(options: Value) -> Self {
        let package = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("clients/js");
        assert!(
            package.join("dist/index.js").exists(),
            "the driver runs on the client package: run `npm ci --prefix clients/js && \
             npm run build --prefix clients/js` (scripts/test does it)"
        );
        let script = package.join("test/lb-driver.mjs");
        let (child, stdin, lines) = JsonLines::spawn(
            Command::new("node")
                .arg(script)
                .arg(options.to_string())
                .stderr(Stdio::inherit()),
        );
        Self {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        }
    }

    async fn tell(&mut self, op: &str) {
        self.command(json!({ "op": op })).await;
    }

    async fn command(&mut self, cmd: Value) {
        let line = format!("{cmd}\n");
        self.stdin
            .write_all(line.as_bytes())
            .await
            .expect("write to the driver");
        self.stdin.flush().await.expect("flush");
    }

    /// The next line of `type` `kind`, within `within`; other lines are kept for
    /// failure messages.
    async fn next_of(&mut self, kind: &str, within: Duration) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.recv())
                .await
                .unwrap_or_else(|_| panic!("no {kind} within {within:?}; lines: {:?}", self.seen))
                .unwrap_or_else(|| panic!("the driver exited; lines: {:?}", self.seen));
            if line["type"] == kind {
                return line;
            }
            self.seen.push(line);
        }
    }
}

/// Each client's received messages, checked against the room's history: every
/// message once, in offset order, the same at every client.
fn check_received(received: &[Value], stored: &[(u64, String)], acked: &[Value]) {
    assert!(!stored.is_empty(), "nothing was stored");
    let stored_ids: Vec<&str> = stored.iter().map(|(_, id)| id.as_str()).collect();
    let offsets: Vec<u64> = stored.iter().map(|(o, _)| *o).collect();
    let expected: Vec<u64> = (1..=stored.len() as u64).collect();
    assert_eq!(
        offsets, expected,
        "the room's offsets run 1..N without a gap"
    );
    for acked in acked {
        let id = acked["id"].as_str().expect("acked id");
        assert!(
            stored_ids.contains(&id),
            "acked {acked} is not in the room's history"
        );
    }
    let pairs = |list: &Value| -> Vec<(u64, String)> {
        list.as_array()
            .expect("a list")
            .iter()
            .map(|m| {
                (
                    m[0].as_u64().expect("offset"),
                    m[1].as_str().expect("id").to_owned(),
                )
            })
            .collect()
    };
    for client in received {
        let live = pairs(&client["messages"]);
        assert!(
            live.windows(2).all(|w| w[0].0 < w[1].0),
            "client {} ({}) got its messages in offset order, each once: {live:?}",
            client["client"],
            client["transports"]
        );
        // Its own messages come as acks, not as `message:new`.
        let mut got = live;
        got.extend(pairs(&client["own"]));
        got.sort();
        assert_eq!(
            got.len(),
            stored.len(),
            "client {} ({}) got {} of the {} stored messages",
            client["client"],
            client["transports"],
            got.len(),
            stored.len()
        );
        assert_eq!(
            got, stored,
            "client {} ({}) got every stored message once, in order",
            client["client"], client["transports"]
        );
    }
}

/// The room's history as `(offset, id)`, oldest first, read from `pod` page by page.
async fn history(pod: &ServerProcess, room: &str) -> Vec<(u64, String)> {
    let mut all = Vec::new();
    let mut before: Option<u64> = None;
    loop {
        let path = match before {
            Some(b) => format!("/api/rooms/{room}/messages?limit=100&before={b}"),
            None => format!("/api/rooms/{room}/messages?limit=100"),
        };
        let (status, body) = common::http_get(pod.addr, &path).await;
        assert_eq!(status, 200, "{body}");
        let page: Value = serde_json::from_str(&body).expect("history json");
        let messages = page["messages"].as_array().expect("messages").clone();
        if messages.is_empty() {
            break;
        }
        for m in &messages {
            all.push((
                m["offset"].as_u64().expect("offset"),
                m["id"].as_str().expect("id").to_owned(),
            ));
        }
        let oldest = messages.iter().filter_map(|m| m["offset"].as_u64()).min();
        match oldest {
            Some(o) if o > 1 => before = Some(o),
            _ => break,
        }
    }
    all.sort();
    all.dedup();
    all
}

/// Two pods with POD_URL on ports picked here, behind a [`Balancer`].
async fn pods_behind_a_balancer(redis: &RedisServer) -> (Vec<ServerProcess>, Balancer) {
    let mut pods = Vec::new();
    for _ in 0..2 {
        let port = free_port().await.to_string();
        let pod_url = format!("http://127.0.0.1:{port}");
        let redis_url = redis.url();
        let env = [
            ("REDIS_URL", redis_url.as_str()),
            ("PORT", port.as_str()),
            ("POD_URL", pod_url.as_str()),
        ];
        pods.push(ServerProcess::spawn(&env).await);
    }
    for pod in &pods {
        common::wait_for_health(pod.addr, |h| h["redis"] == "up").await;
        pod.log_line("POD_URL advertised").await;
    }
    let balancer = Balancer::start(pods.iter().map(|p| p.addr).collect()).await;
    (pods, balancer)
}

/// How long the clients chat before a pod is killed, and after.
const STEADY_FOR: Duration = Duration::from_secs(40);
const AFTER_KILL_FOR: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_chats_through_a_round_robin_balancer_without_sticky_sessions() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (mut pods, balancer) = pods_behind_a_balancer(&redis).await;
    let mut driver = Driver::start(json!({
        "url": balancer.url(),
        "room": "lb",
        "clients": [
            ["polling"], ["polling"], ["polling"],
            ["polling", "websocket"], ["polling", "websocket"], ["polling", "websocket"],
        ],
        "sendEveryMs": 400,
    }))
    .await;
    let ready = driver.next_of("ready", WAIT * 3).await;
    assert_eq!(
        ready["transports"],
        json!([
            "polling",
            "polling",
            "polling",
            "websocket",
            "websocket",
            "websocket"
        ]),
        "the upgrading clients upgraded through the balancer: {ready}"
    );
    driver.tell("send").await;
    tokio::time::sleep(STEADY_FOR).await;
    driver.tell("pause").await;
    let paused = driver.next_of("paused", WAIT * 2).await;
    let steady = history(&pods[0], "lb").await;
    assert!(
        steady.len() >= 200,
        "{} messages in the steady run",
        steady.len()
    );
    let statuses = balancer.statuses();
    assert!(
        balancer.errors().is_empty(),
        "no error answer while both pods run: {:?} ({statuses:?})",
        balancer.errors()
    );
    let answered = balancer.answered_by();
    assert!(
        answered.get(&0) > Some(&100) && answered.get(&1) > Some(&100),
        "both pods got requests: {answered:?}"
    );
    assert_eq!(
        paused["disconnects"], 0,
        "no client lost its session: {paused}"
    );
    let forwarded = |pod: &ServerProcess| {
        let addr = pod.addr;
        async move {
            let (_, metrics) = common::http_get(addr, "/metrics").await;
            metrics
                .lines()
                .find(|l| {
                    l.starts_with("chatwire_session_forwards_total") && l.contains("\"forwarded\"")
                })
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|n| n.parse::<f64>().ok())
                .unwrap_or(0.0)
        }
    };
    let hops = forwarded(&pods[0]).await + forwarded(&pods[1]).await;
    assert!(
        hops >= 100.0,
        "requests were forwarded to their session's pod: {hops}"
    );
    driver
        .command(json!({ "op": "report", "upTo": steady.len() }))
        .await;
    let received = driver.next_of("received", WAIT * 3).await;
    check_received(
        received["clients"].as_array().expect("clients"),
        &steady,
        paused["acked"].as_array().expect("acked"),
    );

    // One pod dies mid-run: its sessions open again on the other and recover.
    driver.tell("send").await;
    // Killed while the clients are sending: once 20 more messages are stored.
    until("sending again", WAIT, || async {
        (history(&pods[0], "lb").await.len() >= steady.len() + 20).then_some(())
    })
    .await;
    pods[1].signal("KILL").await;
    pods[1].wait(WAIT).await;
    tokio::time::sleep(AFTER_KILL_FOR).await;
    driver.tell("pause").await;
    let paused = driver.next_of("paused", WAIT * 3).await;
    let all = history(&pods[0], "lb").await;
    assert!(
        all.len() > steady.len() + 50,
        "{} then {}",
        steady.len(),
        all.len()
    );
    driver
        .command(json!({ "op": "report", "upTo": all.len() }))
        .await;
    let received = driver.next_of("received", WAIT * 3).await;
    check_received(
        received["clients"].as_array().expect("clients"),
        &all,
        paused["acked"].as_array().expect("acked"),
    );
    let moved = paused["reconnected"].as_u64().expect("reconnected");
    assert!(
        moved > 0,
        "some sessions were on the killed pod and came back: {paused}"
    );
    eprintln!(
        "through the balancer: {} messages before the kill, {} in all; {hops} hops; \
         answers {:?}; {moved} sessions moved after the kill",
        steady.len(),
        all.len(),
        balancer.statuses()
    );
    driver.tell("close").await;
    let _ = timeout(WAIT, driver.child.wait()).await;
    until("the survivor still serves", WAIT, || async {
        (common::health(pods[0].addr).await["status"] == "ok").then_some(())
    })
    .await;
}

/// The session id in a polling handshake's open packet.
async fn open_session(pod: &ServerProcess) -> String {
    let (status, body) = common::http_get(pod.addr, "/socket.io/?EIO=4&transport=polling").await;
    assert_eq!(status, 200, "{body}");
    let open: Value = serde_json::from_str(body.strip_prefix('0').expect("open packet"))
        .expect("open packet json");
    open["sid"].as_str().expect("sid").to_owned()
}

/// A polling session of `owner` whose namespace CONNECT went through `other`: its id
/// and its polling path.
async fn connected_through(owner: &ServerProcess, other: &ServerProcess) -> (String, String) {
    let sid = open_session(owner).await;
    let poll = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let (status, raw) = common::http_request(other.addr, "POST", &poll, &[], "40").await;
    assert_eq!(status, 200, "{raw}");
    // The CONNECT answer, perhaps after a ping (answered) in an earlier poll.
    for _ in 0..3 {
        let (status, answer) = common::http_get(other.addr, &poll).await;
        assert_eq!(status, 200, "a poll through the other pod: {answer}");
        if answer.contains("40{\"sid\"") {
            return (sid, poll);
        }
        assert!(
            answer.split('\u{1e}').all(|p| p == "2"),
            "only pings before it: {answer}"
        );
        let (status, raw) = common::http_request(other.addr, "POST", &poll, &[], "3").await;
        assert_eq!(status, 200, "{raw}");
    }
    panic!("no namespace CONNECT answer through the other pod");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_looping_and_dead_session_tags_get_unknown_session() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (mut pods, _balancer) = pods_behind_a_balancer(&redis).await;
    // The other pod forwards it: the CONNECT packet goes to pod 0 and its answer comes back.
    let (sid, _) = connected_through(&pods[0], &pods[1]).await;
    let (own, tag) = sid.rsplit_once('.').expect("a tagged session id");
    assert_eq!((own.len(), tag.len()), (16, 12), "{sid}");
    let poll = |sid: &str| format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    let unknown = |(status, raw): (u16, String)| {
        assert_eq!(status, 400, "{raw}");
        assert!(raw.contains("Session ID unknown"), "{raw}");
    };

    // A tag no pod advertises, and the same session with its tag cut off or changed.
    unknown(
        common::http_request(
            pods[1].addr,
            "GET",
            &poll(&format!("{own}.0123456789ab")),
            &[],
            "",
        )
        .await,
    );
    unknown(
        common::http_request(
            pods[1].addr,
            "GET",
            &poll(&format!("{own}.{tag}.{tag}")),
            &[],
            "",
        )
        .await,
    );
    // Sent on by another pod already: never a second hop (no loops).
    let hop = [("X-Chatwire-Forwarded-By", "0123456789ab")];
    unknown(common::http_request(pods[1].addr, "GET", &poll(&sid), &hop, "").await);

    // Its pod killed: the session is gone, and the other pod says so at once.
    pods[0].signal("KILL").await;
    pods[0].wait(WAIT).await;
    unknown(common::http_request(pods[1].addr, "GET", &poll(&sid), &[], "").await);
    let (_, metrics) = common::http_get(pods[1].addr, "/metrics").await;
    for outcome in ["forwarded", "unknown_pod", "refused_hop", "unreachable"] {
        assert!(
            metrics.contains(&format!(
                "chatwire_session_forwards_total{{outcome=\"{outcome}\"}}"
            )),
            "{outcome} counted:\n{metrics}"
        );
    }
    assert_eq!(common::health(pods[1].addr).await["status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_upgrades_to_websocket_through_the_pod_that_does_not_own_it() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (pods, _balancer) = pods_behind_a_balancer(&redis).await;
    let (sid, _) = connected_through(&pods[0], &pods[1]).await;

    // The upgrade goes through pod 1 to pod 0, which owns the session.
    let url = format!(
        "ws://{}/socket.io/?EIO=4&transport=websocket&sid={sid}",
        pods[1].addr
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade through pod 1");
    ws.send(Message::text("2probe")).await.expect("probe");
    let next_text = async |ws: &mut tokio_tungstenite::WebSocketStream<_>| loop {
        match timeout(WAIT, ws.next()).await.expect("a frame in time") {
            Some(Ok(Message::Text(t))) => return t.as_str().to_owned(),
            Some(Ok(_)) => continue,
            other => panic!("the tunnel ended: {other:?}"),
        }
    };
    assert_eq!(next_text(&mut ws).await, "3probe");
    ws.send(Message::text("5")).await.expect("upgrade");
    ws.send(Message::text("420[\"room:join\",{\"room\":\"tunnel\"}]"))
        .await
        .expect("join");
    // The join's answer (its presence announcement may come first).
    let acked = loop {
        let text = next_text(&mut ws).await;
        if text.starts_with("430") {
            break text;
        }
    };
    assert!(acked.contains("\"status\":\"ok\""), "{acked}");
    drop(ws);

    // A made-up session of a live pod: the owner refuses or closes it, and pod 1 ends its
    // side of the tunnel too (it does not wait for the client to hang up).
    let tag = sid.rsplit_once('.').expect("tagged").1;
    let fake = format!(
        "ws://{}/socket.io/?EIO=4&transport=websocket&sid=AAAAAAAAAAAAAAAA.{tag}",
        pods[1].addr
    );
    if let Ok((mut ws, _)) = tokio_tungstenite::connect_async(fake).await {
        loop {
            match timeout(WAIT, ws.next())
                .await
                .expect("the fake session ends in time")
            {
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => continue,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_draining_with_a_forwarded_long_poll_still_drains_in_time() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let (mut pods, _balancer) = pods_behind_a_balancer(&redis).await;
    let (_, poll) = connected_through(&pods[0], &pods[1]).await;
    // Nothing to send: this poll waits on pod 0 (up to PING_INTERVAL) through pod 1.
    let addr = pods[1].addr;
    let waiting = tokio::spawn(async move { common::http_get(addr, &poll).await });
    until("the long poll is forwarded", WAIT, || async {
        let (_, metrics) = common::http_get(pods[1].addr, "/metrics").await;
        metrics
            .lines()
            .any(|l| l == "chatwire_session_forwards_in_flight 1")
            .then_some(())
    })
    .await;
    let draining = tokio::time::Instant::now();
    pods[1].signal("TERM").await;
    let (status, answer) = timeout(WAIT, waiting)
        .await
        .expect("the forwarded poll is answered when the drain starts")
        .expect("poll task");
    assert_eq!((status, answer.as_str()), (200, "6"), "a noop: poll again");
    assert_eq!(pods[1].wait(WAIT).await, Some(0), "exit 0 after the drain");
    assert!(
        draining.elapsed() < Duration::from_secs(8),
        "drained within SHUTDOWN_TIMEOUT: {:?}",
        draining.elapsed()
    );
    assert_eq!(
        pods[1].count_lines("drain did not finish"),
        0,
        "the drain finished, nothing cut short"
    );
    // The session itself lives on its pod.
    assert_eq!(common::health(pods[0].addr).await["status"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_rides_out_a_redis_pause_and_returns_after_a_redis_restart() {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let (pods, _balancer) = pods_behind_a_balancer(&redis).await;
    // Pod 1 has looked pod 0's address up once.
    let (_, poll) = connected_through(&pods[0], &pods[1]).await;

    // Redis stalls: the address pod 1 knows still routes pod 0's session.
    redis.signal("STOP").await;
    let (status, raw) = common::http_request(pods[1].addr, "POST", &poll, &[], "3").await;
    redis.signal("CONT").await;
    assert_eq!(status, 200, "forwarded while Redis was stalled: {raw}");

    // Redis restarts empty: both pods advertise again, and a pod that never looked the
    // other up finds it.
    redis.kill().await;
    redis.restart().await;
    until(
        "pod 0 forwards to pod 1 after the restart",
        WAIT,
        || async {
            let sid = open_session(&pods[1]).await;
            let path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
            let (status, _) = common::http_request(pods[0].addr, "POST", &path, &[], "40").await;
            (status == 200).then_some(())
        },
    )
    .await;
}
