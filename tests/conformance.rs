//! The conformance server's handshake, heartbeat, upgrade and Socket.IO rules
//! (shared/SIO-CONFORMANCE.md), checked packet by packet over real sockets.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{http_get, WsStream, WAIT};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::Message as WsMessage;

async fn start() -> SocketAddr {
    let app = chatwire::conformance::app().expect("conformance app");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .ok();
    });
    addr
}

async fn post(addr: SocketAddr, path: &str, body: &str) -> (u16, String) {
    let headers = [("Content-Type", "text/plain")];
    let (status, raw) = common::http_request(addr, "POST", path, &headers, body).await;
    (status, common::body_of(&raw))
}

/// Opens a polling session and returns its sid and open packet.
async fn polling_open(addr: SocketAddr) -> (String, Value) {
    let (status, body) = http_get(addr, "/socket.io/?EIO=4&transport=polling").await;
    assert_eq!(status, 200, "{body}");
    let open: Value =
        serde_json::from_str(body.strip_prefix('0').expect("open packet")).expect("json");
    (open["sid"].as_str().expect("sid").to_owned(), open)
}

async fn ws(addr: SocketAddr, query: &str) -> WsStream {
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket{query}");
    tokio_tungstenite::connect_async(url)
        .await
        .expect("upgrade")
        .0
}

/// The next text packet, skipping pings (answered when `pong`).
async fn next(ws: &mut WsStream, pong: bool) -> Option<String> {
    loop {
        match timeout(WAIT, ws.next()).await.expect("a packet in time") {
            Some(Ok(WsMessage::Text(t))) if t.as_str() == "2" => {
                if pong {
                    ws.send(WsMessage::text("3")).await.ok();
                }
            }
            Some(Ok(WsMessage::Text(t))) => return Some(t.to_string()),
            Some(Ok(WsMessage::Binary(b))) => return Some(format!("<binary {b:?}>")),
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => return None,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_answers_with_exactly_the_expected_keys() {
    let addr = start().await;
    let (_, open) = polling_open(addr).await;
    let mut keys: Vec<&str> = open
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "maxPayload",
            "pingInterval",
            "pingTimeout",
            "sid",
            "upgrades"
        ]
    );
    assert_eq!(open["upgrades"], serde_json::json!(["websocket"]));
    assert_eq!(
        (open["pingInterval"].clone(), open["pingTimeout"].clone()),
        (300.into(), 200.into())
    );
    assert_eq!(open["maxPayload"], 1_000_000);

    let mut direct = ws(addr, "").await;
    let first = next(&mut direct, false).await.expect("open packet");
    let open: Value = serde_json::from_str(first.strip_prefix('0').expect("open")).expect("json");
    assert_eq!(open["upgrades"], serde_json::json!([]));

    for bad in [
        "/socket.io/?transport=polling",
        "/socket.io/?EIO=abc&transport=polling",
        "/socket.io/?EIO=4",
        "/socket.io/?EIO=4&transport=carrier-pigeon",
        "/socket.io/?EIO=4&transport=polling&sid=nope",
    ] {
        assert_eq!(http_get(addr, bad).await.0, 400, "{bad}");
    }
    assert_eq!(
        post(addr, "/socket.io/?EIO=4&transport=polling", "1:6")
            .await
            .0,
        400,
        "POST without sid"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_closed_after_the_ping_timeout() {
    let addr = start().await;
    let mut silent = ws(addr, "").await;
    next(&mut silent, false).await.expect("open");
    let started = Instant::now();
    // Never answer pings: the server closes the session (interval 300 ms + timeout 200 ms).
    while next(&mut silent, false).await.is_some() {}
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // A polling session that never answers is gone too: a later GET gets 400.
    let (sid, _) = polling_open(addr).await;
    let (status, body) = http_get(
        addr,
        &format!("/socket.io/?EIO=4&transport=polling&sid={sid}"),
    )
    .await;
    assert_eq!(
        (status, body.as_str()),
        (200, "2"),
        "the first GET returns the first ping"
    );
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, _) = http_get(
            addr,
            &format!("/socket.io/?EIO=4&transport=polling&sid={sid}"),
        )
        .await;
        if status == 400 {
            break;
        }
        assert!(Instant::now() < deadline, "session never closed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_upgrades_to_websocket_and_the_old_transport_is_refused() {
    let addr = start().await;
    let (sid, _) = polling_open(addr).await;
    let mut upgraded = ws(addr, &format!("&sid={sid}")).await;
    upgraded
        .send(WsMessage::text("2probe"))
        .await
        .expect("probe");
    assert_eq!(next(&mut upgraded, true).await.as_deref(), Some("3probe"));
    upgraded.send(WsMessage::text("5")).await.expect("upgrade");
    // Packets right after the upgrade are handled.
    upgraded.send(WsMessage::text("40")).await.expect("connect");
    let ack = next(&mut upgraded, true).await.expect("connect ack");
    assert!(ack.starts_with("40{\"sid\":"), "{ack}");
    let (status, _) = http_get(
        addr,
        &format!("/socket.io/?EIO=4&transport=polling&sid={sid}"),
    )
    .await;
    assert_eq!(status, 400, "polling after the upgrade");
    assert_eq!(
        next(&mut upgraded, true).await.as_deref(),
        Some("42[\"auth\",{}]")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socketio_connect_auth_echo_and_namespaces() {
    let addr = start().await;
    let mut c = ws(addr, "").await;
    next(&mut c, true).await.expect("open");
    c.send(WsMessage::text("40{\"token\":\"123\"}"))
        .await
        .expect("connect");
    let ack = next(&mut c, true).await.expect("ack");
    let body: Value = serde_json::from_str(ack.strip_prefix("40").expect("40")).expect("json");
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(1),
        "only sid: {ack}"
    );
    assert_eq!(
        next(&mut c, true).await.as_deref(),
        Some("42[\"auth\",{\"token\":\"123\"}]")
    );

    c.send(WsMessage::text("42[\"message\",1,\"2\",{\"3\":[true]}]"))
        .await
        .expect("send");
    assert_eq!(
        next(&mut c, true).await.as_deref(),
        Some("42[\"message-back\",1,\"2\",{\"3\":[true]}]")
    );
    c.send(WsMessage::text(
        "42456[\"message-with-ack\",1,\"2\",{\"3\":[false]}]",
    ))
    .await
    .expect("send");
    assert_eq!(
        next(&mut c, true).await.as_deref(),
        Some("43456[1,\"2\",{\"3\":[false]}]")
    );
    c.send(WsMessage::text(
        "452-[\"message\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]",
    ))
    .await
    .expect("send");
    c.send(WsMessage::binary(vec![1u8, 2]))
        .await
        .expect("attachment");
    c.send(WsMessage::binary(vec![3u8]))
        .await
        .expect("attachment");
    assert_eq!(
        next(&mut c, true).await.as_deref(),
        Some("452-[\"message-back\",{\"_placeholder\":true,\"num\":0},{\"_placeholder\":true,\"num\":1}]")
    );
    assert_eq!(
        next(&mut c, true).await.as_deref(),
        Some("<binary b\"\\x01\\x02\">")
    );
    assert_eq!(
        next(&mut c, true).await.as_deref(),
        Some("<binary b\"\\x03\">")
    );

    c.send(WsMessage::text("40/custom")).await.expect("custom");
    let ack = next(&mut c, true).await.expect("custom ack");
    assert!(ack.starts_with("40/custom,{\"sid\":"), "{ack}");
    assert_eq!(
        next(&mut c, true).await.as_deref(),
        Some("42/custom,[\"auth\",{}]")
    );
    c.send(WsMessage::text("40/random")).await.expect("random");
    assert_eq!(
        next(&mut c, true).await.as_deref(),
        Some("44/random,{\"message\":\"Invalid namespace\"}")
    );

    // A malformed Socket.IO packet closes the session (an Engine.IO close packet, then
    // the socket ends).
    c.send(WsMessage::text("42{}")).await.expect("bad");
    let after = next(&mut c, true).await;
    assert!(
        after.is_none() || after.as_deref() == Some("1"),
        "{after:?}"
    );
    if after.is_some() {
        assert_eq!(next(&mut c, true).await, None);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_without_connect_is_closed_after_the_connect_timeout() {
    let addr = start().await;
    let mut idle = ws(addr, "").await;
    next(&mut idle, true).await.expect("open");
    let started = Instant::now();
    while next(&mut idle, true).await.is_some() {}
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
}
