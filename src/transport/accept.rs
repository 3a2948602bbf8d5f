//! The HTTP/1.1 accept loop. Every TCP connection gets a header read timeout
//! (HEADER_READ_TIMEOUT), which also ends a kept-alive connection left idle that long,
//! and a client address may hold only MAX_UNFINISHED_REQUESTS_PER_IP connections whose
//! first request has not arrived yet (slowloris). Connections that become WebSockets
//! are then counted by the gate's connection caps.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::{debug, warn};

use crate::gate::{ConnectionPermit, Gate};

/// Pause after a failed accept (e.g. out of file descriptors) before the next one.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `shutdown` is cancelled, then lets every open
/// HTTP connection finish its request and waits for them.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    gate: Gate,
    header_read_timeout: Duration,
    shutdown: CancellationToken,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        // The peer's own address: X-Forwarded-For cannot be read before the headers.
        let unfinished = match gate.open_http(peer.ip()) {
            Ok(place) => FirstRequest(Arc::new(Mutex::new(place))),
            Err(_) => {
                debug!(%peer, "too many unfinished requests from this address");
                crate::telemetry::metrics::rate_limited("unfinished_requests");
                continue;
            }
        };
        let router = router.clone();
        let arrived = unfinished.clone();
        let service = tower::service_fn(move |mut req: hyper::Request<Incoming>| {
            arrived.release();
            req.extensions_mut().insert(ConnectInfo::<SocketAddr>(peer));
            router.clone().oneshot(req)
        });
        let conn = http
            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service))
            .with_upgrades();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            tokio::pin!(conn);
            let result = tokio::select! {
                result = conn.as_mut() => result,
                () = shutdown.cancelled() => {
                    // A connection still sending its first request has nothing to
                    // finish: it is dropped, not waited for until its header timeout.
                    if unfinished.is_held() {
                        return;
                    }
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                debug!(error = %e, %peer, "http connection ended");
            }
            unfinished.release();
        });
    }
    connections.close();
    connections.wait().await;
}

/// The connection's place among its address's unfinished requests, given back when its
/// first request's headers have been read or when it closes, whichever comes first.
#[derive(Clone)]
struct FirstRequest(Arc<Mutex<Option<ConnectionPermit>>>);

impl FirstRequest {
    fn is_held(&self) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    fn release(&self) {
        drop(self.0.lock().unwrap_or_else(PoisonError::into_inner).take());
    }
}
