//! A lean load generator: Socket.IO v5 over WebSocket at the packet level (`0` open,
//! `40` connect, `42[...]` events, ping `2` -> pong `3`) and the raw realtime.Message
//! protocol. One task per connection on a current-thread runtime; payloads carry their
//! send time so receivers measure latency without parsing whole JSON messages.
//!
//! ```text
//! loadgen connect --host 127.0.0.1:8084 --proto sio|raw --n 2000 --rate 1000 --pid PID
//! loadgen fanout  --host 127.0.0.1:8084 --proto sio|raw --receivers 200 --rate 500 --secs 5 --pid PID
//! ```
//! Each run prints one JSON line of figures. Every loop is bounded in count and time.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::json;
use tokio::net::TcpStream;
use tokio::time::{sleep, timeout, MissedTickBehavior};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
const ROOM: &str = "bench";

#[derive(Clone, Copy, PartialEq)]
enum Proto {
    Sio,
    Raw,
}

struct Args(HashMap<String, String>);

impl Args {
    fn parse() -> (String, Self) {
        let mut it = std::env::args().skip(1);
        let cmd = it.next().unwrap_or_default();
        let mut map = HashMap::new();
        while let Some(k) = it.next() {
            if let Some(k) = k.strip_prefix("--") {
                map.insert(k.to_owned(), it.next().unwrap_or_default());
            }
        }
        (cmd, Self(map))
    }
    fn get<T: std::str::FromStr>(&self, k: &str, default: T) -> T {
        self.0.get(k).and_then(|v| v.parse().ok()).unwrap_or(default)
    }
    fn str(&self, k: &str, default: &str) -> String {
        self.0.get(k).cloned().unwrap_or_else(|| default.to_owned())
    }
}

/// (resident KB, utime+stime ticks) of `pid` from /proc.
fn proc_stats(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after_comm = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = fields.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (rss, ticks)
}

fn self_ticks() -> u64 {
    proc_stats(std::process::id()).1
}

const TICKS_PER_SEC: f64 = 100.0;

/// Opens one client, joined to the bench room when `join`; returns it ready for traffic.
async fn open(host: &str, proto: Proto, join: bool) -> Result<Ws, String> {
    let url = match (proto, join) {
        (Proto::Sio, _) => format!("ws://{host}/socket.io/?EIO=4&transport=websocket"),
        (Proto::Raw, true) => format!("ws://{host}/ws/{ROOM}"),
        (Proto::Raw, false) => format!("ws://{host}/ws"),
    };
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|e| e.to_string())?;
    if proto == Proto::Raw {
        // The welcome frame comes once the connection is in the room.
        next_text(&mut ws).await.ok_or("no welcome")?;
        return Ok(ws);
    }
    next_text(&mut ws).await.ok_or("no open packet")?;
    ws.send(Message::text("40")).await.map_err(|e| e.to_string())?;
    loop {
        let p = next_text(&mut ws).await.ok_or("no connect ack")?;
        if p.starts_with("40") {
            break;
        }
    }
    if !join {
        return Ok(ws);
    }
    ws.send(Message::text(format!("420[\"room:join\",{{\"room\":\"{ROOM}\"}}]")))
        .await
        .map_err(|e| e.to_string())?;
    loop {
        let p = next_text(&mut ws).await.ok_or("no join ack")?;
        if p.starts_with("430") {
            return Ok(ws);
        }
    }
}

/// The next text frame, answering Engine.IO pings on the way.
async fn next_text(ws: &mut Ws) -> Option<String> {
    loop {
        match timeout(Duration::from_secs(10), ws.next()).await.ok()?? {
            Ok(Message::Text(t)) if t.as_str() == "2" => {
                ws.send(Message::text("3")).await.ok()?;
            }
            Ok(Message::Text(t)) => return Some(t.to_string()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

fn percentile_ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

async fn connect(a: &Args) {
    let host = a.str("host", "127.0.0.1:8084");
    let proto = if a.str("proto", "sio") == "raw" { Proto::Raw } else { Proto::Sio };
    let n: usize = a.get("n", 1000);
    let rate: u64 = a.get("rate", 1000);
    let pid: u32 = a.get("pid", 0);
    let (rss_before, _) = proc_stats(pid);
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new(3).expect("histogram")));
    let failed = Arc::new(AtomicU64::new(0));
    let (tx, mut held) = tokio::sync::mpsc::unbounded_channel();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let started = Instant::now();
    for _ in 0..n {
        tick.tick().await;
        let (host, hist, failed, tx) = (host.clone(), hist.clone(), failed.clone(), tx.clone());
        tokio::spawn(async move {
            let t0 = Instant::now();
            match open(&host, proto, false).await {
                Ok(mut ws) => {
                    let us = t0.elapsed().as_micros() as u64;
                    hist.lock().map(|mut h| h.record(us.max(1)).ok()).ok();
                    let _ = tx.send(());
                    // Stay idle, answering pings, until the run ends.
                    while next_text(&mut ws).await.is_some() {}
                }
                Err(_) => {
                    failed.fetch_add(1, Ordering::Relaxed);
                    let _ = tx.send(());
                }
            }
        });
    }
    drop(tx);
    let mut done = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while done < n && Instant::now() < deadline {
        if timeout(Duration::from_secs(5), held.recv()).await.ok().flatten().is_some() {
            done += 1;
        }
    }
    sleep(Duration::from_millis(500)).await;
    let (rss_after, _) = proc_stats(pid);
    let h = hist.lock().map(|h| h.clone()).unwrap_or_else(|_| Histogram::new(3).expect("h"));
    let ok = h.len() as f64;
    println!(
        "{}",
        json!({
            "scenario": "connect", "n": n, "ok": h.len(), "failed": failed.load(Ordering::Relaxed),
            "secs": started.elapsed().as_secs_f64(),
            "connect_p50_ms": percentile_ms(&h, 0.5), "connect_p99_ms": percentile_ms(&h, 0.99),
            "rss_before_kb": rss_before, "rss_after_kb": rss_after,
            "kb_per_conn": if ok > 0.0 { (rss_after.saturating_sub(rss_before)) as f64 / ok } else { 0.0 },
        })
    );
    std::process::exit(0);
}

async fn fanout(a: &Args) {
    let host = a.str("host", "127.0.0.1:8084");
    let proto = if a.str("proto", "sio") == "raw" { Proto::Raw } else { Proto::Sio };
    let receivers: usize = a.get("receivers", 200);
    let rate: u64 = a.get("rate", 500);
    let secs: u64 = a.get("secs", 5);
    let pid: u32 = a.get("pid", 0);
    let base = Instant::now();
    let hist = Arc::new(Mutex::new(Histogram::<u64>::new(3).expect("histogram")));
    let delivered = Arc::new(AtomicU64::new(0));

    let mut ready = 0;
    let mut tasks = Vec::new();
    for _ in 0..receivers {
        let Ok(mut ws) = open(&host, proto, true).await else { continue };
        ready += 1;
        let (hist, delivered) = (hist.clone(), delivered.clone());
        tasks.push(tokio::spawn(async move {
            while let Some(text) = next_text(&mut ws).await {
                // Only chat messages carry `"content":"t<micros>"`.
                let Some(rest) = text.split("\"content\":\"t").nth(1) else { continue };
                let Some(sent) = rest.split('"').next().and_then(|v| v.parse::<u64>().ok()) else { continue };
                let now = base.elapsed().as_micros() as u64;
                // Uncontended on this single-threaded runtime.
                if let Ok(mut h) = hist.lock() {
                    h.record(now.saturating_sub(sent).max(1)).ok();
                }
                delivered.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut sender = match open(&host, proto, true).await {
        Ok(ws) => ws,
        Err(e) => return eprintln!("sender failed: {e}"),
    };
    // Let presence announcements of the joins settle before measuring.
    sleep(Duration::from_millis(500)).await;
    let (_, ticks0) = proc_stats(pid);
    let own0 = self_ticks();
    let total = rate * secs;
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let started = Instant::now();
    for _ in 0..total {
        tick.tick().await;
        let t = base.elapsed().as_micros();
        let frame = match proto {
            Proto::Sio => format!("42[\"message:send\",{{\"room\":\"{ROOM}\",\"content\":\"t{t}\"}}]"),
            Proto::Raw => format!("{{\"type\":\"chat\",\"data\":{{\"content\":\"t{t}\"}}}}"),
        };
        if sender.send(Message::text(frame)).await.is_err() {
            break;
        }
        // Keep the sender's own socket drained (acks, pings).
        while let Some(Some(Ok(m))) = futures_util::FutureExt::now_or_never(sender.next()) {
            if let Message::Text(t) = m {
                if t.as_str() == "2" {
                    sender.send(Message::text("3")).await.ok();
                }
            }
        }
    }
    let send_secs = started.elapsed().as_secs_f64();
    // Drain: wait until deliveries stop growing (bounded).
    let expected = total * ready as u64;
    let mut last = 0;
    for _ in 0..40 {
        sleep(Duration::from_millis(250)).await;
        let now = delivered.load(Ordering::Relaxed);
        if now >= expected || (now == last && now > 0) {
            break;
        }
        last = now;
    }
    let (rss, ticks1) = proc_stats(pid);
    let own1 = self_ticks();
    drop(sender);
    for t in &tasks {
        t.abort();
    }
    let got = delivered.load(Ordering::Relaxed);
    let h = hist.lock().map(|h| h.clone()).unwrap_or_else(|_| Histogram::new(3).expect("h"));
    let cpu = (ticks1 - ticks0) as f64 / TICKS_PER_SEC;
    println!(
        "{}",
        json!({
            "scenario": "fanout", "receivers": ready, "rate": rate, "secs": secs,
            "offered_per_s": (rate as f64 * ready as f64),
            "delivered": got, "expected": expected,
            "loss_pct": if expected > 0 { 100.0 * (expected.saturating_sub(got)) as f64 / expected as f64 } else { 0.0 },
            "delivered_per_s": got as f64 / send_secs,
            "p50_ms": percentile_ms(&h, 0.5), "p99_ms": percentile_ms(&h, 0.99), "p999_ms": percentile_ms(&h, 0.999),
            "server_cpu_s": cpu, "server_us_per_delivery": if got > 0 { cpu * 1e6 / got as f64 } else { 0.0 },
            "server_rss_kb": rss,
            "loadgen_cpu_s": (own1 - own0) as f64 / TICKS_PER_SEC,
        })
    );
    std::process::exit(0);
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (cmd, args) = Args::parse();
    match cmd.as_str() {
        "connect" => connect(&args).await,
        "fanout" => fanout(&args).await,
        _ => eprintln!("usage: loadgen connect|fanout --host H --proto sio|raw ..."),
    }
}
