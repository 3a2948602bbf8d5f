//! Faults between two pods and their own redis-server, under steady sequence-numbered
//! traffic: a socket.io and a raw WebSocket client on each pod, all four in one room, each
//! sending `name:seq` every [`PACE`] and recording what the others send. Faults: Redis
//! paused (SIGSTOP) for 3 s and for 15 s, Redis killing the pods' pub/sub connections,
//! Redis killed and restarted, and the pod-to-Redis link blackholed by a TCP proxy.
//!
//! Whatever the fault: no duplicate and no reordering at any receiver; no message whose
//! `message:send` ack was ok and not degraded is lost anywhere; same-pod delivery never
//! misses a message; cross-pod delivery is back within [`RESUME_LIMIT`] of the fault's
//! end; both pods answer `/health` throughout; `/ready` is 503 while Redis is down and
//! 200 again after recovery, and a pod that says it is ready publishes (no degraded ack).
//! Each test prints its numbers (one table row) with eprintln.

mod common;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::proxy::Proxy;
use common::{start_pods, RedisServer, SioClient, WsClient};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio::time::{interval, timeout, Instant, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_util::sync::CancellationToken;

/// The room every client is in.
const ROOM: &str = "F";
/// Each sender sends one message this often.
const PACE: Duration = Duration::from_millis(50);
/// Steady traffic before the fault.
const BEFORE: Duration = Duration::from_secs(2);
/// Traffic after the fault ends (longer than RESUME_LIMIT, so resumption shows).
const AFTER: Duration = Duration::from_secs(7);
/// Cross-pod delivery must be back this soon after the fault ends.
const RESUME_LIMIT: Duration = Duration::from_secs(5);
/// How long, at most, the tail of the traffic may take to arrive after sending stopped.
const DRAIN: Duration = Duration::from_secs(12);
/// A pod must know Redis is down this long into an outage (REDIS_TIMEOUT 1 s for the
/// PING + 1 s heartbeat period + 1 s slack for a loaded machine).
const DETECT: Duration = Duration::from_secs(3);
/// `CLIENT KILL TYPE pubsub` rounds, and the pause between them.
const KILL_ROUNDS: usize = 4;
const KILL_GAP: Duration = Duration::from_millis(1500);
/// How often /ready and /health are asked.
const SAMPLE: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// SIGSTOP for the duration, then SIGCONT.
    Pause(Duration),
    /// `CLIENT KILL TYPE pubsub`, [`KILL_ROUNDS`] times.
    KillPubsub,
    /// SIGKILL, down for the duration, started again on the same port.
    Restart(Duration),
    /// The proxy between the pods and Redis moves no bytes for the duration.
    Blackhole(Duration),
}

impl Fault {
    fn name(self) -> String {
        match self {
            Fault::Pause(d) => format!("pause {}s", d.as_secs()),
            Fault::KillPubsub => format!("kill pubsub x{KILL_ROUNDS}"),
            Fault::Restart(d) => format!("restart ({}s down)", d.as_secs()),
            Fault::Blackhole(d) => format!("blackhole {}s", d.as_secs()),
        }
    }

    /// How long Redis is unreachable, when it is for a while.
    fn outage(self) -> Option<Duration> {
        match self {
            Fault::Pause(d) | Fault::Restart(d) | Fault::Blackhole(d) => Some(d),
            Fault::KillPubsub => None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_paused_3s() {
    run(Fault::Pause(Duration::from_secs(3))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_paused_15s() {
    run(Fault::Pause(Duration::from_secs(15))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_kills_pubsub_connections() {
    run(Fault::KillPubsub).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted() {
    run(Fault::Restart(Duration::from_secs(3))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_to_redis_link_blackholed() {
    run(Fault::Blackhole(Duration::from_secs(6))).await;
}

/// Pub/sub is at most once: a push on its way to a pod when the pod's connection dies is
/// gone, though the sender's ack said ok. Here deterministically: pod A's link goes
/// through the proxy, which holds the push and then closes the connection. Once A is
/// back it must deliver the message (from the room's history), once, before newer ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_in_flight_when_a_pods_connection_dies_still_reaches_it() {
    let Some(redis) = RedisServer::start().await else {
        return;
    };
    let proxy = Proxy::start(redis.port).await;
    common::db::alias_cluster(proxy.port, redis.port);
    let pod_a = start_pods(1, &proxy.url(), &[]).await;
    let pod_b = start_pods(1, &redis.url(), &[]).await;
    let (mut a, _) = WsClient::connect(&pod_a[0].ws_url(&format!("/ws/{ROOM}"))).await;
    let mut b = SioClient::connect(&pod_b[0].http_url(), "websocket").await;
    b.join(ROOM).await;
    common::eventually("both pods subscribed to the room", common::WAIT, || async {
        redis.numsub(&format!("realtime:room:{ROOM}")).await >= 2
    })
    .await;
    let ack = b.send(Some(ROOM), "before").await;
    assert_eq!(ack["status"], "ok", "{ack}");
    assert_eq!(a.recv_type("chat").await["data"]["content"], "before");

    proxy.set_open(false);
    let ack = b.send(Some(ROOM), "in flight").await;
    assert_eq!(ack["status"], "ok", "{ack}");
    assert!(ack.get("degraded").is_none(), "stored and published: {ack}");
    proxy.cut();
    proxy.set_open(true);

    let got = a.recv_type("chat").await;
    assert_eq!(got["data"]["content"], "in flight", "{got}");
    common::wait_for_health(pod_b[0].addr, |h| h["redis"] == "up").await;
    common::wait_for_health(pod_a[0].addr, |h| h["redis"] == "up").await;
    let ack = b.send(Some(ROOM), "after").await;
    assert!(ack.get("degraded").is_none(), "{ack}");
    let got = a.recv_type("chat").await;
    assert_eq!(
        got["data"]["content"], "after",
        "no repeat, nothing else: {got}"
    );
}

/// What the ack of one socket.io `message:send` said.
#[derive(Clone, Debug, PartialEq)]
enum Ack {
    Ok,
    Degraded,
    Failed(String),
}

/// Everything the clients saw, shared by their tasks.
#[derive(Default)]
struct Log {
    /// Sender -> the time each seq was sent (index = seq).
    sent: HashMap<String, Vec<Instant>>,
    /// socket.io sender -> seq -> ack.
    acks: HashMap<String, HashMap<u64, Ack>>,
    /// Receiver -> (sender, seq, arrival) in arrival order.
    got: HashMap<String, Vec<(String, u64, Instant)>>,
    /// Anything a client saw that it never should (errors, disconnects, junk).
    trouble: Vec<String>,
}

type Shared = Arc<Mutex<Log>>;

fn lock(log: &Shared) -> std::sync::MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(|e| e.into_inner())
}

/// One /ready and /health answer of a pod.
struct Sample {
    at: Instant,
    ready: Option<u16>,
    health: Option<Value>,
}

/// Parses `name:seq`.
fn parse_content(content: &str) -> Option<(String, u64)> {
    let (name, seq) = content.split_once(':')?;
    Some((name.to_owned(), seq.parse().ok()?))
}

fn record_arrival(log: &Shared, receiver: &str, content: Option<&str>) {
    let mut log = lock(log);
    match content.and_then(parse_content) {
        Some((sender, seq)) => {
            log.got
                .entry(receiver.to_owned())
                .or_default()
                .push((sender, seq, Instant::now()));
        }
        None => log
            .trouble
            .push(format!("{receiver}: unexpected message {content:?}")),
    }
}

fn record_sent(log: &Shared, sender: &str, seq: u64) {
    let mut log = lock(log);
    let sent = log.sent.entry(sender.to_owned()).or_default();
    assert_eq!(sent.len() as u64, seq);
    sent.push(Instant::now());
}

/// A socket.io client that sends every PACE until `stop_sending` and records acks and
/// `message:new` events until `stop`.
async fn sio_task(
    mut client: SioClient,
    name: String,
    log: Shared,
    start: CancellationToken,
    stop_sending: CancellationToken,
    stop: CancellationToken,
) {
    start.cancelled().await;
    let mut tick = interval(PACE);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut sending = true;
    let mut seq = 0u64;
    let mut ack_seq: HashMap<u64, u64> = HashMap::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = stop_sending.cancelled(), if sending => sending = false,
            _ = tick.tick(), if sending => {
                record_sent(&log, &name, seq);
                let payload = json!([{ "room": ROOM, "content": format!("{name}:{seq}") }]);
                let ack = client.emit_ack_later("message:send", payload).await;
                ack_seq.insert(ack, seq);
                seq += 1;
            }
            line = client.next_line() => {
                let Some(line) = line else {
                    lock(&log).trouble.push(format!("{name}: node client exited"));
                    break;
                };
                match line["type"].as_str().unwrap_or_default() {
                    "ack" | "ack_timeout" => {
                        let Some(seq) = line["ack"].as_u64().and_then(|a| ack_seq.remove(&a)) else {
                            lock(&log).trouble.push(format!("{name}: stray ack {line}"));
                            continue;
                        };
                        let body = &line["args"][0];
                        let ack = if line["type"] == "ack_timeout" {
                            Ack::Failed("no ack in 10 s".to_owned())
                        } else if body["status"] != "ok" {
                            Ack::Failed(body.to_string())
                        } else if body["degraded"] == true {
                            Ack::Degraded
                        } else {
                            Ack::Ok
                        };
                        lock(&log).acks.entry(name.clone()).or_default().insert(seq, ack);
                    }
                    "event" if line["event"] == "message:new" => {
                        record_arrival(&log, &name, line["args"][0]["data"]["content"].as_str());
                    }
                    "event" if line["event"] == "presence:update" => {}
                    _ => lock(&log).trouble.push(format!("{name}: {line}")),
                }
            }
        }
    }
    client.close().await;
}

/// A raw WebSocket client in ROOM that sends every PACE until `stop_sending` and records
/// chat frames until `stop`.
async fn raw_task(
    client: WsClient,
    name: String,
    log: Shared,
    start: CancellationToken,
    stop_sending: CancellationToken,
    stop: CancellationToken,
) {
    start.cancelled().await;
    let (mut sink, mut stream) = client.stream.split();
    let mut tick = interval(PACE);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut sending = true;
    let mut seq = 0u64;
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = stop_sending.cancelled(), if sending => sending = false,
            _ = tick.tick(), if sending => {
                record_sent(&log, &name, seq);
                let frame = json!({ "type": "chat", "data": { "content": format!("{name}:{seq}") } });
                if let Err(e) = sink.send(WsMessage::text(frame.to_string())).await {
                    lock(&log).trouble.push(format!("{name}: send failed: {e}"));
                    break;
                }
                seq += 1;
            }
            msg = stream.next() => {
                let text = match msg {
                    Some(Ok(WsMessage::Text(text))) => text,
                    Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                    other => {
                        lock(&log).trouble.push(format!("{name}: connection ended: {other:?}"));
                        break;
                    }
                };
                let frame: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                match frame["type"].as_str().unwrap_or_default() {
                    "chat" => record_arrival(&log, &name, frame["data"]["content"].as_str()),
                    "presence" => {}
                    _ => lock(&log).trouble.push(format!("{name}: {frame}")),
                }
            }
        }
    }
}

/// `GET path` with a short deadline; `None` when the pod did not answer.
async fn try_get(addr: SocketAddr, path: &'static str) -> Option<(u16, String)> {
    // common::http_get panics on a refused or dropped connection: keep it in a task.
    let task = tokio::spawn(common::http_get(addr, path));
    let abort = task.abort_handle();
    match timeout(Duration::from_secs(2), task).await {
        Ok(Ok(answer)) => Some(answer),
        Ok(Err(_)) => None,
        Err(_) => {
            abort.abort();
            None
        }
    }
}

/// Asks a pod's /ready and /health every SAMPLE until `stop`.
async fn monitor(addr: SocketAddr, stop: CancellationToken) -> Vec<Sample> {
    let mut samples = Vec::new();
    let mut tick = interval(SAMPLE);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return samples,
            _ = tick.tick() => {}
        }
        let at = Instant::now();
        let ready = try_get(addr, "/ready").await.map(|(status, _)| status);
        let health = try_get(addr, "/health")
            .await
            .filter(|(status, _)| *status == 200)
            .and_then(|(_, body)| serde_json::from_str(&body).ok());
        samples.push(Sample { at, ready, health });
    }
}

/// The numbers of one fault run.
#[derive(Debug, Default)]
struct Numbers {
    sent: usize,
    sent_sio: usize,
    acked: usize,
    degraded: usize,
    failed: usize,
    lost: usize,
    lost_local: usize,
    duplicated: usize,
    reordered: usize,
    resume: Option<Duration>,
}

const SENDERS: [(&str, usize); 4] = [("s0", 0), ("r0", 0), ("s1", 1), ("r1", 1)];

fn pod_of(name: &str) -> usize {
    SENDERS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or(usize::MAX, |(_, p)| *p)
}

/// Messages each receiver must get: from same-pod senders every one sent, from other-pod
/// senders every one acked ok and not degraded.
fn expected(log: &Log, receiver: &str) -> Vec<(String, u64)> {
    let mut want = Vec::new();
    for (sender, pod) in SENDERS {
        if sender == receiver {
            continue;
        }
        let sent = log.sent.get(sender).map_or(0, Vec::len) as u64;
        for seq in 0..sent {
            let local = pod == pod_of(receiver);
            let acked = log
                .acks
                .get(sender)
                .and_then(|a| a.get(&seq))
                .is_some_and(|a| *a == Ack::Ok);
            if local || acked {
                want.push((sender.to_owned(), seq));
            }
        }
    }
    want
}

fn all_arrived(log: &Log) -> bool {
    let acks_in = SENDERS
        .iter()
        .filter(|(n, _)| n.starts_with('s'))
        .all(|(n, _)| {
            log.sent.get(*n).map_or(0, Vec::len) == log.acks.get(*n).map_or(0, HashMap::len)
        });
    acks_in
        && SENDERS.iter().all(|(receiver, _)| {
            let got: HashSet<(String, u64)> = log
                .got
                .get(*receiver)
                .map(|g| g.iter().map(|(s, q, _)| (s.clone(), *q)).collect())
                .unwrap_or_default();
            expected(log, receiver).iter().all(|m| got.contains(m))
        })
}

async fn run(fault: Fault) {
    let Some(mut redis) = RedisServer::start().await else {
        return;
    };
    let proxy = match fault {
        Fault::Blackhole(_) => {
            let proxy = Proxy::start(redis.port).await;
            common::db::alias_cluster(proxy.port, redis.port);
            Some(proxy)
        }
        _ => None,
    };
    let url = proxy.as_ref().map_or_else(|| redis.url(), Proxy::url);
    let pods = start_pods(2, &url, &[]).await;

    let log: Shared = Arc::default();
    let start = CancellationToken::new();
    let stop_sending = CancellationToken::new();
    let stop = CancellationToken::new();
    let mut clients = Vec::new();
    for (name, pod) in SENDERS {
        let task = if name.starts_with('s') {
            let mut client = SioClient::connect(&pods[pod].http_url(), "websocket").await;
            client.join(ROOM).await;
            tokio::spawn(sio_task(
                client,
                name.to_owned(),
                log.clone(),
                start.clone(),
                stop_sending.clone(),
                stop.clone(),
            ))
        } else {
            let (client, _) = WsClient::connect(&pods[pod].ws_url(&format!("/ws/{ROOM}"))).await;
            tokio::spawn(raw_task(
                client,
                name.to_owned(),
                log.clone(),
                start.clone(),
                stop_sending.clone(),
                stop.clone(),
            ))
        };
        clients.push(task);
    }
    // Every pod hears the room before the traffic starts.
    for pod in &pods {
        common::wait_for_health(pod.addr, |h| h["redis"] == "up").await;
    }
    common::eventually("both pods subscribed to the room", common::WAIT, || async {
        redis.numsub(&format!("realtime:room:{ROOM}")).await >= 2
    })
    .await;
    let monitors: Vec<JoinHandle<Vec<Sample>>> = pods
        .iter()
        .map(|p| tokio::spawn(monitor(p.addr, stop.clone())))
        .collect();
    start.cancel();

    tokio::time::sleep(BEFORE).await;
    let fault_start = Instant::now();
    match fault {
        Fault::Pause(d) => {
            redis.signal("STOP").await;
            tokio::time::sleep(d).await;
            redis.signal("CONT").await;
        }
        Fault::KillPubsub => {
            // Several rounds, each once the pods are back: reconnection races show up
            // more often than in a single round.
            let mut conn = redis.connection().await.expect("redis connection");
            for round in 0..KILL_ROUNDS {
                if round > 0 {
                    tokio::time::sleep(KILL_GAP).await;
                }
                let killed: u64 = redis::cmd("CLIENT")
                    .arg(&["KILL", "TYPE", "pubsub"][..])
                    .query_async(&mut conn)
                    .await
                    .expect("CLIENT KILL");
                assert!(
                    killed >= 2,
                    "both pods' links are pub/sub clients: {killed}"
                );
            }
        }
        Fault::Restart(d) => {
            redis.kill().await;
            tokio::time::sleep(d).await;
            redis.restart().await;
        }
        Fault::Blackhole(d) => {
            let proxy = proxy.as_ref().expect("proxy");
            proxy.set_open(false);
            tokio::time::sleep(d).await;
            proxy.set_open(true);
        }
    }
    let end = Instant::now();
    tokio::time::sleep(AFTER).await;
    stop_sending.cancel();

    // Bounded wait for the tail: every ack, and every message some receiver must get.
    // Not failing here: what is missing is reported below, per receiver.
    let _ = common::poll_until(DRAIN, || async { all_arrived(&lock(&log)).then_some(()) }).await;
    stop.cancel();
    for task in clients {
        task.await.expect("client task");
    }
    let mut samples = Vec::new();
    for m in monitors {
        samples.push(m.await.expect("monitor task"));
    }

    let log = lock(&log);
    let mut failures: Vec<String> = log.trouble.clone();
    let mut n = Numbers::default();
    for (sender, _) in SENDERS {
        let sent = log.sent.get(sender).map_or(0, Vec::len);
        n.sent += sent;
        if let Some(acks) = log.acks.get(sender) {
            n.sent_sio += sent;
            for ack in acks.values() {
                match ack {
                    Ack::Ok => n.acked += 1,
                    Ack::Degraded => n.degraded += 1,
                    Ack::Failed(why) => {
                        n.failed += 1;
                        failures.push(format!("{sender}: ack failed: {why}"));
                    }
                }
            }
        }
    }

    // Per receiver: duplicates, reordering, losses, and when cross-pod traffic resumed.
    let mut resume = Duration::ZERO;
    for (receiver, pod) in SENDERS {
        let got: &[(String, u64, Instant)] = log.got.get(receiver).map_or(&[], Vec::as_slice);
        let mut seen: HashSet<(&str, u64)> = HashSet::new();
        let mut last: HashMap<&str, u64> = HashMap::new();
        let mut first_after: Option<Instant> = None;
        for (sender, seq, at) in got {
            if sender == receiver {
                failures.push(format!("{receiver} got its own {sender}:{seq}"));
            }
            if !seen.insert((sender, *seq)) {
                n.duplicated += 1;
                failures.push(format!(
                    "{receiver}: duplicate {sender}:{seq} at {:?} from the fault's start",
                    at.duration_since(fault_start)
                ));
                continue;
            }
            if let Some(prev) = last.get(sender.as_str()) {
                if seq < prev {
                    n.reordered += 1;
                    failures.push(format!(
                        "{receiver}: {sender}:{seq} after {sender}:{prev} at {:?} from the fault's start",
                        at.duration_since(fault_start)
                    ));
                }
            }
            let high = last.entry(sender).or_insert(*seq);
            *high = (*high).max(*seq);
            let sent_at = log
                .sent
                .get(sender)
                .and_then(|s| s.get(*seq as usize))
                .copied();
            if pod_of(sender) != pod && sent_at.is_some_and(|t| t >= end) && first_after.is_none() {
                first_after = Some(*at);
            }
        }
        for (sender, seq) in expected(&log, receiver) {
            if !seen.contains(&(sender.as_str(), seq)) {
                if pod_of(&sender) == pod {
                    n.lost_local += 1;
                    failures.push(format!("{receiver}: same-pod {sender}:{seq} missing"));
                } else {
                    n.lost += 1;
                    failures.push(format!("{receiver}: acked {sender}:{seq} lost"));
                }
            }
        }
        match first_after {
            Some(at) => resume = resume.max(at - end),
            None => {
                resume = Duration::MAX;
                failures.push(format!("{receiver}: no cross-pod message after the fault"));
            }
        }
    }
    n.resume = (resume != Duration::MAX).then_some(resume);
    if resume >= RESUME_LIMIT {
        failures.push(format!(
            "cross-pod delivery resumed after {resume:?} (limit {RESUME_LIMIT:?})"
        ));
    }

    // Pods up throughout, /ready truthful.
    for (pod, samples) in samples.iter().enumerate() {
        for s in samples {
            if s.ready.is_none() || s.health.is_none() {
                failures.push(format!(
                    "pod {pod} did not answer at {:?}",
                    s.at.duration_since(fault_start)
                ));
            }
        }
        if let Some(outage) = fault.outage() {
            let noticed = samples
                .iter()
                .any(|s| s.at >= fault_start && s.at <= end + SAMPLE * 5 && s.ready == Some(503));
            if !noticed {
                failures.push(format!("pod {pod}: /ready never 503 during the outage"));
            }
            if outage > DETECT {
                for s in samples
                    .iter()
                    .filter(|s| s.at >= fault_start + DETECT && s.at + SAMPLE < end)
                {
                    if s.ready == Some(200) {
                        failures.push(format!(
                            "pod {pod}: /ready 200 {:?} into a {outage:?} outage",
                            s.at.duration_since(fault_start)
                        ));
                    }
                }
            }
        }
        // Back to 200 within RESUME_LIMIT and staying there.
        let after: Vec<&Sample> = samples.iter().filter(|s| s.at >= end).collect();
        let back = after
            .iter()
            .rposition(|s| s.ready != Some(200))
            .map_or(Some(0), |i| (i + 1 < after.len()).then_some(i + 1))
            .map(|i| after[i].at);
        match back {
            Some(back) if back.duration_since(end) < RESUME_LIMIT => {
                // Said ready: publishing works from then on.
                let sender = if pod == 0 { "s0" } else { "s1" };
                let lying: Vec<u64> = log
                    .acks
                    .get(sender)
                    .into_iter()
                    .flatten()
                    .filter(|(seq, ack)| {
                        **ack == Ack::Degraded
                            && log.sent[sender][**seq as usize] > back + Duration::from_millis(250)
                    })
                    .map(|(seq, _)| *seq)
                    .collect();
                if !lying.is_empty() {
                    failures.push(format!(
                        "pod {pod}: ready since {:?} after the fault but degraded acks for {sender} {lying:?}",
                        back.duration_since(end)
                    ));
                }
            }
            other => failures.push(format!(
                "pod {pod}: /ready not steadily 200 within {RESUME_LIMIT:?} of the fault's end ({:?})",
                other.map(|b| b.duration_since(end))
            )),
        }
    }

    eprintln!(
        "FAULT | {:<18} | sent {:>5} (sio {:>4}) | acked {:>4} | degraded {:>4} | failed {} | lost {} | lost same-pod {} | duplicated {} | reordered {} | resume {}",
        fault.name(),
        n.sent,
        n.sent_sio,
        n.acked,
        n.degraded,
        n.failed,
        n.lost,
        n.lost_local,
        n.duplicated,
        n.reordered,
        n.resume
            .map_or_else(|| "never".to_owned(), |r| format!("{:.2}s", r.as_secs_f64())),
    );
    if !failures.is_empty() {
        for (i, pod) in pods.iter().enumerate() {
            let log = pod.log.lock().map(|l| l.clone()).unwrap_or_default();
            for line in log.iter().filter(|l| l.contains("redis")) {
                eprintln!("pod {i}: {line}");
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{}: {} problems:\n{}",
        fault.name(),
        failures.len(),
        failures
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
