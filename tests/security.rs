//! Tokens, room authorization, rate limits, connection floods and origins, over real
//! sockets on both transports.

mod common;

use std::time::Duration;

use chatwire::config::{Config, RoomAcl};
use chatwire::gate::GateClock;
use common::tokens::{self, claims, SECRET};
use common::{test_config, ws_refused, SioClient, TestServer, WsClient};
use serde_json::{json, Value};

fn hs256_config() -> Config {
    let mut config = test_config();
    config.auth_enabled = true;
    config.jwt_secret = SECRET.into();
    config
}

fn auth(token: &str) -> Value {
    json!({ "auth": { "token": token } })
}

/// Asserts both transports refuse `token` with AUTH_FAILED.
async fn refused_everywhere(server: &TestServer, token: Option<&str>, why: &str) {
    let options = token.map_or(json!({}), auth);
    let message = SioClient::refused(&server.http_url(), "websocket", options).await;
    assert!(
        message.starts_with("AUTH_FAILED"),
        "{why}: socket.io said {message:?}"
    );
    let url = match token {
        Some(t) => server.ws_url(&format!("/ws?token={t}")),
        None => server.ws_url("/ws"),
    };
    let (status, body) = ws_refused(&url, &[]).await;
    assert_eq!(status, 401, "{why}: {body}");
    assert_eq!(body["code"], "AUTH_FAILED", "{why}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hs256_tokens_are_verified_on_both_transports() {
    let server = TestServer::start_with(hs256_config()).await;
    let good = tokens::hs256(SECRET, &claims("alice", json!({})));

    // Accepted: socket.io auth payload, socket.io Authorization header, raw header,
    // raw query string and raw Sec-WebSocket-Protocol.
    let mut a = SioClient::connect_with(&server.http_url(), "websocket", auth(&good)).await;
    let bearer = format!("Bearer {good}");
    let headers = json!({ "extraHeaders": { "Authorization": bearer } });
    let mut b = SioClient::connect_with(&server.http_url(), "polling", headers).await;
    let (mut c, _) =
        WsClient::connect_with(&server.ws_url("/ws/r"), &[("authorization", &bearer)]).await;
    let (mut d, _) = WsClient::connect(&server.ws_url(&format!("/ws/r?token={good}"))).await;
    let protocol = format!("bearer, {good}");
    let (mut e, _) = WsClient::connect_with(
        &server.ws_url("/ws/r"),
        &[("sec-websocket-protocol", &protocol)],
    )
    .await;

    // `from` is the token's sub, whatever the client claims.
    a.join("r").await;
    b.join("r").await;
    c.send_json(json!({ "type": "chat", "from": "mallory", "data": { "content": "hi" } }))
        .await;
    let got = a.next_event("message:new").await;
    assert_eq!(got["from"], "alice", "{got}");
    let ack = a
        .emit_ack(
            "message:send",
            json!([{ "room": "r", "content": "yo", "from": "mallory" }]),
        )
        .await;
    assert_eq!(ack["status"], "ok");
    for raw in [&mut d, &mut e] {
        assert_eq!(raw.recv_type("chat").await["from"], "alice");
        assert_eq!(raw.recv_type("chat").await["from"], "alice");
    }
    assert_eq!(b.next_event("message:new").await["from"], "alice");

    let expired = tokens::hs256(
        SECRET,
        &claims("alice", json!({ "exp": tokens::now_plus(-120) })),
    );
    let not_yet = tokens::hs256(
        SECRET,
        &claims("alice", json!({ "nbf": tokens::now_plus(600) })),
    );
    let wrong_key = tokens::hs256(
        "another-secret-entirely-another-secret",
        &claims("alice", json!({})),
    );
    let none = tokens::alg_none(&claims("alice", json!({})));
    let no_sub = tokens::hs256(SECRET, &json!({ "exp": tokens::now_plus(3600) }));
    for (token, why) in [
        (expired.as_str(), "expired"),
        (not_yet.as_str(), "not yet valid"),
        (wrong_key.as_str(), "bad signature"),
        (none.as_str(), "alg none"),
        (no_sub.as_str(), "no sub"),
        ("garbage", "garbage"),
        ("a.b.c", "three garbage parts"),
    ] {
        refused_everywhere(&server, Some(token), why).await;
    }
    refused_everywhere(&server, None, "missing").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rs256_and_es256_keys_accept_only_their_algorithm() {
    let mut config = test_config();
    config.auth_enabled = true;
    config.jwt_public_key_file = tokens::fixture("rsa_public.pem");
    let server = TestServer::start_with(config).await;
    let good = tokens::rs256(&claims("rita", json!({})));
    let (mut raw, welcome) = WsClient::connect(&server.ws_url(&format!("/ws?token={good}"))).await;
    assert!(welcome["data"]["client_id"].is_string());
    let mut sio = SioClient::connect_with(&server.http_url(), "websocket", auth(&good)).await;
    sio.send(None, "signed by rsa").await;
    assert_eq!(raw.recv_type("chat").await["from"], "rita");

    let confused = tokens::hs256_with_public_key(&claims("rita", json!({})));
    refused_everywhere(
        &server,
        Some(&confused),
        "HS256 keyed with the RSA public key",
    )
    .await;
    refused_everywhere(
        &server,
        Some(&tokens::alg_none(&claims("rita", json!({})))),
        "none",
    )
    .await;
    refused_everywhere(
        &server,
        Some(&tokens::es256(&claims("rita", json!({})))),
        "ES256",
    )
    .await;
    server.stop().await;

    let mut config = test_config();
    config.auth_enabled = true;
    config.jwt_public_key_file = tokens::fixture("ec_public.pem");
    let server = TestServer::start_with(config).await;
    let good = tokens::es256(&claims("eve", json!({})));
    let (_raw, _) = WsClient::connect(&server.ws_url(&format!("/ws?token={good}"))).await;
    refused_everywhere(
        &server,
        Some(&tokens::rs256(&claims("eve", json!({})))),
        "RS256",
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_and_audience_are_checked_when_configured() {
    let mut config = hs256_config();
    config.jwt_issuer = "https://auth.example".into();
    config.jwt_audience = "chatwire".into();
    let server = TestServer::start_with(config).await;
    let good = tokens::hs256(
        SECRET,
        &claims(
            "ann",
            json!({ "iss": "https://auth.example", "aud": "chatwire" }),
        ),
    );
    let _ok = SioClient::connect_with(&server.http_url(), "websocket", auth(&good)).await;
    let wrong_iss = tokens::hs256(
        SECRET,
        &claims("ann", json!({ "iss": "x", "aud": "chatwire" })),
    );
    refused_everywhere(&server, Some(&wrong_iss), "wrong issuer").await;
    let wrong_aud = tokens::hs256(
        SECRET,
        &claims("ann", json!({ "iss": "https://auth.example", "aud": "y" })),
    );
    refused_everywhere(&server, Some(&wrong_aud), "wrong audience").await;
    server.stop().await;
}

/// jsonwebtoken checks `iss` / `aud` only when present unless they are required: a
/// token that leaves them out must not pass when JWT_ISSUER / JWT_AUDIENCE are set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_without_iss_or_aud_is_refused_when_they_are_configured() {
    let mut config = hs256_config();
    config.jwt_issuer = "https://auth.example".into();
    config.jwt_audience = "chatwire".into();
    let server = TestServer::start_with(config).await;
    let no_iss = tokens::hs256(SECRET, &claims("ann", json!({ "aud": "chatwire" })));
    refused_everywhere(&server, Some(&no_iss), "no iss").await;
    let no_aud = tokens::hs256(
        SECRET,
        &claims("ann", json!({ "iss": "https://auth.example" })),
    );
    refused_everywhere(&server, Some(&no_aud), "no aud").await;
    let neither = tokens::hs256(SECRET, &claims("ann", json!({})));
    refused_everywhere(&server, Some(&neither), "neither").await;
    server.stop().await;

    // Only the configured one is required.
    let mut config = hs256_config();
    config.jwt_audience = "chatwire".into();
    let server = TestServer::start_with(config).await;
    let aud_only = tokens::hs256(SECRET, &claims("ann", json!({ "aud": "chatwire" })));
    let _ok = SioClient::connect_with(&server.http_url(), "websocket", auth(&aud_only)).await;
    let (_raw, _) = WsClient::connect(&server.ws_url(&format!("/ws?token={aud_only}"))).await;
    refused_everywhere(&server, Some(&no_aud), "no aud, audience configured").await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_by_default_but_a_given_token_is_still_verified() {
    let mut config = test_config();
    config.jwt_secret = SECRET.into();
    let server = TestServer::start_with(config).await;
    let mut anon = SioClient::connect(&server.http_url(), "websocket").await;
    let ack = anon
        .emit_ack("room:join", json!([{ "room": "user:alice" }]))
        .await;
    assert_eq!(
        ack["code"], "FORBIDDEN",
        "anonymous clients join no user: room: {ack}"
    );
    let (status, body) = ws_refused(&server.ws_url("/ws/user:alice"), &[]).await;
    assert_eq!((status, body["code"].clone()), (403, json!("FORBIDDEN")));
    let bad = tokens::hs256(
        "wrong-secret-wrong-secret-wrong-secret",
        &claims("a", json!({})),
    );
    refused_everywhere(
        &server,
        Some(&bad),
        "a bad token is refused even when optional",
    )
    .await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_rooms_are_private_and_acl_patterns_are_enforced() {
    let mut config = hs256_config();
    config.room_acl = RoomAcl::Claims;
    let server = TestServer::start_with(config).await;
    let alice = tokens::hs256(
        SECRET,
        &claims("alice", json!({ "rooms": ["team-*", "lobby"] })),
    );
    let bob = tokens::hs256(SECRET, &claims("bob", json!({ "rooms": ["team-1"] })));

    let mut a = SioClient::connect_with(&server.http_url(), "websocket", auth(&alice)).await;
    let ack = a
        .emit_ack("room:join", json!([{ "room": "user:bob" }]))
        .await;
    assert_eq!(ack["code"], "FORBIDDEN", "{ack}");
    let ack = a.emit_ack("room:join", json!([{ "room": "secret" }])).await;
    assert_eq!(ack["code"], "FORBIDDEN", "{ack}");
    a.join("team-7").await;
    a.join("lobby").await;

    let (status, body) =
        ws_refused(&server.ws_url(&format!("/ws/user:alice?token={bob}")), &[]).await;
    assert_eq!((status, body["code"].clone()), (403, json!("FORBIDDEN")));
    let (status, _) = ws_refused(&server.ws_url(&format!("/ws/team-7?token={bob}")), &[]).await;
    assert_eq!(status, 403, "bob's token grants only team-1");
    let (mut b, _) = WsClient::connect(&server.ws_url(&format!("/ws/team-1?token={bob}"))).await;

    // Every connection of a user is in its own user: room automatically.
    let (mut a_raw, _) = WsClient::connect(&server.ws_url(&format!("/ws?token={alice}"))).await;
    let ack = a.send(Some("user:alice"), "note to self").await;
    assert_eq!(ack["status"], "ok", "{ack}");
    let got = a_raw.recv_type("chat").await;
    assert_eq!(
        (got["room"].clone(), got["from"].clone()),
        (json!("user:alice"), json!("alice"))
    );
    b.send_json(json!({ "type": "chat", "room": "user:alice", "data": { "content": "x" } }))
        .await;
    assert_eq!(b.recv_type("error").await["data"]["code"], "CHANNEL_ERROR");
    server.stop().await;
}

/// Under ROOM_ACL=claims a room-less (global) message reaches every connection, members
/// of rooms the sender is not granted included: it needs the token's `"global": true`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_messages_under_claims_acl_need_a_global_grant() {
    let mut config = hs256_config();
    config.room_acl = RoomAcl::Claims;
    let server = TestServer::start_with(config).await;
    let alice = tokens::hs256(SECRET, &claims("alice", json!({ "rooms": ["lobby"] })));
    let bob = tokens::hs256(SECRET, &claims("bob", json!({ "rooms": ["team-1"] })));
    let ops = tokens::hs256(
        SECRET,
        &claims("ops", json!({ "rooms": ["lobby"], "global": true })),
    );
    let (mut b, _) = WsClient::connect(&server.ws_url(&format!("/ws/team-1?token={bob}"))).await;

    let mut a = SioClient::connect_with(&server.http_url(), "websocket", auth(&alice)).await;
    let ack = a.send(None, "to everyone").await;
    assert_eq!(
        ack["code"], "FORBIDDEN",
        "socket.io global without grant: {ack}"
    );
    let (mut a_raw, _) = WsClient::connect(&server.ws_url(&format!("/ws?token={alice}"))).await;
    a_raw.chat("to everyone, raw").await;
    let err = a_raw.recv_type("error").await;
    assert_eq!(
        err["data"]["code"], "FORBIDDEN",
        "raw global without grant: {err}"
    );

    // A granted sender reaches bob; it is the first chat bob sees.
    let mut o = SioClient::connect_with(&server.http_url(), "websocket", auth(&ops)).await;
    let ack = o.send(None, "maintenance at noon").await;
    assert_eq!(ack["status"], "ok", "{ack}");
    let got = b.recv_type("chat").await;
    assert_eq!(
        (got["from"].clone(), got["data"]["content"].clone()),
        (json!("ops"), json!("maintenance at noon")),
        "bob saw an ungranted global first: {got}"
    );
    server.stop().await;

    // Anonymous clients (tokens optional) have no grants at all under claims.
    let mut config = test_config();
    config.jwt_secret = SECRET.into();
    config.room_acl = RoomAcl::Claims;
    let server = TestServer::start_with(config).await;
    let mut anon = SioClient::connect(&server.http_url(), "websocket").await;
    assert_eq!(anon.send(None, "hi all").await["code"], "FORBIDDEN");
    let ack = anon
        .emit_ack("room:join", json!([{ "room": "lobby" }]))
        .await;
    assert_eq!(ack["code"], "FORBIDDEN", "{ack}");
    let (mut raw, _) = WsClient::connect(&server.ws_url("/ws")).await;
    raw.chat("hi all, raw").await;
    assert_eq!(raw.recv_type("error").await["data"]["code"], "FORBIDDEN");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_61st_message_in_a_minute_is_rate_limited_on_both_transports() {
    let mut config = test_config();
    config.rate_messages_per_min = 60;
    let clock = GateClock::manual();
    let server = TestServer::start_with_clock(config, clock.clone()).await;
    let mut sio = SioClient::connect(&server.http_url(), "websocket").await;
    let (mut raw, _) = WsClient::connect(&server.ws_url("/ws")).await;

    for i in 0..60 {
        let ack = sio.send(None, &format!("m{i}")).await;
        assert_eq!(ack["status"], "ok", "message {i}: {ack}");
    }
    let ack = sio.send(None, "one too many").await;
    assert_eq!(ack["code"], "RATE_LIMITED", "{ack}");
    let wait = ack["retry_after_ms"].as_u64().expect("retry_after_ms");
    assert!(wait > 0 && wait <= 1000, "{wait}");
    clock.advance(Duration::from_millis(wait));
    assert_eq!(sio.send(None, "after the wait").await["status"], "ok");

    // The raw client has its own allowance (another identity) and the same rule.
    for i in 0..60 {
        raw.chat(&format!("r{i}")).await;
    }
    raw.chat("one too many").await;
    let err = raw.recv_type("error").await;
    assert_eq!(err["data"]["code"], "RATE_LIMITED", "{err}");
    assert!(err["data"]["retry_after_ms"]
        .as_u64()
        .is_some_and(|ms| ms > 0));
    clock.advance(Duration::from_secs(2));
    raw.send_json(json!({ "type": "ping" })).await;
    assert_eq!(raw.recv_type("pong").await["type"], "pong");
    raw.chat("after the wait").await;
    let got = sio.next_event("message:new").await;
    assert_eq!(
        got["data"]["content"], "r0",
        "the sio client sees raw traffic: {got}"
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_from_one_ip_is_refused_while_others_connect() {
    let mut config = test_config();
    config.rate_connections_per_min = 4;
    config.trusted_proxies = "127.0.0.1".into();
    let server = TestServer::start_with(config).await;
    let from = |ip: &'static str| [("x-forwarded-for", ip)];

    let mut kept = Vec::new();
    for _ in 0..2 {
        kept.push(WsClient::connect_with(&server.ws_url("/ws"), &from("203.0.113.9")).await);
    }
    let headers = json!({ "extraHeaders": { "X-Forwarded-For": "203.0.113.9" } });
    let _s1 = SioClient::connect_with(&server.http_url(), "websocket", headers.clone()).await;
    let _s2 = SioClient::connect_with(&server.http_url(), "websocket", headers.clone()).await;
    let (status, body) = ws_refused(&server.ws_url("/ws"), &from("203.0.113.9")).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["code"], "RATE_LIMITED");
    assert!(body["retry_after_ms"].as_u64().is_some_and(|ms| ms > 0));
    let message = SioClient::refused(&server.http_url(), "websocket", headers).await;
    assert!(message.starts_with("RATE_LIMITED"), "{message}");

    // Other addresses are unaffected; an untrusted peer cannot pick its address.
    let (_other, _) = WsClient::connect_with(&server.ws_url("/ws"), &from("198.51.100.7")).await;
    let other = json!({ "extraHeaders": { "X-Forwarded-For": "198.51.100.8" } });
    let _s3 = SioClient::connect_with(&server.http_url(), "polling", other).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_per_ip_are_capped() {
    let mut config = test_config();
    config.max_connections_per_ip = 2;
    let server = TestServer::start_with(config).await;
    let (a, _) = WsClient::connect(&server.ws_url("/ws")).await;
    let _b = SioClient::connect(&server.http_url(), "websocket").await;
    let (status, body) = ws_refused(&server.ws_url("/ws"), &[]).await;
    assert_eq!((status, body["code"].clone()), (429, json!("RATE_LIMITED")));
    // Closing one frees its place.
    drop(a);
    common::wait_for_health(server.addr, |h| h["connections"]["ws"] == 0).await;
    let (_c, _) = WsClient::connect(&server.ws_url("/ws")).await;
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiring_token_ends_the_connection_at_expiry() {
    let mut config = hs256_config();
    config.jwt_leeway = Duration::ZERO;
    let server = TestServer::start_with(config).await;
    let short = tokens::hs256(
        SECRET,
        &claims("sam", json!({ "exp": tokens::now_plus(5) })),
    );
    let mut sio = SioClient::connect_with(&server.http_url(), "websocket", auth(&short)).await;
    let (mut raw, _) = WsClient::connect(&server.ws_url(&format!("/ws?token={short}"))).await;

    let err = sio.next_event("error").await;
    assert_eq!(err["code"], "AUTH_FAILED", "{err}");
    assert_eq!(
        sio.next_of("disconnect").await["reason"],
        "io server disconnect"
    );
    let err = raw.recv_type("error").await;
    assert_eq!(err["data"]["code"], "AUTH_FAILED", "{err}");
    assert_eq!(raw.expect_close().await, 1008);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_origins_connect_and_get_cors_headers() {
    let mut config = test_config();
    config.allowed_origins = "https://chat.example.com".into();
    let server = TestServer::start_with(config).await;
    let evil = [("origin", "https://evil.example")];
    let (status, body) = ws_refused(&server.ws_url("/ws"), &evil).await;
    assert_eq!((status, body["code"].clone()), (403, json!("FORBIDDEN")));
    let headers = json!({ "extraHeaders": { "Origin": "https://evil.example" } });
    let message = SioClient::refused(&server.http_url(), "polling", headers).await;
    assert!(!message.is_empty());

    let (_ok, _) = WsClient::connect_with(
        &server.ws_url("/ws"),
        &[("origin", "https://chat.example.com")],
    )
    .await;
    let good = json!({ "extraHeaders": { "Origin": "https://chat.example.com" } });
    let _sio = SioClient::connect_with(&server.http_url(), "polling", good).await;
    let (status, head) = common::http_get_with(
        server.addr,
        "/socket.io/?EIO=4&transport=polling",
        &[("Origin", "https://chat.example.com")],
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("access-control-allow-origin: https://chat.example.com"),
        "{head}"
    );
    server.stop().await;
}
