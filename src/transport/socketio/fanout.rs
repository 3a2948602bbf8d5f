//! The socket.io side of local fan-out: one broadcast per delivery (socketioxide encodes
//! the packet once), restricted to this pod, skipping the sending socket.

use std::str::FromStr;
use std::sync::OnceLock;

use futures_util::FutureExt;
use socketioxide::adapter::Adapter;
use socketioxide::socket::Sid;
use socketioxide::SocketIo;
use tracing::debug;

use crate::chat::{Delivery, LocalFanout};

/// Event carrying a chat message to clients.
pub const EVENT_MESSAGE_NEW: &str = "message:new";

/// Local socket.io fan-out, attached to the server once it is built.
pub struct SioFanout<A: Adapter> {
    io: OnceLock<SocketIo<A>>,
}

impl<A: Adapter> Default for SioFanout<A> {
    fn default() -> Self {
        Self {
            io: OnceLock::new(),
        }
    }
}

impl<A: Adapter> SioFanout<A> {
    /// Connects the fan-out to the socket.io server.
    pub fn attach(&self, io: SocketIo<A>) {
        if self.io.set(io).is_err() {
            debug!("socket.io fan-out already attached");
        }
    }
}

impl<A: Adapter> LocalFanout for SioFanout<A> {
    fn deliver(&self, delivery: &Delivery) {
        // `of` rather than the root shortcuts: those panic once `io.close()` removed "/".
        let Some(ns) = self.io.get().and_then(|io| io.of("/")) else {
            return;
        };
        let origin = delivery
            .origin
            .as_ref()
            .and_then(|c| Sid::from_str(c.as_str()).ok())
            .and_then(|sid| ns.get_socket(sid));
        let ops = match origin {
            Some(socket) => socket.broadcast().local(),
            None => ns.local(),
        };
        let ops = match &delivery.message.room {
            Some(room) => ops.to(room.to_string()),
            None => ops,
        };
        // A local broadcast completes synchronously; poll it once to keep order.
        let emit = ops.emit(EVENT_MESSAGE_NEW, &*delivery.message);
        match emit.now_or_never() {
            Some(Ok(())) => {}
            Some(Err(e)) => debug!(error = %e, "socket.io broadcast incomplete"),
            None => debug!("socket.io local broadcast did not complete at once"),
        }
    }
}
