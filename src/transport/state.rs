//! [`AppState`]: the one handle every transport's handlers read (axum routes through
//! `State`/`FromRef`, socket.io handlers through socketioxide's state), cheap to clone.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use axum::extract::FromRef;
use futures_util::future::BoxFuture;
use serde_json::Value;
use tokio_util::task::TaskTracker;

use super::ws::{WsHub, WsSettings};
use crate::chat::{Bus, ChatService};
use crate::gate::Gate;
use crate::hooks::Hooks;
use crate::transport::socketio::admin::AdminAccess;

/// Cluster-wide socket.io listing (served by the socket.io side through its adapter).
pub trait SocketDirectory: Send + Sync + 'static {
    /// Every socket (id, pod) and every room, across pods.
    fn list(&self) -> BoxFuture<'_, Result<Value, String>>;
}

/// A [`SocketDirectory`] set once the socket.io server exists (it is built after the
/// state its handlers read).
#[derive(Default)]
pub struct LateDirectory(OnceLock<Arc<dyn SocketDirectory>>);

impl LateDirectory {
    /// Sets the directory (once; later calls are ignored).
    pub fn set(&self, directory: Arc<dyn SocketDirectory>) {
        if self.0.set(directory).is_err() {
            tracing::debug!("socket directory already set");
        }
    }
}

impl SocketDirectory for LateDirectory {
    fn list(&self) -> BoxFuture<'_, Result<Value, String>> {
        match self.0.get() {
            Some(directory) => directory.list(),
            None => Box::pin(std::future::ready(Err("socket.io is not started".into()))),
        }
    }
}

/// What the handlers of every transport read.
#[derive(Clone)]
pub struct AppState {
    /// The chat domain.
    pub chat: Arc<ChatService>,
    /// Admission, identity and rate limits.
    pub gate: Gate,
    /// The raw WebSocket registry (closing, drop counts).
    pub hub: Arc<WsHub>,
    /// The pod-to-pod bus (status, counters).
    pub bus: Arc<dyn Bus>,
    /// Set once shutdown begins: /ready answers 503 from then on.
    pub draining: Arc<AtomicBool>,
    /// Socket.io sockets and rooms across the cluster.
    pub directory: Arc<LateDirectory>,
    /// Tracks raw connection tasks so shutdown can wait for them.
    pub tracker: TaskTracker,
    /// Raw WebSocket wire settings.
    pub ws_settings: WsSettings,
    /// The application's backend: connect and RPC hooks.
    pub hooks: Hooks,
    /// The operator's access to the `/admin` namespace (none: off).
    pub admin: Option<AdminAccess>,
}

impl FromRef<AppState> for Gate {
    fn from_ref(state: &AppState) -> Self {
        state.gate.clone()
    }
}

impl FromRef<AppState> for Arc<ChatService> {
    fn from_ref(state: &AppState) -> Self {
        state.chat.clone()
    }
}
