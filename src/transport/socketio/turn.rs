//! Per-socket ordering of event handlers. socketioxide spawns one task per incoming
//! event, so two events of one socket could be handled out of order. Extractors run
//! synchronously in arrival order, so extracting a [`Turn`] takes a place in the socket's
//! [`Line`]; the handler then waits until the places before it are done. Each place has
//! its own gate, so finishing one wakes exactly the next (no thundering herd), and a line
//! holds at most [`MAX_WAITING_EVENTS`]: past that, events are refused rather than queued,
//! so a client sending faster than the server can handle gets `RATE_LIMITED` instead of
//! an ever longer wait.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};

use socketioxide::adapter::Adapter;
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::Socket;
use socketioxide_core::Value;
use tokio::sync::oneshot;

use crate::chat::ChatError;
use crate::telemetry::metrics;

/// Events of one socket that may wait for their turn; later ones are refused.
pub const MAX_WAITING_EVENTS: usize = 256;

/// A place in the line: open (may run), waiting behind others, or given up.
#[derive(Debug)]
enum Place {
    Open,
    Waiting(oneshot::Sender<()>),
    Abandoned,
}

#[derive(Debug, Default)]
struct Places {
    /// Number of the place at the front of `places`.
    front: u64,
    places: VecDeque<Place>,
}

/// The line of one socket; stored in the socket's extensions at connect.
#[derive(Debug, Default)]
pub struct Line {
    state: Mutex<Places>,
}

impl Line {
    /// A line whose first place is taken by the connect handler, until
    /// [`Line::release_first`].
    pub fn held_for_connect() -> Arc<Self> {
        let line = Self::default();
        line.lock().places.push_back(Place::Open);
        Arc::new(line)
    }

    /// Gives up the first place (the connect handler is done).
    pub fn release_first(&self) {
        self.leave(0);
    }

    fn lock(&self) -> MutexGuard<'_, Places> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Joins the line; `None` when `bound` places are already taken.
    fn join(self: &Arc<Self>, bound: Option<usize>) -> Option<Turn> {
        let mut s = self.lock();
        if bound.is_some_and(|b| s.places.len() >= b) {
            return None;
        }
        let seq = s.front + s.places.len() as u64;
        let gate = if s.places.is_empty() {
            s.places.push_back(Place::Open);
            None
        } else {
            let (tx, rx) = oneshot::channel();
            s.places.push_back(Place::Waiting(tx));
            Some(rx)
        };
        Some(Turn {
            seq,
            gate: Mutex::new(gate),
            line: Some(self.clone()),
            refused: false,
        })
    }

    /// Removes the front place and opens the next one still wanted.
    fn advance(s: &mut Places) {
        s.places.pop_front();
        s.front += 1;
        while let Some(next) = s.places.front_mut() {
            let opened = match std::mem::replace(next, Place::Open) {
                Place::Waiting(tx) => tx.send(()).is_ok(),
                Place::Open => true,
                Place::Abandoned => false,
            };
            if opened {
                return;
            }
            // Given up, or its waiter is gone: skip it.
            s.places.pop_front();
            s.front += 1;
        }
    }

    fn leave(&self, seq: u64) {
        let mut s = self.lock();
        let Some(index) = seq.checked_sub(s.front) else {
            return;
        };
        if index == 0 {
            Self::advance(&mut s);
        } else if let Some(place) = s.places.get_mut(index as usize) {
            *place = Place::Abandoned;
        }
    }
}

/// A handler's place in its socket's line. Dropping it lets the next one run.
pub struct Turn {
    seq: u64,
    gate: Mutex<Option<oneshot::Receiver<()>>>,
    /// `None` when the socket has no line or the event was refused.
    line: Option<Arc<Line>>,
    /// The line was full: the handler must not run.
    refused: bool,
}

impl Turn {
    /// Takes the next place of `line`, however long the line is (connect, disconnect).
    pub fn next(line: &Arc<Line>) -> Self {
        line.join(None).unwrap_or_else(|| Self::unordered(false))
    }

    /// A turn outside any line: runs at once, or never when `refused`.
    fn unordered(refused: bool) -> Self {
        Self {
            seq: 0,
            gate: Mutex::new(None),
            line: None,
            refused,
        }
    }

    /// Waits until every earlier event of this socket has been handled; `RATE_LIMITED`
    /// when the event was refused because too many were already waiting.
    pub async fn wait(&self) -> Result<(), ChatError> {
        if self.refused {
            return Err(ChatError::RateLimited {
                retry_after_ms: 100,
            });
        }
        let gate = self.gate.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(gate) = gate {
            // An error means the line is gone with the socket: nothing to wait for.
            let _ = gate.await;
        }
        Ok(())
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        if let Some(line) = self.line.take() {
            line.leave(self.seq);
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
        let Some(line) = s.extensions.get::<Arc<Line>>() else {
            // No line: nothing to order against.
            return Ok(Self::unordered(false));
        };
        Ok(line.join(Some(MAX_WAITING_EVENTS)).unwrap_or_else(|| {
            metrics::rate_limited("waiting_events");
            Self::unordered(true)
        }))
    }
}
