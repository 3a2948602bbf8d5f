//! Wires the state, the router (HTTP, raw WebSocket, socket.io layer) and the graceful
//! drain. [`run`] serves until the shutdown token is cancelled, then drains within
//! SHUTDOWN_TIMEOUT.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::Router;
use socketioxide::SocketIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::bus::{Bus, LocalBus};
use crate::chat::{ChatLimits, ChatService, LocalFanout, Transport};
use crate::config::Config;
use crate::gate::Gate;
use crate::transport::http::{self, HttpContext};
use crate::transport::socketio::{self, SioFanout, SioSettings};
use crate::transport::ws::{self, WsContext, WsSettings};
use crate::transport::ws_hub::{close_code, WsHub};

/// Serves on `listener` until `shutdown` is cancelled, then drains and returns.
pub async fn run(
    listener: TcpListener,
    config: Config,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let bus: Arc<dyn Bus> = Arc::new(LocalBus);
    let chat = Arc::new(ChatService::new(
        bus.clone(),
        ChatLimits {
            max_message_bytes: config.max_message_bytes,
        },
    ));
    let hub = Arc::new(WsHub::new(config.pong_timeout));
    let gate = Gate;
    let (sio_layer, io) = socketio::build(
        SioSettings {
            ping_interval: config.ping_interval,
            ping_timeout: config.pong_timeout,
            max_message_bytes: config.max_message_bytes,
            send_buffer: config.send_buffer,
        },
        chat.clone(),
        gate.clone(),
    );
    let sio_fanout = Arc::new(SioFanout::default());
    sio_fanout.attach(io.clone());
    chat.set_fanouts(vec![
        sio_fanout as Arc<dyn LocalFanout>,
        hub.clone() as Arc<dyn LocalFanout>,
    ]);

    let draining = Arc::new(AtomicBool::new(false));
    let tracker = TaskTracker::new();
    let app = Router::new()
        .merge(http::routes(HttpContext {
            chat: chat.clone(),
            hub: hub.clone(),
            bus: bus.clone(),
            draining: draining.clone(),
        }))
        .merge(ws::routes(WsContext {
            chat: chat.clone(),
            hub: hub.clone(),
            gate,
            tracker: tracker.clone(),
            settings: WsSettings {
                max_message_bytes: config.max_message_bytes,
                ping_interval: config.ping_interval,
                pong_timeout: config.pong_timeout,
                send_buffer: config.send_buffer,
            },
        }))
        .layer(sio_layer);

    let addr = listener.local_addr()?;
    info!(%addr, "listening");
    let serve = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let server = tokio::spawn(async move { serve.await });

    shutdown.cancelled().await;
    info!(timeout = ?config.shutdown_timeout, "draining");
    draining.store(true, Ordering::Relaxed);
    let drain = async {
        hub.close_all(close_code::GOING_AWAY, "server shutting down");
        close_socketio(&io, &chat).await;
        tracker.close();
        tracker.wait().await;
        match server.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => warn!(error = %e, "server ended with an error"),
            Err(e) => warn!(error = %e, "server task failed"),
        }
    };
    if tokio::time::timeout(config.shutdown_timeout, drain)
        .await
        .is_err()
    {
        warn!("drain did not finish within SHUTDOWN_TIMEOUT; exiting anyway");
    }
    info!("stopped");
    Ok(())
}

/// Closes every socket.io socket and forgets their memberships: `io.close()` does not
/// run the sockets' disconnect handlers.
async fn close_socketio(io: &SocketIo, chat: &ChatService) {
    io.close().await;
    for conn in chat.membership().connections_of(Transport::SocketIo) {
        chat.disconnect(&conn);
    }
}
