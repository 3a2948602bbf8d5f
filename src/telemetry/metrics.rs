//! Prometheus metrics: declared here once, recorded through the `metrics` facade,
//! rendered by `GET /metrics`. Labels are transports, event kinds, error codes and
//! reasons, never rooms or users.

use std::sync::OnceLock;
use std::time::Duration;

use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

/// Latency buckets in seconds, 100 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// The process-wide recorder: `metrics` has one global recorder per process, so every
/// server in the process shares it (installed on first use, with its
/// [`upkeep`](super::upkeep) thread that drains histograms between scrapes).
pub fn handle() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(LATENCY_BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            if !super::upkeep::start(handle.clone()) {
                tracing::warn!("cannot start the metrics upkeep thread");
            }
            Some(handle)
        })
        .clone()
}

/// A metric label value: a transport, an error code. Implemented by the types that are
/// labelled, so this module depends on nothing of the chat.
pub trait Label: Copy {
    /// The label's value.
    fn label(self) -> &'static str;
}

/// A connection opened.
pub fn connected(transport: impl Label) {
    counter!("chatwire_connects_total", "transport" => transport.label()).increment(1);
}

/// A connection closed.
pub fn disconnected(transport: impl Label) {
    counter!("chatwire_disconnects_total", "transport" => transport.label()).increment(1);
}

/// An engine.io request for another pod's session, by outcome (`forwarded`,
/// `unknown_pod`, `unreachable`, `timeout`, `refused_hop`).
pub fn session_forward(outcome: &'static str) {
    counter!("chatwire_session_forwards_total", "outcome" => outcome).increment(1);
}

/// A forwarded request or tunnel started (`1.0`) or ended (`-1.0`).
pub fn session_forwards_in_flight(change: f64) {
    gauge!("chatwire_session_forwards_in_flight").increment(change);
}

/// A client sent an event or frame of `kind` (e.g. `message:send`, `chat`).
pub fn message_in(transport: impl Label, kind: &'static str) {
    counter!("chatwire_messages_in_total", "transport" => transport.label(), "type" => kind)
        .increment(1);
}

/// `n` local recipients were handed an event of `kind` (e.g. `message`, `presence`).
pub fn messages_out(kind: &'static str, n: u64) {
    counter!("chatwire_messages_out_total", "type" => kind).increment(n);
}

/// A call to the application's backend (`hook`: connect, message, rpc, webhook) ended
/// with `outcome` (ok, timeout, unreachable, status, invalid) after `latency`.
pub fn hook_call(hook: &'static str, outcome: &'static str, latency: Duration) {
    counter!("chatwire_hook_calls_total", "hook" => hook, "outcome" => outcome).increment(1);
    histogram!("chatwire_hook_seconds", "hook" => hook).record(latency.as_secs_f64());
}

/// `n` webhook events were sent (delivered), failed (an attempt that will be retried)
/// or dropped (the queue was full).
pub fn webhook_events(outcome: &'static str, n: u64) {
    counter!("chatwire_webhook_events_total", "outcome" => outcome).increment(n);
}

/// A gap in a room's offsets was closed from the message log.
pub fn gap_filled() {
    counter!("chatwire_gaps_filled_total").increment(1);
}

/// A gap in a room's offsets could not be closed (the log no longer has them).
pub fn gap_skipped() {
    counter!("chatwire_gaps_skipped_total").increment(1);
}

/// A delivery reached a socket `latency` after the chat accepted it.
pub fn delivery_latency(transport: impl Label, latency: Duration) {
    histogram!("chatwire_delivery_latency_seconds", "transport" => transport.label())
        .record(latency.as_secs_f64());
}

/// A client was answered with the error `code`.
pub fn error(code: impl Label) {
    counter!("chatwire_errors_total", "code" => code.label()).increment(1);
}

/// A request was refused by a rate limit or a connection cap (`what`: `message`,
/// `typing`, `presence`, `connection`, or `waiting_events` when a socket.io client had
/// too many events waiting to be handled).
pub fn rate_limited(what: &'static str) {
    counter!("chatwire_rate_limited_total", "limit" => what).increment(1);
}

/// One publish pipeline to Redis took `latency`.
pub fn redis_publish(latency: Duration, ok: bool) {
    histogram!("chatwire_redis_publish_seconds", "result" => if ok { "ok" } else { "error" })
        .record(latency.as_secs_f64());
}

/// Point-in-time values, set right before each scrape.
pub struct Snapshot {
    /// Connections and rooms of this pod.
    /// Open connections: socket.io, raw WebSocket.
    pub connections: (usize, usize),
    /// Rooms with local members.
    pub rooms: usize,
    /// Messages dropped because a recipient's outbox or socket.io buffer was full.
    pub dropped_slow_consumer: u64,
    /// Messages that did not reach other pods.
    pub dropped_redis: u64,
    /// Other pods' messages dropped here at a full inbound queue.
    pub dropped_inbound: u64,
    /// 1 when Redis is connected, 0 when not, -1 when not configured.
    pub redis_up: i8,
}

/// Records `snapshot` and renders the Prometheus text.
pub fn render(handle: &PrometheusHandle, snapshot: &Snapshot) -> String {
    gauge!("chatwire_connections", "transport" => "socketio").set(snapshot.connections.0 as f64);
    gauge!("chatwire_connections", "transport" => "ws").set(snapshot.connections.1 as f64);
    gauge!("chatwire_rooms").set(snapshot.rooms as f64);
    counter!("chatwire_dropped_total", "reason" => "slow_consumer")
        .absolute(snapshot.dropped_slow_consumer);
    counter!("chatwire_dropped_total", "reason" => "redis_down").absolute(snapshot.dropped_redis);
    counter!("chatwire_dropped_total", "reason" => "inbound_queue_full")
        .absolute(snapshot.dropped_inbound);
    gauge!("chatwire_redis_up").set(f64::from(snapshot.redis_up));
    handle.render()
}
