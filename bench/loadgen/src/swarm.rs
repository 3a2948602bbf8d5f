//! Clients of one scenario: receivers joined to rooms (each a task that stamps latency),
//! one sender per room, and the phases that send at a rate and settle. Single-threaded:
//! the shared figures live in an `Rc<RefCell<_>>`, so recording a delivery is a few
//! additions, no lock and no allocation.

use std::cell::RefCell;
use std::fmt::Write as _;
use std::io;
use std::rc::Rc;
use std::sync::LazyLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use memchr::memmem::Finder;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::{sleep, timeout, MissedTickBehavior};

use crate::proc::{self_ticks, server_stats, TICKS_PER_SEC};
use crate::wire::{Conn, TEXT};

/// Which protocol the clients speak.
#[derive(Clone, Copy, PartialEq)]
pub enum Proto {
    Sio,
    Raw,
}

/// Microseconds since the Unix epoch: comparable across generator processes.
pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Opens one client; joined to `room` when given. Bounded by a 10 s timeout.
pub async fn open_client(host: &str, proto: Proto, room: Option<&str>) -> io::Result<Conn> {
    let fut = async {
        if proto == Proto::Raw {
            let path = room.map_or_else(|| "/ws".to_owned(), |r| format!("/ws/{r}"));
            let mut conn = Conn::open(host, &path).await?;
            conn.next_text().await?; // the welcome frame: the connection is in the room
            return Ok(conn);
        }
        let mut conn = Conn::open(host, "/socket.io/?EIO=4&transport=websocket").await?;
        conn.next_text().await?; // Engine.IO open
        conn.send_text(b"40").await?;
        conn.wait_for(b"40").await?;
        if let Some(room) = room {
            conn.send_text(format!("420[\"room:join\",{{\"room\":\"{room}\"}}]").as_bytes())
                .await?;
            conn.wait_for(b"430").await?;
        }
        Ok(conn)
    };
    timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

/// Figures of one phase, filled by the receivers (and the senders' acks).
pub struct Phase {
    pub delivered: u64,
    pub hist: Histogram<u64>,
    /// Acks answering `ok`, and their latency (send to ack).
    pub acked: u64,
    pub ack_hist: Histogram<u64>,
    /// Acks answering an error.
    pub ack_errors: u64,
    /// When the phase started sending (us since the epoch).
    pub start_us: u64,
    /// Worst latency of messages sent in each 100 ms of the phase.
    pub worst_by_100ms: Vec<u64>,
}

/// Everything the receivers record.
pub struct Stats {
    pub phases: Vec<Phase>,
    /// Deliveries per receiver slot.
    pub per_conn: Vec<u32>,
    /// When any receiver last got a frame of any kind (us since the epoch).
    pub last_frame_us: u64,
    /// Read receipts the readers sent.
    pub reads: u64,
}

impl Stats {
    fn record_ack(&mut self, sent_us: u64, phase: usize, ok: bool) {
        let Some(p) = self.phases.get_mut(phase) else {
            return;
        };
        if ok {
            p.acked += 1;
            p.ack_hist
                .saturating_record(now_us().saturating_sub(sent_us).max(1));
        } else {
            p.ack_errors += 1;
        }
    }

    /// A stamped delivery to receiver `slot`.
    pub fn record(&mut self, sent_us: u64, phase: usize, slot: usize) {
        let Some(p) = self.phases.get_mut(phase) else {
            return;
        };
        let lat = now_us().saturating_sub(sent_us).max(1);
        p.delivered += 1;
        p.hist.saturating_record(lat);
        let bucket = (sent_us.saturating_sub(p.start_us) / 100_000) as usize;
        if let Some(w) = p.worst_by_100ms.get_mut(bucket) {
            *w = (*w).max(lat);
        }
        if let Some(c) = self.per_conn.get_mut(slot) {
            *c += 1;
        }
    }
}

static STAMP: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"content\":\"t"));

/// `(sent_us, phase)` from a chat message carrying `"content":"t<us>-<phase>"`.
fn stamp(payload: &[u8]) -> Option<(u64, usize)> {
    let at = STAMP.find(payload)? + STAMP.needle().len();
    let mut sent = 0u64;
    let mut phase = 0usize;
    let mut in_phase = false;
    for &b in &payload[at..] {
        match b {
            b'0'..=b'9' if in_phase => phase = phase * 10 + (b - b'0') as usize,
            b'0'..=b'9' => sent = sent * 10 + (b - b'0') as u64,
            b'-' if !in_phase => in_phase = true,
            _ => break,
        }
    }
    in_phase.then_some((sent, phase))
}

static REQUEST_ID: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"request_id\":\""));
static STATUS_OK: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"status\":\"ok\""));

/// `(sent_us, phase, ok)` of an ack: socket.io `43<id>[...]` with id = sent_us * 100 +
/// phase, or a raw frame carrying `"request_id":"<sent_us>-<phase>"` (the ack, or the
/// error frame of a send that failed).
fn ack_of(payload: &[u8]) -> Option<(u64, usize, bool)> {
    let ok = STATUS_OK.find(payload).is_some();
    if let Some(rest) = payload.strip_prefix(b"43") {
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let id: u64 = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
        return Some((id / 100, (id % 100) as usize, ok));
    }
    let at = REQUEST_ID.find(payload)? + REQUEST_ID.needle().len();
    let text = &payload[at..];
    let end = text.iter().position(|b| *b == b'"')?;
    let (sent, phase) = std::str::from_utf8(&text[..end]).ok()?.split_once('-')?;
    Some((sent.parse().ok()?, phase.parse().ok()?, ok))
}

/// A sender that asks for acks: writes the frames it is handed and reads its socket all
/// the while, so each ack is timed when it arrives.
async fn acked_sender(
    mut conn: Conn,
    mut frames: mpsc::UnboundedReceiver<String>,
    stats: Rc<RefCell<Stats>>,
) {
    loop {
        tokio::select! {
            biased;
            frame = frames.recv() => match frame {
                Some(frame) => {
                    if conn.send_text(frame.as_bytes()).await.is_err() {
                        return;
                    }
                }
                None => return,
            },
            next = conn.next_frame() => {
                let Ok((opcode, range)) = next else { return };
                if opcode == TEXT {
                    if let Some((sent, phase, ok)) = ack_of(conn.payload(range.clone())) {
                        stats.borrow_mut().record_ack(sent, phase, ok);
                        continue;
                    }
                }
                if conn.answer_keepalive(opcode, range).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Reads what a sender has buffered without waiting: acks are recorded, keepalives
/// answered, the rest dropped.
async fn drain_sender(conn: &mut Conn, stats: &RefCell<Stats>) -> io::Result<()> {
    while let Some((opcode, range)) = conn.try_next_frame()? {
        if opcode == TEXT {
            if let Some((sent, phase, ok)) = ack_of(conn.payload(range.clone())) {
                stats.borrow_mut().record_ack(sent, phase, ok);
                continue;
            }
        }
        conn.answer_keepalive(opcode, range).await?;
    }
    Ok(())
}

/// Reads until the connection ends, recording stamped deliveries for `slot` (and, as a
/// reader, marking them read).
async fn receive(
    mut conn: Conn,
    stats: Rc<RefCell<Stats>>,
    slot: usize,
    mut reader: Option<Reader>,
) {
    loop {
        let Ok((opcode, range)) = conn.next_frame().await else {
            return;
        };
        stats.borrow_mut().last_frame_us = now_us();
        if opcode == TEXT {
            if let Some((sent, phase)) = stamp(conn.payload(range.clone())) {
                stats.borrow_mut().record(sent, phase, slot);
                let frame = reader
                    .as_mut()
                    .and_then(|r| offset_of(conn.payload(range.clone())).and_then(|o| r.due(o)));
                if let Some(frame) = frame {
                    if conn.send_text(frame.as_bytes()).await.is_err() {
                        return;
                    }
                    stats.borrow_mut().reads += 1;
                }
                continue;
            }
        }
        if conn.answer_keepalive(opcode, range).await.is_err() {
            return;
        }
    }
}

/// Where clients go: `rooms` rooms of `size` receivers each, spread over `hosts`.
pub struct Layout {
    pub hosts: Vec<String>,
    pub proto: Proto,
    pub rooms: usize,
    pub size: usize,
    /// First room number (several generator processes share one run).
    pub first_room: usize,
    /// New connections per second while setting up.
    pub connect_rate: u64,
    /// Senders ask for an ack of every message (socket.io ack id, raw `request_id`).
    pub acks: bool,
    /// How the receivers are built.
    pub client: ClientMode,
    /// Percentage of the receivers that send read receipts (`message:read`).
    pub readers_pct: usize,
}

/// Least time between two read receipts of one reader, as a client that marks what it
/// shows as read sends them.
const READ_EVERY_US: u64 = 500_000;

/// A receiver that marks what it receives as read: `message:read {room, offset}` with the
/// newest offset, at most every [`READ_EVERY_US`].
pub struct Reader {
    proto: Proto,
    room: String,
    last_us: u64,
}

impl Reader {
    /// The frame to send now for `offset`, if one is due.
    pub fn due(&mut self, offset: u64) -> Option<String> {
        let now = now_us();
        if now.saturating_sub(self.last_us) < READ_EVERY_US {
            return None;
        }
        self.last_us = now;
        let room = &self.room;
        Some(match self.proto {
            Proto::Sio => format!("42[\"message:read\",{{\"room\":\"{room}\",\"offset\":{offset}}}]"),
            Proto::Raw => format!(
                "{{\"type\":\"system\",\"data\":{{\"request\":\"message:read\",\"room\":\"{room}\",\"offset\":{offset}}}}}"
            ),
        })
    }
}

static OFFSET: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"offset\":"));

/// The `"offset":N` of a message frame.
fn offset_of(payload: &[u8]) -> Option<u64> {
    let at = OFFSET.find(payload)? + OFFSET.needle().len();
    let digits = payload[at..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    std::str::from_utf8(&payload[at..at + digits])
        .ok()?
        .parse()
        .ok()
}

/// How receivers are built: lean ([`crate::wire`], reading in place, no JSON parsing)
/// or as ordinary clients are ([`crate::ordinary`]). Senders are always lean.
#[derive(Clone, Copy, PartialEq)]
pub enum ClientMode {
    Lean,
    Ordinary,
}

impl ClientMode {
    /// Its name in figures and flags.
    pub fn name(self) -> &'static str {
        match self {
            Self::Lean => "lean",
            Self::Ordinary => "ordinary",
        }
    }
}

impl Layout {
    fn room(&self, r: usize) -> String {
        format!("bench{}", self.first_room + r)
    }
}

/// The clients of a running scenario.
pub struct Swarm {
    pub stats: Rc<RefCell<Stats>>,
    senders: Vec<(Conn, String)>,
    /// With acks: the senders run as tasks ([`acked_sender`]), handed frames here.
    acked: Vec<(mpsc::UnboundedSender<String>, String)>,
    proto: Proto,
    /// Whether senders ask for an ack of every message.
    acks: bool,
    pub receivers: usize,
    pub failed: usize,
    pids: Vec<u32>,
}

/// What a sending phase did.
pub struct Sent {
    pub count: u64,
    pub secs: f64,
    pub peak_rss_kb: u64,
}

impl Swarm {
    /// Connects and joins every receiver (64 handshakes in flight), then one sender per room.
    pub async fn build(layout: &Layout, pids: Vec<u32>, phases: usize) -> Swarm {
        let receivers = layout.rooms * layout.size;
        let stats = Rc::new(RefCell::new(Stats {
            phases: (0..phases)
                .map(|_| Phase {
                    delivered: 0,
                    hist: Histogram::new_with_bounds(1, 600_000_000, 3).expect("histogram bounds"),
                    acked: 0,
                    ack_hist: Histogram::new_with_bounds(1, 600_000_000, 3)
                        .expect("histogram bounds"),
                    ack_errors: 0,
                    start_us: 0,
                    worst_by_100ms: vec![0; 600],
                })
                .collect(),
            per_conn: vec![0; receivers],
            last_frame_us: 0,
            reads: 0,
        }));
        let in_flight = std::sync::Arc::new(Semaphore::new(64));
        let (done_tx, mut done) = mpsc::unbounded_channel::<bool>();
        let mut tick = tokio::time::interval(Duration::from_micros(
            1_000_000 / layout.connect_rate.max(1),
        ));
        tick.set_missed_tick_behavior(MissedTickBehavior::Burst);
        for slot in 0..receivers {
            tick.tick().await;
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                break;
            };
            let host = layout.hosts[slot % layout.hosts.len()].clone();
            let room = layout.room(slot / layout.size);
            let (proto, stats, done_tx) = (layout.proto, stats.clone(), done_tx.clone());
            let client = layout.client;
            let reader = (slot % 100 < layout.readers_pct).then(|| Reader {
                proto,
                room: room.clone(),
                last_us: 0,
            });
            tokio::task::spawn_local(async move {
                if client == ClientMode::Ordinary {
                    let opened = crate::ordinary::open(&host, proto, &room).await;
                    drop(permit);
                    let _ = done_tx.send(opened.is_ok());
                    drop(done_tx);
                    if let Ok(ws) = opened {
                        crate::ordinary::receive(ws, proto, stats, slot, reader).await;
                    }
                    return;
                }
                let opened = open_client(&host, proto, Some(&room)).await;
                drop(permit);
                let _ = done_tx.send(opened.is_ok());
                drop(done_tx);
                if let Ok(conn) = opened {
                    receive(conn, stats, slot, reader).await;
                }
            });
        }
        drop(done_tx);
        let mut failed = 0;
        while let Some(ok) = done.recv().await {
            failed += usize::from(!ok);
        }
        let mut senders = Vec::new();
        for r in 0..layout.rooms {
            let room = layout.room(r);
            let host = &layout.hosts[r % layout.hosts.len()];
            match open_client(host, layout.proto, Some(&room)).await {
                Ok(conn) => senders.push((conn, room)),
                Err(e) => eprintln!("sender for {room} failed: {e}"),
            }
        }
        let mut acked = Vec::new();
        if layout.acks {
            for (conn, room) in senders.drain(..) {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::task::spawn_local(acked_sender(conn, rx, stats.clone()));
                acked.push((tx, room));
            }
        }
        Swarm {
            stats,
            senders,
            acked,
            proto: layout.proto,
            acks: layout.acks,
            receivers: receivers - failed,
            failed,
            pids,
        }
    }

    /// Waits until no receiver has had a frame for `quiet` (the joins' presence
    /// announcements are over), at most `max_wait`.
    pub async fn wait_quiet(&self, quiet: Duration, max_wait: Duration) {
        let deadline = Instant::now() + max_wait;
        while Instant::now() < deadline {
            let idle_us = now_us().saturating_sub(self.stats.borrow().last_frame_us);
            if idle_us >= quiet.as_micros() as u64 {
                return;
            }
            sleep(Duration::from_millis(50)).await;
        }
        eprintln!("receivers still busy after {max_wait:?}");
    }

    /// The server processes being measured.
    pub fn pids(&self) -> Vec<u32> {
        self.pids.clone()
    }

    /// Senders that connected.
    pub fn senders(&self) -> usize {
        self.senders.len() + self.acked.len()
    }

    /// Sends `rate` messages/s for `secs`, round-robin over the rooms, stamped with
    /// `phase`; samples the servers' RSS every 100 ms.
    pub async fn send(&mut self, phase: usize, rate: f64, secs: f64) -> Sent {
        let start_us = now_us();
        if let Some(p) = self.stats.borrow_mut().phases.get_mut(phase) {
            p.start_us = start_us;
        }
        let total = (rate * secs).round() as u64;
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        tick.set_missed_tick_behavior(MissedTickBehavior::Skip);
        let started = Instant::now();
        let mut sent = 0u64;
        let mut peak_rss_kb = 0;
        let mut frame = String::with_capacity(128);
        let mut next_sample = Duration::ZERO;
        let hard_stop = Duration::from_secs_f64(secs * 3.0 + 5.0);
        while sent < total && self.senders() > 0 {
            // Recounted each tick: a sender whose connection ended is gone.
            let n = self.senders().max(1) as u64;
            tick.tick().await;
            let elapsed = started.elapsed();
            if elapsed > hard_stop {
                break;
            }
            if elapsed >= next_sample {
                peak_rss_kb = peak_rss_kb.max(server_stats(&self.pids).0);
                next_sample = elapsed + Duration::from_millis(100);
            }
            let due = ((elapsed.as_secs_f64() * rate) as u64 + 1).min(total);
            while sent < due {
                let i = (sent % n) as usize;
                let room = match self.acked.get(i) {
                    Some((_, room)) => room,
                    None => &self.senders[i].1,
                };
                frame.clear();
                let t = now_us();
                let _ = match (self.proto, self.acks) {
                    (Proto::Sio, false) => write!(
                        frame,
                        "42[\"message:send\",{{\"room\":\"{room}\",\"content\":\"t{t}-{phase}\"}}]"
                    ),
                    (Proto::Sio, true) => write!(
                        frame,
                        "42{}[\"message:send\",{{\"room\":\"{room}\",\"content\":\"t{t}-{phase}\"}}]",
                        t * 100 + phase as u64
                    ),
                    (Proto::Raw, false) => write!(
                        frame,
                        "{{\"type\":\"chat\",\"data\":{{\"content\":\"t{t}-{phase}\"}}}}"
                    ),
                    (Proto::Raw, true) => write!(
                        frame,
                        "{{\"type\":\"chat\",\"data\":{{\"content\":\"t{t}-{phase}\",\"request_id\":\"{t}-{phase}\"}}}}"
                    ),
                };
                let sent_ok = match self.acked.get(i) {
                    Some((tx, _)) => tx.send(frame.clone()).is_ok(),
                    None => {
                        let conn = &mut self.senders[i].0;
                        conn.send_text(frame.as_bytes()).await.is_ok()
                            && drain_sender(conn, &self.stats).await.is_ok()
                    }
                };
                if !sent_ok {
                    eprintln!("a sender's connection ended");
                    if self.acked.is_empty() {
                        self.senders.swap_remove(i);
                    } else {
                        self.acked.swap_remove(i);
                    }
                    break;
                }
                sent += 1;
            }
        }
        peak_rss_kb = peak_rss_kb.max(server_stats(&self.pids).0);
        Sent {
            count: sent,
            secs: started.elapsed().as_secs_f64(),
            peak_rss_kb,
        }
    }

    /// Waits until `phases` have `expected` deliveries or stop growing for a second
    /// (at most `max_wait`), keeping the senders' sockets drained.
    pub async fn settle(
        &mut self,
        phases: &[usize],
        expected: u64,
        sent_messages: u64,
        max_wait: Duration,
    ) {
        let deadline = Instant::now() + max_wait;
        let mut last = u64::MAX;
        let mut still_since = Instant::now();
        while Instant::now() < deadline {
            sleep(Duration::from_millis(50)).await;
            for (conn, _) in &mut self.senders {
                let _ = drain_sender(conn, &self.stats).await;
            }
            let (got, acked): (u64, u64) = {
                let s = self.stats.borrow();
                phases
                    .iter()
                    .filter_map(|&p| s.phases.get(p))
                    .fold((0, 0), |(d, a), p| {
                        (d + p.delivered, a + p.acked + p.ack_errors)
                    })
            };
            if got >= expected && (!self.acks || acked >= sent_messages) {
                return;
            }
            if got != last {
                last = got;
                still_since = Instant::now();
            } else if still_since.elapsed() > Duration::from_secs(1) {
                return;
            }
        }
    }

    /// Runs one measured phase: send, settle, and the figures as JSON.
    pub async fn measured(&mut self, phase: usize, rate: f64, secs: f64) -> Value {
        let (rss0, ticks0) = server_stats(&self.pids);
        let own0 = self_ticks();
        let sent = self.send(phase, rate, secs).await;
        let expected = sent.count * self.per_message();
        self.settle(&[phase], expected, sent.count, Duration::from_secs(20))
            .await;
        let (_, ticks1) = server_stats(&self.pids);
        let own1 = self_ticks();
        let s = self.stats.borrow();
        let p = &s.phases[phase];
        let cpu = ticks1.saturating_sub(ticks0) as f64 / TICKS_PER_SEC;
        json!({
            "offered_per_s": expected as f64 / sent.secs, "msgs_per_s": sent.count as f64 / sent.secs,
            "delivered": p.delivered, "expected": expected,
            "loss_pct": loss_pct(expected, p.delivered),
            "delivered_per_s": p.delivered as f64 / sent.secs,
            "p50_ms": ms(&p.hist, 0.5), "p99_ms": ms(&p.hist, 0.99), "p999_ms": ms(&p.hist, 0.999),
            "server_cpu_s": cpu,
            "server_us_per_delivery": if p.delivered > 0 { cpu * 1e6 / p.delivered as f64 } else { 0.0 },
            "server_rss_kb": sent.peak_rss_kb.max(rss0),
            "loadgen_cpu_s": own1.saturating_sub(own0) as f64 / TICKS_PER_SEC,
            "sent": sent.count,
            "acked": p.acked, "ack_errors": p.ack_errors, "reads_sent": s.reads,
            "ack_p50_ms": ms(&p.ack_hist, 0.5), "ack_p99_ms": ms(&p.ack_hist, 0.99),
        })
    }

    /// Deliveries each message should make: the receivers of one room.
    pub fn per_message(&self) -> u64 {
        let rooms = self.senders().max(1) as u64;
        (self.receivers as u64)
            .div_ceil(rooms)
            .min(self.receivers as u64)
    }
}

/// Percentage of `expected` not delivered.
pub fn loss_pct(expected: u64, delivered: u64) -> f64 {
    if expected == 0 {
        return 0.0;
    }
    100.0 * expected.saturating_sub(delivered) as f64 / expected as f64
}

/// The `q` quantile of `h`, in milliseconds.
pub fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}
