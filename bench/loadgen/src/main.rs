//! A lean load generator: Socket.IO v5 over WebSocket at the packet level (`0` open,
//! `40` connect, `42[...]` events, ping `2` -> pong `3`) and the raw realtime.Message
//! protocol, on hand-framed WebSockets ([`wire`]). One task per connection on a
//! current-thread runtime; payloads carry their send time (`"content":"t<us>-<phase>"`),
//! so receivers measure latency without parsing JSON.
//!
//! ```text
//! loadgen connect  --hosts H --proto sio|raw --n 2000 --rate 1000 --pids PID
//! loadgen rooms    --hosts H[,H2..] --rooms 1 --size 1000 --rate 100 --secs 10 --pids P[,P2..]
//! loadgen ramp     --hosts H --size 1000 --start 50000 --factor 1.5 --step-secs 3 --max-p99-ms 100 [--acks 1 --max-ack-p99-ms 50]
//! loadgen overload --hosts H --size 1000 --rate 1000000 --secs 10 --probe-rate 20000 --probe-secs 5 --settle 30
//! loadgen churn    --hosts H --proto sio|raw --n 2000 --rounds 5 --rooms 0 --chat 0|1 --settle-ms 1000 --pids PID
//! loadgen scale    --hosts H1,..,H5 --rooms 200 --size 99 --first-room 0 --rate 2000
//! ```
//! `rooms` with `--rooms 1` is the fan-out scenario; several `--hosts` spread the receivers
//! over pods (each room's sender on pod `room % pods`). Rates are messages/s for `rooms`
//! and deliveries/s for `ramp` and `overload`. Each run prints one JSON line of figures,
//! including the generator's own CPU time. With `--acks 1` every sent message asks for an
//! ack (socket.io ack id, raw `request_id`; the id carries the send time) and the figures
//! add acks, ack errors and ack latency. With `--client ordinary` the receivers of
//! `rooms`, `ramp` and `overload` are built as ordinary clients are ([`ordinary`]:
//! tokio-tungstenite, 4 KiB reads, every frame parsed as JSON as it arrives) instead of
//! lean ones. With `--readers P`, P % of the receivers mark what they receive as read
//! (`message:read` with the newest offset, at most twice a second each, as a client that
//! marks what it shows does), so the figures include read receipts. Every loop is bounded
//! in count and time.

mod churn;
mod ordinary;
mod proc;
mod swarm;
mod wire;

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;
use tokio::time::{sleep, timeout, MissedTickBehavior};

use proc::{self_ticks, server_stats, TICKS_PER_SEC};
use swarm::{loss_pct, ms, open_client, ClientMode, Layout, Proto, Swarm};

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
        self.0
            .get(k)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }
    fn list(&self, k: &str, default: &str) -> Vec<String> {
        let v = self.0.get(k).map_or(default, String::as_str);
        v.split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }
    fn proto(&self) -> Proto {
        if self.0.get("proto").is_some_and(|p| p == "raw") {
            Proto::Raw
        } else {
            Proto::Sio
        }
    }
    fn pids(&self) -> Vec<u32> {
        let mut v = self.list("pids", "");
        v.extend(self.list("pid", ""));
        v.iter().filter_map(|p| p.parse().ok()).collect()
    }
    fn layout(&self, rooms: usize, size: usize) -> Layout {
        Layout {
            hosts: self.list("hosts", "127.0.0.1:8084"),
            proto: self.proto(),
            rooms: self.get("rooms", rooms),
            size: self.get("size", size),
            first_room: self.get("first-room", 0),
            connect_rate: self.get("connect-rate", 2000),
            acks: self.get("acks", 0u8) == 1,
            client: if self.0.get("client").is_some_and(|c| c == "ordinary") {
                ClientMode::Ordinary
            } else {
                ClientMode::Lean
            },
            readers_pct: self.get("readers", 0usize).min(100),
        }
    }
}

/// N idle clients opened at a fixed rate: connect latency and server RSS per connection.
async fn connect(a: &Args) -> Value {
    let host = a.list("hosts", "127.0.0.1:8084").remove(0);
    let (proto, n, rate, pids) = (
        a.proto(),
        a.get("n", 1000usize),
        a.get("rate", 1000u64),
        a.pids(),
    );
    let (rss_before, _) = server_stats(&pids);
    let hist = Rc::new(RefCell::new(
        Histogram::<u64>::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds"),
    ));
    let (tx, mut done) = tokio::sync::mpsc::unbounded_channel::<bool>();
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / rate.max(1)));
    tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let started = Instant::now();
    for _ in 0..n {
        tick.tick().await;
        let (host, hist, tx) = (host.clone(), hist.clone(), tx.clone());
        tokio::task::spawn_local(async move {
            let t0 = Instant::now();
            match open_client(&host, proto, None).await {
                Ok(mut conn) => {
                    hist.borrow_mut()
                        .saturating_record(t0.elapsed().as_micros().max(1) as u64);
                    let _ = tx.send(true);
                    // Stay idle, answering pings, until the run ends.
                    while conn.next_text().await.is_ok() {}
                }
                Err(_) => {
                    let _ = tx.send(false);
                }
            }
        });
    }
    drop(tx);
    let mut failed = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    for _ in 0..n {
        match timeout(
            deadline.saturating_duration_since(Instant::now()),
            done.recv(),
        )
        .await
        {
            Ok(Some(ok)) => failed += usize::from(!ok),
            _ => break,
        }
    }
    sleep(Duration::from_millis(500)).await;
    let (rss_after, _) = server_stats(&pids);
    let h = hist.borrow();
    let ok = h.len();
    json!({
        "scenario": "connect", "n": n, "ok": ok, "failed": failed,
        "secs": started.elapsed().as_secs_f64(),
        "connect_p50_ms": ms(&h, 0.5), "connect_p99_ms": ms(&h, 0.99),
        "rss_before_kb": rss_before, "rss_after_kb": rss_after,
        "kb_per_conn": if ok > 0 { rss_after.saturating_sub(rss_before) as f64 / ok as f64 } else { 0.0 },
    })
}

async fn swarm(a: &Args, rooms: usize, size: usize, phases: usize) -> Swarm {
    let swarm = Swarm::build(&a.layout(rooms, size), a.pids(), phases).await;
    eprintln!(
        "{} receivers ({} failed), {} senders",
        swarm.receivers,
        swarm.failed,
        swarm.senders()
    );
    // Let the joins' presence announcements settle before measuring.
    swarm
        .wait_quiet(Duration::from_millis(300), Duration::from_secs(60))
        .await;
    swarm
}

/// Receivers in rooms, one sender per room at a fixed total rate (messages/s).
async fn rooms(a: &Args) -> Value {
    let mut s = swarm(a, 1, 200, 1).await;
    let mut figures = s
        .measured(0, a.get("rate", 500.0), a.get("secs", 5.0))
        .await;
    figures["scenario"] = json!("rooms");
    figures["client"] = json!(a.layout(1, 1).client.name());
    figures["receivers"] = json!(s.receivers);
    figures["rooms"] = json!(s.senders());
    figures
}

/// Raises the offered deliveries/s by `--factor` per step until p99 or loss breaks the
/// limit twice in a row at the same rate.
async fn ramp(a: &Args) -> Value {
    let steps: usize = a.get("steps", 12);
    let mut s = swarm(a, 1, 1000, steps).await;
    let per_msg = s.per_message() as f64;
    let (factor, secs, limit_ms) = (
        a.get("factor", 1.5),
        a.get("step-secs", 3.0),
        a.get("max-p99-ms", 100.0),
    );
    // With --acks 1: every message acked ok within this p99 too.
    let ack_limit_ms: Option<f64> = a.0.get("max-ack-p99-ms").and_then(|v| v.parse().ok());
    let mut offered: f64 = a.get("start", 50_000.0);
    let max_offered: f64 = a.get("max", 4_000_000.0);
    let (mut best, mut results, mut retried) = (0.0, Vec::new(), false);
    for step in 0..steps {
        let f = s.measured(step, offered / per_msg, secs).await;
        let acks_ok = match ack_limit_ms {
            None => true,
            Some(limit) => {
                f["ack_errors"].as_u64() == Some(0)
                    && f["acked"].as_u64() == f["sent"].as_u64()
                    && f["ack_p99_ms"].as_f64().is_some_and(|p| p <= limit)
            }
        };
        let ok = acks_ok
            && f["loss_pct"].as_f64() == Some(0.0)
            && f["p99_ms"].as_f64().is_some_and(|p| p <= limit_ms);
        eprintln!("step {step}: {offered:.0}/s offered -> {f}");
        results.push(f);
        if !ok && !retried {
            // One hiccup (a timer, a Redis write) should not end the ramp: try again.
            retried = true;
            sleep(Duration::from_millis(500)).await;
            continue;
        }
        if !ok {
            break;
        }
        retried = false;
        best = offered;
        offered *= factor;
        if offered > max_offered {
            break;
        }
        sleep(Duration::from_millis(500)).await;
    }
    json!({ "scenario": "ramp", "client": a.layout(1, 1).client.name(), "receivers": s.receivers, "max_p99_ms": limit_ms,
            "max_ack_p99_ms": ack_limit_ms,
            "max_sustainable_per_s": best, "max_sustainable_msgs_per_s": best / per_msg,
            "steps": results })
}

/// A baseline, `--rate` deliveries/s for `--secs`, then a probe at the baseline rate:
/// peak RSS, loss, and how long until probe latency is back to normal.
async fn overload(a: &Args) -> Value {
    let mut s = swarm(a, 1, 1000, 3).await;
    let per_msg = s.per_message() as f64;
    let probe = a.get("probe-rate", 20_000.0) / per_msg;
    let baseline = s.measured(0, probe, a.get("baseline-secs", 2.0)).await;
    let (_, ticks0) = server_stats(&s.pids());
    let own0 = self_ticks();
    let over = s
        .send(1, a.get("rate", 1_000_000.0) / per_msg, a.get("secs", 10.0))
        .await;
    let probe_secs = a.get("probe-secs", 5.0);
    let probed = s.send(2, probe, probe_secs).await;
    let expected = (over.count + probed.count) * s.per_message();
    s.settle(
        &[1, 2],
        expected,
        0,
        Duration::from_secs(a.get("settle", 30)),
    )
    .await;
    let (rss_after, ticks1) = server_stats(&s.pids());
    let own1 = self_ticks();
    let base_p99 = baseline["p99_ms"].as_f64().unwrap_or(0.0) * 1000.0;
    // Normal: within twice the baseline p99 plus 10 ms.
    let normal_us = (2.0 * base_p99 + 10_000.0) as u64;
    let st = s.stats.borrow();
    let (o, p) = (&st.phases[1], &st.phases[2]);
    // A 100 ms slice of probes is slow when its worst latency is over normal or none of
    // its probes arrived; recovered once every later slice is normal.
    let slices = ((probe_secs * 10.0) as usize).min(p.worst_by_100ms.len());
    let last_slow = p.worst_by_100ms[..slices]
        .iter()
        .rposition(|&w| w == 0 || w > normal_us);
    let recovery_s = match last_slow {
        Some(i) if i + 1 >= slices => Value::Null,
        Some(i) => json!((i + 1) as f64 / 10.0),
        None => json!(0.0),
    };
    json!({
        "scenario": "overload", "receivers": s.receivers,
        "baseline": baseline,
        "offered_per_s": over.count as f64 * per_msg / over.secs,
        "overload_delivered": o.delivered, "overload_expected": over.count * s.per_message(),
        "overload_loss_pct": loss_pct(over.count * s.per_message(), o.delivered),
        "overload_p99_ms": ms(&o.hist, 0.99),
        "peak_rss_kb": over.peak_rss_kb.max(probed.peak_rss_kb), "rss_after_kb": rss_after,
        "probe_loss_pct": loss_pct(probed.count * s.per_message(), p.delivered),
        "probe_p99_ms": ms(&p.hist, 0.99), "normal_ms": normal_us as f64 / 1000.0,
        "recovery_s": recovery_s,
        "server_cpu_s": ticks1.saturating_sub(ticks0) as f64 / TICKS_PER_SEC,
        "loadgen_cpu_s": own1.saturating_sub(own0) as f64 / TICKS_PER_SEC,
    })
}

/// Many connections held open: prints `{"ready":..}`, waits for a `go` line on stdin,
/// sends one message per room and checks every receiver got it exactly once, prints the
/// result, then holds the connections until stdin closes.
async fn scale(a: &Args) -> Value {
    let mut s = swarm(a, 100, 99, 1).await;
    println!(
        "{}",
        json!({ "ready": s.receivers, "failed": s.failed, "senders": s.senders() })
    );
    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let go = timeout(Duration::from_secs(600), stdin.next_line()).await;
    if !matches!(go, Ok(Ok(Some(ref l))) if l.trim() == "go") {
        return json!({ "scenario": "scale", "error": "no go line on stdin" });
    }
    let rooms = s.senders() as f64;
    let sent = s.send(0, rooms * 4.0, 0.25).await;
    let expected = sent.count * s.per_message();
    s.settle(&[0], expected, 0, Duration::from_secs(30)).await;
    let result = {
        let st = s.stats.borrow();
        let mut counts = [0u64; 3]; // receivers with 0, 1, more deliveries
        for &c in &st.per_conn {
            counts[(c as usize).min(2)] += 1;
        }
        json!({
            "scenario": "scale", "receivers": s.receivers, "failed": s.failed, "messages": sent.count,
            "delivered": st.phases[0].delivered, "expected": expected,
            "receivers_with_0": counts[0], "receivers_with_1": counts[1], "receivers_with_more": counts[2],
            "p99_ms": ms(&st.phases[0].hist, 0.99),
        })
    };
    println!("{result}");
    let _ = timeout(Duration::from_secs(600), async {
        while let Ok(Some(_)) = stdin.next_line().await {}
    })
    .await;
    result
}

fn main() {
    let (cmd, args) = Args::parse();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    let started = self_ticks();
    let figures = local.block_on(&runtime, async {
        match cmd.as_str() {
            "connect" => Some(connect(&args).await),
            "rooms" | "fanout" => Some(rooms(&args).await),
            "ramp" => Some(ramp(&args).await),
            "overload" => Some(overload(&args).await),
            "scale" => Some(scale(&args).await),
            "churn" => Some(
                churn::run(&churn::Churn {
                    host: args.list("hosts", "127.0.0.1:8084").remove(0),
                    proto: args.proto(),
                    n: args.get("n", 2000),
                    rounds: args.get("rounds", 5),
                    rooms: args.get("rooms", 0),
                    chat: args.get("chat", 0u8) != 0,
                    settle: Duration::from_millis(args.get("settle-ms", 1000)),
                    pids: args.pids(),
                })
                .await,
            ),
            _ => None,
        }
    });
    match figures {
        Some(mut f) => {
            f["loadgen_total_cpu_s"] = json!(self_ticks().saturating_sub(started) as f64 / TICKS_PER_SEC);
            if cmd != "scale" {
                println!("{f}");
            }
        }
        None => eprintln!("usage: chatwire-loadgen connect|rooms|ramp|overload|scale|churn --hosts H --proto sio|raw ..."),
    }
    // Skip dropping thousands of connections one by one.
    std::process::exit(0);
}
