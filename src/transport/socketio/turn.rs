//! Per-socket ordering of event handlers. socketioxide spawns one task per incoming
//! event, so two events of one socket could be handled out of order. Extractors run
//! synchronously in arrival order, so extracting a [`Turn`] takes a numbered ticket;
//! the handler then waits for its number before touching the chat.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use socketioxide::adapter::Adapter;
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::Socket;
use socketioxide_core::Value;
use tokio::sync::watch;
use tracing::debug;

/// The ticket dispenser of one socket; stored in the socket's extensions at connect.
#[derive(Debug)]
pub struct Line {
    issued: AtomicU64,
    serving: watch::Sender<u64>,
}

impl Line {
    /// A fresh line serving ticket 0.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            issued: AtomicU64::new(0),
            serving: watch::Sender::new(0),
        })
    }
}

/// A handler's place in its socket's line. Dropping it lets the next one run.
pub struct Turn {
    seq: u64,
    line: Option<Arc<Line>>,
}

impl Turn {
    /// Takes the next ticket of `line`.
    pub fn next(line: &Arc<Line>) -> Self {
        Self {
            seq: line.issued.fetch_add(1, Ordering::Relaxed),
            line: Some(line.clone()),
        }
    }

    /// Waits until every earlier event of this socket has been handled.
    pub async fn wait(&self) {
        let Some(line) = &self.line else { return };
        let mut rx = line.serving.subscribe();
        if rx.wait_for(|serving| *serving >= self.seq).await.is_err() {
            debug!("turn line closed");
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let Some(line) = self.line.take() else { return };
        let seq = self.seq;
        if *line.serving.borrow() == seq {
            line.serving.send_replace(seq + 1);
        } else {
            // Dropped before its turn came (the handler never ran): pass it on in order.
            tokio::spawn(async move {
                let mut rx = line.serving.subscribe();
                if rx.wait_for(|serving| *serving >= seq).await.is_ok() {
                    line.serving.send_replace(seq + 1);
                }
            });
        }
    }
}

impl<A: Adapter> FromMessageParts<A> for Turn {
    type Error = Infallible;

    fn from_message_parts(
        s: &Arc<Socket<A>>,
        _: &mut Value,
        _: &Option<i64>,
    ) -> Result<Self, Infallible> {
        let line = s.extensions.get::<Arc<Line>>();
        let seq = line
            .as_ref()
            .map_or(0, |l| l.issued.fetch_add(1, Ordering::Relaxed));
        Ok(Self { seq, line })
    }
}
