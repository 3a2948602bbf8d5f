//! Memory after connection churn (issue 11): the built binary's resident memory comes
//! back down once thousands of connections of both transports, the raw ones in rooms,
//! have closed. Before the fix glibc kept every page the closed connections
//! had used (RSS stayed at its peak with 1 MB of the heap in use), and the delivery
//! latency histogram kept every sample until the next scrape.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{wait_for_health, ServerProcess};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Connections of each transport per round.
const PER_TRANSPORT: usize = 1000;
/// Rooms the raw connections are spread over.
const ROOMS: usize = 20;
/// Handshakes in flight at once.
const IN_FLIGHT: usize = 64;

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("read /proc status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS line")
}

async fn next_text(ws: &mut Ws) -> String {
    loop {
        match timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(WsMessage::Text(t)))) => return t.to_string(),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no text frame: {other:?}"),
        }
    }
}

/// A socket.io client at the packet level: Engine.IO open, then `40` both ways.
async fn open_sio(addr: SocketAddr) -> Ws {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("sio ws");
    assert!(next_text(&mut ws).await.starts_with('0'), "engine.io open");
    ws.send(WsMessage::text("40")).await.expect("send 40");
    while !next_text(&mut ws).await.starts_with("40") {}
    ws
}

/// A raw client in `room`.
async fn open_raw(addr: SocketAddr, room: usize) -> Ws {
    let url = format!("ws://{addr}/ws/churn-{room}");
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.expect("raw ws");
    // Presence frames of the room's other members may come before the welcome.
    while !next_text(&mut ws).await.contains("\"welcome\"") {}
    ws
}

/// Opens every connection of one round, `IN_FLIGHT` handshakes at a time.
async fn open_round(addr: SocketAddr) -> Vec<Ws> {
    let mut open = Vec::with_capacity(2 * PER_TRANSPORT);
    let mut set = JoinSet::new();
    for i in 0..2 * PER_TRANSPORT {
        if set.len() >= IN_FLIGHT {
            open.push(set.join_next().await.expect("task").expect("connect"));
        }
        if i % 2 == 0 {
            set.spawn(open_sio(addr));
        } else {
            set.spawn(open_raw(addr, i % ROOMS));
        }
    }
    while let Some(ws) = set.join_next().await {
        open.push(ws.expect("connect"));
    }
    open
}

async fn close_round(addr: SocketAddr, open: Vec<Ws>) {
    drop(open);
    wait_for_health(addr, |h| {
        h["connections"]["socketio"] == 0 && h["connections"]["ws"] == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rss_returns_after_connection_churn() {
    let server = ServerProcess::spawn(&[
        ("DEMO_UI", "false"),
        ("PRESENCE_GRACE", "100ms"),
        ("MAX_CONNECTIONS", "0"),
    ])
    .await;
    let (addr, pid) = (server.addr, server.pid());
    // A small round first, so that start-up allocations are not counted as churn.
    let warm: Vec<Ws> = vec![open_sio(addr).await, open_raw(addr, 0).await];
    close_round(addr, warm).await;
    let start = rss_kb(pid);

    let mut peak = start;
    for _ in 0..2 {
        let open = open_round(addr).await;
        peak = peak.max(rss_kb(pid));
        close_round(addr, open).await;
    }
    let churned = peak.saturating_sub(start);
    assert!(
        churned > 8 * 1024,
        "2 x {PER_TRANSPORT} connections per transport grew RSS by only {churned} KB"
    );

    // The upkeep runs every 5 s: within 20 s at least half of the growth must be gone.
    let settled = common::poll_until(Duration::from_secs(20), || async {
        let now = rss_kb(pid);
        (peak.saturating_sub(now) * 2 >= churned).then_some(now)
    })
    .await;
    let now = settled.unwrap_or_else(|| rss_kb(pid));
    eprintln!("churn RSS: start {start} KB, peak {peak} KB, after {now} KB");
    assert!(
        peak.saturating_sub(now) * 2 >= churned,
        "RSS stayed up after the connections closed: start {start} KB, peak {peak} KB, \
         20 s after the last close {now} KB"
    );
}
