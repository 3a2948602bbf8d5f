//! Bare socketioxide reference: `room:join` and `message:send` -> `message:new`, the
//! floor chatwire's features are measured against. Current-thread runtime, PORT
//! (default 3200).

use serde::Deserialize;
use serde_json::json;
use socketioxide::extract::{AckSender, Data, SocketRef};
use socketioxide::SocketIo;

#[derive(Deserialize)]
struct Join {
    room: String,
}

#[derive(Deserialize)]
struct Send {
    room: String,
    content: String,
}

async fn on_connect(socket: SocketRef) {
    socket.on("room:join", async |socket: SocketRef, Data(j): Data<Join>, ack: AckSender| {
        socket.join(j.room.clone());
        ack.send(&json!({ "status": "ok", "room": j.room })).ok();
    });
    socket.on("message:send", async |socket: SocketRef, Data(m): Data<Send>, ack: AckSender| {
        let id = uuid::Uuid::now_v7();
        let timestamp = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let message = json!({ "id": id, "type": "chat", "room": m.room, "from": socket.id.to_string(),
            "data": { "content": m.content }, "timestamp": timestamp });
        socket.to(m.room).emit("message:new", &message).await.ok();
        ack.send(&json!({ "status": "ok", "id": id, "timestamp": timestamp })).ok();
    });
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::var("PORT").ok().and_then(|p| p.parse().ok()).unwrap_or(3200);
    let (layer, io) = SocketIo::builder().build_layer();
    io.ns("/", on_connect);
    let app = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("sio-ref listening on {port}");
    axum::serve(listener, app).await?;
    Ok(())
}
