//! [`Reply`]: answers a client event through its ack, or with an `error` event when the
//! client asked for no ack (so an `emitWithAck` never hangs and errors are never lost).

use std::convert::Infallible;
use std::sync::Arc;

use serde_json::{json, Value};
use socketioxide::adapter::Adapter;
use socketioxide::extract::{AckSender, SocketRef};
use socketioxide::handler::FromMessageParts;
use socketioxide::socket::Socket;
use socketioxide_core::Value as SioValue;
use tracing::debug;

use crate::chat::ChatError;

/// Event carrying an error when the client asked for no ack.
pub const EVENT_ERROR: &str = "error";

/// The catalogue's error shape: `{"status":"error","code":"...","message":"..."}`.
pub fn error_body(err: &ChatError) -> Value {
    let mut body = json!({ "status": "error", "code": err.code(), "message": err.to_string() });
    if let Some(ms) = err.retry_after_ms() {
        body["retry_after_ms"] = json!(ms);
    }
    body
}

/// Emits `err` as an `error` event.
pub fn emit_error<A: Adapter>(socket: &SocketRef<A>, err: &ChatError) {
    crate::telemetry::metrics::error(err.code());
    if let Err(e) = socket.emit(EVENT_ERROR, &error_body(err)) {
        debug!(error = %e, "could not emit error event");
    }
}

/// Answers one client event.
pub struct Reply<A: Adapter> {
    socket: SocketRef<A>,
    ack: Option<AckSender<A>>,
}

impl<A: Adapter> Reply<A> {
    /// Whether the client asked for an ack.
    pub fn wants_ack(&self) -> bool {
        self.ack.is_some()
    }

    /// Sends the result: `Ok(body)` through the ack, or the error through the ack or as
    /// an `error` event.
    pub fn send(self, result: Result<Value, ChatError>) {
        if let Err(e) = &result {
            crate::telemetry::metrics::error(e.code());
        }
        let sent = match (self.ack, result) {
            (Some(ack), Ok(body)) => ack.send(&body),
            (Some(ack), Err(err)) => ack.send(&error_body(&err)),
            (None, Err(err)) => self.socket.emit(EVENT_ERROR, &error_body(&err)),
            (None, Ok(_)) => Ok(()),
        };
        if let Err(e) = sent {
            debug!(error = %e, "reply not sent");
        }
    }
}

impl<A: Adapter> FromMessageParts<A> for Reply<A> {
    type Error = Infallible;

    fn from_message_parts(
        s: &Arc<Socket<A>>,
        v: &mut SioValue,
        ack_id: &Option<i64>,
    ) -> Result<Self, Infallible> {
        let ack = match ack_id {
            Some(_) => Some(AckSender::from_message_parts(s, v, ack_id)?),
            None => None,
        };
        Ok(Self {
            socket: SocketRef::from(s.clone()),
            ack,
        })
    }
}
