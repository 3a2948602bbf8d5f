//! Receivers built the way ordinary clients are (`--client ordinary`): tokio-tungstenite
//! over a `TcpStream` with TCP_NODELAY, a 4 KiB read buffer, one task per connection,
//! every frame read as soon as it arrives and parsed as JSON, pings answered at once.
//! The lean receivers ([`crate::wire`]) instead read whatever has piled up into one
//! growing buffer and find the send stamp without parsing; the server's cost per
//! delivery differs between the two (BENCHMARKS.md), and users run ordinary clients.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::swarm::{now_us, Proto, Reader, Stats};

/// Read buffer of an ordinary client, in bytes.
const READ_BUFFER: usize = 4096;

type Ws = WebSocketStream<TcpStream>;

fn broken(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// The next text frame, answering engine.io pings (`2` -> `3`) on the way.
async fn next_text(ws: &mut Ws) -> io::Result<String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) if text.as_str() == "2" => {
                ws.send(Message::text("3")).await.map_err(broken)?;
            }
            Some(Ok(Message::Text(text))) => return Ok(text.as_str().to_owned()),
            Some(Ok(Message::Close(_))) | None => return Err(io::ErrorKind::UnexpectedEof.into()),
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(broken(e)),
        }
    }
}

/// Opens one ordinary client joined to `room`. Bounded by a 10 s timeout.
pub async fn open(host: &str, proto: Proto, room: &str) -> io::Result<Ws> {
    let fut = async {
        let stream = TcpStream::connect(host).await?;
        stream.set_nodelay(true)?;
        let path = match proto {
            Proto::Raw => format!("/ws/{room}"),
            Proto::Sio => "/socket.io/?EIO=4&transport=websocket".to_owned(),
        };
        let mut config = WebSocketConfig::default();
        config.read_buffer_size = READ_BUFFER;
        let (mut ws, _) = tokio_tungstenite::client_async_with_config(
            format!("ws://{host}{path}"),
            stream,
            Some(config),
        )
        .await
        .map_err(broken)?;
        if proto == Proto::Raw {
            next_text(&mut ws).await?; // the welcome frame: the connection is in the room
            return Ok(ws);
        }
        next_text(&mut ws).await?; // Engine.IO open
        ws.send(Message::text("40")).await.map_err(broken)?;
        while !next_text(&mut ws).await?.starts_with("40") {}
        let join = format!("420[\"room:join\",{{\"room\":\"{room}\"}}]");
        ws.send(Message::text(join)).await.map_err(broken)?;
        while !next_text(&mut ws).await?.starts_with("430") {}
        Ok(ws)
    };
    timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into()))
}

/// `(sent_us, phase)` from a parsed chat message: its `data.content` is `t<us>-<phase>`.
fn stamp_of(message: &Value) -> Option<(u64, usize)> {
    let content = message.get("data")?.get("content")?.as_str()?;
    let (sent, phase) = content.strip_prefix('t')?.split_once('-')?;
    Some((sent.parse().ok()?, phase.parse().ok()?))
}

/// The chat message a frame carries: socket.io `42["message:new",{...}]`, or a raw
/// `realtime.Message`.
fn message_of(proto: Proto, text: &str) -> Option<Value> {
    match proto {
        Proto::Sio => {
            let Value::Array(mut packet) = serde_json::from_str(text.strip_prefix("42")?).ok()?
            else {
                return None;
            };
            (packet.len() >= 2).then(|| packet.swap_remove(1))
        }
        Proto::Raw => serde_json::from_str(text).ok(),
    }
}

/// Reads until the connection ends, recording stamped deliveries for `slot` (and, as a
/// reader, marking them read).
pub async fn receive(
    mut ws: Ws,
    proto: Proto,
    stats: Rc<RefCell<Stats>>,
    slot: usize,
    mut reader: Option<Reader>,
) {
    while let Ok(text) = next_text(&mut ws).await {
        stats.borrow_mut().last_frame_us = now_us();
        let Some(message) = message_of(proto, &text) else {
            continue;
        };
        if let Some((sent, phase)) = stamp_of(&message) {
            stats.borrow_mut().record(sent, phase, slot);
            let offset = message.get("offset").and_then(Value::as_u64);
            if let Some(frame) = reader.as_mut().zip(offset).and_then(|(r, o)| r.due(o)) {
                if ws.send(Message::text(frame)).await.is_err() {
                    return;
                }
                stats.borrow_mut().reads += 1;
            }
        }
    }
}
