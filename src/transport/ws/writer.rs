//! The writer of one raw WebSocket connection: drains the outbox in batches onto the
//! socket, sends heartbeats, and closes with the connection's close code.

use std::collections::VecDeque;
use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket};
use futures_util::stream::SplitSink;
use futures_util::SinkExt;
use tokio::time::{interval_at, timeout, Instant};
use tracing::debug;

use super::hub::{close_code, Closer, Outbox, Queued};
use super::{WsSettings, CLOSE_WRITE_TIMEOUT};
use crate::chat::Transport;
use crate::telemetry::metrics;

pub(super) async fn write_loop(
    mut sink: SplitSink<WebSocket, WsMessage>,
    outbox: Arc<Outbox>,
    closer: Closer,
    settings: WsSettings,
) {
    let mut ping = interval_at(
        Instant::now() + settings.ping_interval,
        settings.ping_interval,
    );
    loop {
        let written = tokio::select! {
            biased;
            () = closer.closed() => break,
            () = outbox.ready() => timeout(settings.pong_timeout, write_batch(&mut sink, outbox.take())).await,
            _ = ping.tick() => timeout(settings.pong_timeout, sink.send(WsMessage::Ping(Default::default()))).await,
        };
        match written {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return closer.close(close_code::GOING_AWAY, "write failed"),
            Err(_elapsed) => {
                closer.close(close_code::POLICY, "slow consumer");
                break;
            }
        }
    }
    let (code, reason) = closer
        .reason()
        .unwrap_or((close_code::GOING_AWAY, "closing"));
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    // What was queued before the close (e.g. the error that explains it) goes first.
    let farewell = async {
        write_batch(&mut sink, outbox.take()).await?;
        sink.send(WsMessage::Close(Some(frame))).await
    };
    if timeout(CLOSE_WRITE_TIMEOUT, farewell).await.is_err() {
        debug!("close frame not written in time");
    }
}

/// Writes `batch` in order with one flush; the queue's memory is freed afterwards.
async fn write_batch(
    sink: &mut SplitSink<WebSocket, WsMessage>,
    batch: VecDeque<Queued>,
) -> Result<(), axum::Error> {
    if batch.is_empty() {
        return Ok(());
    }
    for queued in batch {
        metrics::delivery_latency(Transport::Ws, queued.at.elapsed());
        sink.feed(WsMessage::Text(queued.frame)).await?;
    }
    sink.flush().await
}
