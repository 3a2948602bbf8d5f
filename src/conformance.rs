//! The Socket.IO conformance server (shared/SIO-CONFORMANCE.md): the settings and echo
//! handlers the official Engine.IO v4 / Socket.IO v5 protocol suites expect, built from
//! the product's own pieces: the socket.io wire settings (`transport::socketio::wire`),
//! the edge layers (`server::edge_layers`: origin check, CORS) and the gate.
//! `cargo run --example conformance` serves it on 127.0.0.1:3000.
//!
//! Known deviation: socketioxide 0.18 sends the first Engine.IO ping right after the
//! session opens, where the reference server waits one ping interval; the few suite
//! tests that check that timing fail whatever the application does.

use std::time::Duration;

use crate::config::Config;
use crate::gate::{Gate, GateClock};
use crate::server::edge_layers;
use crate::transport::socketio::{wire, SioSettings, FRAME_SLACK_BYTES};
use axum::Router;
use serde_json::json;
use socketioxide::extract::{AckSender, Data, SocketRef, TryData};
use socketioxide::SocketIo;

/// Engine.IO settings the suites expect.
pub fn conformance_settings() -> SioSettings {
    SioSettings {
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(200),
        // wire() adds FRAME_SLACK_BYTES: the handshake must say exactly 1000000.
        max_message_bytes: 1_000_000 - FRAME_SLACK_BYTES,
        send_buffer: 256,
        connect_timeout: Duration::from_millis(1000),
    }
}

async fn on_connect(socket: SocketRef, TryData(auth): TryData<serde_json::Value>) {
    // First thing after the CONNECT ack: the CONNECT payload back, `{}` when none.
    let auth = auth.unwrap_or_else(|_| json!({}));
    if let Err(e) = socket.emit("auth", &auth) {
        eprintln!("auth not emitted: {e}");
    }
    socket.on(
        "message",
        async |socket: SocketRef, Data(args): Data<Args>| {
            if let Err(e) = socket.emit("message-back", &args) {
                eprintln!("message-back not emitted: {e}");
            }
        },
    );
    socket.on(
        "message-with-ack",
        async |Data(args): Data<Args>, ack: AckSender| {
            if let Err(e) = ack.send(&args) {
                eprintln!("ack not sent: {e}");
            }
        },
    );
}

/// Every argument of an event, binary attachments included, re-emitted as separate
/// arguments in the same order.
#[derive(Debug)]
struct Args(Vec<rmpv::Value>);

impl<'de> serde::Deserialize<'de> for Args {
    fn deserialize<D: serde::Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Args;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("event arguments")
            }
            fn visit_seq<S: serde::de::SeqAccess<'de>>(self, mut seq: S) -> Result<Args, S::Error> {
                let mut args = Vec::new();
                while let Some(arg) = seq.next_element::<rmpv::Value>()? {
                    args.push(arg);
                }
                Ok(Args(args))
            }
        }
        de.deserialize_tuple(usize::MAX, Visitor)
    }
}

impl serde::Serialize for Args {
    fn serialize<S: serde::Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut tuple = ser.serialize_tuple(self.0.len())?;
        for arg in &self.0 {
            tuple.serialize_element(arg)?;
        }
        tuple.end()
    }
}

/// The conformance app: `/socket.io/` with namespaces `/` and `/custom`, behind the
/// product's edge layers.
pub fn app() -> anyhow::Result<Router> {
    let mut config = Config::defaults();
    // The suites open many sessions from one address.
    config.rate_connections_per_min = 0;
    config.max_connections_per_ip = 0;
    let gate = Gate::new(&config, GateClock::default())
        .map_err(|(key, reason)| anyhow::anyhow!("invalid value for {key}: {reason}"))?;
    let (layer, io) = wire(SocketIo::builder(), conformance_settings()).build_layer();
    io.ns("/", on_connect);
    io.ns("/custom", on_connect);
    Ok(edge_layers(Router::new().layer(layer), &gate))
}
