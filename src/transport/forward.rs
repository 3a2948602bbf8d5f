//! socket.io behind a load balancer without sticky sessions. With POD_URL (and
//! REDIS_URL) set, this pod tags the engine.io session ids it opens with its own tag
//! (`{sid}.{tag}` in the polling handshake's open packet), advertises POD_URL under
//! that tag in Redis, and forwards every request whose session another pod owns
//! (a polling GET or POST, or the upgrade of a polling session to WebSocket) to that
//! pod. Requests for its own sessions (every request, behind sticky sessions) are
//! served here with the tag taken off, without a hop.
//!
//! The tag is the owner's name, not its address: a client can only point a request
//! at a pod that advertises itself in Redis, never at an address of its choosing.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Semaphore;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::redis::PodAddresses;
use crate::telemetry::metrics;

/// Where socket.io's requests arrive (with or without the trailing slash).
const SOCKETIO_PATH: &str = "/socket.io";
/// Set on a forwarded request: the pod that gets it serves it or refuses it, never
/// forwards it again.
const FORWARDED_BY: &str = "x-chatwire-forwarded-by";
/// Largest polling handshake answer that is read to tag its session id.
const OPEN_PACKET_LIMIT: usize = 16 * 1024;
/// Longest wait for a TCP connection to the owner.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Hex digits of a pod's tag.
const TAG_LEN: usize = 12;
/// Forwarded requests and tunnels in flight at once, at most; more are answered 503.
const MAX_FORWARDS: usize = 16_384;
/// Bytes read at once from either side of a tunnel.
const TUNNEL_CHUNK: usize = 8 * 1024;

/// The answer engine.io gives for a session it does not know (the client opens a new
/// one).
const UNKNOWN_SESSION: &str = r#"{"code":"1","message":"Session ID unknown"}"#;

/// What [`route`] needs: this pod's tag, the address book, and a client to the others.
#[derive(Clone)]
pub struct SessionRouter {
    inner: Arc<Inner>,
}

struct Inner {
    tag: String,
    addresses: PodAddresses,
    client: Client<HttpConnector, Body>,
    /// Longest wait for the owner's answer to start (a long poll waits up to the ping
    /// interval).
    answer_within: Duration,
    /// Ends the WebSocket tunnels to other pods, and stops waiting for other pods'
    /// answers, when this pod stops.
    shutdown: CancellationToken,
    /// Places for forwarded requests and tunnels in flight.
    places: Arc<Semaphore>,
}

impl SessionRouter {
    /// The router of the pod tagged `tag`. `answer_within` bounds the wait for an
    /// owner's answer; `idle` bounds how long an idle connection to it is kept.
    pub fn new(
        tag: String,
        addresses: PodAddresses,
        answer_within: Duration,
        idle: Duration,
        shutdown: CancellationToken,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(idle)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Self {
            inner: Arc::new(Inner {
                tag,
                addresses,
                client,
                answer_within,
                shutdown,
                places: Arc::new(Semaphore::new(MAX_FORWARDS)),
            }),
        }
    }

    /// This pod's tag.
    pub fn tag(&self) -> &str {
        &self.inner.tag
    }
}

/// The tag of the pod whose id is `pod_id`: the last [`TAG_LEN`] hex digits of it (the
/// random end of a UUID v7).
pub fn tag_of(pod_id: &str) -> String {
    let hex: String = pod_id.chars().filter(char::is_ascii_hexdigit).collect();
    hex[hex.len().saturating_sub(TAG_LEN)..].to_ascii_lowercase()
}

fn is_tag(s: &str) -> bool {
    s.len() == TAG_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// The middleware: serves this pod's sessions (tag removed), tags the sessions it
/// opens, forwards other pods' sessions to them.
pub async fn route(State(router): State<SessionRouter>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !(path == SOCKETIO_PATH || path.starts_with("/socket.io/")) {
        return next.run(req).await;
    }
    // A shared copy (no allocation): the request is changed or moved below.
    let uri = req.uri().clone();
    let query = uri.query().unwrap_or_default();
    let Some(sid) = param(query, "sid") else {
        let opens_polling =
            req.method() == Method::GET && param(query, "transport") == Some("polling");
        let response = next.run(req).await;
        // Tagged once the other pods can find this one.
        return if opens_polling && router.inner.addresses.advertised() {
            tag_open_packet(response, router.tag()).await
        } else {
            response
        };
    };
    let Some((own_sid, tag)) = sid.rsplit_once('.').filter(|(_, t)| is_tag(t)) else {
        // Not tagged: a session of this pod opened without POD_URL, or unknown.
        return next.run(req).await;
    };
    if tag == router.tag() {
        if let Some(uri) = without_tag(&uri, query, own_sid) {
            *req.uri_mut() = uri;
        }
        return next.run(req).await;
    }
    if req.headers().contains_key(FORWARDED_BY) {
        // Sent here by a pod that thought this one owns it: no second hop.
        metrics::session_forward("refused_hop");
        return unknown_session();
    }
    let tag = tag.to_owned();
    forward(&router, &tag, req).await
}

/// The value of `name` in a query string (not percent-decoded: session ids and
/// transport names need none).
fn param<'q>(query: &'q str, name: &str) -> Option<&'q str> {
    query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
}

/// `uri` with its `sid` parameter set to `own`, the session id engine.io knows.
fn without_tag(uri: &Uri, query: &str, own: &str) -> Option<Uri> {
    let rewritten: Vec<String> = query
        .split('&')
        .map(|pair| match pair.strip_prefix("sid=") {
            Some(_) => format!("sid={own}"),
            None => pair.to_owned(),
        })
        .collect();
    format!("{}?{}", uri.path(), rewritten.join("&"))
        .parse()
        .ok()
}

/// Puts this pod's tag on the session id of a polling handshake's open packet
/// (`0{"sid":...}`); anything else passes unchanged.
async fn tag_open_packet(response: Response, tag: &str) -> Response {
    if response.status() != StatusCode::OK {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, OPEN_PACKET_LIMIT).await else {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            "handshake answer unreadable",
        )
            .into_response();
    };
    let tagged = bytes
        .strip_prefix(b"0")
        .and_then(|json| serde_json::from_slice::<serde_json::Value>(json).ok())
        .and_then(|mut open| {
            let sid = open.get("sid")?.as_str()?.to_owned();
            open["sid"] = serde_json::Value::String(format!("{sid}.{tag}"));
            Some(format!("0{open}"))
        });
    let body = match tagged {
        Some(text) => {
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(text.len()));
            Body::from(text)
        }
        None => Body::from(bytes),
    };
    Response::from_parts(parts, body)
}

/// Sends `req` to the pod tagged `tag` and answers with its answer (for a WebSocket
/// upgrade, tunnels the two connections together).
async fn forward(router: &SessionRouter, tag: &str, mut req: Request) -> Response {
    let inner = &router.inner;
    let Ok(place) = inner.places.clone().try_acquire_owned() else {
        metrics::session_forward("busy");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many forwarded requests",
        )
            .into_response();
    };
    let place = Place::taken(place);
    let Some(base) = inner.addresses.lookup(tag).await else {
        metrics::session_forward("unknown_pod");
        return unknown_session();
    };
    // Only a GET upgrades; any other request keeps its body.
    let upgrade = req.method() == Method::GET && is_upgrade(req.headers());
    let polls = req.method() == Method::GET && !upgrade;
    let downstream = upgrade.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let Ok(uri) = format!("{}{path}", base.trim_end_matches('/')).parse::<Uri>() else {
        metrics::session_forward("unknown_pod");
        return unknown_session();
    };
    parts.uri = uri;
    if !upgrade {
        strip_hop_headers(&mut parts.headers);
    }
    if let Ok(by) = HeaderValue::from_str(&inner.tag) {
        parts.headers.insert(FORWARDED_BY, by);
    }
    let body = if upgrade { Body::empty() } else { body };
    let sent = tokio::time::timeout(
        inner.answer_within,
        inner.client.request(Request::from_parts(parts, body)),
    );
    let answered = tokio::select! {
        answered = sent => answered,
        // Draining: a long poll waiting on another pod must not hold the drain up. An
        // empty answer (a noop packet) sends the client to poll again, elsewhere.
        () = inner.shutdown.cancelled() => {
            metrics::session_forward("drained");
            return if polls {
                ([(header::CONTENT_TYPE, "text/plain; charset=UTF-8")], "6").into_response()
            } else {
                (StatusCode::SERVICE_UNAVAILABLE, "this pod is shutting down").into_response()
            };
        }
    };
    let mut answer = match answered {
        Ok(Ok(answer)) => answer,
        Ok(Err(e)) => {
            debug!(error = %e, %tag, "forwarding to the session's pod failed");
            metrics::session_forward("unreachable");
            if e.is_connect() {
                inner.addresses.forget(tag);
                // Its pod is gone, and the session with it: the client opens a new one.
                return unknown_session();
            }
            return (StatusCode::BAD_GATEWAY, "the session's pod did not answer").into_response();
        }
        Err(_) => {
            metrics::session_forward("timeout");
            return (
                StatusCode::GATEWAY_TIMEOUT,
                "the session's pod did not answer in time",
            )
                .into_response();
        }
    };
    metrics::session_forward("forwarded");
    if let (Some(downstream), StatusCode::SWITCHING_PROTOCOLS) = (downstream, answer.status()) {
        let upstream = hyper::upgrade::on(&mut answer);
        let (stop, idle) = (inner.shutdown.clone(), inner.answer_within);
        tokio::spawn(async move {
            let (Ok(down), Ok(up)) = tokio::join!(downstream, upstream) else {
                return;
            };
            tunnel(TokioIo::new(down), TokioIo::new(up), idle, stop).await;
            drop(place);
        });
        return answer.map(Body::new);
    }
    strip_hop_headers(answer.headers_mut());
    answer.map(Body::new)
}

/// Moves bytes both ways between a client and a session's pod until either side ends
/// (then both are closed), nothing moves for `idle` (engine.io pings every
/// PING_INTERVAL, so a live session always has traffic), or `stop`.
async fn tunnel<A, B>(down: A, up: B, idle: Duration, stop: CancellationToken)
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite,
{
    let (mut down_read, mut down_write) = tokio::io::split(down);
    let (mut up_read, mut up_write) = tokio::io::split(up);
    let (mut from_client, mut from_pod) = (vec![0u8; TUNNEL_CHUNK], vec![0u8; TUNNEL_CHUNK]);
    loop {
        let moved = tokio::select! {
            n = down_read.read(&mut from_client) => match n {
                Ok(n) if n > 0 => up_write.write_all(&from_client[..n]).await.is_ok(),
                _ => false,
            },
            n = up_read.read(&mut from_pod) => match n {
                Ok(n) if n > 0 => down_write.write_all(&from_pod[..n]).await.is_ok(),
                _ => false,
            },
            () = tokio::time::sleep(idle) => false,
            () = stop.cancelled() => false,
        };
        if !moved {
            break;
        }
    }
    let _ = up_write.shutdown().await;
    let _ = down_write.shutdown().await;
}

/// A place among the forwards in flight, counted in a gauge while held.
struct Place(#[allow(dead_code)] tokio::sync::OwnedSemaphorePermit);

impl Place {
    fn taken(permit: tokio::sync::OwnedSemaphorePermit) -> Self {
        metrics::session_forwards_in_flight(1.0);
        Self(permit)
    }
}

impl Drop for Place {
    fn drop(&mut self) {
        metrics::session_forwards_in_flight(-1.0);
    }
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// Removes the headers that belong to one connection, not to the request (RFC 9110
/// 7.6.1), including those the `Connection` header names.
fn strip_hop_headers(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHORIZATION,
        HeaderName::from_static("keep-alive"),
        HeaderName::from_static("proxy-connection"),
    ] {
        headers.remove(name);
    }
}

fn unknown_session() -> Response {
    (
        StatusCode::BAD_REQUEST,
        [(header::CONTENT_TYPE, "application/json")],
        UNKNOWN_SESSION,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_the_random_end_of_the_pod_id() {
        let tag = tag_of("0192f3a4-5b6c-7d8e-9f01-23456789abcd");
        assert_eq!(tag, "23456789abcd");
        assert!(is_tag(&tag));
        assert!(!is_tag("23456789abc"));
        assert!(!is_tag("23456789abcG"));
    }

    #[test]
    fn the_session_parameter_is_found_and_cut_to_engineios_id() {
        let query = "EIO=4&transport=polling&t=abc&sid=AAAAAAAAAAAAAAHs.23456789abcd";
        assert_eq!(param(query, "sid"), Some("AAAAAAAAAAAAAAHs.23456789abcd"));
        assert_eq!(param(query, "transport"), Some("polling"));
        assert_eq!(param(query, "t"), Some("abc"));
        assert_eq!(param("xsid=1", "sid"), None);
        let uri: Uri = format!("/socket.io/?{query}").parse().expect("uri");
        let cut = without_tag(&uri, query, "AAAAAAAAAAAAAAHs").expect("rewritten");
        assert_eq!(
            cut.to_string(),
            "/socket.io/?EIO=4&transport=polling&t=abc&sid=AAAAAAAAAAAAAAHs"
        );
    }

    #[tokio::test]
    async fn the_open_packet_gets_the_tag_and_a_true_length() {
        let open = r#"0{"sid":"AAAAAAAAAAAAAAHs","upgrades":["websocket"],"pingInterval":25000}"#;
        let response = Response::builder()
            .header(header::CONTENT_LENGTH, open.len())
            .body(Body::from(open))
            .expect("response");
        let tagged = tag_open_packet(response, "23456789abcd").await;
        let length = tagged.headers()[header::CONTENT_LENGTH].clone();
        let body = axum::body::to_bytes(tagged.into_body(), 1024)
            .await
            .expect("body");
        let text = std::str::from_utf8(&body).expect("utf-8");
        assert!(text.starts_with("0{"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&text[1..]).expect("json");
        assert_eq!(json["sid"], "AAAAAAAAAAAAAAHs.23456789abcd");
        assert_eq!(json["pingInterval"], 25000);
        assert_eq!(length, text.len().to_string());
    }

    #[test]
    fn hop_headers_go_and_the_rest_stay() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-one"),
        );
        headers.insert("x-one", HeaderValue::from_static("1"));
        headers.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        headers.insert(header::COOKIE, HeaderValue::from_static("a=b"));
        strip_hop_headers(&mut headers);
        assert_eq!(headers.len(), 1, "{headers:?}");
        assert!(headers.contains_key(header::COOKIE));
    }
}
