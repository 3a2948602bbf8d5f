//! Connection churn: rounds of opening N clients (optionally joined to rooms, optionally
//! each sending one chat message and one typing indicator), closing them all, waiting for
//! the server to report zero connections, and reading the server's RSS. Shows whether
//! memory returns after connections go.

use std::io;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{sleep, timeout};

use crate::proc::server_stats;
use crate::swarm::{open_client, Proto};
use crate::wire::Conn;

/// What a churn run does each round.
pub struct Churn {
    pub host: String,
    pub proto: Proto,
    pub n: usize,
    pub rounds: usize,
    /// Rooms to spread clients over (0: no room).
    pub rooms: usize,
    /// Whether each client sends one chat message and one typing indicator.
    pub chat: bool,
    /// Pause after the server reports zero connections, before reading RSS.
    pub settle: Duration,
    pub pids: Vec<u32>,
}

/// `GET path` on `host` over one plain HTTP/1.1 connection; the body.
async fn http_get(host: &str, path: &str) -> io::Result<String> {
    let mut s = TcpStream::connect(host).await?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut body = Vec::new();
    timeout(Duration::from_secs(5), s.read_to_end(&mut body))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    let text = String::from_utf8_lossy(&body).into_owned();
    Ok(text
        .split_once("\r\n\r\n")
        .map_or(text.clone(), |(_, b)| b.to_owned()))
}

/// Open connections the server reports on `/health` (both transports).
async fn server_connections(host: &str) -> Option<u64> {
    let body = http_get(host, "/health").await.ok()?;
    let start = body.find('{')?;
    let v: Value = serde_json::from_str(body[start..].trim_end_matches(|c| c != '}')).ok()?;
    let c = &v["connections"];
    Some(c["socketio"].as_u64()? + c["ws"].as_u64()?)
}

async fn open_one(c: &Churn, i: usize) -> io::Result<Conn> {
    let room = (c.rooms > 0).then(|| format!("churn{}", i % c.rooms));
    let mut conn = open_client(&c.host, c.proto, room.as_deref()).await?;
    if c.chat {
        match (c.proto, &room) {
            (Proto::Raw, _) => {
                conn.send_text(br#"{"type":"chat","data":{"content":"x"}}"#)
                    .await?;
                conn.send_text(br#"{"type":"typing","data":{"typing":true}}"#)
                    .await?;
            }
            (Proto::Sio, Some(room)) => {
                conn.send_text(
                    format!("42[\"message:send\",{{\"room\":\"{room}\",\"content\":\"x\"}}]")
                        .as_bytes(),
                )
                .await?;
                conn.send_text(
                    format!("42[\"user:typing\",{{\"room\":\"{room}\",\"typing\":true}}]")
                        .as_bytes(),
                )
                .await?;
            }
            (Proto::Sio, None) => {
                conn.send_text(br#"42["message:send",{"content":"x"}]"#)
                    .await?;
            }
        }
    }
    Ok(conn)
}

/// Runs the rounds; one JSON object with the RSS before, at each round's peak and after.
pub async fn run(c: &Churn) -> Value {
    let (rss_start, _) = server_stats(&c.pids);
    let mut rounds = Vec::new();
    let in_flight = std::sync::Arc::new(Semaphore::new(64));
    for round in 0..c.rounds {
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(c.n);
        for i in 0..c.n {
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                break;
            };
            let c2 = Churn {
                host: c.host.clone(),
                pids: Vec::new(),
                ..*c
            };
            tasks.push(tokio::task::spawn_local(async move {
                let r = open_one(&c2, i).await;
                drop(permit);
                r
            }));
        }
        let mut conns = Vec::with_capacity(c.n);
        let mut failed = 0usize;
        for t in tasks {
            match t.await {
                Ok(Ok(conn)) => conns.push(conn),
                _ => failed += 1,
            }
        }
        // Let the server handle the chat and typing frames before closing.
        let mut held = Vec::with_capacity(conns.len());
        for mut conn in conns {
            let _ = timeout(Duration::from_millis(50), conn.drain()).await;
            held.push(conn);
        }
        let (rss_peak, _) = server_stats(&c.pids);
        let open = held.len();
        drop(held);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut left = None;
        while Instant::now() < deadline {
            left = server_connections(&c.host).await;
            if left == Some(0) {
                break;
            }
            sleep(Duration::from_millis(100)).await;
        }
        sleep(c.settle).await;
        let (rss_after, _) = server_stats(&c.pids);
        eprintln!(
            "round {round}: {open} open ({failed} failed), peak {rss_peak} KB, after {rss_after} KB, server connections {left:?}"
        );
        rounds.push(json!({
            "round": round, "open": open, "failed": failed,
            "secs": started.elapsed().as_secs_f64(),
            "rss_peak_kb": rss_peak, "rss_after_kb": rss_after,
            "server_connections_after": left,
        }));
    }
    let (rss_end, _) = server_stats(&c.pids);
    json!({
        "scenario": "churn", "n": c.n, "rounds_run": c.rounds, "rooms": c.rooms, "chat": c.chat,
        "rss_start_kb": rss_start, "rss_end_kb": rss_end,
        "rss_growth_kb": rss_end as i64 - rss_start as i64,
        "rounds": rounds,
    })
}
